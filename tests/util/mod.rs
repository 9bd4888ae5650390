//! Helpers shared by the integration tests: running the binary, and finding
//! the shared data (or saying why a test skips).
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `floodwatch -q ARGS`.
pub fn fw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floodwatch"))
        .arg("-q")
        .args(args)
        .output()
        .expect("run floodwatch")
}

/// Runs `floodwatch -q ARGS`, asserts success and returns standard output.
pub fn ok(args: &[&str]) -> String {
    let out = fw(args);
    assert!(
        out.status.success(),
        "floodwatch {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `../shared/REL` when present; otherwise says the test skips.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        assert!(
            std::env::var_os("FLOODWATCH_REQUIRE_DATA").is_none(),
            "FLOODWATCH_REQUIRE_DATA is set but ../shared/{rel} not found"
        );
        eprintln!("skipping: ../shared/{rel} not found");
        None
    }
}

/// Splits a CSV by data row: odd rows (1st, 3rd, ...) to `train`, even ones
/// to `test`, each with the header, so the two sets are disjoint.
pub fn split_rows(src: &Path, train: &Path, test: &Path) {
    let text = std::fs::read_to_string(src).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let (mut a, mut b) = (format!("{header}\n"), format!("{header}\n"));
    for (i, l) in lines.enumerate() {
        let out = if i % 2 == 0 { &mut a } else { &mut b };
        out.push_str(l);
        out.push('\n');
    }
    std::fs::write(train, a).unwrap();
    std::fs::write(test, b).unwrap();
}

/// Whether the program `name` runs (`name --version`); under
/// FLOODWATCH_REQUIRE_DATA (CI) its absence fails the test instead of
/// skipping the part that needs it.
pub fn installed(name: &str) -> bool {
    let found = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("FLOODWATCH_REQUIRE_DATA").is_none(),
            "FLOODWATCH_REQUIRE_DATA is set but {name} is not installed (apt-get install {name})"
        );
        eprintln!("skipping what needs {name}: it is not installed (apt-get install {name})");
    }
    found
}
