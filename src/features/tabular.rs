//! Table rows to numeric vectors, with a [`Schema`] learned once at train time.
//!
//! A column is numeric when every training value parses as a finite number;
//! any other column is categorical and one-hot encoded over its most frequent
//! training values (at most [`MAX_CATEGORIES`]), plus one reserved *unknown*
//! slot that every other value maps to (counted per column). The unknown slot
//! is never set on training rows of a value kept in the vocabulary, so a new
//! value at test time is a large reconstruction error, which is what we want.
//!
//! A column whose training values are numbers or missing tokens ([`MISSING`]:
//! an empty cell, `NA`, `-`, ...) with at least one missing is
//! [`ColumnKind::Imputed`]: a missing value is replaced by the training mean
//! and flagged in a second, 0/1 indicator slot, so blanks are neither lost nor
//! turned into categories. Missing values met are counted per column.
//!
//! NaN and infinities are errors, in training and test alike. Test files are
//! matched to the schema by column name, never by position.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ingest::csv::{parse_number, scan_decimal, BadRow, Number, Reason, Row};
use crate::{Error, Result};

mod field_map;
mod identifier;

pub use field_map::FieldMap;
pub use identifier::{Identifier, IdentifierRule, Why};

/// Most one-hot slots a categorical column gets (the rest share "unknown").
pub const MAX_CATEGORIES: usize = 256;
/// Most distinct values counted per column while learning (bounds memory on
/// identifier-like columns; later new values are not counted).
const MAX_TRACKED: usize = 4096;
/// Cells read as a missing value (after trimming spaces, case-insensitive).
pub const MISSING: [&str; 6] = ["", "NA", "N/A", "-", "?", "null"];

/// True when `field` is one of the [`MISSING`] tokens.
#[inline]
pub fn is_missing(field: &[u8]) -> bool {
    let f = field.trim_ascii();
    f.len() <= 4 && MISSING.iter().any(|m| f.eq_ignore_ascii_case(m.as_bytes()))
}

/// How one column is encoded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum ColumnKind {
    /// One value, the number itself.
    Numeric,
    /// One-hot over `values`, then one slot for any other value.
    Categorical {
        /// The known values, in slot order.
        values: Vec<String>,
    },
    /// A number, or `fill` where missing; then a 0/1 missing indicator.
    Imputed {
        /// The training mean, written in place of a missing value.
        fill: f32,
    },
}

/// A feature column of the schema.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Column {
    /// Its name in the header.
    pub name: String,
    /// Its encoding.
    pub kind: ColumnKind,
}

impl Column {
    /// Number of encoded features this column gives.
    pub fn width(&self) -> usize {
        match &self.kind {
            ColumnKind::Numeric => 1,
            ColumnKind::Imputed { .. } => 2,
            ColumnKind::Categorical { values } => values.len() + 1,
        }
    }
}

/// The feature columns learned at train time, in encoding order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
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
                let value = matches!(c.kind, ColumnKind::Imputed { .. });
                std::iter::repeat_n(one_hot, c.width())
                    .enumerate()
                    .map(move |(i, o)| o && !(value && i == 0))
            })
            .collect()
    }

    /// Names of the encoded features: `col` or `col=value` / `col=<unknown>`.
    pub fn feature_names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.width());
        for c in &self.columns {
            match &c.kind {
                ColumnKind::Numeric => out.push(c.name.clone()),
                ColumnKind::Imputed { .. } => {
                    out.push(c.name.clone());
                    out.push(format!("{}=<missing>", c.name));
                }
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
            let fill = match c.kind {
                ColumnKind::Imputed { fill } => Some(fill),
                _ => None,
            };
            let lookup = match &c.kind {
                ColumnKind::Numeric | ColumnKind::Imputed { .. } => None,
                ColumnKind::Categorical { values } => Some(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v.as_bytes(), i))
                        .collect(),
                ),
            };
            cols.push(EncColumn {
                pos: p,
                offset,
                unknown_slot: c.width() - 1,
                lookup,
                fill,
            });
            offset += c.width();
        }
        Ok(Encoder {
            unknown: vec![0; cols.len()],
            unknown_seen: Vec::new(),
            missing: vec![0; cols.len()],
            missing_seen: Vec::new(),
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
    /// Value -> slot for categorical columns; `None` for numeric. Looked
    /// up once a row: hashed with foldhash (SipHash cost 3 % of `test`),
    /// short values compared in registers.
    lookup: Option<FieldMap<usize>>,
    /// The value written for a missing cell of an imputed column.
    fill: Option<f32>,
}

/// Encodes rows of one header with a [`Schema`]; counts unknown values.
#[derive(Clone, Debug)]
pub struct Encoder {
    cols: Vec<EncColumn>,
    names: Vec<String>,
    width: usize,
    unknown: Vec<u64>,
    /// Columns with an unknown value in the line [`Encoder::encode_plain`]
    /// is reading: counted only once the whole line is read.
    unknown_seen: Vec<usize>,
    missing: Vec<u64>,
    /// Like `unknown_seen`, for missing values of imputed columns.
    missing_seen: Vec<usize>,
}

/// What [`Encoder::encode_plain`] does with each field of a file's lines.
#[derive(Debug, Clone)]
pub struct LinePlan {
    /// In file order.
    fields: Vec<FieldUse>,
}

#[derive(Debug, Clone, Copy)]
enum FieldUse {
    Skip,
    Numeric { offset: usize },
    Imputed { col: usize },
    Categorical { col: usize },
    Label,
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
            match (&c.lookup, c.fill) {
                (None, None) => out[c.offset] = numeric(row, c.pos, field)?,
                (None, Some(fill)) if is_missing(field) => {
                    (out[c.offset], out[c.offset + 1]) = (fill, 1.0);
                    self.missing[ci] += 1;
                }
                (None, Some(_)) => {
                    (out[c.offset], out[c.offset + 1]) = (numeric(row, c.pos, field)?, 0.0);
                }
                (Some(map), _) => {
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

    /// The plan for lines of `fields` fields in which canonical column `c`
    /// is field `perm[c]` (field `c` without `perm`); `label` is the
    /// canonical label column.
    pub fn line_plan(
        &self,
        fields: usize,
        perm: Option<&[usize]>,
        label: Option<usize>,
    ) -> LinePlan {
        let at = |c: usize| perm.map_or(c, |p| p[c]);
        let mut uses = vec![FieldUse::Skip; fields];
        for (col, c) in self.cols.iter().enumerate() {
            uses[at(c.pos)] = match (&c.lookup, c.fill) {
                (None, None) => FieldUse::Numeric { offset: c.offset },
                (None, Some(_)) => FieldUse::Imputed { col },
                (Some(_), _) => FieldUse::Categorical { col },
            };
        }
        if let Some(l) = label {
            uses[at(l)] = FieldUse::Label;
        }
        LinePlan { fields: uses }
    }

    /// [`Encoder::encode`] straight from the bytes of a line without
    /// quotes (`span` of `block`; fields end at commas): no split first,
    /// and numbers read by [`scan_decimal`]. Returns the label field (empty
    /// without one). `None`, with nothing counted, when the line is not that
    /// simple (a field count off, a value that is not a finite number, a
    /// space around a number): the caller then takes the general path, which
    /// reads it or says what is wrong.
    pub fn encode_plain<'d>(
        &mut self,
        plan: &LinePlan,
        block: &'d [u8],
        span: Range<usize>,
        out: &mut [f32],
    ) -> Option<&'d [u8]> {
        self.unknown_seen.clear();
        self.missing_seen.clear();
        let (mut at, stop) = (span.start, span.end);
        let mut label: &[u8] = &[];
        for (k, &field) in plan.fields.iter().enumerate() {
            let end = match field {
                FieldUse::Numeric { offset } => {
                    let (v, end) = plain_number(block, at, stop)?;
                    out[offset] = v;
                    end
                }
                FieldUse::Imputed { col } => self.impute(col, block, at, stop, out)?,
                FieldUse::Categorical { col } => {
                    let end = field_end(block, at, stop);
                    self.one_hot(col, &block[at..end], out);
                    end
                }
                FieldUse::Label => {
                    let end = field_end(block, at, stop);
                    label = &block[at..end];
                    end
                }
                FieldUse::Skip => field_end(block, at, stop),
            };
            let last = k + 1 == plan.fields.len();
            if (last && end != stop) || (!last && (end >= stop || block[end] != b',')) {
                return None;
            }
            at = end + 1;
        }
        for &col in &self.unknown_seen {
            self.unknown[col] += 1;
        }
        for &col in &self.missing_seen {
            self.missing[col] += 1;
        }
        Some(label)
    }

    /// Writes imputed column `col` from the field at `block[at..]` (see
    /// [`plain_number`]); `None` when it is neither a number nor missing.
    #[inline]
    fn impute(
        &mut self,
        col: usize,
        block: &[u8],
        at: usize,
        stop: usize,
        out: &mut [f32],
    ) -> Option<usize> {
        let c = &self.cols[col];
        if let Some((v, end)) = plain_number(block, at, stop) {
            (out[c.offset], out[c.offset + 1]) = (v, 0.0);
            return Some(end);
        }
        let end = field_end(block, at, stop);
        if !is_missing(&block[at..end]) {
            return None;
        }
        (out[c.offset], out[c.offset + 1]) = (c.fill?, 1.0);
        self.missing_seen.push(col);
        Some(end)
    }

    /// Sets the one-hot slots of categorical column `col` for `value`.
    fn one_hot(&mut self, col: usize, value: &[u8], out: &mut [f32]) {
        let c = &self.cols[col];
        let slots = &mut out[c.offset..=c.offset + c.unknown_slot];
        slots.fill(0.0);
        let known = c.lookup.as_ref().and_then(|m| m.get(value.trim_ascii()));
        slots[known.copied().unwrap_or(c.unknown_slot)] = 1.0;
        if known.is_none() {
            self.unknown_seen.push(col);
        }
    }

    /// Unknown categorical values met so far, by column name (non-zero only).
    pub fn unknown_counts(&self) -> Vec<(String, u64)> {
        self.by_column(&self.unknown)
    }

    /// Missing values imputed so far, by column name (non-zero only).
    pub fn missing_counts(&self) -> Vec<(String, u64)> {
        self.by_column(&self.missing)
    }

    /// The non-zero counts, by column name.
    fn by_column(&self, counts: &[u64]) -> Vec<(String, u64)> {
        self.names
            .iter()
            .zip(counts)
            .filter(|(_, &n)| n > 0)
            .map(|(name, &n)| (name.clone(), n))
            .collect()
    }

    /// Adds the unknown and missing counts of `other` (a clone used on
    /// another thread).
    pub fn merge_counts(&mut self, other: &Encoder) {
        for (a, b) in self.unknown.iter_mut().zip(&other.unknown) {
            *a += b;
        }
        for (a, b) in self.missing.iter_mut().zip(&other.missing) {
            *a += b;
        }
    }
}

/// A numeric field as `f32`, or the reason it is not one.
fn numeric(row: &Row, col: usize, field: &[u8]) -> std::result::Result<f32, BadRow> {
    number_value(field).map_err(|(reason, msg)| row.error(col, reason, msg))
}

/// A numeric field as `f32`, or why it is not one and what to say.
fn number_value(field: &[u8]) -> std::result::Result<f32, (Reason, String)> {
    match parse_number(field) {
        Number::Finite(v) => finite_f32(v),
        Number::Text => Err((
            Reason::NotNumeric,
            format!(
                "'{}' is not a number (numeric at train time)",
                String::from_utf8_lossy(field)
            ),
        )),
        Number::NonFinite => Err((
            Reason::NonFinite,
            format!("{} is not a finite number", String::from_utf8_lossy(field)),
        )),
    }
}

/// `v` as `f32` when it is finite there.
fn finite_f32(v: f64) -> std::result::Result<f32, (Reason, String)> {
    match v as f32 {
        x if x.is_finite() => Ok(x),
        _ if v.is_finite() => Err((Reason::NonFinite, format!("{v} overflows f32"))),
        _ => Err((Reason::NonFinite, format!("{v} is not a finite number"))),
    }
}

/// One cell of an in-memory table (a numpy array, a data frame): what a
/// CSV field holds, already typed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// A number (a NaN is a missing value, as in pandas).
    Number(f64),
    /// Text, read as the same field of a CSV file would be.
    Text(&'a str),
    /// No value (None, or NaN): an empty field.
    Missing,
}

/// The bits of `-0.0`.
const NEG_ZERO: u64 = 1 << 63;

impl Cell<'_> {
    /// The cell as CSV text would hold it: integers without a fraction,
    /// other numbers in their shortest round-trip form, nothing for a
    /// missing value. A CSV reader parses it back to the same `f64`.
    pub fn write_text(self, out: &mut Vec<u8>) {
        match self {
            Cell::Number(v) if v.is_nan() => {}
            // Not -0, whose sign "0" would lose.
            Cell::Number(v) if v.fract() == 0.0 && v.abs() < 9.0e15 && v.to_bits() != NEG_ZERO => {
                // Writing to a Vec cannot fail.
                let _ = std::io::Write::write_fmt(out, format_args!("{}", v as i64));
            }
            Cell::Number(v) => out.extend_from_slice(ryu::Buffer::new().format(v).as_bytes()),
            Cell::Text(t) => out.extend_from_slice(t.as_bytes()),
            Cell::Missing => {}
        }
    }
}

impl Encoder {
    /// [`Encoder::encode`] for a row of typed cells: `cell(c)` is the cell
    /// of header column `c` (the header given to [`Schema::bind`]). A cell
    /// is encoded as its CSV text would be, so scores match `test`'s on
    /// the same values to the bit; a missing cell of a column that had no
    /// missing values at train time is an error. Errors name the column.
    pub fn encode_cells<'c>(
        &mut self,
        cell: impl Fn(usize) -> Cell<'c>,
        out: &mut [f32],
    ) -> std::result::Result<(), String> {
        let mut text = Vec::new();
        for (ci, c) in self.cols.iter().enumerate() {
            let value = cell(c.pos);
            let missing = match value {
                Cell::Number(v) => v.is_nan(),
                Cell::Text(t) => is_missing(t.as_bytes()),
                Cell::Missing => true,
            };
            let number = |value| match value {
                Cell::Number(v) if !v.is_nan() => finite_f32(v).map_err(|(_, m)| m),
                Cell::Text(t) => number_value(t.as_bytes()).map_err(|(_, m)| m),
                _ => {
                    Err("missing value (NaN or None), but the column had none at train time".into())
                }
            };
            let fail = |m: String| format!("column '{}': {m}", self.names[ci]);
            match (&c.lookup, c.fill) {
                (None, None) => out[c.offset] = number(value).map_err(fail)?,
                (None, Some(fill)) if missing => {
                    (out[c.offset], out[c.offset + 1]) = (fill, 1.0);
                    self.missing[ci] += 1;
                }
                (None, Some(_)) => {
                    (out[c.offset], out[c.offset + 1]) = (number(value).map_err(fail)?, 0.0);
                }
                (Some(map), _) => {
                    text.clear();
                    value.write_text(&mut text);
                    let slots = &mut out[c.offset..=c.offset + c.unknown_slot];
                    slots.fill(0.0);
                    let slot = map.get(text.trim_ascii()).copied().unwrap_or_else(|| {
                        self.unknown[ci] += 1;
                        c.unknown_slot
                    });
                    slots[slot] = 1.0;
                }
            }
        }
        Ok(())
    }
}

/// The numeric field at `block[at..]` of a line ending at `stop`, and where
/// it ends: a plain decimal, else the field up to its comma if it parses as
/// a number finite in `f32`.
#[inline]
fn plain_number(block: &[u8], at: usize, stop: usize) -> Option<(f32, usize)> {
    if let Some((v, end)) = scan_decimal(block, at) {
        if end <= stop {
            return Some((v.to_f32(), end));
        }
    }
    let end = field_end(block, at, stop);
    match parse_number(&block[at..end]) {
        Number::Finite(v) if (v as f32).is_finite() => Some((v as f32, end)),
        _ => None,
    }
}

/// The end of the field starting at `at` in a line ending at `stop`.
#[inline]
fn field_end(block: &[u8], at: usize, stop: usize) -> usize {
    memchr::memchr(b',', &block[at..stop]).map_or(stop, |i| at + i)
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
    missing: u64,
    /// Sum and count of the numeric values (the mean fills missing ones).
    sum: f64,
    numbers: u64,
    texts: u64,
    counts: HashMap<Vec<u8>, u64, FxBuild>,
    tally: identifier::Tally,
}

/// Learns a [`Schema`] from training rows, one [`SchemaBuilder::observe`] a row.
#[derive(Debug)]
pub struct SchemaBuilder {
    names: Vec<String>,
    cols: Vec<usize>,
    stats: Vec<ColStats>,
    identifiers: Option<IdentifierRule>,
}

impl SchemaBuilder {
    /// A builder for the columns `cols` (indices into `header`).
    pub fn new(header: &[String], cols: Vec<usize>) -> Self {
        SchemaBuilder {
            names: cols.iter().map(|&c| header[c].clone()).collect(),
            stats: cols.iter().map(|_| ColStats::default()).collect(),
            cols,
            identifiers: None,
        }
    }

    /// Leaves identifier-like columns out of the schema, by `rule`.
    pub fn drop_identifiers(mut self, rule: IdentifierRule) -> Self {
        self.identifiers = Some(rule);
        self
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
            let text = match parse_number(field) {
                Number::Finite(v) => {
                    (s.sum, s.numbers) = (s.sum + v, s.numbers + 1);
                    false
                }
                _ if is_missing(field) => {
                    s.missing += 1;
                    false
                }
                _ => {
                    (s.text, s.texts) = (true, s.texts + 1);
                    true
                }
            };
            if let Some(n) = s.counts.get_mut(field) {
                *n += 1;
            } else if s.counts.len() < MAX_TRACKED {
                s.counts.insert(field.to_vec(), 1);
                if text {
                    s.tally.first_seen(field);
                }
            }
        }
        Ok(())
    }

    /// The schema: numeric columns, and categorical ones with their most
    /// frequent values (ties broken by value, so the result is deterministic);
    /// and the identifier-like columns left out of it.
    pub fn finish(self) -> (Schema, Vec<Identifier>) {
        let mut identifiers = Vec::new();
        let rule = self.identifiers;
        let columns = self
            .names
            .into_iter()
            .zip(self.stats)
            .filter(|(name, s)| {
                let values = s.numbers + s.texts;
                let capped = s.counts.len() >= MAX_TRACKED;
                let id = rule
                    .as_ref()
                    .and_then(|r| r.judge(name, &s.tally, s.counts.len(), values, capped));
                identifiers.extend(id.clone());
                id.is_none()
            })
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
                } else if s.missing > 0 {
                    let fill = s.sum / s.numbers.max(1) as f64;
                    ColumnKind::Imputed { fill: fill as f32 }
                } else {
                    ColumnKind::Numeric
                };
                Column { name, kind }
            })
            .collect();
        (Schema { columns }, identifiers)
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
        b.finish().0
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
    fn typed_cells_encode_as_their_csv_text() {
        let d = tempfile::tempdir().unwrap();
        let text = "n,m,kind\n1.5,1,tcp\n2,,7\n-3e-7,4,tcp\n";
        let schema = learn(&mut source(&d, "t.csv", text));
        let mut src = source(&d, "t.csv", text);
        let mut enc = schema.bind(src.header(), Path::new("t.csv")).unwrap();
        let mut typed = enc.clone();
        let cells = [
            [Cell::Number(1.5), Cell::Number(1.0), Cell::Text("tcp")],
            [Cell::Number(2.0), Cell::Missing, Cell::Number(7.0)],
            [Cell::Text(" -3e-7"), Cell::Number(4.0), Cell::Text("tcp ")],
        ];
        let (mut want, mut got) = (vec![0.0; schema.width()], vec![0.0; schema.width()]);
        for row in &cells {
            enc.encode(&src.next_row().unwrap().unwrap(), &mut want)
                .unwrap();
            typed.encode_cells(|c| row[c], &mut got).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{row:?}");
        }
        assert_eq!(typed.missing_counts(), enc.missing_counts());
        let mut bad = |row: [Cell<'static>; 3]| typed.clone().encode_cells(|c| row[c], &mut got);
        let e = bad([Cell::Text("x"), Cell::Number(1.0), Cell::Missing]).unwrap_err();
        assert_eq!(e, "column 'n': 'x' is not a number (numeric at train time)");
        let e = bad([Cell::Number(f64::NAN), Cell::Number(1.0), Cell::Missing]).unwrap_err();
        assert!(e.starts_with("column 'n': missing value"), "{e}");
        let e = bad([Cell::Number(1e300), Cell::Number(1.0), Cell::Missing]).unwrap_err();
        assert!(
            e.starts_with("column 'n': 1000") && e.ends_with(" overflows f32"),
            "{e}"
        );
        let mut text = Vec::new();
        for c in [
            Cell::Number(7.0),
            Cell::Number(0.1),
            Cell::Number(f64::NAN),
            Cell::Missing,
        ] {
            c.write_text(&mut text);
            text.push(b'|');
        }
        assert_eq!(text, b"7|0.1|||");
    }

    #[test]
    fn missing_numbers_are_imputed_on_both_paths() {
        use crate::ingest::csv::blocks::{BlockReader, BlockRows, RawBlock, Record};
        use crate::ingest::csv::TableInput;
        let d = tempfile::tempdir().unwrap();
        let mut src = source(&d, "t.csv", "a,b\n1,x\n,y\n3,x\n ? ,y\n");
        let schema = learn(&mut src);
        assert_eq!(schema.columns[0].kind, ColumnKind::Imputed { fill: 2.0 });
        assert_eq!(schema.feature_names()[..2], ["a", "a=<missing>"]);
        assert_eq!(schema.one_hot_mask(), [false, true, true, true, true]);
        let path = d.path().join("u.csv");
        std::fs::write(&path, "b,a\nx,NA\ny,-\nx,5\nx,\nx,oops\n").unwrap();
        let mut reader = BlockReader::open(&[TableInput::Csv(path.clone())], None).unwrap();
        let header = reader.header().to_vec();
        let mut fast = schema.bind(&header, &path).unwrap();
        let mut general = fast.clone();
        let (mut block, mut rows) = (RawBlock::default(), BlockRows::default());
        let mut got = Vec::new();
        while reader.next_block(&mut block).unwrap() {
            let plan = fast.line_plan(header.len(), block.perm.as_deref(), None);
            rows.for_each(&block, &path, &header, |record| {
                let Record::Plain(line) = record else {
                    panic!("no quotes here")
                };
                let (mut a, mut b) = (vec![-1.0; 5], vec![-2.0; 5]);
                let plain = fast.encode_plain(&plan, line.block(), line.span(), &mut a);
                let row = line.into_row().unwrap();
                let general_ok = general.encode(&row, &mut b).is_ok();
                assert_eq!(plain.is_some(), general_ok);
                if general_ok {
                    assert_eq!(a, b);
                }
                got.push(general_ok.then(|| b[..2].to_vec()));
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        let want = [[2.0, 1.0], [2.0, 1.0], [5.0, 0.0], [2.0, 1.0]].map(|v| Some(v.to_vec()));
        assert_eq!(got[..4], want);
        assert_eq!(got[4], None, "text in an imputed column is still an error");
        assert_eq!(fast.missing_counts(), [("a".to_string(), 3)]);
        assert_eq!(general.missing_counts(), fast.missing_counts());
    }

    /// Random lines of `extra,b,label,proto,a` mixing plain and awkward values.
    fn awkward_lines(n: usize) -> String {
        let numbers = [
            "1",
            "-2.5",
            "0.125",
            "+3",
            "123456789",
            "0.000000001",
            "1e3",
            " 7 ",
            "",
            "x",
            "NaN",
            "1.2.3",
            "1e300",
            "-",
            ".5",
            "12.",
        ];
        let protos = ["tcp", "udp", " tcp", "icmp", ""];
        let labels = ["normal", "attack", " normal ", ""];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut pick = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut text = String::from("extra,b,label,proto,a\n");
        for _ in 0..n {
            let plain = pick(2) == 0;
            let num = |k: usize| if plain { numbers[k % 4] } else { numbers[k] };
            let mut fields = vec![
                "id".to_string(),
                num(pick(numbers.len())).to_string(),
                labels[pick(labels.len())].to_string(),
                protos[if plain { pick(2) } else { pick(protos.len()) }].to_string(),
                num(pick(numbers.len())).to_string(),
            ];
            match pick(20) {
                0 => fields.truncate(4),
                1 => fields.push("more".into()),
                _ => {}
            }
            text.push_str(&fields.join(","));
            text.push_str(if pick(4) == 0 { "\r\n" } else { "\n" });
        }
        text
    }

    #[test]
    fn plain_lines_encode_as_the_general_path_does() {
        use crate::ingest::csv::blocks::{BlockReader, BlockRows, RawBlock, Record};
        use crate::ingest::csv::{field_text, TableInput};
        let d = tempfile::tempdir().unwrap();
        let mut src = source(&d, "t.csv", "a,proto,b\n1,tcp,2\n3,udp,4\n");
        let schema = learn(&mut src);
        let path = d.path().join("u.csv");
        std::fs::write(&path, awkward_lines(5_000)).unwrap();
        let mut reader = BlockReader::open(&[TableInput::Csv(path.clone())], None).unwrap();
        let header = reader.header().to_vec();
        let label = header.iter().position(|h| h == "label");
        let mut fast = schema.bind(&header, &path).unwrap();
        let mut general = fast.clone();
        let (mut block, mut rows) = (RawBlock::default(), BlockRows::default());
        let (mut plain_read, mut plain_lines) = (0, 0);
        while reader.next_block(&mut block).unwrap() {
            let plan = fast.line_plan(header.len(), block.perm.as_deref(), label);
            rows.for_each(&block, &path, &header, |record| {
                let Record::Plain(line) = record else {
                    panic!("a block without quotes is split, not parsed")
                };
                let (mut a, mut b) = (vec![-1.0; schema.width()], vec![-2.0; schema.width()]);
                let got = fast.encode_plain(&plan, line.block(), line.span(), &mut a);
                let text = String::from_utf8_lossy(&line.block()[line.span()]).into_owned();
                let f: Vec<&str> = text.split(',').collect();
                let number = |v: &str| ["1", "-2.5", "0.125", "+3"].contains(&v);
                let simple =
                    f.len() == 5 && number(f[1]) && number(f[4]) && ["tcp", "udp"].contains(&f[3]);
                assert!(got.is_some() || !simple, "{text}");
                let row = line.into_row();
                let want = row.as_ref().map_err(|_| ()).and_then(|r| {
                    general.encode(r, &mut b).map_err(|_| ())?;
                    Ok(r.text(label.unwrap()))
                });
                match got {
                    Some(l) => {
                        plain_read += 1;
                        assert_eq!(want, Ok(field_text(l)), "{text}");
                        assert_eq!(a, b, "{text}");
                    }
                    None => {
                        // Whatever the fast path gives back, the general path reads.
                        if let Ok(r) = &row {
                            fast.encode(r, &mut a).ok();
                        }
                    }
                }
                plain_lines += usize::from(simple);
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        // Half the lines are plain, and so is some of the rest.
        assert!(
            plain_lines > 2_000 && plain_read >= plain_lines,
            "{plain_read} of {plain_lines}"
        );
        assert_eq!(fast.unknown_counts(), general.unknown_counts());
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
        assert_eq!(b.finish().0.columns[0].kind, ColumnKind::Numeric);
    }
}
