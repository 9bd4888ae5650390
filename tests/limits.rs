//! Resource limits on hostile input: every oversized claim is refused with
//! an error naming the file and position, before anything of the claimed
//! size is allocated (the test process would abort or swap otherwise).

use std::io::Write;
use std::path::Path;

use floodwatch::detect::stream::SavedModel;
use floodwatch::ingest::csv::CsvSource;
use floodwatch::ingest::packets::capture::{CaptureReader, ErrorKind};
use floodwatch::model::bundle::Bundle;
use floodwatch::model::file::{FORMAT_VERSION, MAGIC};

/// A little-endian microsecond pcap header (Ethernet).
fn pcap_header() -> Vec<u8> {
    let mut h = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

#[test]
fn pcap_record_claiming_4_gb_is_refused() {
    let mut bytes = pcap_header();
    for v in [1u32, 0, u32::MAX, u32::MAX] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    // A stream: the reader cannot compare the claim with a file size.
    let mut reader = CaptureReader::from_reader(bytes.as_slice(), "huge.pcap").unwrap();
    let mut buf = Vec::new();
    let err = reader.next_packet(&mut buf).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::RecordTooLong { len, .. } if *len == u64::from(u32::MAX)),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("huge.pcap: record 1 at byte 24"), "{text}");
    assert!(
        buf.capacity() < 1 << 20,
        "buffer grew to {}",
        buf.capacity()
    );
}

#[test]
fn pcapng_blocks_claiming_gigabytes_are_refused() {
    let mut shb = 0x0A0D_0D0Au32.to_le_bytes().to_vec();
    shb.extend_from_slice(&28u32.to_le_bytes());
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    shb.extend_from_slice(&28u32.to_le_bytes());
    // An enhanced packet block, an interface block and an unknown block,
    // each claiming 4 GiB - 4 bytes.
    for block_type in [6u32, 1, 0x0BAD] {
        let mut bytes = shb.clone();
        bytes.extend_from_slice(&block_type.to_le_bytes());
        bytes.extend_from_slice(&0xFFFF_FFFCu32.to_le_bytes());
        bytes.extend_from_slice(&[0; 64]);
        let mut reader = CaptureReader::from_reader(bytes.as_slice(), "huge.pcapng").unwrap();
        let mut buf = Vec::new();
        let err = reader.next_packet(&mut buf).unwrap_err();
        assert!(err.is_fatal(), "{err}");
        let text = err.to_string();
        assert!(text.contains("huge.pcapng: record 1 at byte 28"), "{text}");
        assert!(
            buf.capacity() < 1 << 20,
            "buffer grew to {}",
            buf.capacity()
        );
    }
}

/// `n` opening brackets: a JSON document nested `n` deep.
fn nested(n: usize) -> Vec<u8> {
    let mut v = vec![b'['; n];
    v.extend(std::iter::repeat_n(b']', n));
    v
}

/// `payload` as a format-1 model file (the payload is the bundle itself).
fn framed(payload: &[u8]) -> Vec<u8> {
    framed_as(1, payload)
}

fn framed_as(version: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    b.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    b.extend_from_slice(payload);
    b
}

#[test]
fn json_nested_a_million_deep_is_refused() {
    // Typed fields stop at their own depth, and an unknown field is skipped
    // without recursion: neither overflows the stack.
    let deep = nested(1_000_000);
    let mut extra = b"{\"extra\":".to_vec();
    extra.extend_from_slice(&deep);
    extra.push(b'}');
    for (doc, want) in [
        (&deep, "expected a string"),
        (&extra, "missing field `schema`"),
    ] {
        let err = Bundle::from_bytes(&framed(doc), Path::new("deep.fw")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("deep.fw: payload does not decode: ") && text.contains(want),
            "{text}"
        );
    }
    // The current format: the deep document as the envelope's model.
    let mut envelope = b"{\"kind\":\"table\",\"floodwatch_version\":\"0\",\"model\":".to_vec();
    envelope.extend_from_slice(&deep);
    envelope.push(b'}');
    let text = Bundle::from_bytes(&framed_as(FORMAT_VERSION, &envelope), Path::new("deep.fw"))
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("deep.fw: payload does not decode"),
        "{text}"
    );
    // A stream model saved as plain JSON by an older floodwatch.
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("deep.json");
    std::fs::write(&p, &deep).unwrap();
    let text = SavedModel::load(&p).unwrap_err().to_string();
    assert!(
        text.contains("deep.json") && text.contains("not a floodwatch model"),
        "{text}"
    );
}

#[test]
fn bundle_claiming_a_huge_payload_is_refused() {
    let mut b = framed(b"{}");
    b[16..24].copy_from_slice(&(1u64 << 62).to_le_bytes());
    let text = Bundle::from_bytes(&b, Path::new("big.fw"))
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("big.fw: truncated or padded: header says 4611686018427387904 payload bytes, file has 2"),
        "{text}"
    );
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.fw");
    std::fs::write(&p, &b).unwrap();
    let text = Bundle::load(&p).unwrap_err().to_string();
    assert!(text.contains("big.fw: truncated or padded"), "{text}");
    // Truncated in the header, and a flipped payload bit.
    let text = Bundle::from_bytes(&b[..10], Path::new("short.fw"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("short.fw: not a floodwatch model: 10 bytes"),
        "{text}"
    );
    let mut flipped = framed(b"{\"a\":1}");
    flipped[26] ^= 4;
    let text = Bundle::from_bytes(&flipped, Path::new("flip.fw"))
        .unwrap_err()
        .to_string();
    assert!(text.contains("flip.fw: checksum mismatch"), "{text}");
}

#[test]
fn csv_line_longer_than_the_cap_stops_the_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("long.csv");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(b"a,b,label\n1,2,normal\n").unwrap();
    // 3 MiB without a newline.
    let chunk = vec![b'7'; 1 << 16];
    for _ in 0..48 {
        f.write_all(&chunk).unwrap();
    }
    f.write_all(b",2,normal\n3,4,normal\n").unwrap();
    drop(f);
    let mut src = CsvSource::open(&[p], None).unwrap();
    assert!(src.next_row().unwrap().is_some());
    let bad = src.next_row().unwrap_err();
    assert_eq!(bad.reason.name(), "too_long");
    let text = bad.error.to_string();
    assert!(
        text.contains("long.csv:3: line 3 is longer than 1048576 bytes"),
        "{text}"
    );
    // The reader does not go on inside the line.
    assert!(matches!(src.next_row(), Ok(None)));
}

#[test]
fn json_line_nested_a_million_deep_is_rejected_with_its_line() {
    use floodwatch::detect::stream::source::{Next, RecordSource};
    use floodwatch::detect::stream::tabular::LineRecords;
    use floodwatch::features::tabular::{Column, ColumnKind, Schema};
    use std::sync::{atomic::AtomicU64, Arc};

    let schema = Schema {
        columns: vec![Column {
            name: "a".into(),
            kind: ColumnKind::Numeric,
        }],
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut deep = String::from("{\"a\":");
    deep.push_str(&String::from_utf8(nested(1_000_000)).unwrap());
    deep.push('}');
    for line in ["{\"a\":1}".to_string(), deep, "{\"a\":2}".to_string()] {
        let chunk = floodwatch::ingest::lines::Lines::one(&line, std::time::Instant::now());
        tx.send(chunk).unwrap();
    }
    drop(tx);
    let mut src = LineRecords::new(rx, Arc::new(AtomicU64::new(0)), schema, "-");
    let mut out = [0.0];
    assert!(matches!(src.next(&mut out), Next::Record(_)));
    match src.next(&mut out) {
        Next::Rejected(e) => {
            let text = e.to_string();
            assert!(
                text.starts_with("-:2: bad JSON: recursion limit exceeded"),
                "{text}"
            );
        }
        _ => panic!("the deep line was not rejected"),
    }
    // The stream goes on after it.
    assert!(matches!(src.next(&mut out), Next::Record(_)));
}
