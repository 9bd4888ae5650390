//! Writes the fuzzing seed corpus: `cargo run --release --example fuzz_seeds -- fuzz/corpus`.
//!
//! Small files only: the first records of the shared captures and tables
//! (when `../shared` is there), generated captures and tables, a pcapng
//! capture, a tiny model bundle, KitNET states in every phase and
//! sequences of flow export datagrams.

use std::path::{Path, PathBuf};

use floodwatch::features::scale::ScalerParams;
use floodwatch::features::tabular::{Column, ColumnKind, Schema};
use floodwatch::ingest::flows::build;
use floodwatch::ingest::packets::capture::CaptureReader;
use floodwatch::ingest::packets::synth::{self, SynthConfig};
use floodwatch::ingest::synth::SynthParams;
use floodwatch::model::autoencoder::AutoencoderParams;
use floodwatch::model::bundle::{Bundle, TrainMeta};
use floodwatch::model::kitnet::KitNetParams;
use floodwatch::model::threshold::ThresholdRule;
use floodwatch::Matrix;

/// Bytes kept from the start of each shared file.
const HEAD: usize = 8 * 1024;
/// Frames taken from each capture for the decoder.
const FRAMES: usize = 64;

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let mut captures = generated_captures()?;
    captures.push(("pcapng-synth".into(), pcapng_capture()));
    match std::fs::read_dir(shared.join("pcap")) {
        Ok(dir) => {
            for entry in dir.flatten() {
                let p = entry.path();
                if p.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
                    captures.push((name_of(&p), head(&p)?));
                }
            }
        }
        Err(_) => eprintln!("skipping: {} not found", shared.join("pcap").display()),
    }
    for (name, bytes) in &captures {
        put(&out, "capture", name, bytes)?;
        for (i, frame) in frames(bytes).into_iter().enumerate() {
            put(&out, "decode", &format!("{name}-{i}"), &frame)?;
        }
    }
    for (name, text) in tables(&shared)? {
        put(&out, "csv", &name, &text)?;
    }
    let bundle = tiny_bundle()?;
    put(&out, "bundle", "tiny.fw", &bundle)?;
    put(
        &out,
        "bundle",
        "tiny.json",
        bundle.get(24..).unwrap_or_default(),
    )?;
    put(
        &out,
        "jsonlines",
        "json.txt",
        b"{\"a\":1.5,\"proto\":\"tcp\"}\n{\"a\":\"2\",\"proto\":\"icmp\",\"x\":[1]}\n{\"a\":null}\n",
    )?;
    put(
        &out,
        "jsonlines",
        "csv.txt",
        b"proto,a\ntcp,1\nudp,2,3\nx,NaN\n",
    )?;
    for (name, json) in kitnet_states()? {
        put(&out, "kitnet", &name, &json)?;
    }
    for (name, bytes) in flow_sequences() {
        put(&out, "flows", &name, &bytes)?;
    }
    eprintln!("seeds written under {}", out.display());
    Ok(())
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| "x".into(), |n| n.to_string_lossy().into_owned())
}

fn put(out: &Path, target: &str, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

/// The first [`HEAD`] bytes of a file.
fn head(p: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(p)?
        .take(HEAD as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

fn generated_captures() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (name, attacks) in [("benign", ""), ("floods", "syn,udp,ack-spoofed")] {
        let cfg = SynthConfig {
            packets: 60,
            rate: 100.0,
            seed: 7,
            attacks: attacks
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect::<Result<_, String>>()
                .map_err(anyhow::Error::msg)?,
            start_ns: 1_700_000_000_000_000_000,
        };
        let mut pcap = Vec::new();
        synth::write(&cfg, &mut pcap, std::io::sink())?;
        out.push((format!("synth-{name}.pcap"), pcap));
    }
    Ok(out)
}

/// A pcapng capture (section, Ethernet interface, two enhanced packets):
/// the shared captures are all classic pcap.
fn pcapng_capture() -> Vec<u8> {
    fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let pad = (4 - body.len() % 4) % 4;
        let total = (12 + body.len() + pad) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(body);
        out.extend(std::iter::repeat_n(0, pad));
        out.extend_from_slice(&total.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut out, 0x0A0D_0D0A, &shb);
    let mut idb = vec![1, 0, 0, 0];
    idb.extend_from_slice(&65535u32.to_le_bytes());
    block(&mut out, 1, &idb);
    let frame = udp_frame();
    for ts in [1u64, 2] {
        let mut epb = 0u32.to_le_bytes().to_vec();
        let t = 1_700_000_000_000_000 + ts;
        epb.extend_from_slice(&((t >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(t as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&frame);
        block(&mut out, 6, &epb);
    }
    out
}

/// Ethernet + IPv4 + UDP, 8 payload bytes.
fn udp_frame() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
    f.extend_from_slice(&[
        0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 16, 0, 0]);
    f.extend_from_slice(b"payload!");
    f
}

/// The first frames of a capture, each behind the decode target's
/// link-type byte (its index in the target's list).
fn frames(capture: &[u8]) -> Vec<Vec<u8>> {
    let Ok(mut reader) = CaptureReader::from_reader(capture, "seed") else {
        return Vec::new();
    };
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < FRAMES {
        match reader.next_packet(&mut buf) {
            Ok(Some(raw)) => {
                let sel = [0u16, 1, 101, 108, 113, 228, 229, 276]
                    .iter()
                    .position(|&l| l == raw.link_type.0)
                    .map_or(raw.link_type.0 as u8, |i| i as u8);
                let mut seed = vec![sel];
                seed.extend_from_slice(raw.data);
                out.push(seed);
            }
            Ok(None) => break,
            Err(e) if e.is_fatal() => break,
            Err(_) => {}
        }
    }
    out
}

/// Generated tables and the first lines of the shared ones.
fn tables(shared: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut gen = Vec::new();
    SynthParams {
        rows: 40,
        ..SynthParams::default()
    }
    .write_to(&mut gen)?;
    let mut out = vec![("synth.csv".to_string(), gen)];
    for sub in ["cicids2017", "nbaiot", "nsl-kdd"] {
        let Ok(dir) = std::fs::read_dir(shared.join(sub)) else {
            eprintln!("skipping: {} not found", shared.join(sub).display());
            continue;
        };
        for entry in dir.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "csv" || e == "txt") {
                let mut bytes = head(&p)?;
                // Whole lines only.
                if let Some(end) = bytes.iter().rposition(|&b| b == b'\n') {
                    bytes.truncate(end + 1);
                }
                out.push((format!("{sub}-{}", name_of(&p)), bytes));
            }
        }
    }
    Ok(out)
}

/// A two-column bundle, as bytes of a saved file.
fn tiny_bundle() -> anyhow::Result<Vec<u8>> {
    let x = Matrix::from_vec(4, 2, vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
        .ok_or_else(|| anyhow::anyhow!("bad matrix shape"))?;
    let (autoencoder, history) = AutoencoderParams::new()
        .hidden([3, 2, 1, 2])
        .epochs(2)
        .fit(&x, None, &mut |_| {})?;
    let numeric = |name: &str| Column {
        name: name.into(),
        kind: ColumnKind::Numeric,
    };
    let bundle = Bundle {
        schema: Schema {
            columns: vec![numeric("a"), numeric("b")],
        },
        label_column: "label".into(),
        normal_labels: vec!["normal".into()],
        scaler: ScalerParams::default().fit(&x, &[false, false])?,
        autoencoder,
        threshold_rule: ThresholdRule::default(),
        threshold: 0.5,
        classifier: None,
        meta: TrainMeta {
            floodwatch_version: env!("CARGO_PKG_VERSION").into(),
            created_unix: 0,
            data: vec!["seed.csv".into()],
            rows_read: 4,
            rows_rejected: 0,
            normal_rows: 4,
            attack_rows: 0,
            train_rows: 4,
            holdout_rows: 0,
            classifier_attack_rows: 0,
            epochs: 2,
            batch_size: 4,
            learning_rate: 1e-3,
            seed: 1,
            history,
            dropped: vec![],
        },
        capture: None,
    };
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("m.fw");
    bundle.save(&p)?;
    Ok(std::fs::read(p)?)
}

/// KitNET states after mapping, during training and when executing.
fn kitnet_states() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut net = KitNetParams::new()
        .max_group(3)
        .fm_grace(4)
        .ad_grace(4)
        .build(5)?;
    let mut out = Vec::new();
    for i in 0..12u32 {
        let x: Vec<f64> = (0..5).map(|j| f64::from((i * 7 + j * 3) % 11)).collect();
        net.process(&x)?;
        if matches!(i, 1 | 6 | 11) {
            out.push((format!("kitnet-{i}.json"), serde_json::to_vec(&net)?));
        }
    }
    Ok(out)
}

/// Datagram sequences in the flows target's framing: a bounds byte, then
/// `[exporter/port/time byte][u16 BE length][datagram]` each.
fn flow_sequences() -> Vec<(String, Vec<u8>)> {
    use build::*;
    let frame = |sel: u8, dgrams: &[(u8, Vec<u8>)]| {
        let mut s = vec![sel];
        for (h, d) in dgrams {
            s.push(*h);
            s.extend_from_slice(&(d.len() as u16).to_be_bytes());
            s.extend_from_slice(d);
        }
        s
    };
    let flows: Vec<_> = (1..=4).map(|i| flow(i, u32::from(i))).collect();
    let mut swapped = V9_FIELDS;
    swapped.swap(0, 1);
    let v9_data = v9(0, &[v9_data_set(256, &flows)]);
    let v9_seq = vec![
        (0, v9(0, &[v9_template_set(256, &V9_FIELDS)])),
        (0, v9_data.clone()),
        (1, v9_data.clone()),
        (1, v9(0, &[v9_template_set(256, &swapped)])),
        (1, v9_data.clone()),
        (2, v9_data.clone()),
        (0, v9(7, &[v9_data_set(256, &flows)])),
    ];
    let mut sets = vec![ipfix_template()];
    sets.extend(ipfix_sampling(100));
    sets.push(ipfix_data(&flows));
    let ipfix_seq = vec![
        (4, ipfix(3, &sets)),
        (4, ipfix(3, &[ipfix_data(&flows)])),
        (5, ipfix(3, &[ipfix_data(&flows)])),
        (5, ipfix(4, &[ipfix_template()])),
        (5, ipfix(4, &[ipfix_data(&flows)])),
    ];
    let v5_seq = vec![(0, v5(&flows, 0)), (1, v5(&flows, 0x4000 | 100))];
    let sflow_seq = vec![
        (8, sflow(&flows, 100, None)),
        (9, sflow(&flows, 1, None)),
        (8, sflow(&flows, 10, Some(1_000))),
    ];
    let mixed: Vec<_> = [&v9_seq, &ipfix_seq, &v5_seq, &sflow_seq]
        .into_iter()
        .flat_map(|s| s.iter().cloned())
        .collect();
    let mut out = Vec::new();
    for (name, seq) in [
        ("v9", &v9_seq),
        ("ipfix", &ipfix_seq),
        ("v5", &v5_seq),
        ("sflow", &sflow_seq),
        ("mixed", &mixed),
    ] {
        out.push((format!("{name}.bin"), frame(0, seq)));
        out.push((format!("{name}-tight.bin"), frame(1, seq)));
    }
    out
}
