//! The JSON-lines / CSV stdin input of `floodwatch watch`: every line is a
//! record or a counted rejection, never a panic.
#![no_main]

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use floodwatch::detect::stream::source::{Next, RecordSource};
use floodwatch::detect::stream::tabular::LineRecords;
use floodwatch::features::tabular::{Column, ColumnKind, Schema};
use floodwatch::ingest::lines::Lines;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let schema = Schema {
        columns: vec![
            Column {
                name: "a".into(),
                kind: ColumnKind::Numeric,
            },
            Column {
                name: "proto".into(),
                kind: ColumnKind::Categorical {
                    values: vec!["tcp".into(), "udp".into()],
                },
            },
        ],
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let text = String::from_utf8_lossy(data);
    let mut lines = 0usize;
    // Chunks of up to 7 lines, as the stdin reader sends them.
    let mut chunk = Lines::new();
    for line in text.lines() {
        chunk.push(line);
        lines += 1;
        if chunk.len() == 7 {
            let _ = tx.send(std::mem::take(&mut chunk));
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(chunk);
    }
    drop(tx);
    let mut src = LineRecords::new(rx, Arc::new(AtomicU64::new(0)), schema, "-");
    let mut out = vec![0.0; src.names().len()];
    let mut seen = 0usize;
    loop {
        match src.next(&mut out) {
            Next::End => break,
            _ => seen += 1,
        }
        assert!(seen <= lines + 1, "more results than lines");
    }
});
