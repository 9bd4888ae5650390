//! Table rows to numeric vectors, with a [`Schema`] learned once at train time.
//!
//! A column is numeric when every training value parses as a finite number;
//! any other column is categorical and one-hot encoded over its most frequent
//! training values (at most [`MAX_CATEGORIES`]), plus one reserved *unknown*
//! slot that every other value maps to (counted per column). The unknown slot
//! is never set on training rows of a value kept in the vocabulary, so a new
//! value at test time is a large reconstruction error, which is what we want.
//!
//! NaN and infinities are errors, in training and test alike. Test files are
//! matched to the schema by column name, never by position.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ingest::csv::{parse_number, BadRow, Number, Reason, Row};
use crate::{Error, Result};

/// Most one-hot slots a categorical column gets (the rest share "unknown").
pub const MAX_CATEGORIES: usize = 256;
/// Most distinct values counted per column while learning (bounds memory on
/// identifier-like columns; later new values are not counted).
const MAX_TRACKED: usize = 4096;

/// How one column is encoded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// One value, the number itself.
    Numeric,
    /// One-hot over `values`, then one slot for any other value.
    Categorical {
        /// The known values, in slot order.
        values: Vec<String>,
    },
}

/// A feature column of the schema.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name in the header.
    pub name: String,
    /// Its encoding.
    pub kind: ColumnKind,
}

impl Column {
    fn width(&self) -> usize {
        match &self.kind {
            ColumnKind::Numeric => 1,
            ColumnKind::Categorical { values } => values.len() + 1,
        }
    }
}

/// The feature columns learned at train time, in encoding order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    /// The columns.
    pub columns: Vec<Column>,
}

impl Schema {
    /// Length of an encoded row.
    pub fn width(&self) -> usize {
        self.columns.iter().map(Column::width).sum()
    }

    /// Per encoded feature: true for one-hot slots (already 0/1, not scaled).
    pub fn one_hot_mask(&self) -> Vec<bool> {
        self.columns
            .iter()
            .flat_map(|c| {
                let one_hot = !matches!(c.kind, ColumnKind::Numeric);
                std::iter::repeat_n(one_hot, c.width())
            })
            .collect()
    }

    /// Names of the encoded features: `col` or `col=value` / `col=<unknown>`.
    pub fn feature_names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.width());
        for c in &self.columns {
            match &c.kind {
                ColumnKind::Numeric => out.push(c.name.clone()),
                ColumnKind::Categorical { values } => {
                    out.extend(values.iter().map(|v| format!("{}={v}", c.name)));
                    out.push(format!("{}=<unknown>", c.name));
                }
            }
        }
        out
    }

    /// An encoder for rows whose columns are `header` (from `file`): every
    /// schema column must be there, found by name.
    pub fn bind(&self, header: &[String], file: &Path) -> Result<Encoder> {
        let pos: HashMap<&str, usize> = header
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut cols = Vec::with_capacity(self.columns.len());
        let mut offset = 0;
        for c in &self.columns {
            let Some(&p) = pos.get(c.name.as_str()) else {
                return Err(Error::Input {
                    file: file.to_owned(),
                    line: 1,
                    msg: format!("column '{}' the model was trained on is missing", c.name),
                });
            };
            let lookup = match &c.kind {
                ColumnKind::Numeric => None,
                ColumnKind::Categorical { values } => Some(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v.as_bytes().to_vec(), i))
                        .collect(),
                ),
            };
            cols.push(EncColumn {
                pos: p,
                offset,
                unknown_slot: c.width() - 1,
                lookup,
            });
            offset += c.width();
        }
        Ok(Encoder {
            unknown: vec![0; cols.len()],
            names: self.columns.iter().map(|c| c.name.clone()).collect(),
            cols,
            width: offset,
        })
    }
}

#[derive(Clone, Debug)]
struct EncColumn {
    pos: usize,
    offset: usize,
    /// Slot of values not in `lookup` (the number of known values: a
    /// schema from a file may repeat a value, so not `lookup.len()`).
    unknown_slot: usize,
    /// Value -> slot for categorical columns; `None` for numeric.
    lookup: Option<HashMap<Vec<u8>, usize>>,
}

/// Encodes rows of one header with a [`Schema`]; counts unknown values.
#[derive(Clone, Debug)]
pub struct Encoder {
    cols: Vec<EncColumn>,
    names: Vec<String>,
    width: usize,
    unknown: Vec<u64>,
}

impl Encoder {
    /// Length of an encoded row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Writes the features of `row` into `out` (length [`Encoder::width`]).
    pub fn encode(&mut self, row: &Row, out: &mut [f32]) -> std::result::Result<(), BadRow> {
        for (ci, c) in self.cols.iter().enumerate() {
            let field = row.get(c.pos);
            match &c.lookup {
                None => out[c.offset] = numeric(row, c.pos, field)?,
                Some(map) => {
                    let slots = &mut out[c.offset..=c.offset + c.unknown_slot];
                    slots.fill(0.0);
                    let slot = map.get(field.trim_ascii()).copied().unwrap_or_else(|| {
                        self.unknown[ci] += 1;
                        c.unknown_slot
                    });
                    slots[slot] = 1.0;
                }
            }
        }
        Ok(())
    }

    /// Unknown categorical values met so far, by column name (non-zero only).
    pub fn unknown_counts(&self) -> Vec<(String, u64)> {
        self.names
            .iter()
            .zip(&self.unknown)
            .filter(|(_, &n)| n > 0)
            .map(|(name, &n)| (name.clone(), n))
            .collect()
    }

    /// Adds the unknown counts of `other` (a clone used on another thread).
    pub fn merge_counts(&mut self, other: &Encoder) {
        for (a, b) in self.unknown.iter_mut().zip(&other.unknown) {
            *a += b;
        }
    }
}

/// A numeric field as `f32`, or the reason it is not one.
fn numeric(row: &Row, col: usize, field: &[u8]) -> std::result::Result<f32, BadRow> {
    match parse_number(field) {
        Number::Finite(v) if (v as f32).is_finite() => Ok(v as f32),
        Number::Finite(v) => Err(row.error(col, Reason::NonFinite, format!("{v} overflows f32"))),
        Number::Text => Err(row.error(
            col,
            Reason::NotNumeric,
            format!(
                "'{}' is not a number (numeric at train time)",
                String::from_utf8_lossy(field)
            ),
        )),
        Number::NonFinite => Err(row.error(
            col,
            Reason::NonFinite,
            format!("{} is not a finite number", String::from_utf8_lossy(field)),
        )),
    }
}

/// FxHash (rustc's): a multiply-rotate hash, several times faster than the
/// default SipHash on short fields. Counting values is the bulk of learning a
/// schema and its keys come from the training file, not from an adversary.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        // The multiply moves entropy up; hashbrown indexes with the low bits.
        self.0.rotate_left(26)
    }
}

type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

#[derive(Debug, Default)]
struct ColStats {
    text: bool,
    counts: HashMap<Vec<u8>, u64, FxBuild>,
}

/// Learns a [`Schema`] from training rows, one [`SchemaBuilder::observe`] a row.
#[derive(Debug)]
pub struct SchemaBuilder {
    names: Vec<String>,
    cols: Vec<usize>,
    stats: Vec<ColStats>,
}

impl SchemaBuilder {
    /// A builder for the columns `cols` (indices into `header`).
    pub fn new(header: &[String], cols: Vec<usize>) -> Self {
        SchemaBuilder {
            names: cols.iter().map(|&c| header[c].clone()).collect(),
            stats: cols.iter().map(|_| ColStats::default()).collect(),
            cols,
        }
    }

    /// Checks one training row (NaN and infinities are errors) and counts its values.
    ///
    /// A rejected row leaves the statistics untouched.
    pub fn observe(&mut self, row: &Row) -> std::result::Result<(), BadRow> {
        for &c in &self.cols {
            if parse_number(row.get(c)) == Number::NonFinite {
                let f = String::from_utf8_lossy(row.get(c)).into_owned();
                return Err(row.error(c, Reason::NonFinite, format!("{f} is not a finite number")));
            }
        }
        for (s, &c) in self.stats.iter_mut().zip(&self.cols) {
            let field = row.get(c).trim_ascii();
            if !s.text && !matches!(parse_number(field), Number::Finite(_)) {
                s.text = true;
            }
            if let Some(n) = s.counts.get_mut(field) {
                *n += 1;
            } else if s.counts.len() < MAX_TRACKED {
                s.counts.insert(field.to_vec(), 1);
            }
        }
        Ok(())
    }

    /// The schema: numeric columns, and categorical ones with their most
    /// frequent values (ties broken by value, so the result is deterministic).
    pub fn finish(self) -> Schema {
        let columns = self
            .names
            .into_iter()
            .zip(self.stats)
            .map(|(name, s)| {
                let kind = if s.text {
                    let mut v: Vec<(Vec<u8>, u64)> = s.counts.into_iter().collect();
                    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    v.truncate(MAX_CATEGORIES);
                    let mut values: Vec<String> = v
                        .into_iter()
                        .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
                        .collect();
                    values.sort();
                    ColumnKind::Categorical { values }
                } else {
                    ColumnKind::Numeric
                };
                Column { name, kind }
            })
            .collect();
        Schema { columns }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::csv::CsvSource;
    use std::path::PathBuf;

    fn source(dir: &tempfile::TempDir, name: &str, text: &str) -> CsvSource {
        let p: PathBuf = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        CsvSource::open(&[p], None).unwrap()
    }

    fn learn(src: &mut CsvSource) -> Schema {
        let cols = (0..src.header().len()).collect();
        let mut b = SchemaBuilder::new(src.header(), cols);
        while let Some(r) = src.next_row().unwrap() {
            b.observe(&r).unwrap();
        }
        b.finish()
    }

    #[test]
    fn learns_kinds_and_encodes_by_name() {
        let d = tempfile::tempdir().unwrap();
        let mut src = source(&d, "t.csv", "n,proto\n1,tcp\n2.5,udp\n3,tcp\n");
        let schema = learn(&mut src);
        assert_eq!(schema.columns[0].kind, ColumnKind::Numeric);
        assert_eq!(schema.width(), 4);
        assert_eq!(
            schema.feature_names(),
            ["n", "proto=tcp", "proto=udp", "proto=<unknown>"]
        );
        assert_eq!(schema.one_hot_mask(), [false, true, true, true]);
        // Test columns in another order, with an extra one and an unseen value.
        let mut test = source(&d, "u.csv", "extra,proto,n\nx,icmp,7\ny,udp,8\n");
        let mut enc = schema.bind(test.header(), Path::new("u.csv")).unwrap();
        let mut out = vec![9.0; 4];
        let r = test.next_row().unwrap().unwrap();
        enc.encode(&r, &mut out).unwrap();
        assert_eq!(out, [7.0, 0.0, 0.0, 1.0]);
        let r = test.next_row().unwrap().unwrap();
        enc.encode(&r, &mut out).unwrap();
        assert_eq!(out, [8.0, 0.0, 1.0, 0.0]);
        assert_eq!(enc.unknown_counts(), [("proto".to_string(), 1)]);
    }

    #[test]
    fn missing_column_and_bad_values_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let mut src = source(&d, "t.csv", "n,proto\n1,tcp\n");
        let schema = learn(&mut src);
        let err = schema
            .bind(&["proto".into()], Path::new("u.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("u.csv:1") && err.contains("'n'"), "{err}");
        let mut test = source(&d, "u.csv", "n,proto\nabc,tcp\nNaN,tcp\n1e300,tcp\n");
        let mut enc = schema.bind(test.header(), Path::new("u.csv")).unwrap();
        let mut out = vec![0.0; schema.width()];
        let bad = enc
            .encode(&test.next_row().unwrap().unwrap(), &mut out)
            .unwrap_err();
        assert_eq!(bad.reason, Reason::NotNumeric);
        let msg = bad.error.to_string();
        assert!(
            msg.contains("u.csv:2") && msg.contains("column 'n'"),
            "{msg}"
        );
        let bad = enc
            .encode(&test.next_row().unwrap().unwrap(), &mut out)
            .unwrap_err();
        assert_eq!(bad.reason, Reason::NonFinite);
        let bad = enc
            .encode(&test.next_row().unwrap().unwrap(), &mut out)
            .unwrap_err();
        assert_eq!(bad.reason, Reason::NonFinite);
    }

    #[test]
    fn nan_at_train_time_is_an_error_not_a_category() {
        let d = tempfile::tempdir().unwrap();
        let mut src = source(&d, "t.csv", "n\n1\ninf\n");
        let mut b = SchemaBuilder::new(src.header(), vec![0]);
        b.observe(&src.next_row().unwrap().unwrap()).unwrap();
        let bad = b.observe(&src.next_row().unwrap().unwrap()).unwrap_err();
        assert_eq!(bad.reason, Reason::NonFinite);
        assert_eq!(b.finish().columns[0].kind, ColumnKind::Numeric);
    }
}
