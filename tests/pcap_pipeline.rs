//! `train --pcap` and `test --pcap`: captures read as feature tables on the fly.

use std::path::Path;
use std::process::Command;

fn floodwatch(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_floodwatch"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("floodwatch runs")
}

fn ok(args: &[&str], dir: &Path) -> String {
    let out = floodwatch(args, dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn synth(dir: &Path, name: &str, seed: &str) {
    let (pcap, labels) = (format!("{name}.pcap"), format!("{name}.csv"));
    ok(
        &[
            "-q",
            "synth",
            "--pcap",
            &pcap,
            "--labels",
            &labels,
            "--packets",
            "10000",
            "--rate",
            "400",
            "--seed",
            seed,
            "--attack",
            "udp",
            "--attack",
            "syn-spoofed",
        ],
        dir,
    );
}

#[test]
fn train_and_test_on_captures_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d, "a", "1");
    synth(d, "b", "2");
    ok(
        &[
            "-q", "train", "--pcap", "a.pcap", "--labels", "a.csv", "--model", "m.fw", "--epochs",
            "20",
        ],
        d,
    );
    ok(
        &[
            "-q", "test", "--pcap", "b.pcap", "--labels", "b.csv", "--model", "m.fw", "--report",
            "r.json", "--out", "p.csv",
        ],
        d,
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(report["rows"], 10000);
    let auc = report["reconstruction"]["roc_auc"].as_f64().unwrap();
    // Measured 0.84 with the kitsune-corrected layout (the default before
    // one vocabulary) on this small capture;
    // chance is 0.5. The floor guards the plumbing, not the layout's quality.
    assert!(auc > 0.75, "reconstruction ROC-AUC {auc}");
    let predictions = std::fs::read_to_string(d.join("p.csv")).unwrap();
    let header = predictions.lines().next().unwrap();
    assert!(header.starts_with("packet_index,timestamp,") && header.contains(",score,is_anomaly"));
    assert_eq!(predictions.lines().count(), 10001);
}

#[test]
fn unlabelled_capture_trains_as_normal_and_scores_unlabelled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d, "a", "3");
    ok(
        &[
            "-q", "train", "--pcap", "a.pcap", "--model", "m.fw", "--epochs", "2",
        ],
        d,
    );
    ok(
        &[
            "-q", "test", "--pcap", "a.pcap", "--model", "m.fw", "--report", "r.json",
        ],
        d,
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(report["rows"], 10000);
    assert!(report["reconstruction"].is_null());
}

#[test]
fn capture_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d, "a", "4");
    let out = floodwatch(
        &[
            "train", "--pcap", "a.pcap", "--labels", "a.csv", "a.csv", "--model", "m.fw",
        ],
        d,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("one per capture"));
    std::fs::write(d.join("t.csv"), "x,label\n1,normal\n2,normal\n3,normal\n").unwrap();
    ok(
        &[
            "-q", "train", "--data", "t.csv", "--model", "csv.fw", "--epochs", "1",
        ],
        d,
    );
    let out = floodwatch(&["test", "--pcap", "a.pcap", "--model", "csv.fw"], d);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trained on CSV rows"));
}

/// The `.npy` matrix of `extract` holds the CSV's values to the bit, and
/// its column names beside it.
#[test]
fn extract_writes_the_same_features_as_npy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    synth(d, "a", "3");
    for layout in ["victim", "kitsune-corrected", "nbaiot"] {
        ok(
            &[
                "-q", "extract", "--pcap", "a.pcap", "--layout", layout, "--out", "f.csv",
            ],
            d,
        );
        ok(
            &[
                "-q", "extract", "--pcap", "a.pcap", "--layout", layout, "--out", "f.npy",
            ],
            d,
        );
        let csv = std::fs::read_to_string(d.join("f.csv")).unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let columns = std::fs::read_to_string(d.join("f.npy.columns")).unwrap();
        assert_eq!(columns.lines().collect::<Vec<_>>(), header, "{layout}");
        let npy = std::fs::read(d.join("f.npy")).unwrap();
        let text = String::from_utf8_lossy(&npy[10..128]);
        let rows = csv.lines().count() - 1;
        let shape = format!("'shape': ({rows}, {}), }}", header.len());
        assert!(text.contains(&shape), "{layout}: {text}");
        let values: Vec<f64> = npy[128..]
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(values.len(), rows * header.len());
        for (line, row) in lines.zip(values.chunks_exact(header.len())) {
            let want: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
            let same = want
                .iter()
                .zip(row)
                .all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan());
            assert!(same, "{layout}: {line}");
        }
    }
    let err = floodwatch(
        &[
            "extract", "--pcap", "a.pcap", "--out", "f.x", "--format", "parquet",
        ],
        d,
    );
    assert!(!err.status.success());
}
