//! End-to-end tests of `eval`, `plot`, `threshold`, `report` and
//! `test --explain`: the binary on synthetic data (eval.json schema, every
//! picture decodes at its size and is not blank, the threshold written into
//! the bundle, the explanations), the HTML report in headless Chromium, and
//! eval on the shared CICIDS2017 split (skipped, with a message, where
//! `../shared` or `chromium` is absent).
#![cfg(feature = "plot")]

use std::path::{Path, PathBuf};
use std::process::Command;

use floodwatch::model::bundle::Bundle;

mod util;
use util::{fw, ok, shared, split_rows, CICIDS_IDENTIFIERS};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).expect("read JSON")).expect("valid JSON")
}

const IDS: [&str; 14] = [
    "--drop",
    "uid",
    "--drop",
    "sourceMac",
    "--drop",
    "sourceIp",
    "--drop",
    "destIp",
    "--drop",
    "destMac",
    "--drop",
    "host",
    "--drop",
    "timestamp",
];

/// Synthetic train and test tables of the built-in IoT / Mirai generator.
fn synth_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let (train, test) = (dir.join("train.csv"), dir.join("test.csv"));
    for (p, rows, seed) in [(&train, "3000", "1"), (&test, "2000", "2")] {
        ok(&["synth", "--out", s(p), "--rows", rows, "--seed", seed]);
    }
    (train, test)
}

/// Decodes a PNG: (width, height, distinct colours among sampled pixels).
fn png_facts(path: &Path) -> (u32, u32, usize) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG pixels");
    let bytes = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    for px in buf[..info.buffer_size()].chunks_exact(bytes).step_by(7) {
        colours.insert(px.to_vec());
    }
    (info.width, info.height, colours.len())
}

#[test]
fn eval_writes_metrics_tables_and_pictures() {
    let d = tempfile::tempdir().unwrap();
    let (train, test) = synth_pair(d.path());
    let out = d.path().join("eval");
    let mut args = vec![
        "eval",
        "--train",
        s(&train),
        "--test",
        s(&test),
        "--out",
        s(&out),
        "--tsne-points",
        "600",
        "--svg",
    ];
    args.extend(IDS);
    let md = ok(&args);
    let j = json(&out.join("eval.json"));
    let detectors = j["detectors"].as_object().expect("detectors");
    let names: Vec<&str> = j["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "autoencoder",
            "latent_classifier",
            "kitnet",
            "isolation_forest",
            "lof",
            "ocsvm"
        ]
    );
    for name in names {
        let m = &detectors[name];
        for key in [
            "roc_auc",
            "pr_auc",
            "f1",
            "tpr_at_fpr_0.001",
            "tpr_at_fpr_0.01",
            "fit_seconds",
            "score_rows_per_second",
            "threshold",
        ] {
            assert!(m[key].is_number(), "{name}.{key}: {m}");
        }
        let auc = m["roc_auc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auc), "{name} {auc}");
        let rates = m["detection_rate"].as_object().unwrap();
        assert!(!rates.is_empty() && !rates.contains_key("normal"), "{m}");
        assert!(rates
            .values()
            .all(|v| (0.0..=1.0).contains(&v.as_f64().unwrap())));
        assert_eq!(
            m["roc_auc_by_class"].as_object().unwrap().len(),
            rates.len()
        );
    }
    assert_eq!(j["test_rows"], 2000);
    let verdict = j["verdict"].as_str().unwrap();
    assert!(verdict.starts_with("The autoencoder is"), "{verdict}");
    let written = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.contains(verdict) && md.contains("\nocsvm "), "{md}");
    assert!(
        written.contains(verdict) && written.contains("| ocsvm |"),
        "{written}"
    );
    let classes = j["test_classes"].as_object().unwrap().len() as u32;
    for (stem, size) in [
        ("tsne", Some((1400, 680))),
        ("hist", Some((1000, 650))),
        ("roc", Some((900, 700))),
        ("pr", Some((900, 700))),
        ("loss", Some((900, 700))),
        (
            "classes",
            Some((1000, (150 + 32 * classes).clamp(300, 1400))),
        ),
        ("corr", None),
    ] {
        let (w, h, colours) = png_facts(&out.join(format!("{stem}.png")));
        if let Some(size) = size {
            assert_eq!((w, h), size, "{stem}");
        } else {
            assert!(w >= 300 && h >= 300, "{stem} {w}x{h}");
        }
        assert!(colours > 3, "{stem}.png looks blank: {colours} colours");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<text"), "{stem}.svg");
    }
    let html = std::fs::read_to_string(out.join("eval.html")).unwrap();
    assert_eq!(html.matches("<img ").count(), 7);
    assert!(html.contains(verdict));
}

#[test]
fn plot_threshold_explain_and_report() {
    let d = tempfile::tempdir().unwrap();
    let (train, test) = synth_pair(d.path());
    let model = d.path().join("m.fw");
    let mut args = vec!["train", "--data", s(&train), "--model", s(&model)];
    args.extend(IDS);
    ok(&args);

    // One picture per subcommand call.
    let loss = d.path().join("loss.png");
    ok(&["plot", "loss", "--model", s(&model), "--out", s(&loss)]);
    assert_eq!(png_facts(&loss).0, 900);
    let roc = d.path().join("roc.svg");
    ok(&[
        "plot",
        "roc",
        "--model",
        s(&model),
        "--data",
        s(&test),
        "--out",
        s(&roc),
    ]);
    assert!(std::fs::read_to_string(&roc)
        .unwrap()
        .contains("autoencoder (ROC-AUC"));
    // r17: the PR legend gives PR-AUC; --log-fpr puts the ROC on a log axis.
    let pr = ok(&[
        "plot",
        "pr",
        "--model",
        s(&model),
        "--data",
        s(&test),
        "--out",
        "-",
    ]);
    assert!(
        pr.contains("autoencoder (PR-AUC") && !pr.contains("ROC-AUC"),
        "{pr}"
    );
    let log = ok(&[
        "plot",
        "roc",
        "--model",
        s(&model),
        "--data",
        s(&test),
        "--out",
        "-",
        "--log-fpr",
    ]);
    assert!(log.contains("false-positive rate (log scale)") && log.contains("0.001"));
    let err = fw(&["plot", "hist", "--model", s(&model), "--out", s(&loss)]);
    assert!(!err.status.success());
    let err = String::from_utf8_lossy(&err.stderr);
    assert!(
        err.contains("the hist picture draws rows: give --data"),
        "{err}"
    );

    // Threshold table, then --write round trip.
    let table = ok(&["threshold", "--model", s(&model), "--data", s(&test)]);
    for rule in [
        "current",
        "quantile:0.99",
        "meanstd:3",
        "lognormal:0.01",
        "fpr:0.001",
    ] {
        assert!(table.contains(rule), "{rule}: {table}");
    }
    let before = Bundle::load(&model).unwrap();
    let listed = json_stdout(&[
        "threshold",
        "--model",
        s(&model),
        "--data",
        s(&test),
        "--json",
    ]);
    let q99 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["rule"] == "quantile:0.99")
        .unwrap()["threshold"]
        .as_f64()
        .unwrap();
    let write = [
        "threshold",
        "--model",
        s(&model),
        "--data",
        s(&test),
        "--write",
        "quantile:0.99",
    ];
    // r17: --write saves to --out, or over --model only with --in-place.
    let r = util::fw(&write);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("--write saves a new model: give --out NEW.fw (or --in-place"),
        "{err}"
    );
    let new = d.path().join("q99.fw");
    ok(&[&write[..], &["--out", s(&new)]].concat());
    assert_eq!(Bundle::load(&model).unwrap(), before);
    let after = Bundle::load(&new).unwrap();
    assert_eq!(after.threshold_rule.to_string(), "quantile:0.99");
    assert_eq!(after.threshold as f64, q99 as f32 as f64);
    assert_ne!(after.threshold, before.threshold);
    assert_eq!(after.meta.history, before.meta.history);

    // test --explain K adds top_features with K "column:share" items.
    let preds = d.path().join("p.csv");
    ok(&[
        "test",
        "--data",
        s(&test),
        "--model",
        s(&model),
        "--out",
        s(&preds),
        "--explain",
        "3",
    ]);
    let mut r = csv::Reader::from_path(&preds).unwrap();
    let col = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "top_features")
        .expect("top_features column");
    let mut explained = 0;
    for rec in r.records() {
        let cell = rec.unwrap()[col].to_string();
        let items: Vec<&str> = cell.split(';').filter(|i| !i.is_empty()).collect();
        assert!(items.len() <= 3, "{cell}");
        let mut shares = 0.0;
        for i in &items {
            let (name, share) = i.rsplit_once(':').expect("column:share");
            assert!(!name.is_empty() && !IDS.contains(&name), "{cell}");
            shares += share.parse::<f64>().unwrap();
        }
        assert!(shares <= 1.0 + 0.02, "{cell}");
        explained += usize::from(!items.is_empty());
    }
    assert!(explained > 1900, "{explained} rows explained");
    assert!(!fw(&[
        "test",
        "--data",
        s(&test),
        "--model",
        s(&model),
        "--explain",
        "2"
    ])
    .status
    .success());

    // The HTML report, then in headless Chromium.
    let html = d.path().join("report.html");
    ok(&[
        "report",
        "--model",
        s(&new),
        "--data",
        s(&test),
        "--out",
        s(&html),
        "--tsne-points",
        "500",
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    for part in [
        "<h2>Data</h2>",
        "<h2>Training</h2>",
        "<h2>Threshold</h2>",
        "<h2>Metrics</h2>",
        "<h2>Top anomalies</h2>",
        "quantile:0.99",
    ] {
        assert!(page.contains(part), "{part}");
    }
    let images = page.matches("<img ").count();
    assert_eq!(images, 7);
    check_in_chromium(&html, images);
}

fn json_stdout(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).expect("JSON on stdout")
}

/// Opens `html` in headless Chromium and checks that every image decoded
/// and no script error happened; skips when chromium is absent.
fn check_in_chromium(html: &Path, images: usize) {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        eprintln!("skipping the browser check: chromium not found (Debian package `chromium`)");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    let out = Command::new("timeout")
        .args(["120", chromium])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &url])
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains(&format!("data-images=\"{images}\"")),
        "the page's script did not run: {}",
        &dom[..dom.len().min(500)]
    );
    assert_eq!(
        dom.matches("data-loaded=\"yes\"").count(),
        images,
        "not every image decoded"
    );
    assert!(!dom.contains("data-loaded=\"no\"") && !dom.contains("data-error="));
}

#[test]
fn cicids2017_eval_of_all_detectors() {
    let Some(dir) = shared("data/cicids2017") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let (train, benign_test) = (d.path().join("train.csv"), d.path().join("benign.csv"));
    split_rows(&dir.join("BENIGN_5000.csv"), &train, &benign_test);
    let attacks: Vec<PathBuf> = [
        "DDoS_5000.csv",
        "DoS_GoldenEye_5000.csv",
        "DoS_Hulk_5000.csv",
        "DoS_Slowhttptest_1740.csv",
        "DoS_Slowloris_3859.csv",
        "Portscan_5000.csv",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    let out = d.path().join("out");
    let mut args = vec!["eval", "--train", s(&train), "--test", s(&benign_test)];
    args.extend(attacks.iter().map(|p| s(p)));
    args.extend(["--out", s(&out), "--normal-label", "BENIGN"]);
    for c in CICIDS_IDENTIFIERS {
        args.extend(["--drop", c]);
    }
    ok(&args);
    let j = json(&out.join("eval.json"));
    assert_eq!(
        j["train_rows"].as_u64().unwrap() + j["holdout_rows"].as_u64().unwrap(),
        2500
    );
    assert_eq!(j["test_classes"]["BENIGN"], 2500);
    assert_eq!(j["test_classes"].as_object().unwrap().len(), 7);
    let ae = &j["detectors"]["autoencoder"];
    let ddos = ae["roc_auc_by_class"]["DDoS"].as_f64().unwrap();
    eprintln!(
        "CICIDS2017 eval: autoencoder ROC-AUC {} (DDoS {ddos:.4}); {}",
        ae["roc_auc"], j["verdict"]
    );
    assert!(ddos >= 0.99, "autoencoder DDoS ROC-AUC {ddos}");
    for name in ["kitnet", "isolation_forest", "lof", "ocsvm"] {
        assert!(
            j["detectors"][name]["roc_auc"].as_f64().unwrap() > 0.8,
            "{name}"
        );
    }
}

/// `--seeds 2`: each detector's ROC-AUC for both seeds, their median and
/// spread in the summary and the tables.
#[test]
fn eval_reports_the_spread_over_seeds() {
    let d = tempfile::tempdir().unwrap();
    let (train, test) = synth_pair(d.path());
    let out = d.path().join("eval");
    let mut args = vec![
        "eval",
        "--train",
        s(&train),
        "--test",
        s(&test),
        "--out",
        s(&out),
    ];
    args.extend(["--tsne-points", "300", "--seeds", "2", "--seed", "7"]);
    args.extend(IDS);
    let summary = ok(&args);
    assert!(
        summary.contains("ROC-AUC over 2 seeds: median, spread"),
        "{summary}"
    );
    let j = json(&out.join("eval.json"));
    assert_eq!(j["seeds"], serde_json::json!([7, 8]));
    for (name, m) in j["detectors"].as_object().unwrap() {
        let by_seed = m["roc_auc_by_seed"].as_array().unwrap();
        assert_eq!(by_seed.len(), 2, "{name}");
        assert_eq!(
            by_seed[0], m["roc_auc"],
            "{name}: the first seed is the report's"
        );
    }
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.contains("ROC-AUC over 2 seeds (median, spread)"), "{md}");
}
