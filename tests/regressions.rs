//! Inputs that once crashed a parser (found by fuzzing or by reading the
//! code), kept under tests/data/crashes/ and named `TARGET-what`: each must
//! now give an error (or a clean result), never a panic or an abort.

use std::path::{Path, PathBuf};

use floodwatch::features::tabular::SchemaBuilder;
use floodwatch::ingest::csv::CsvSource;
use floodwatch::ingest::packets::capture::{CaptureReader, PacketSource};
use floodwatch::model::bundle::Bundle;
use floodwatch::model::kitnet::KitNet;

fn crashes() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crashes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/data/crashes")
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    files
}

/// Runs one input through the code its target fuzzes; true when it was
/// refused with an error.
fn replay(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let bytes = std::fs::read(path).unwrap();
    let target = name.split('-').next().unwrap_or_default();
    match target {
        "kitnet" => serde_json::from_slice::<KitNet>(&bytes).is_err(),
        "bundle" => Bundle::from_bytes(&bytes, path).is_err(),
        "csv" => csv_refused(path),
        "capture" => match CaptureReader::from_reader(bytes.as_slice(), path) {
            Ok(reader) => {
                let mut packets = PacketSource::new(reader);
                packets.by_ref().count();
                packets.damage().is_some() || packets.skipped() > 0
            }
            Err(_) => true,
        },
        other => panic!("{name}: unknown target '{other}'"),
    }
}

/// The csv fuzz target's path: learn a schema from the rows, then encode
/// them with it; true when some row was refused.
fn csv_refused(path: &Path) -> bool {
    let files = [path.to_path_buf()];
    let Ok(mut src) = CsvSource::open(&files, None) else {
        return true;
    };
    let header = src.header().to_vec();
    let mut builder = SchemaBuilder::new(&header, (0..header.len()).collect());
    let mut refused = false;
    loop {
        match src.next_row() {
            Ok(Some(row)) => refused |= builder.observe(&row).is_err(),
            Ok(None) => break,
            Err(_) => refused = true,
        }
    }
    let schema = builder.finish().0;
    let mut enc = schema.bind(&header, path).unwrap();
    let mut src = CsvSource::open(&files, None).unwrap();
    let mut out = vec![0f32; enc.width()];
    loop {
        match src.next_row() {
            Ok(Some(row)) => refused |= enc.encode(&row, &mut out).is_err(),
            Ok(None) => break,
            Err(_) => refused = true,
        }
    }
    refused
}

#[test]
fn every_kept_crash_input_is_refused_cleanly() {
    let files = crashes();
    assert!(!files.is_empty(), "no crash inputs kept");
    for f in files {
        assert!(replay(&f), "{} was accepted", f.display());
    }
}
