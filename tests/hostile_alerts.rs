//! The detector under hostile traffic, end to end through the `watch`
//! engine: it learns from benign traffic, then a spoofed-source SYN flood, a
//! flood of IP fragments, and a flood after a long slow trickle of new keys
//! must each raise an alert against their target, with the `victim` layout
//! (destination-keyed: spoofed sources add no state) and the `floodwatch`
//! layout (whose source-keyed tables fill up and evict at their small cap).
//! (Memory and speed at 5,000,000 sources: `cargo bench --bench hostile`.)

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use floodwatch::detect::episode::TrackerParams;
use floodwatch::detect::metrics::Metrics;
use floodwatch::detect::sink::JsonLines;
use floodwatch::detect::stream::source::{Feed, PacketFeed, PacketRecords};
use floodwatch::detect::stream::{
    learning_sides, Calibrate, Engine, EngineParams, Grace, OnlineDetector, Summary,
};
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::packet::FeatureExtractor;
use floodwatch::features::stream_table::TableConfig;
use floodwatch::ingest::packets::{Network, PacketMeta, Transport};
use serde_json::Value;

const VICTIM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const CAPACITY: usize = 512;
const GRACE: u64 = 4_000;
/// Benign packets per second, before and during each attack.
const BENIGN_PPS: f64 = 100.0;

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn packet(t: f64, src: Ipv4Addr, dst: Ipv4Addr, len: u32, transport: Transport) -> PacketMeta {
    PacketMeta {
        index: 0,
        timestamp: t,
        wire_len: len,
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        network: Network::Ip {
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
        },
        transport,
        fragment: None,
    }
}

/// One benign packet: twenty devices talk HTTPS with the victim server
/// (which answers) and ask the DNS server.
fn benign(t: f64, rng: &mut Rng) -> PacketMeta {
    let r = rng.next();
    let device = Ipv4Addr::new(10, 0, 1, 1 + (r % 20) as u8);
    let port = 40_000 + (r % 20) as u16;
    let len = 60 + ((r >> 8) % 400) as u32;
    match (r >> 20) % 10 {
        0..=4 => packet(t, device, VICTIM, len, tcp(port, 443, 0x18)),
        5..=7 => packet(t, VICTIM, device, len, tcp(443, port, 0x18)),
        _ => packet(t, device, DNS, 80, udp(port, 53)),
    }
}

fn tcp(src_port: u16, dst_port: u16, flags: u8) -> Transport {
    Transport::Tcp {
        src_port,
        dst_port,
        flags,
    }
}

fn udp(src_port: u16, dst_port: u16) -> Transport {
    Transport::Udp { src_port, dst_port }
}

/// Benign traffic from `t0` for `secs`, with `extra` packets per second
/// from `attack` mixed in; returns the packets and the end time.
fn phase(
    t0: f64,
    secs: f64,
    extra_pps: f64,
    rng: &mut Rng,
    mut attack: impl FnMut(f64, &mut Rng) -> PacketMeta,
) -> Vec<PacketMeta> {
    let mut out = Vec::new();
    let (benign_n, extra_n) = ((secs * BENIGN_PPS) as u64, (secs * extra_pps) as u64);
    let (mut i, mut j) = (0, 0);
    while i < benign_n || j < extra_n {
        let tb = t0 + i as f64 / BENIGN_PPS;
        let ta = t0 + j as f64 / extra_pps.max(1e-9);
        if j >= extra_n || (i < benign_n && tb <= ta) {
            out.push(benign(tb, rng));
            i += 1;
        } else {
            out.push(attack(ta, rng));
            j += 1;
        }
    }
    out
}

/// Packets handed to the engine in order, numbered from 1.
struct Packets(std::vec::IntoIter<PacketMeta>, u64);

impl PacketFeed for Packets {
    fn next_packet(&mut self) -> Feed {
        match self.0.next() {
            Some(mut p) => {
                self.1 += 1;
                p.index = self.1;
                Feed::Packet(p, Instant::now())
            }
            None => Feed::End,
        }
    }
}

/// Runs `watch`'s engine (online autoencoder) over the packets; returns
/// the summary and the alerts.
fn watch(layout: PacketLayout, packets: Vec<PacketMeta>) -> (Summary, Vec<Value>) {
    watch_for(layout, packets, Grace::Records(GRACE))
}

/// [`watch`] with this grace.
fn watch_for(
    layout: PacketLayout,
    packets: Vec<PacketMeta>,
    grace: Grace,
) -> (Summary, Vec<Value>) {
    let config = TableConfig {
        capacity: CAPACITY,
        ..TableConfig::default()
    };
    let features = layout.extractor(config).unwrap();
    let mut source = PacketRecords::new(Packets(packets.into_iter(), 0), features);
    let groups = layout.extractor(config).unwrap().groups();
    let sides = learning_sides(groups, OnlineDetector::Autoencoder { epochs: 60 }, 20_000);
    let params = EngineParams {
        tracker: TrackerParams::new(),
        top_features: 3,
        save_model: None,
        grace: Some(grace),
        calibrate: Calibrate::Budget(1.0),
        drift: Some(600.0),
        layout: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::default());
    let mut engine = Engine::new(params, sides, metrics, stop).unwrap();
    let mut sink = JsonLines::new(Vec::new());
    let summary = engine.run(&mut source, &mut sink).unwrap();
    let text = String::from_utf8(sink.into_inner()).unwrap();
    let alerts = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (summary, alerts)
}

/// Capture times (seconds of day) of the episodes opened against `target`
/// (destination-side episodes: the target as victim).
fn starts_against(alerts: &[Value], target: Ipv4Addr) -> Vec<f64> {
    alerts
        .iter()
        .filter(|a| {
            a["alert"]["context"]["state"] == "start"
                && a["alert"]["context"]["family"] == "flood_target"
                && a["dest_ip"] == target.to_string()
        })
        .map(|a| {
            let t = a["alert"]["context"]["episode"]["start"].as_str().unwrap();
            let hms = &t[11..t.len() - 5];
            let p: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
            p[0] * 3600.0 + p[1] * 60.0 + p[2]
        })
        .collect()
}

/// `before` (benign traffic first, for training), then `attack` at 2,000
/// packets a second from `onset` for 20 s, through both layouts: the victim
/// must be alerted on, only after onset; `evicts`: which layouts' tables
/// must have filled up.
fn assert_alerts(
    name: &str,
    before: Vec<PacketMeta>,
    evicts: &[PacketLayout],
    attack: impl FnMut(f64, &mut Rng) -> PacketMeta,
) {
    let mut rng = Rng(99);
    let onset = before.last().map_or(0.0, |p| p.timestamp) + 1.0;
    let mut packets = before;
    packets.extend(phase(onset, 20.0, 2_000.0, &mut rng, attack));
    for layout in [PacketLayout::Victim, PacketLayout::Floodwatch] {
        let name = format!("{name}, {layout:?} layout");
        check(
            &name,
            onset,
            watch(layout, packets.clone()),
            packets.len(),
            evicts.contains(&layout),
        );
    }
}

fn check(name: &str, onset: f64, (summary, alerts): (Summary, Vec<Value>), n: usize, evicts: bool) {
    assert_eq!(
        summary.records + summary.rejected,
        n as u64,
        "{name}: every packet is counted"
    );
    assert!(
        !evicts || summary.evictions > 0,
        "{name}: tables never filled: {summary:?}"
    );
    let starts = starts_against(&alerts, VICTIM);
    let onset_of_day = onset.rem_euclid(86_400.0);
    assert!(
        !starts.is_empty(),
        "{name}: no alert against the victim: {summary:?}"
    );
    assert!(
        starts.iter().all(|&s| s >= onset_of_day - 1e-3),
        "{name}: alert before the attack {starts:?} (onset {onset_of_day})"
    );
    let first = starts.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        first - onset_of_day < 2.0,
        "{name}: first alert {first}, onset {onset_of_day}"
    );
}

fn training(rng: &mut Rng) -> Vec<PacketMeta> {
    phase(1e9, 60.0, 0.0, rng, benign)
}

#[test]
fn spoofed_source_flood_raises_the_alert() {
    let mut rng = Rng(1);
    let evicts = [PacketLayout::Floodwatch];
    assert_alerts("spoofed SYN flood", training(&mut rng), &evicts, |t, r| {
        let x = r.next();
        packet(
            t,
            Ipv4Addr::from(x as u32),
            VICTIM,
            60,
            tcp((x >> 32) as u16, 80, 0x02),
        )
    });
}

#[test]
fn fragment_flood_raises_the_alert() {
    let mut rng = Rng(2);
    // Later fragments of UDP datagrams: no transport header, full frames.
    let evicts = [PacketLayout::Floodwatch];
    assert_alerts("fragment flood", training(&mut rng), &evicts, |t, r| {
        packet(
            t,
            Ipv4Addr::from(r.next() as u32),
            VICTIM,
            1514,
            Transport::Other(17),
        )
    });
}

#[test]
fn flood_after_a_slow_trickle_of_new_keys_raises_the_alert() {
    let mut rng = Rng(3);
    let mut packets = training(&mut rng);
    // For an hour of capture time, a new destination (and source) every
    // 0.2 s: 18,000 keys through tables of 512.
    let t0 = packets.last().map_or(0.0, |p| p.timestamp) + 0.01;
    let mut k = 0u32;
    packets.extend(phase(t0, 3_600.0, 5.0, &mut rng, |t, _| {
        k += 1;
        let key = Ipv4Addr::from(0x0b00_0000 + k);
        packet(t, key, Ipv4Addr::from(0x0c00_0000 + k), 80, udp(5353, 53))
    }));
    let evicts = [PacketLayout::Victim, PacketLayout::Floodwatch];
    assert_alerts("flood after a trickle", packets, &evicts, |t, r| {
        let bot = Ipv4Addr::new(172, 16, 0, 1 + (r.next() % 50) as u8);
        packet(
            t,
            bot,
            VICTIM,
            60,
            tcp(1024 + (r.next() % 60_000) as u16, 80, 0x02),
        )
    });
}

#[test]
fn a_ramp_over_hours_is_not_learned_by_following_drift() {
    // Ten minutes of grace and an hour of benign traffic (six drift
    // periods), then requests to the server from 50 bots, like the
    // devices' own, starting at half a packet a second and growing by half
    // every 10 minutes (a drift period), for hours: the threshold follows
    // only what is judged normal, so the flood is alerted on while small.
    let mut rng = Rng(5);
    let mut packets = phase(1e9, 4200.0, 0.0, &mut rng, benign);
    let onset = packets.last().map_or(0.0, |p| p.timestamp) + 0.01;
    let mut pps = 0.5;
    let mut steps = Vec::new();
    while pps < 400.0 {
        let t0 = onset + 600.0 * steps.len() as f64;
        steps.push((t0.rem_euclid(86_400.0), pps));
        packets.extend(phase(t0, 600.0, pps, &mut rng, |t, r| {
            let bot = Ipv4Addr::new(172, 16, 0, 1 + (r.next() % 50) as u8);
            let len = 60 + ((r.next() >> 8) % 400) as u32;
            packet(
                t,
                bot,
                VICTIM,
                len,
                tcp(40_000 + (r.next() % 20) as u16, 443, 0x18),
            )
        }));
        pps *= 1.5;
    }
    let (summary, alerts) = watch_for(PacketLayout::Victim, packets, Grace::Seconds(600.0));
    let first = starts_against(&alerts, VICTIM)
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    let rate_then = steps
        .iter()
        .take_while(|s| s.0 <= first)
        .last()
        .map(|s| s.1);
    let dst = &summary.sides[0];
    eprintln!("ramp first alerted at {rate_then:?} packets/s; {dst:?}");
    assert!(dst.drift.is_some_and(|d| d.updates > 10), "{dst:?}");
    assert!(
        rate_then.is_some_and(|r| r < 200.0),
        "first alert {first} at {rate_then:?} packets/s: {summary:?}"
    );
}

#[test]
fn a_slow_ramp_up_is_not_learned_as_normal() {
    // After grace, a SYN flood from 50 bots grows by 20 packets a second
    // every 10 s, for 5 minutes: an attacker hoping to be learned as normal.
    let mut rng = Rng(4);
    let mut packets = training(&mut rng);
    let onset = packets.last().map_or(0.0, |p| p.timestamp) + 1.0;
    for step in 0..30 {
        let t0 = onset + f64::from(step) * 10.0;
        let pps = 20.0 * f64::from(step + 1);
        packets.extend(phase(t0, 10.0, pps, &mut rng, |t, r| {
            let bot = Ipv4Addr::new(172, 16, 0, 1 + (r.next() % 50) as u8);
            packet(
                t,
                bot,
                VICTIM,
                60,
                tcp(1024 + (r.next() % 60_000) as u16, 80, 0x02),
            )
        }));
    }
    let onset_of_day = onset.rem_euclid(86_400.0);
    for layout in [PacketLayout::Victim, PacketLayout::Floodwatch] {
        let (summary, alerts) = watch(layout, packets.clone());
        let starts = starts_against(&alerts, VICTIM);
        let first = starts.iter().copied().fold(f64::INFINITY, f64::min);
        // Alerted while the flood is still small (under 200 packets a
        // second), and never before it began.
        assert!(
            first >= onset_of_day - 1e-3 && first - onset_of_day < 100.0,
            "{layout:?}: first alert {first}, onset {onset_of_day}: {summary:?}"
        );
    }
}
