//! The JSON-lines / CSV stdin input of `floodwatch watch`: every line is a
//! record or a counted rejection, never a panic.
#![no_main]

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use floodwatch::detect::stream::source::{Next, RecordSource};
use floodwatch::detect::stream::tabular::LineRecords;
use floodwatch::features::tabular::{Column, ColumnKind, Schema};
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
    for line in text.lines() {
        let _ = tx.send((line.to_owned(), Instant::now()));
        lines += 1;
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
