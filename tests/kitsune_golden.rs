//! The `kitsune` layout against Kitsune-py's own outputs
//! (`../shared/golden/kitsune`): every feature of every packet of each
//! capture, driven from the exact inputs Kitsune-py fed its statistics.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use floodwatch::features::kitsune::{
    corrected_names, kitsune_names, Kitsune, KitsuneInputs, N_FEATURES,
};
use floodwatch::features::stream_table::TableConfig;

fn golden_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/golden/kitsune");
    if dir.is_dir() {
        Some(dir)
    } else {
        assert!(
            std::env::var_os("FLOODWATCH_REQUIRE_DATA").is_none(),
            "FLOODWATCH_REQUIRE_DATA is set but ../shared/golden/kitsune not found"
        );
        eprintln!("skipping: ../shared/golden/kitsune not found");
        None
    }
}

fn gz_lines(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BufReader::new(GzDecoder::new(file))
        .lines()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn num(s: &str, what: &str) -> f64 {
    s.parse().unwrap_or_else(|e| panic!("{what}: '{s}': {e}"))
}

/// A row of `*.inputs.tsv.gz` as Kitsune-py's inputs.
fn inputs(line: &str, lineno: usize) -> KitsuneInputs {
    let f: Vec<&str> = line.split('\t').collect();
    assert_eq!(f.len(), 10, "inputs line {lineno}: {line}");
    let at = format!("inputs line {lineno}");
    KitsuneInputs::new(
        [f[2], f[3], f[4], f[5], f[6], f[7]],
        num(f[8], &at),
        num(f[9], &at),
    )
    .unwrap_or_else(|e| panic!("{at}: {e}"))
}

/// Relative 1e-6, absolute 1e-9 near zero.
fn within(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= (1e-6 * theirs.abs()).max(1e-9)
}

fn check_capture(dir: &Path, capture: &str) {
    let ins = gz_lines(&dir.join(format!("{capture}.inputs.tsv.gz")));
    let feats = gz_lines(&dir.join(format!("{capture}.features.csv.gz")));
    assert_eq!(ins.len(), feats.len(), "{capture}: row counts");
    assert!(ins.len() > 1, "{capture}: no rows");
    let mut x = Kitsune::new(TableConfig::default()).expect("default config");
    let mut out = [0.0; N_FEATURES];
    let (mut bad, mut first_bad) = (0usize, Vec::new());
    for (k, (inp, exp)) in ins.iter().zip(&feats).enumerate().skip(1) {
        let input = inputs(inp, k + 1);
        x.update_inputs(&input, &mut out);
        let cols: Vec<&str> = exp.split(',').collect();
        assert_eq!(
            cols.len(),
            2 + N_FEATURES,
            "{capture} features line {}",
            k + 1
        );
        assert_eq!(
            num(cols[1], "timestamp"),
            input.timestamp,
            "{capture} row {k}: timestamp"
        );
        for (j, (ours, theirs)) in out.iter().zip(&cols[2..]).enumerate() {
            let theirs = num(theirs, "feature");
            if !within(*ours, theirs) {
                bad += 1;
                if first_bad.len() < 10 {
                    first_bad.push(format!(
                        "packet {} feature {j}: ours {ours:e} reference {theirs:e}",
                        cols[0]
                    ));
                }
            }
        }
    }
    let evicted: u64 = x.table_stats_sum();
    assert_eq!(
        evicted, 0,
        "{capture}: the default capacity must hold the reference captures"
    );
    assert_eq!(
        bad, 0,
        "{capture}: {bad} values differ; first: {first_bad:#?}"
    );
    eprintln!(
        "{capture}: {} packets x {N_FEATURES} features match",
        ins.len() - 1
    );
}

trait Evictions {
    fn table_stats_sum(&self) -> u64;
}

impl Evictions for Kitsune {
    fn table_stats_sum(&self) -> u64 {
        use floodwatch::features::packet::FeatureExtractor;
        self.table_stats()
            .iter()
            .map(|t| t.evicted + t.reclaimed)
            .sum()
    }
}

#[test]
fn mirai_first2000_matches_kitsune_py() {
    if let Some(dir) = golden_dir() {
        check_capture(&dir, "mirai_first2000.pcap");
    }
}

#[test]
fn spoofed_synflood_matches_kitsune_py() {
    if let Some(dir) = golden_dir() {
        check_capture(&dir, "pkt.TCP.synflood.spoofed.pcap");
    }
}

#[test]
fn column_names_match_the_column_map() {
    let Some(dir) = golden_dir() else { return };
    let path = dir.join("column_map.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let map: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let field = |k: &str| -> Vec<String> {
        map.iter()
            .map(|m| m[k].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(field("kitsune_native"), kitsune_names());
    assert_eq!(field("name"), corrected_names());
    // And the features CSV header uses the honest names.
    let header = gz_lines(&dir.join("mirai_first2000.pcap.features.csv.gz"))
        .into_iter()
        .next()
        .unwrap_or_default();
    let expected: Vec<String> = ["packet_index".to_string(), "timestamp".to_string()]
        .into_iter()
        .chain(corrected_names())
        .collect();
    assert_eq!(
        header.split(',').map(str::to_string).collect::<Vec<_>>(),
        expected
    );
}

/// `floodwatch extract` on the real capture (decoder + mapping + layout)
/// against Kitsune-py's features.
fn check_extract(capture: &str) {
    let Some(dir) = golden_dir() else { return };
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/pcap")
        .join(capture);
    if !pcap.is_file() {
        assert!(
            std::env::var_os("FLOODWATCH_REQUIRE_DATA").is_none(),
            "FLOODWATCH_REQUIRE_DATA is set but ../shared/data/pcap/{capture} not found"
        );
        eprintln!("skipping: ../shared/data/pcap/{capture} not found");
        return;
    }
    compare_extract(&pcap, &dir.join(format!("{capture}.features.csv.gz")));
}

/// `floodwatch extract --layout kitsune` on `pcap` against Kitsune-py's
/// features in `gold`: every value within [`within`].
fn compare_extract(pcap: &Path, gold: &Path) {
    let capture = pcap.display();
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("features.csv");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_floodwatch"))
        .args(["--quiet", "extract", "--layout", "kitsune", "--pcap"])
        .arg(pcap)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run floodwatch");
    assert!(status.success(), "extract failed: {status}");
    let ours = std::fs::read_to_string(&out).expect("features written");
    let ours: Vec<&str> = ours.lines().collect();
    let gold = gz_lines(gold);
    assert_eq!(ours.len(), gold.len(), "{capture}: row counts");
    let header: Vec<String> = ["packet_index".to_string(), "timestamp".to_string()]
        .into_iter()
        .chain(kitsune_names())
        .collect();
    assert_eq!(ours[0], header.join(","));
    let mut bad = Vec::new();
    let mut count = 0usize;
    for (a, b) in ours.iter().zip(&gold).skip(1) {
        let (x, y): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
        assert_eq!(x.len(), y.len(), "{capture}: columns of packet {}", y[0]);
        assert_eq!(x[0], y[0], "{capture}: packet_index");
        assert_eq!(
            num(x[1], "timestamp"),
            num(y[1], "timestamp"),
            "{capture}: timestamp of packet {}",
            y[0]
        );
        for (j, (u, v)) in x[2..].iter().zip(&y[2..]).enumerate() {
            if !within(num(u, "ours"), num(v, "reference")) {
                count += 1;
                if bad.len() < 10 {
                    bad.push(format!(
                        "packet {} feature {j}: ours {u} reference {v}",
                        y[0]
                    ));
                }
            }
        }
    }
    assert_eq!(
        count, 0,
        "{capture}: {count} values differ; first: {bad:#?}"
    );
}

#[test]
fn extract_mirai_first2000_matches_kitsune_py() {
    check_extract("mirai_first2000.pcap");
}

#[test]
fn extract_spoofed_synflood_matches_kitsune_py() {
    check_extract("pkt.TCP.synflood.spoofed.pcap");
}

/// Fragmented UDP answers, some sent last fragment first
/// (`tests/data/ip_fragments.py`), against Kitsune-py's features: the
/// ports go to the fragment that completes each datagram.
#[test]
fn extract_ip_fragments_matches_kitsune_py() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    compare_extract(
        &data.join("ip_fragments.pcap"),
        &data.join("ip_fragments.pcap.features.csv.gz"),
    );
}

#[test]
fn extract_other_layouts_write_their_columns() {
    let pcap =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pcap/mirai_first2000.pcap");
    if !pcap.is_file() {
        assert!(
            std::env::var_os("FLOODWATCH_REQUIRE_DATA").is_none(),
            "FLOODWATCH_REQUIRE_DATA is set but ../shared/data/pcap/mirai_first2000.pcap not found"
        );
        eprintln!("skipping: ../shared/data/pcap/mirai_first2000.pcap not found");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    for (layout, columns) in [("kitsune-corrected", 102), ("nbaiot", 117)] {
        let out = tmp.path().join(format!("{layout}.csv"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_floodwatch"))
            .args([
                "--quiet",
                "extract",
                "--table-capacity",
                "64",
                "--layout",
                layout,
                "--pcap",
            ])
            .arg(&pcap)
            .arg("--out")
            .arg(&out)
            .status()
            .expect("run floodwatch");
        assert!(status.success(), "{layout}: {status}");
        let text = std::fs::read_to_string(&out).expect("written");
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 2001, "{layout}");
        for row in &rows {
            let cells: Vec<&str> = row.split(',').collect();
            assert_eq!(cells.len(), columns, "{layout}");
        }
        let finite = rows[1..]
            .iter()
            .flat_map(|r| r.split(',').skip(2))
            .all(|c| c.parse::<f64>().is_ok_and(f64::is_finite));
        assert!(finite, "{layout}: every value a finite number");
    }
}
