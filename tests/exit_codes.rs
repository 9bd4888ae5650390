//! Exit codes of the binary (0 ok, 1 error, 2 usage) and the shape of its
//! error messages: file and position named, and what to do. Exit 3
//! (`test --fail-on-anomaly`) is checked end to end in tests/core.rs.

use std::process::{Command, Output};

fn fw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floodwatch"))
        .arg("-q")
        .args(args)
        .output()
        .expect("run floodwatch")
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["no-such-command"],
        &["test", "--no-such-flag"],
        &["train"],
    ] {
        let out = fw(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    assert_eq!(fw(&["--help"]).status.code(), Some(0));
    assert_eq!(fw(&["--version"]).status.code(), Some(0));
}

#[test]
fn input_errors_exit_1_naming_file_and_position() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m.fw");
    std::fs::write(
        &model,
        b"FLDWATCH\x01\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\x7f",
    )
    .unwrap();
    let data = d.path().join("t.csv");
    std::fs::write(&data, "a,b,label\n1,2,normal\n").unwrap();
    let out = fw(&[
        "test",
        "--data",
        data.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("m.fw: truncated or padded") && err.contains("train the model again"),
        "{err}"
    );
    // A line of 2 MiB without a newline.
    let long = d.path().join("long.csv");
    let mut text = b"a,b,label\n".to_vec();
    text.extend(std::iter::repeat_n(b'1', 2 << 20));
    std::fs::write(&long, &text).unwrap();
    let out = fw(&[
        "train",
        "--data",
        long.to_str().unwrap(),
        "--model",
        d.path().join("x.fw").to_str().unwrap(),
        "--skip-bad-rows",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("long.csv:2: line 2 is longer than 1048576 bytes")
            && err.contains("fix or remove"),
        "{err}"
    );
    assert!(!d.path().join("x.fw").exists());
}
