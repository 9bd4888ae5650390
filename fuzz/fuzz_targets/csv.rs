//! CSV ingest: the streaming reader, schema learning and row encoding; and
//! the block reader of parallel scoring, which must read the same rows, and
//! its fused encoding of plain lines, which must encode them the same.
#![no_main]

use std::io::Write;

use floodwatch::features::tabular::{Schema, SchemaBuilder};
use floodwatch::ingest::csv::blocks::{BlockReader, BlockRows, RawBlock, Record};
use floodwatch::ingest::csv::{CsvSource, TableInput};
use libfuzzer_sys::fuzz_target;

/// Rows read per input at most (inputs are small; this bounds a run).
const MAX_ROWS: usize = 10_000;

fuzz_target!(|data: &[u8]| {
    // The reader works on files: one temporary file per input (tmpfs when
    // TMPDIR points there).
    let Ok(mut file) = tempfile_in_tmp() else {
        return;
    };
    if file
        .1
        .write_all(data)
        .and_then(|()| file.1.flush())
        .is_err()
    {
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
    let schema = builder.finish().0;
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
    plain_lines_encode_alike(&path, &schema);
    assert_eq!(
        by_blocks(&path),
        by_records(&path),
        "block and record readers differ"
    );
    let _ = std::fs::remove_file(&path);
});

/// Fields of each row (or None for a malformed one), as one reader sees them.
type Rows = Option<Vec<Option<Vec<Vec<u8>>>>>;

fn by_records(path: &std::path::Path) -> Rows {
    let mut src = CsvSource::open(&[path.to_owned()], None).ok()?;
    let n = src.header().len();
    let mut rows = Vec::new();
    while rows.len() < MAX_ROWS {
        match src.next_row() {
            Ok(Some(r)) => rows.push(Some((0..n).map(|c| r.get(c).to_vec()).collect())),
            Ok(None) => break,
            Err(_) => rows.push(None),
        }
    }
    Some(rows)
}

fn by_blocks(path: &std::path::Path) -> Rows {
    let mut reader = BlockReader::open(&[TableInput::Csv(path.to_owned())], None).ok()?;
    let header = reader.header().to_vec();
    let (mut rows, mut block, mut parser) = (Vec::new(), RawBlock::default(), BlockRows::default());
    while rows.len() < MAX_ROWS && reader.next_block(&mut block).ok()? {
        parser
            .for_each(&block, path, &header, |r| {
                let r = match r {
                    Record::Plain(line) => line.into_row(),
                    Record::Parsed(row) => row,
                };
                rows.push(
                    r.ok()
                        .map(|r| (0..header.len()).map(|c| r.get(c).to_vec()).collect()),
                );
                Ok::<(), ()>(())
            })
            .ok()?;
    }
    rows.truncate(MAX_ROWS);
    Some(rows)
}

/// Every plain line the fused path encodes, the general path encodes the same.
fn plain_lines_encode_alike(path: &std::path::Path, schema: &Schema) {
    let Ok(mut reader) = BlockReader::open(&[TableInput::Csv(path.to_owned())], None) else {
        return;
    };
    let header = reader.header().to_vec();
    let (Ok(mut fast), Ok(mut general)) = (schema.bind(&header, path), schema.bind(&header, path))
    else {
        return;
    };
    let (mut block, mut parser) = (RawBlock::default(), BlockRows::default());
    let (mut a, mut b) = (vec![0f32; fast.width()], vec![0f32; fast.width()]);
    while let Ok(true) = reader.next_block(&mut block) {
        let plan = fast.line_plan(header.len(), block.perm.as_deref(), None);
        let _ = parser.for_each(&block, path, &header, |r| {
            if let Record::Plain(line) = r {
                let got = fast.encode_plain(&plan, line.block(), line.span(), &mut a);
                let row = line.into_row();
                if got.is_some() {
                    let want = row
                        .map_err(|_| ())
                        .and_then(|r| general.encode(&r, &mut b).map_err(|_| ()));
                    assert!(
                        want.is_ok(),
                        "fused path read a line the general path rejects"
                    );
                    assert_eq!(
                        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "fused and general encodings differ"
                    );
                }
            }
            Ok::<(), ()>(())
        });
    }
}

fn tempfile_in_tmp() -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let dir = std::env::var_os("TMPDIR").map_or_else(std::env::temp_dir, Into::into);
    let path = dir.join(format!("floodwatch-fuzz-{}.csv", std::process::id()));
    Ok((path.clone(), std::fs::File::create(path)?))
}
