//! Issue 17, "first hour": the table contract a new user meets first.

use std::path::{Path, PathBuf};
use std::process::Command;

use floodwatch::features::tabular::ColumnKind;
use floodwatch::model::bundle::Bundle;

mod util;
use util::ok;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Rows of `label,dur,bytes,proto`: `dur` blank (or another missing token)
/// in every third row, `bytes` always a number.
fn table(dir: &Path, name: &str, rows: usize, attack_every: usize) -> PathBuf {
    let mut text = String::from("label,dur,bytes,proto\n");
    for i in 0..rows {
        let attack = attack_every > 0 && i % attack_every == 0;
        let dur = match i % 6 {
            0 => String::new(),
            3 => "NA".into(),
            _ => format!("{}.5", i % 7),
        };
        let (label, bytes) = if attack {
            ("attack", 90_000 + i)
        } else {
            ("normal", 100 + i % 50)
        };
        let proto = ["tcp", "udp"][i % 2];
        text.push_str(&format!("{label},{dur},{bytes},{proto}\n"));
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// r17: a numeric column with empty or `NA` cells is numeric with missing
/// values (mean-imputed, plus an indicator), not a one-hot category; train
/// names it and test counts the missing values it imputed.
#[test]
fn r17_missing_values_are_imputed_not_categories() {
    let d = tempfile::tempdir().unwrap();
    let (train, test) = (
        table(d.path(), "train.csv", 600, 0),
        table(d.path(), "test.csv", 300, 5),
    );
    let model = d.path().join("m.fw");
    let out = Command::new(env!("CARGO_BIN_EXE_floodwatch"))
        .args(["train", "--data", s(&train), "--model", s(&model)])
        .args(["--epochs", "3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("missing indicator): dur"), "{err}");
    // r17: the row counts, and a warning on a calibration set too small
    // (480 training rows: cross-fitted networks, each row held back from one).
    assert!(
        err.contains("normal rows: 600 read, 600 sampled (--rows), 480 trained on, 120 held back"),
        "{err}"
    );
    assert!(
        err.contains("warning: the threshold for fpr:0.01 comes from 600 held-back"),
        "{err}"
    );

    let b = Bundle::load(&model).unwrap();
    let dur = b.schema.columns.iter().find(|c| c.name == "dur").unwrap();
    let ColumnKind::Imputed { fill } = dur.kind else {
        panic!("dur should be imputed, is {:?}", dur.kind);
    };
    assert!((0.5..=6.5).contains(&fill), "mean fill {fill}");
    // dur (value + indicator), bytes, proto (2 values + unknown).
    assert_eq!(b.schema.width(), 6);

    let report = d.path().join("r.json");
    let args = ["test", "--data", s(&test), "--model", s(&model)];
    ok(&[&args[..], &["--report", s(&report)]].concat());
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["rows"], 300);
    assert_eq!(r["rejected"], 0);
    // Rows 0, 3, 6, ... of 300: every third row has dur missing.
    assert_eq!(r["missing_values"]["dur"], 100);
    assert!(r["unknown_values"].get("dur").is_none(), "{r}");
}

/// Runs `floodwatch train --data FILE`, which must fail; returns stderr.
fn train_fails(data: &Path, dir: &Path) -> String {
    let model = dir.join("never.fw");
    let out = util::fw(&["train", "--data", s(data), "--model", s(&model)]);
    assert_eq!(out.status.code(), Some(1), "train on {data:?} should fail");
    assert!(!model.exists());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// r17: a headerless table says to pass `--columns`, a capture given as a
/// table says to pass `--pcap`, a missing file is named once.
#[test]
fn r17_errors_say_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let headerless = d.path().join("kdd.txt");
    std::fs::write(
        &headerless,
        "0,tcp,ftp_data,SF,491,0,normal\n0,udp,other,SF,146,0,normal\n",
    )
    .unwrap();
    let err = train_fails(&headerless, d.path());
    assert!(
        err.contains("kdd.txt:1: the first line looks like data"),
        "{err}"
    );
    assert!(
        err.contains("field 1 is the number '0'") && err.contains("--columns FILE"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let pcap = d.path().join("trace.pcap");
    let mut bytes = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    bytes.extend([
        2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ]);
    bytes.extend([0, 1, 2, 3, 4, 5, 6, 7, b'\n', b',', b',', 0x80]);
    std::fs::write(&pcap, bytes).unwrap();
    let err = train_fails(&pcap, d.path());
    assert!(
        err.contains("trace.pcap:1: a packet capture, not a CSV table: pass it with --pcap"),
        "{err}"
    );

    let missing = d.path().join("absent.csv");
    let err = train_fails(&missing, d.path());
    assert_eq!(err.matches("absent.csv").count(), 1, "{err}");
}

/// r17: one layout vocabulary and one default for every command that
/// features packets, and an error when `--layout` contradicts the model.
#[test]
fn r17_one_layout_vocabulary_and_default() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, labels) = (dir.path().join("c.pcap"), dir.path().join("c.csv"));
    ok(&[
        "synth",
        "--packets",
        "3000",
        "--rate",
        "100",
        "--attack",
        "syn-spoofed",
        "--pcap",
        s(&pcap),
        "--labels",
        s(&labels),
    ]);
    let features = dir.path().join("f.csv");
    ok(&["extract", "--pcap", s(&pcap), "--out", s(&features)]);
    let header = std::fs::read_to_string(&features).unwrap();
    let header = header.lines().next().unwrap();
    assert!(header.contains(",dst_L5_syns,"), "{header}");
    let model = dir.path().join("m.fw");
    ok(&[
        "train",
        "--pcap",
        s(&pcap),
        "--labels",
        s(&labels),
        "--model",
        s(&model),
        "--epochs",
        "2",
    ]);
    let b = Bundle::load(&model).unwrap();
    assert_eq!(b.capture.unwrap().layout, "victim");
    // Every command takes every layout name.
    for layout in ["floodwatch", "kitsune", "nbaiot"] {
        let out = dir.path().join(format!("{layout}.csv"));
        ok(&[
            "extract",
            "--layout",
            layout,
            "--pcap",
            s(&pcap),
            "--out",
            s(&out),
        ]);
    }
    // `watch` reads the model's layout; another --layout is an error.
    ok(&[
        "watch",
        "--pcap",
        s(&pcap),
        "--model",
        s(&model),
        "--alerts",
        "/dev/null",
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_floodwatch"))
        .args(["watch", "--pcap", s(&pcap), "--model", s(&model)])
        .args(["--layout", "kitsune"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--layout kitsune contradicts") && err.contains("'victim'"),
        "{err}"
    );
}

/// `train --epochs 2 ARGS`, which must succeed: its standard error.
fn train_ok(args: &[&str]) -> String {
    let out = util::fw(&[&["train", "--epochs", "2"][..], args].concat());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// r17: labels match in any case, with a note naming the variants; a file
/// without a label column trains on every row as normal.
#[test]
fn r17_labels_in_any_case_and_files_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("Label,bytes,dur\n");
    for i in 0..300 {
        let label = ["Benign", "benign", "BENIGN", "DDoS"][i % 4];
        let bytes = if label == "DDoS" {
            90_000 + i
        } else {
            100 + i % 50
        };
        text.push_str(&format!("{label},{bytes},{}.5\n", i % 7));
    }
    let data = dir.path().join("cic.csv");
    std::fs::write(&data, text).unwrap();
    let model = dir.path().join("m.fw");
    let err = train_ok(&[
        "--data",
        s(&data),
        "--normal-label",
        "Benign",
        "--model",
        s(&model),
    ]);
    assert!(
        err.contains("labels BENIGN, benign count as normal"),
        "{err}"
    );
    let b = Bundle::load(&model).unwrap();
    assert_eq!((b.meta.normal_rows, b.meta.attack_rows), (225, 75));
    let classes = &b.classifier.unwrap().class_names;
    assert_eq!(classes, &["Benign", "DDoS"]);

    // No label column: every row is normal, and `test` scores unlabelled.
    let plain: String = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| l.split_once(',').unwrap().1.to_owned() + "\n")
        .collect();
    std::fs::write(&data, plain).unwrap();
    let err = train_ok(&["--data", s(&data), "--model", s(&model)]);
    assert!(
        err.contains("no label column: every row is taken as normal (300 rows)"),
        "{err}"
    );
    let b = Bundle::load(&model).unwrap();
    assert!(b.classifier.is_none());
    assert_eq!(b.meta.normal_rows, 300);
    let report = ok(&["test", "--data", s(&data), "--model", s(&model)]);
    assert!(report.starts_with("rows 300  rejected 0"), "{report}");
    // A named label column that is missing is still an error.
    let out = util::fw(&[
        "train",
        "--data",
        s(&data),
        "--model",
        s(&model),
        "--label-column",
        "class",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no label column 'class'"), "{err}");
}

/// r17: identifier-like columns (addresses, timestamps, ids, near-unique
/// strings) are left out with one note; `--keep` keeps one.
#[test]
fn r17_identifier_columns_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,Flow Key,Src IP,Timestamp,bytes,proto,label\n");
    for i in 0..400 {
        let ip = format!("10.0.{}.{}", i % 7, i % 200);
        let when = format!("7/7/2017 {}:{:02}", 9 + i / 60, i % 60);
        let proto = ["tcp", "udp", "icmp"][i % 3];
        let bytes = 100 + i % 50;
        text.push_str(&format!("{i},f{i}-x,{ip},{when},{bytes},{proto},normal\n"));
    }
    let data = dir.path().join("flows.csv");
    std::fs::write(&data, text).unwrap();
    let model = dir.path().join("m.fw");
    let err = train_ok(&["--data", s(&data), "--model", s(&model)]);
    let note = "left out identifier-like columns: id (an id or time by its name), \
                Flow Key (400 distinct values in 400), Src IP (addresses), \
                Timestamp (timestamps); keep one with --keep COLUMN";
    assert!(err.contains(note), "{err}");
    let b = Bundle::load(&model).unwrap();
    let names: Vec<&str> = b.schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["bytes", "proto"]);
    assert!(b.meta.dropped.iter().any(|d| d == "Src IP"));

    let err = train_ok(&["--data", s(&data), "--model", s(&model), "--keep", "Src IP"]);
    assert!(!err.contains("Src IP (addresses)"), "{err}");
    let b = Bundle::load(&model).unwrap();
    assert!(b.schema.columns.iter().any(|c| c.name == "Src IP"));

    let out = util::fw(&[
        "train",
        "--data",
        s(&data),
        "--model",
        s(&model),
        "--keep",
        "Dst",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--keep column 'Dst' is not in the header"),
        "{err}"
    );

    // The shared CICIDS2017 sample: its addresses and timestamps go too.
    let Some(cic) = util::shared("data/cicids2017/BENIGN_5000.csv") else {
        return;
    };
    let args = [
        "--data",
        s(&cic),
        "--normal-label",
        "BENIGN",
        "--rows",
        "500",
    ];
    let err = train_ok(&[&args[..], &["--model", s(&model)]].concat());
    for col in [
        "id (",
        "Flow ID (",
        "Src IP (addresses)",
        "Dst IP (addresses)",
    ] {
        assert!(err.contains(col), "{col}: {err}");
    }
    assert!(err.contains("Timestamp (timestamps)"), "{err}");
}

/// Rows of `label,bytes,pkts,proto` over three classes: normal, flood and
/// scan, with overlap so that no detector is perfect.
fn three_classes(dir: &Path, name: &str, rows: usize, seed: usize) -> PathBuf {
    let mut text = String::from("label,bytes,pkts,proto\n");
    for i in 0..rows {
        let j = (i * 7919 + seed * 104_729) % 1000;
        let (label, bytes, pkts) = match i % 5 {
            0 => ("flood", 400 + j % 700, 30 + j % 40),
            1 => ("scan", 60 + j % 90, 1 + j % 3),
            _ => ("normal", 100 + j % 500, 2 + j % 30),
        };
        let proto = ["tcp", "udp"][j % 2];
        text.push_str(&format!("{label},{bytes},{pkts},{proto}\n"));
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// `eval` of `train` against `test` into `out`, 3 epochs, `tsne` points.
fn eval_args<'a>(train: &'a Path, test: &'a Path, out: &'a Path, tsne: &'a str) -> Vec<&'a str> {
    let files = ["--train", s(train), "--test", s(test), "--out", s(out)];
    [
        &["eval"][..],
        &files,
        &["--epochs", "3", "--tsne-points", tsne],
    ]
    .concat()
}

/// r17: the latent classifier has one decision rule, so `test`, `eval`
/// and `report` give the same F1 for the same model and rows.
#[test]
fn r17_one_classifier_rule_one_f1() {
    let d = tempfile::tempdir().unwrap();
    let train = three_classes(d.path(), "train.csv", 1500, 1);
    let test = three_classes(d.path(), "test.csv", 1000, 2);
    let (out, model) = (d.path().join("ev"), d.path().join("m.fw"));
    let mut args = eval_args(&train, &test, &out, "50");
    args.extend(["--model", s(&model), "-q"]);
    ok(&args);
    let eval_f1 = json(&out.join("eval.json"))["detectors"]["latent_classifier"]["f1"]
        .as_f64()
        .unwrap();
    let r = d.path().join("r.json");
    ok(&[
        "test",
        "--data",
        s(&test),
        "--model",
        s(&model),
        "--report",
        s(&r),
    ]);
    let test_f1 = json(&r)["latent_classifier"]["f1"].as_f64().unwrap();
    assert!(
        (eval_f1 - test_f1).abs() < 1e-9,
        "eval {eval_f1} test {test_f1}"
    );
    assert!(test_f1 > 0.3 && test_f1 < 1.0, "{test_f1}");
    let html = d.path().join("r.html");
    ok(&[
        "report",
        "--model",
        s(&model),
        "--data",
        s(&test),
        "--out",
        s(&html),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains(&format!("{test_f1:.4}")),
        "report lacks F1 {test_f1:.4}"
    );
}

/// r17: `eval` with test files that hold only attacks sets normal training
/// rows aside to test on (and says so), ranks on ROC-AUC and F1, and
/// prints a short summary; the full table goes to eval.md.
#[test]
fn r17_eval_sets_normal_rows_aside_and_summarises() {
    let d = tempfile::tempdir().unwrap();
    let train = table(d.path(), "train.csv", 1000, 0);
    let test = table(d.path(), "attacks.csv", 200, 1);
    let out = d.path().join("ev");
    let args = eval_args(&train, &test, &out, "4");
    let run = util::fw(&args);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains("the test files hold no normal rows, so 200 of the training's normal rows"),
        "{err}"
    );
    let j = json(&out.join("eval.json"));
    assert_eq!(j["test_rows"], 400);
    assert_eq!(j["test_classes"]["normal"], 200);
    assert!(j["notes"][0].as_str().unwrap().contains("set aside"), "{j}");
    let by_auc: Vec<&str> = j["by_roc_auc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(by_auc.len(), 5, "{j}");
    let aucs: Vec<f64> = by_auc
        .iter()
        .map(|n| j["detectors"][n]["roc_auc"].as_f64().unwrap())
        .collect();
    assert!(aucs.windows(2).all(|w| w[0] >= w[1]), "{aucs:?}");
    assert_eq!(j["by_f1"].as_array().unwrap().len(), 5);
    assert!(j["verdict"]
        .as_str()
        .unwrap()
        .contains("Best F1 at its own threshold"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        !stdout.contains('|'),
        "the terminal gets no markdown table: {stdout}"
    );
    assert_eq!(stdout.lines().count(), 8, "{stdout}");
    assert!(
        stdout.lines().nth(2).unwrap().starts_with(by_auc[0]),
        "{stdout}"
    );
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(
        md.contains("| ocsvm |") && md.contains("Note: the test files"),
        "{md}"
    );
    assert!(out.join("tsne.png").exists() && out.join("roc.png").exists());
}

/// r17: `--out -` is standard output for every text output, and no file
/// named `-` appears; `test`'s report moves to stderr to make room.
#[test]
fn r17_out_dash_is_standard_output() {
    let d = tempfile::tempdir().unwrap();
    let in_dir = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_floodwatch"))
            .arg("-q")
            .args(args)
            .current_dir(d.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {err}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), err)
    };
    let (csv, _) = in_dir(&["synth", "--out", "-", "--rows", "300"]);
    assert_eq!(csv.lines().count(), 301, "header and 300 rows");
    let data = d.path().join("t.csv");
    std::fs::write(&data, &csv).unwrap();
    let model = d.path().join("m.fw");
    train_ok(&["--data", s(&data), "--model", s(&model)]);

    let (preds, err) = in_dir(&[
        "test",
        "--data",
        s(&data),
        "--model",
        s(&model),
        "--out",
        "-",
    ]);
    assert!(preds
        .lines()
        .next()
        .unwrap()
        .ends_with(",score,is_anomaly,predicted,probability"));
    assert_eq!(preds.lines().count(), 301);
    assert!(err.starts_with("rows 300  rejected 0"), "{err}");
    let (svg, _) = in_dir(&[
        "plot",
        "roc",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        "-",
    ]);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let (html, _) = in_dir(&[
        "report",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        "-",
    ]);
    assert!(html.contains("<h2>Metrics</h2>"));
    assert!(!d.path().join("-").exists());
}

/// r17: `watch --stdin` on lines without a header fails once, with exit 1
/// and what to do, instead of rejecting every line and exiting 0.
#[test]
fn r17_watch_stdin_without_header_fails_once() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let data = table(d.path(), "t.csv", 300, 0);
    let model = d.path().join("m.fw");
    train_ok(&["--data", s(&data), "--model", s(&model)]);
    let text = std::fs::read_to_string(&data).unwrap();
    let body: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_floodwatch"))
        .args(["-q", "watch", "--stdin", "--model", s(&model)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run may end before every line is written: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(body.as_bytes());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("-:1: the first line looks like data, not a header")
            && err.contains("send the header line first"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
