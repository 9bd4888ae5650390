//! Mitigation through a real BGP speaker: `watch --mitigate` drives one
//! gobgpd, a second one peers with it on 127.0.0.1 as a router would, and
//! its RIB shows what the router receives. Those tests are ignored by
//! default (they need Debian's `gobgpd` and replay captures at their own
//! pace); `.ci/run` runs them with `--ignored`, where a missing gobgpd fails
//! them. The flags' checks and a failing `gobgp` need no speaker and always
//! run.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

mod util;

/// The flood's victim in `synth --profile day`.
const VICTIM: &str = "198.51.100.23";
/// The victim's network and the home hosts (the benign targets).
const HOME: &str = "198.51.100.0/24,192.168.1.0/24";
/// The flood starts this long after the capture's first packet...
const ONSET: f64 = 8.0;
/// ... and lasts this long.
const FLOOD: f64 = 6.0;
/// `--ban-time` of the runs, in seconds.
const BAN: f64 = 3.0;
/// RFC 7999's BLACKHOLE community, 65535:666, as BGP carries it.
const BLACKHOLE: u64 = 0xFFFF_029A;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_floodwatch"))
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A gobgpd, killed by its PID when dropped (also when a test fails).
struct Daemon {
    child: Child,
    api: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The TOML config of a speaker on 127.0.0.1:`port` peering with the one
/// on `peer_port`, for unicast and FlowSpec over IPv4.
fn config(asn: u32, peer_asn: u32, id: &str, port: u16, peer_port: u16) -> String {
    let family = |name: &str| {
        format!(
            "[[neighbors.afi-safis]]\n[neighbors.afi-safis.config]\nafi-safi-name = \"{name}\"\n"
        )
    };
    format!(
        "[global.config]\nas = {asn}\nrouter-id = \"{id}\"\nport = {port}\n\
         local-address-list = [\"127.0.0.1\"]\n\n\
         [[neighbors]]\n[neighbors.config]\nneighbor-address = \"127.0.0.1\"\npeer-as = {peer_asn}\n\
         [neighbors.transport.config]\nremote-port = {peer_port}\nlocal-address = \"127.0.0.1\"\n\
         [neighbors.timers.config]\nconnect-retry = 1\n{}{}",
        family("ipv4-unicast"),
        family("ipv4-flowspec")
    )
}

fn daemon(dir: &Path, name: &str, conf: String) -> Daemon {
    let (path, log) = (
        dir.join(format!("{name}.toml")),
        dir.join(format!("{name}.log")),
    );
    std::fs::write(&path, conf).unwrap();
    let api = free_port();
    let child = Command::new("gobgpd")
        .arg("-f")
        .arg(&path)
        .args(["-t", "toml", "--api-hosts", &format!("127.0.0.1:{api}")])
        .args(["--pprof-disable", "--log-level", "warn"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Daemon { child, api }
}

/// Runs `gobgp -p API ARGS -j` and parses its answer.
fn gobgp(api: u16, args: &[&str]) -> Option<Value> {
    let out = Command::new("gobgp")
        .args(["-p", &api.to_string()])
        .args(args)
        .arg("-j")
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Two gobgpd peered on loopback: `speaker` (AS 64512) is the one
/// floodwatch drives, `router` (AS 64513) receives its routes.
struct Peers {
    speaker: Daemon,
    router: Daemon,
    _dir: TempDir,
}

impl Peers {
    /// Started and established; `None` when gobgpd is missing.
    fn start() -> Option<Peers> {
        if !util::installed("gobgpd") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (free_port(), free_port());
        let speaker = daemon(
            dir.path(),
            "speaker",
            config(64512, 64513, "10.255.0.1", a, b),
        );
        let router = daemon(
            dir.path(),
            "router",
            config(64513, 64512, "10.255.0.2", b, a),
        );
        let peers = Peers {
            speaker,
            router,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !peers.established() {
            assert!(Instant::now() < deadline, "the two gobgpd never peered");
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(peers)
    }

    fn established(&self) -> bool {
        let state = gobgp(self.speaker.api, &["neighbor"]);
        state.is_some_and(|s| s[0]["state"]["session_state"] == 6)
    }

    /// The router's routes of `family` (`ipv4`, `ipv4-flowspec`), by key.
    fn rib(&self, family: &str) -> serde_json::Map<String, Value> {
        let rib = gobgp(self.router.api, &["global", "rib", "-a", family]);
        match rib {
            Some(Value::Object(m)) => m,
            other => panic!("gobgp global rib -a {family}: {other:?}"),
        }
    }

    /// Every change of the router's best routes from now on.
    fn monitor(&self) -> Monitor {
        let mut child = Command::new("gobgp")
            .args(["-p", &self.router.api.to_string()])
            .args(["monitor", "global", "rib", "-j"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(Value::Array(paths)) = serde_json::from_str(&line) {
                    log.lock().unwrap().extend(paths);
                }
            }
        });
        // Let the subscription settle before anything is announced.
        std::thread::sleep(Duration::from_millis(500));
        Monitor { child, seen }
    }
}

/// `gobgp monitor global rib` in the background.
struct Monitor {
    child: Child,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Monitor {
    /// The prefixes of the routes announced so far (a FlowSpec rule by its
    /// destination), with repeats; withdrawals left out.
    fn announced(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let mut out = Vec::new();
        for path in seen.iter().filter(|p| p["withdrawal"] != true) {
            prefixes(&path["nlri"], &mut out);
        }
        out
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `prefix` string under `v`.
fn prefixes(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("prefix", Value::String(p)) => out.push(p.clone()),
                    _ => prefixes(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| prefixes(x, out)),
        _ => {}
    }
}

/// A model learned on a minute of benign `synth --profile day` traffic,
/// and 30 s of the same network with a UDP flood against [`VICTIM`] from
/// [`ONSET`] for [`FLOOD`] seconds.
struct Fixture {
    dir: TempDir,
    model: PathBuf,
    pcap: PathBuf,
}

fn synth(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let (pcap, labels) = (
        dir.join(format!("{name}.pcap")),
        dir.join(format!("{name}.csv")),
    );
    let out = bin()
        .args(["-q", "synth", "--profile", "day", "--rate", "200"])
        .args(extra)
        .arg("--pcap")
        .arg(&pcap)
        .arg("--labels")
        .arg(&labels)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pcap
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let train = synth(
        dir.path(),
        "train",
        &["--duration", "60s", "--start", "1699999000", "--seed", "5"],
    );
    let (at, len) = (format!("{ONSET}s"), format!("{FLOOD}s"));
    let pcap = synth(
        dir.path(),
        "flood",
        &[
            "--duration",
            "30s",
            "--attack",
            "udp",
            "--attack-at",
            &at,
            "--attack-duration",
            &len,
        ],
    );
    let model = dir.path().join("model.json");
    let out = bin()
        .args([
            "-q",
            "watch",
            "--grace",
            "50s",
            "--alerts",
            "/dev/null",
            "--pcap",
        ])
        .arg(&train)
        .arg("--save-model")
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Fixture { dir, model, pcap }
}

impl Fixture {
    /// `watch` on the flood capture, driving `peers`' speaker.
    fn watch(&self, peers: &Peers, home: &str, extra: &[&str]) -> Command {
        let mut cmd = bin();
        cmd.args(["watch", "--model"])
            .arg(&self.model)
            .arg("--pcap")
            .arg(&self.pcap)
            .arg("--alerts")
            .arg(self.dir.path().join("alerts.jsonl"))
            .args(["--home-net", home, "--episode-timeout", "2"])
            .args(["--ban-time", &format!("{BAN}s")])
            .args(["--gobgp-api", &peers.speaker.api.to_string()])
            .args(extra);
        cmd
    }

    /// Whether the last run's alerts opened an episode against the victim.
    fn victim_alerted(&self) -> bool {
        let text = std::fs::read_to_string(self.dir.path().join("alerts.jsonl")).unwrap();
        text.lines().any(|l| {
            let a: Value = serde_json::from_str(l).unwrap();
            a["alert"]["target"]["ip"] == VICTIM && a["alert"]["context"]["state"] == "start"
        })
    }
}

/// Spawns `cmd` with its standard error read line by line.
fn spawn(mut cmd: Command) -> (Child, Receiver<String>) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// What [`track`] saw of the victim's rules.
struct Seen {
    /// When a rule first appeared, and the first rule.
    appeared: Option<(Instant, Value)>,
    /// When the last one left.
    left: Option<Instant>,
    /// The keys of every rule seen, in order of appearance.
    keys: Vec<String>,
    /// The last rule seen.
    last: Option<Value>,
    /// What floodwatch said (its `mitigation:` lines among them).
    said: Vec<String>,
}

/// Polls the router's `family` RIB for routes whose key starts with `key`
/// until `deadline`: when one first appeared, which ones came (a FlowSpec
/// rule is narrowed once the episode has a fingerprint) and when the last
/// one left.
fn track(peers: &Peers, family: &str, key: &str, deadline: Instant) -> Seen {
    let mut seen = Seen {
        appeared: None,
        left: None,
        keys: Vec::new(),
        last: None,
        said: Vec::new(),
    };
    while Instant::now() < deadline {
        let rib = peers.rib(family);
        let now = Instant::now();
        let ours: Vec<(&String, &Value)> = rib.iter().filter(|(k, _)| k.starts_with(key)).collect();
        for (k, route) in &ours {
            if !seen.keys.contains(k) {
                seen.keys.push((*k).clone());
            }
            seen.last = Some((*route).clone());
            seen.appeared.get_or_insert((now, (*route).clone()));
        }
        if ours.is_empty() && seen.appeared.is_some() {
            seen.left = Some(now);
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

/// Replays the flood at its own pace with `--mitigate KIND`: the victim's
/// rule reaches the router within 2 s of the flood's onset, leaves it
/// `--ban-time` after the episode while floodwatch still runs, and nothing
/// else is ever announced.
fn paced_flood(kind: &str, family: &str, key: &str) -> Option<Seen> {
    let peers = Peers::start()?;
    let f = fixture();
    let monitor = peers.monitor();
    let started = Instant::now();
    let (mut child, lines) = spawn(f.watch(&peers, HOME, &["--mitigate", kind, "--realtime"]));
    let onset = started + Duration::from_secs_f64(ONSET);
    let seen = track(&peers, family, key, started + Duration::from_secs(40));
    let at = seen.appeared.as_ref().map(|a| a.0);
    let at = at.unwrap_or_else(|| panic!("{key} never reached the router"));
    let left = seen
        .left
        .unwrap_or_else(|| panic!("{key} never left the router"));
    assert!(
        child.try_wait().unwrap().is_none(),
        "withdrawn by the ban time, before floodwatch exits"
    );
    let latency = at.duration_since(onset).as_secs_f64();
    let secs = |i: Instant| i.duration_since(started).as_secs_f64();
    println!(
        "{kind}: flood onset to the rule in the peer's RIB {latency:.3} s (polled every 20 ms); \
         withdrawn {:.1} s after onset",
        secs(left) - ONSET
    );
    assert!(at > onset, "announced before the flood: a false alarm");
    assert!(latency < 2.0, "{latency} s");
    // Flood, episode timeout (2 s), then the ban time.
    assert!(
        secs(left) - ONSET >= FLOOD + 2.0 + BAN - 1.0,
        "{}",
        secs(left)
    );
    assert!(child.wait().unwrap().success());
    let mut seen = seen;
    seen.said = lines.iter().collect();
    let said = &seen.said;
    assert!(
        said.iter()
            .any(|l| l.contains("mitigation: withdraw") && l.ends_with("(ban time over)")),
        "{said:?}"
    );
    let announced = monitor.announced();
    let victim = format!("{VICTIM}/32");
    assert!(!announced.is_empty(), "the monitor saw nothing");
    assert!(announced.iter().all(|p| *p == victim), "{announced:?}");
    Some(seen)
}

#[test]
#[ignore = "needs gobgpd; run by .ci/run"]
fn blackhole_route_reaches_the_router_during_the_flood_and_leaves_after_ban_time() {
    let Some(seen) = paced_flood("blackhole", "ipv4", &format!("{VICTIM}/32")) else {
        return;
    };
    assert_eq!(seen.keys.len(), 1, "{:?}", seen.keys);
    let route = seen.last.unwrap();
    let attrs = route[0]["attrs"].as_array().unwrap();
    let communities = attrs.iter().find(|a| a["type"] == 8).unwrap();
    assert_eq!(communities["communities"][0], BLACKHOLE, "{route}");
    let next_hop = attrs.iter().find(|a| a["type"] == 3).unwrap();
    assert_eq!(next_hop["nexthop"], "192.0.2.1", "{route}");
}

#[test]
#[ignore = "needs gobgpd; run by .ci/run"]
fn flowspec_rule_reaches_the_router_during_the_flood_and_leaves_after_ban_time() {
    let key = format!("[destination: {VICTIM}/32]");
    let Some(seen) = paced_flood("flowspec", "ipv4-flowspec", &key) else {
        return;
    };
    // At the start, the victim and the protocol; with the details, the
    // fingerprint's ports and lengths too.
    println!("FlowSpec rules in the router's RIB: {:?}", seen.keys);
    // floodwatch announced the wide rule, then the narrow one; the RIB,
    // polled every 20 ms, may miss the wide one when the details come fast.
    let announced: Vec<&String> = (seen.said.iter())
        .filter(|l| l.contains("mitigation: announce"))
        .collect();
    assert!(
        announced.len() == 2
            && announced[0].contains("episode started")
            && announced[1].contains("fingerprint"),
        "{announced:?}"
    );
    let wide = format!("{key}[protocol: ==udp]");
    assert!(
        seen.keys.len() == 1 || seen.keys[0] == wide,
        "{:?}",
        seen.keys
    );
    let narrowed = seen.keys.last().unwrap();
    assert!(
        seen.keys.len() <= 2
            && narrowed.contains("[protocol: ==udp]")
            && narrowed.contains("[packet-length: "),
        "{:?}",
        seen.keys
    );
    // Traffic-rate 0: discard (RFC 8955 section 7.3).
    for route in [&seen.appeared.unwrap().1, &seen.last.unwrap()] {
        let attrs = route[0]["attrs"].as_array().unwrap();
        let action = attrs.iter().find(|a| a["type"] == 16).unwrap();
        assert_eq!(action["value"][0]["subtype"], 6, "{route}");
        assert_eq!(action["value"][0]["rate"], 0, "{route}");
    }
}

/// Fast replays: announced with --mitigate (the monitor would see it), and
/// nothing under a dry run, --never-mitigate the victim, or a home net
/// without it, though the flood is alerted each time.
#[test]
#[ignore = "needs gobgpd; run by .ci/run"]
fn dry_run_never_mitigate_and_home_net_announce_nothing() {
    let Some(peers) = Peers::start() else {
        return;
    };
    let f = fixture();
    let cases: [(&str, &str, &[&str], bool); 4] = [
        ("mitigate", HOME, &[], true),
        ("dry run", HOME, &["--mitigate-dry-run"], false),
        (
            "never",
            HOME,
            &["--never-mitigate", "198.51.100.16/28"],
            false,
        ),
        ("home net", "192.168.1.0/24", &[], false),
    ];
    for (case, home, extra, announced) in cases {
        let monitor = peers.monitor();
        let out = f
            .watch(&peers, home, &["--mitigate", "blackhole"])
            .args(extra)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {said}");
        assert!(f.victim_alerted(), "{case}: the flood was not alerted");
        std::thread::sleep(Duration::from_secs(1));
        let seen = monitor.announced();
        assert_eq!(!seen.is_empty(), announced, "{case}: {seen:?} {said}");
        assert!(
            seen.iter().all(|p| *p == format!("{VICTIM}/32")),
            "{seen:?}"
        );
        let logged = said.contains(&format!("announce {VICTIM}/32 community 65535:666"));
        assert_eq!(logged, announced || case == "dry run", "{case}: {said}");
        if case == "dry run" {
            assert!(said.contains("mitigation (dry run): announce"), "{said}");
        }
    }
}

/// `--flowspec-action rate-limit:N`: the router receives traffic-rate N
/// instead of 0 (a fast replay; the monitor sees the announcement).
#[test]
#[ignore = "needs gobgpd; run by .ci/run"]
fn flowspec_rate_limit_reaches_the_router() {
    let Some(peers) = Peers::start() else {
        return;
    };
    let f = fixture();
    let monitor = peers.monitor();
    let out = f
        .watch(&peers, HOME, &["--mitigate", "flowspec"])
        .args(["--flowspec-action", "rate-limit:125000"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("rate-limit 125000 bytes/s"), "{said}");
    std::thread::sleep(Duration::from_secs(1));
    let seen = monitor.seen.lock().unwrap();
    let rates: Vec<f64> = seen
        .iter()
        .filter(|p| p["withdrawal"] != true)
        .flat_map(|p| p["attrs"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["type"] == 16)
        .filter_map(|a| a["value"][0]["rate"].as_f64())
        .collect();
    assert!(
        !rates.is_empty() && rates.iter().all(|&r| r == 125_000.0),
        "{seen:?}"
    );
}

/// SIGTERM in the middle of the flood: floodwatch exits cleanly and the
/// route is withdrawn from the router.
#[test]
#[ignore = "needs gobgpd; run by .ci/run"]
fn sigterm_during_the_flood_withdraws_the_route() {
    let Some(peers) = Peers::start() else {
        return;
    };
    let f = fixture();
    let started = Instant::now();
    let (mut child, lines) =
        spawn(f.watch(&peers, HOME, &["--mitigate", "blackhole", "--realtime"]));
    let key = format!("{VICTIM}/32");
    let deadline = started + Duration::from_secs(20);
    while !peers.rib("ipv4").contains_key(&key) {
        assert!(Instant::now() < deadline, "never announced");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
    let stopped = started.elapsed().as_secs_f64();
    assert!(
        stopped < ONSET + FLOOD,
        "SIGTERM came after the flood ({stopped} s)"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while !peers.rib("ipv4").is_empty() {
        assert!(Instant::now() < deadline, "still announced 2 s after exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let said: Vec<String> = lines.iter().collect();
    assert!(said.iter().any(|l| l.ends_with("(at exit)")), "{said:?}");
}

/// The flags' guard rails hold without a speaker: `--mitigate` needs
/// `--home-net`, and a kind must be one of the two.
#[test]
fn mitigate_needs_a_home_net_and_a_known_kind() {
    let run = |extra: &[&str]| {
        let out = bin()
            .args(["watch", "--pcap", "x.pcap", "--grace", "10"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["--mitigate", "blackhole"]).contains("--home-net"));
    let e = run(&["--mitigate", "nullroute", "--home-net", "10.0.0.0/8"]);
    assert!(e.contains("blackhole or flowspec"), "{e}");
    let e = run(&["--never-mitigate", "10.0.0.0/33"]);
    assert!(e.contains("--never-mitigate") && e.contains("CIDR"), "{e}");
}

/// A speaker that cannot be reached costs the announcement, not the run:
/// the failure is logged with the reason and counted in the summary.
#[test]
fn a_failing_gobgp_is_logged_and_counted_not_fatal() {
    let f = fixture();
    let out = bin()
        .args(["watch", "--model"])
        .arg(&f.model)
        .arg("--pcap")
        .arg(&f.pcap)
        .args(["--alerts", "/dev/null", "--home-net", HOME])
        .args(["--mitigate", "blackhole", "--gobgp", "/nonexistent/gobgp"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "mitigation: announce {VICTIM}/32 community 65535:666 failed: cannot run /nonexistent/gobgp"
        )),
        "{said}"
    );
    assert!(
        said.contains("mitigation: 0 announced, 0 withdrawn, 1 failed"),
        "{said}"
    );
}
