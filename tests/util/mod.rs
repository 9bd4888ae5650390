//! Helpers shared by the integration tests: running the binary, and finding
//! the shared data (or saying why a test skips).
#![allow(dead_code)] // each test binary uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The identifier columns of the shared CICIDS2017 files, which the
/// README's commands drop.
pub const CICIDS_IDENTIFIERS: [&str; 6] = [
    "id",
    "Flow ID",
    "Src IP",
    "Dst IP",
    "Timestamp",
    "Attempted Category",
];

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

/// Suricata's eve.json schema in the shared data.
pub const SCHEMA: &str = "../shared/schemas/suricata-eve-schema.json";

/// Validates JSON lines from stdin against the schema named by argv[1];
/// prints each error and exits 1 if any (or if there was no line at all).
const VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
lines = errors = 0
for number, line in enumerate(sys.stdin, 1):
    if not line.strip():
        continue
    lines += 1
    for e in validator.iter_errors(json.loads(line)):
        errors += 1
        print(f"line {number}: /{'/'.join(map(str, e.absolute_path))}: {e.message}")
print(f"{lines} lines, {errors} errors")
sys.exit(1 if errors or not lines else 0)
"#;

/// Skips (printing why) or, with FLOODWATCH_REQUIRE_DATA=1, fails.
pub fn skip(why: &str) -> Option<PathBuf> {
    if std::env::var("FLOODWATCH_REQUIRE_DATA").as_deref() == Ok("1") {
        panic!("FLOODWATCH_REQUIRE_DATA=1 but {why}");
    }
    eprintln!("skipping: {why}");
    None
}

/// Suricata's eve.json schema, when it and the validator (python3 with
/// jsonschema) are there.
pub fn eve_schema() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA);
    if !path.exists() {
        return skip(&format!("{SCHEMA} not found"));
    }
    let probe = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output();
    match probe {
        Ok(o) if o.status.success() => Some(path),
        _ => skip("no python3 with the jsonschema package (pip install jsonschema)"),
    }
}

/// Runs the validator on `lines`.
pub fn run_eve_validator(schema: &Path, lines: &str) -> Output {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(VALIDATE)
        .arg(schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Asserts that every line of `lines` (at least one) is a valid EVE event.
pub fn assert_eve_valid(schema: &Path, what: &str, lines: &str) {
    let out = run_eve_validator(schema, lines);
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
