//! Every alert validates as a Suricata EVE event: against Suricata's own
//! JSON schema (`../shared/schemas/suricata-eve-schema.json`, strict at the
//! top level and in `alert`), checked by python3's `jsonschema` package
//! (Draft 2020-12). Alerts of every kind the tests can make: built directly
//! for every family, protocol and address kind; from a capture through
//! `watch --pcap`; from table rows through `watch --stdin` with a bundle
//! from `train`, with and without their addresses.
//!
//! Without the schema or the validator the tests print why and skip, unless
//! `FLOODWATCH_REQUIRE_DATA=1`: then they fail.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use floodwatch::detect::alert::{
    Alert, AlertContext, EndReason, EpisodeSummary, Family, FlowContext, NamedShare, Proto, State,
    Timestamp,
};
use serde_json::Value;

mod util;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn context(family: Family, state: State, score: f64) -> AlertContext {
    let end_reason = (state == State::End).then_some(EndReason::Timeout);
    AlertContext {
        state,
        family,
        direction: None,
        score,
        threshold: 0.5,
        top_features: vec![NamedShare {
            name: "syn_rate".into(),
            share: 0.75,
        }],
        exporter: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9))),
        episode: EpisodeSummary::new(100.0, 130.5, 5_000, 300_000, score, 42, end_reason),
    }
}

/// Alerts of every family, state, protocol and address kind.
fn direct_alerts() -> Vec<Alert> {
    let unknown = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let v6 = (
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
    );
    let pairs = [
        (v4(192, 168, 1, 23), v4(10, 0, 0, 5)),
        v6,
        (unknown, v4(10, 0, 0, 5)),
        (v4(192, 168, 1, 23), unknown),
        (unknown, unknown),
    ];
    let protos = [
        Proto::Tcp,
        Proto::Udp,
        Proto::Icmp,
        Proto::Icmpv6,
        Proto::Arp,
        Proto::Other(47),
        Proto::None,
    ];
    let mut out = Vec::new();
    for family in Family::ALL {
        for (src_ip, dest_ip) in pairs {
            for proto in protos {
                for (state, score) in [(State::Start, 2.5), (State::End, f64::NAN)] {
                    let flow = FlowContext {
                        src_ip,
                        src_port: 40_000,
                        dest_ip,
                        dest_port: 53,
                        proto,
                        bytes: 60,
                        tcp_flags: 0,
                        packets: 1,
                        exporter: None,
                    };
                    let at = Timestamp::from_secs(1_764_082_791.123_456);
                    let ctx = context(family, state, score);
                    out.push(Alert::new(at, &flow, "floodwatch", "anomaly".into(), ctx));
                }
            }
        }
    }
    out
}

fn json_lines(alerts: &[Alert]) -> String {
    alerts.iter().map(|a| a.to_json() + "\n").collect()
}

#[test]
fn the_validator_rejects_what_suricata_would_not_write() {
    let Some(schema) = util::eve_schema() else {
        return;
    };
    let good = direct_alerts()[0].to_json();
    let mut bad: Value = serde_json::from_str(&good).unwrap();
    bad["score"] = 1.0.into();
    let mut z_time: Value = serde_json::from_str(&good).unwrap();
    z_time["timestamp"] = "2025-11-25T14:59:51.123456Z".into();
    let mut alert_extra: Value = serde_json::from_str(&good).unwrap();
    alert_extra["alert"]["episode"] = Value::Object(Default::default());
    for (what, v) in [
        ("score", bad),
        ("Z time", z_time),
        ("alert.episode", alert_extra),
    ] {
        let out = util::run_eve_validator(&schema, &format!("{v}\n"));
        assert!(!out.status.success(), "{what} passed: {v}");
    }
    util::assert_eve_valid(&schema, "one good alert", &format!("{good}\n"));
}

#[test]
fn alerts_of_every_family_protocol_and_address_kind_validate() {
    let Some(schema) = util::eve_schema() else {
        return;
    };
    let alerts = direct_alerts();
    assert_eq!(alerts.len(), 5 * 5 * 7 * 2);
    let text = json_lines(&alerts);
    assert!(!text.contains("0.0.0.0"), "unknown addresses are left out");
    util::assert_eve_valid(&schema, "direct alerts", &text);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_floodwatch"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run floodwatch");
    assert!(
        out.status.success(),
        "floodwatch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn parse(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Checks a `watch` run's alerts: valid, one start and one end per
/// episode and at most one details, the family's target named.
fn check_watch_alerts(schema: &Path, what: &str, text: &str) -> Vec<Value> {
    let alerts = parse(text);
    assert!(!alerts.is_empty(), "{what}: no alert");
    util::assert_eve_valid(schema, what, text);
    let state = |a: &Value| a["alert"]["context"]["state"].as_str().unwrap().to_owned();
    let count = |s: &str| alerts.iter().filter(|a| state(a) == s).count();
    let (starts, ends, details) = (count("start"), count("end"), count("details"));
    assert_eq!(starts, ends, "{what}: {text}");
    assert!(details <= starts, "{what}: {text}");
    assert_eq!(starts + ends + details, alerts.len(), "{what}: {text}");
    for a in &alerts {
        assert_eq!(a["event_type"], "alert");
        assert_eq!(a["alert"]["action"], "allowed");
        let family = a["alert"]["context"]["family"].as_str().unwrap();
        if family == "flood_target" {
            assert_eq!(a["alert"]["target"]["ip"], a["dest_ip"], "{what}: {a}");
            assert_eq!(a["alert"]["signature_id"], 1_990_001);
        }
    }
    alerts
}

#[test]
fn alerts_from_captures_validate() {
    let Some(schema) = util::eve_schema() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let synth = dir.path().join("s.pcap");
    run_ok(
        bin()
            .args(["-q", "synth", "--packets", "6000", "--rate", "100"])
            .args(["--attack", "syn-spoofed", "--pcap"])
            .arg(&synth)
            .arg("--labels")
            .arg(dir.path().join("s.csv")),
    );
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/pcap/pkt.TCP.synflood.spoofed.pcap");
    // The real capture is a flood only: learned from and calibrated per
    // record (a median threshold), just to give alerts to validate.
    let mut captures = vec![(synth, vec!["--grace", "3000"])];
    if real.exists() {
        captures.push((
            real,
            vec!["--grace", "20000", "--threshold", "quantile:0.5"],
        ));
    } else {
        util::skip("../shared/data/pcap/pkt.TCP.synflood.spoofed.pcap not found");
    }
    for (pcap, flags) in captures {
        let file = dir.path().join("a.jsonl");
        run_ok(
            bin()
                .args(["-q", "watch"])
                .args(&flags)
                .arg("--pcap")
                .arg(&pcap)
                .arg("--alerts")
                .arg(&file),
        );
        let text = std::fs::read_to_string(&file).unwrap();
        let what = pcap.display().to_string();
        for a in check_watch_alerts(&schema, &what, &text) {
            // Packets: capture time, a 5-tuple, its ids.
            assert!(
                a["flow_id"].is_u64() && a["community_id"].is_string(),
                "{a}"
            );
            assert!(a["timestamp"].as_str().unwrap().ends_with("+0000"));
            assert_eq!(a["alert"]["context"]["family"], "flood_target");
        }
    }
}

#[test]
fn alerts_from_table_rows_validate_and_leave_unknown_addresses_out() {
    let Some(schema) = util::eve_schema() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t.csv");
    run_ok(
        bin()
            .args(["-q", "synth", "--rows", "3000", "--out"])
            .arg(&table),
    );
    // The same table with the address and time columns renamed so that
    // floodwatch does not know them as such (they stay features): a table
    // without addresses and times.
    let text = std::fs::read_to_string(&table).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    assert!(header.contains("sourceIp,destIp,") && header.contains(",timestamp,"));
    let renamed = header
        .replace("sourceIp,destIp,", "sourceHostAddr,destHostAddr,")
        .replace(",timestamp,", ",captured,");
    let bare = dir.path().join("bare.csv");
    std::fs::write(&bare, format!("{renamed}\n{body}")).unwrap();
    for (what, table) in [("rows", &table), ("bare rows", &bare)] {
        let model = table.with_extension("fwm");
        run_ok(
            bin()
                .args(["-q", "train", "--epochs", "3", "--data"])
                .arg(table)
                .arg("--model")
                .arg(&model),
        );
        let text = std::fs::read_to_string(table).unwrap();
        let input: Vec<&str> = text.lines().take(301).collect();
        let file = dir.path().join("a.jsonl");
        let mut child = bin()
            .args(["-q", "watch", "--stdin", "--queue", "100000", "--model"])
            .arg(&model)
            .arg("--alerts")
            .arg(&file)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.join("\n").as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("rejected"), "{stderr}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("0.0.0.0"), "{what}: {text}");
        let alerts = check_watch_alerts(&schema, what, &text);
        if what == "bare rows" {
            for a in &alerts {
                for key in ["src_ip", "dest_ip", "flow_id", "community_id"] {
                    assert!(a.get(key).is_none(), "{key} in {a}");
                }
                assert_eq!(a["alert"]["context"]["family"], "anomaly");
                assert_eq!(a["alert"]["signature"], "floodwatch: anomalous traffic");
                // No time column: the wall clock (this century, not 2017).
                let year: u32 = a["timestamp"].as_str().unwrap()[..4].parse().unwrap();
                assert!(year >= 2025, "{a}");
            }
        } else {
            assert!(alerts.iter().all(|a| a["dest_ip"].is_string()));
        }
    }
}

/// `--home-net` (#19): the synth victim 198.51.100.23 is incoming when
/// inside the home net, outgoing when outside, in the alert and in the
/// hook's arguments and environment; the alerts stay valid EVE.
#[test]
fn home_net_sets_the_direction_of_alerts_and_hook_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let synth = dir.path().join("s.pcap");
    run_ok(
        bin()
            .args(["-q", "synth", "--packets", "6000", "--rate", "100"])
            .args(["--attack", "syn-spoofed", "--pcap"])
            .arg(&synth)
            .arg("--labels")
            .arg(dir.path().join("s.csv")),
    );
    let cases = [
        ("10.0.0.0/8,198.51.100.0/24", "incoming"),
        ("2001:db8::/32", "outgoing"),
    ];
    for (home, want) in cases {
        let file = dir.path().join(format!("{want}.jsonl"));
        let hook = dir.path().join(format!("{want}.hook"));
        run_ok(
            bin()
                .args(["-q", "watch", "--grace", "3000", "--pcap"])
                .arg(&synth)
                .args(["--home-net", home, "--home-net", "192.0.2.1"])
                .arg("--alerts")
                .arg(&file)
                .arg("--on-alert")
                .arg(format!(
                    "echo \"$1 $2 $4 $FLOODWATCH_DIRECTION\" >> {}",
                    hook.display()
                )),
        );
        let text = std::fs::read_to_string(&file).unwrap();
        let alerts = parse(&text);
        assert!(!alerts.is_empty(), "{home}: no alert");
        if let Some(schema) = util::eve_schema() {
            util::assert_eve_valid(&schema, home, &text);
        }
        for a in &alerts {
            assert_eq!(a["alert"]["context"]["direction"], want, "{home}: {a}");
            assert_eq!(a["alert"]["target"]["ip"], "198.51.100.23");
        }
        let calls = std::fs::read_to_string(&hook).unwrap();
        assert_eq!(calls.lines().count(), alerts.len(), "{calls}");
        for line in calls.lines() {
            let f: Vec<_> = line.split(' ').collect();
            assert_eq!((f[0], f[1], f[3]), ("198.51.100.23", want, want), "{line}");
            assert!(["ban", "attack_details", "unban"].contains(&f[2]), "{line}");
        }
    }
    let bad = bin()
        .args(["-q", "watch", "--grace", "10", "--pcap"])
        .arg(&synth)
        .args(["--home-net", "10.0.0.0/8,300.1.1.1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("--home-net") && err.contains("300.1.1.1"),
        "{err}"
    );
}
