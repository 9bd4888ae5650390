//! CSV ingest: the streaming reader, schema learning and row encoding.
#![no_main]

use std::io::Write;

use floodwatch::features::tabular::SchemaBuilder;
use floodwatch::ingest::csv::CsvSource;
use libfuzzer_sys::fuzz_target;

/// Rows read per input at most (inputs are small; this bounds a run).
const MAX_ROWS: usize = 10_000;

fuzz_target!(|data: &[u8]| {
    // The reader works on files: one temporary file per input (tmpfs when
    // TMPDIR points there).
    let Ok(mut file) = tempfile_in_tmp() else {
        return;
    };
    if file.1.write_all(data).and_then(|()| file.1.flush()).is_err() {
        return;
    }
    let path = file.0.clone();
    let Ok(mut src) = CsvSource::open(std::slice::from_ref(&path), None) else {
        let _ = std::fs::remove_file(&path);
        return;
    };
    let header = src.header().to_vec();
    let mut builder = SchemaBuilder::new(&header, (0..header.len()).collect());
    for _ in 0..MAX_ROWS {
        match src.next_row() {
            Ok(Some(row)) => {
                let _ = builder.observe(&row);
            }
            Ok(None) => break,
            Err(bad) => assert!(!bad.error.to_string().is_empty()),
        }
    }
    let schema = builder.finish();
    // Encode the same rows again with the learned schema.
    if let (Ok(mut src), Ok(mut enc)) = (
        CsvSource::open(std::slice::from_ref(&path), None),
        schema.bind(&header, &path),
    ) {
        let mut out = vec![0f32; enc.width()];
        for _ in 0..MAX_ROWS {
            match src.next_row() {
                Ok(Some(row)) => {
                    let _ = enc.encode(&row, &mut out);
                }
                Ok(None) => break,
                Err(_) => {}
            }
        }
    }
    let _ = std::fs::remove_file(&path);
});

fn tempfile_in_tmp() -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let dir = std::env::var_os("TMPDIR").map_or_else(std::env::temp_dir, Into::into);
    let path = dir.join(format!("floodwatch-fuzz-{}.csv", std::process::id()));
    Ok((path.clone(), std::fs::File::create(path)?))
}
