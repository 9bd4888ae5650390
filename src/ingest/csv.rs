//! Streaming CSV tables: one or several files read record by record into one
//! reused [`csv::ByteRecord`], so memory does not grow with the file length.
//!
//! Files have a header line, or none when the column names come from a
//! `--columns` file (one name a line). Several files must hold the same
//! columns, matched by name (their order may differ). Errors name the file,
//! the 1-based line and the column.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use csv::ByteRecord;

use crate::{Error, Result};

// The block reader behind `test`; public for the `csv` fuzz target.
#[doc(hidden)]
pub mod blocks;

/// The longest line accepted, in bytes. The csv parser keeps a whole record
/// in memory, so a longer line (a file without newlines, or a hostile one)
/// is refused as it is read instead of being buffered.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One input table: a CSV file, or a table another thread writes as it
/// reads its source (a capture's per-packet features).
#[derive(Debug, Clone)]
pub enum TableInput {
    /// A CSV file.
    Csv(PathBuf),
    /// A table written on the fly.
    Generated(Arc<dyn GeneratedTable>),
}

impl TableInput {
    /// The file it reads.
    pub fn path(&self) -> &Path {
        match self {
            TableInput::Csv(p) => p,
            TableInput::Generated(g) => g.path(),
        }
    }
}

/// A table whose CSV text a thread writes into a pipe as it reads its source
/// file; the thread returns its warnings (records skipped, damage).
pub trait GeneratedTable: std::fmt::Debug + Send + Sync {
    /// The source file.
    fn path(&self) -> &Path;
    /// Starts the thread: the reading end of its pipe, and its handle.
    fn start(&self) -> Result<(std::io::PipeReader, JoinHandle<Result<Vec<String>>>)>;
}

/// Why a row was rejected (with `--skip-bad-rows`) or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The row has more or fewer fields than the header.
    Ragged,
    /// Text (or nothing) where a number is expected.
    NotNumeric,
    /// NaN or an infinity.
    NonFinite,
    /// A line longer than [`MAX_LINE_BYTES`]: reading ends there.
    TooLong,
}

impl Reason {
    /// A stable short name, used as the key of rejection counts.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Ragged => "ragged",
            Reason::NotNumeric => "not_numeric",
            Reason::NonFinite => "non_finite",
            Reason::TooLong => "too_long",
        }
    }
}

/// A malformed row: why, and the error that names file, line and column.
#[derive(Debug)]
pub struct BadRow {
    /// The kind of defect, for counting.
    pub reason: Reason,
    /// The full error.
    pub error: Error,
}

/// Counts of rows rejected with `--skip-bad-rows`, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    counts: BTreeMap<&'static str, u64>,
    first: Option<String>,
}

impl Rejections {
    /// Counts one rejected row.
    pub fn add(&mut self, bad: &BadRow) {
        *self.counts.entry(bad.reason.name()).or_default() += 1;
        if self.first.is_none() {
            self.first = Some(bad.error.to_string());
        }
    }

    /// Total rejected rows.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Counts by reason name.
    pub fn by_reason(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }

    /// A one-line summary such as `3 rows rejected (ragged 1, non_finite 2; first: ...)`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "{} rows rejected ({}; first: {})",
            self.total(),
            parts.join(", "),
            self.first.as_deref().unwrap_or("-")
        )
    }
}

/// Reads a `--columns` file: one column name a line, blank lines ignored.
pub fn read_columns_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(Error::Input {
            file: path.to_owned(),
            line: 1,
            msg: "columns file names no column".into(),
        });
    }
    check_unique(path, &names)?;
    Ok(names)
}

/// Checks the header line of `path`: text, not data, each name once.
fn check_header(path: &Path, names: &[String]) -> Result<()> {
    let error = |msg: String| {
        Err(Error::Input {
            file: path.to_owned(),
            line: 1,
            msg,
        })
    };
    if names.iter().any(|n| {
        n.chars()
            .any(|c| c == '\u{FFFD}' || (c.is_control() && c != '\t'))
    }) {
        return error(match capture_magic(path) {
            true => "a packet capture, not a CSV table: pass it with --pcap".into(),
            false => "binary data, not a CSV table with a header line".into(),
        });
    }
    if let Some(data) = looks_like_data(names) {
        return error(format!(
            "{data}: for a file without a header line, name the columns with --columns FILE \
             (one name a line)"
        ));
    }
    check_unique(path, names)
}

/// What gives away a first line of data taken for a header: `the first
/// line looks like data, not a header (field N is the number 'V')`.
pub(crate) fn looks_like_data(names: &[String]) -> Option<String> {
    let (i, n) = names
        .iter()
        .enumerate()
        .find(|(_, n)| matches!(parse_number(n.as_bytes()), Number::Finite(_)))?;
    Some(format!(
        "the first line looks like data, not a header (field {} is the number '{n}')",
        i + 1
    ))
}

/// True when `path` starts with a pcap or pcapng magic number.
fn capture_magic(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    let read = File::open(path).and_then(|mut f| f.read_exact(&mut magic));
    let pcap = [0xa1b2_c3d4u32, 0xa1b2_3c4d, 0x0a0d_0d0a];
    read.is_ok()
        && pcap
            .iter()
            .any(|m| magic == m.to_le_bytes() || magic == m.to_be_bytes())
}

fn check_unique(path: &Path, names: &[String]) -> Result<()> {
    let mut seen = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if let Some(j) = seen.insert(n.as_str(), i) {
            return Err(Error::Input {
                file: path.to_owned(),
                line: 1,
                msg: format!(
                    "column '{n}' appears twice (fields {} and {})",
                    j + 1,
                    i + 1
                ),
            });
        }
    }
    Ok(())
}

/// A line of more than [`MAX_LINE_BYTES`] bytes (carried in an `io::Error`).
#[derive(Debug)]
struct LineTooLong {
    line: u64,
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {} is longer than {MAX_LINE_BYTES} bytes: not a table of records \
             (a file without line breaks?); fix or remove that line",
            self.line
        )
    }
}

impl std::error::Error for LineTooLong {}

/// Passes bytes through while counting line lengths; fails, for good, at
/// the first line longer than `limit`, so no record grows past it.
struct LineCap<R> {
    inner: R,
    /// Complete lines seen.
    lines: u64,
    /// Bytes of the current line so far.
    run: usize,
    limit: usize,
    failed: bool,
}

impl<R> LineCap<R> {
    fn new(inner: R, limit: usize) -> Self {
        LineCap {
            inner,
            lines: 0,
            run: 0,
            limit,
            failed: false,
        }
    }

    fn too_long(&mut self) -> io::Error {
        self.failed = true;
        io::Error::new(
            io::ErrorKind::InvalidData,
            LineTooLong {
                line: self.lines + 1,
            },
        )
    }
}

impl<R: Read> Read for LineCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(self.too_long());
        }
        let n = self.inner.read(buf)?;
        let chunk = buf.get(..n).unwrap_or_default();
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            if self.run + (nl - start) > self.limit {
                return Err(self.too_long());
            }
            self.lines += 1;
            self.run = 0;
            start = nl + 1;
        }
        self.run += n - start;
        if self.run > self.limit {
            return Err(self.too_long());
        }
        Ok(n)
    }
}

type Reader = csv::Reader<LineCap<Box<dyn Read + Send>>>;
type Producer = Option<JoinHandle<Result<Vec<String>>>>;

/// One open file: its reader and where each canonical column sits in it.
struct OpenFile {
    reader: Reader,
    /// The extraction thread behind a capture input.
    producer: Producer,
    /// `perm[c]` = field index in this file of canonical column `c`.
    perm: Vec<usize>,
    /// True when `perm` is the identity (the common case: no lookup needed).
    identity: bool,
}

/// A streaming reader over one or several CSV files with the same columns.
pub struct CsvSource {
    inputs: Vec<TableInput>,
    files: Vec<PathBuf>,
    header: Vec<String>,
    given_columns: bool,
    next_file: usize,
    current: Option<OpenFile>,
    record: ByteRecord,
    line: u64,
}

impl std::fmt::Debug for CsvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSource")
            .field("files", &self.files)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl CsvSource {
    /// Opens `files`. With `columns`, the files have no header line and these
    /// are the names; otherwise the first line of each file is its header.
    pub fn open(files: &[PathBuf], columns: Option<&[String]>) -> Result<Self> {
        let inputs: Vec<TableInput> = files.iter().cloned().map(TableInput::Csv).collect();
        Self::open_inputs(&inputs, columns)
    }

    /// Opens CSV files and captures alike; `columns` names the columns of
    /// header-less CSV files (captures always name theirs).
    pub fn open_inputs(inputs: &[TableInput], columns: Option<&[String]>) -> Result<Self> {
        let Some(first) = inputs.first() else {
            return Err(Error::Data("no input file given".into()));
        };
        let mut src = CsvSource {
            inputs: inputs.to_vec(),
            files: inputs.iter().map(|i| i.path().to_owned()).collect(),
            header: Vec::new(),
            given_columns: columns.is_some(),
            next_file: 0,
            current: None,
            record: ByteRecord::new(),
            line: 0,
        };
        // Otherwise the first file's header, read as it is opened.
        if let (Some(names), TableInput::Csv(_)) = (columns, first) {
            src.header = names.to_vec();
        }
        src.open_next()?;
        Ok(src)
    }

    /// The column names, in the first file's order.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    fn builder() -> csv::ReaderBuilder {
        let mut b = csv::ReaderBuilder::new();
        // Ragged rows are reported by us with their line, not by the parser.
        b.flexible(true).has_headers(false);
        b
    }

    fn open_reader(input: &TableInput) -> Result<(Reader, Producer)> {
        let (read, producer) = open_raw(input)?;
        // The csv reader buffers itself: a BufReader would only add a copy.
        let reader = Self::builder()
            .buffer_capacity(1 << 16)
            .from_reader(LineCap::new(read, MAX_LINE_BYTES));
        Ok((reader, producer))
    }

    fn read_header(input: &TableInput) -> Result<((Reader, Producer), Vec<String>)> {
        let path = input.path();
        let (mut reader, producer) = Self::open_reader(input)?;
        let mut rec = ByteRecord::new();
        let found = reader
            .read_byte_record(&mut rec)
            .map_err(|e| csv_error(path, e))?;
        if !found {
            return Err(Error::Input {
                file: path.to_owned(),
                line: 1,
                msg: "empty file: no header line (for a file without one, pass --columns)".into(),
            });
        }
        let names: Vec<String> = rec
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_owned())
            .collect();
        check_header(path, &names)?;
        Ok(((reader, producer), names))
    }

    /// Opens the next file; false when all are read.
    fn open_next(&mut self) -> Result<bool> {
        if let Some(done) = self.current.take() {
            finish_capture(done.producer, &self.files[self.next_file - 1])?;
        }
        let Some(input) = self.inputs.get(self.next_file).cloned() else {
            return Ok(false);
        };
        let path = input.path().to_owned();
        self.next_file += 1;
        let ((reader, producer), names) = match input {
            TableInput::Csv(_) if self.given_columns => {
                (Self::open_reader(&input)?, self.header.clone())
            }
            _ => Self::read_header(&input)?,
        };
        if self.header.is_empty() {
            self.header = names.clone();
        }
        let perm = permutation(&self.header, &path, &names)?;
        let identity = perm.iter().enumerate().all(|(i, &p)| i == p);
        self.current = Some(OpenFile {
            reader,
            producer,
            perm,
            identity,
        });
        Ok(true)
    }

    /// Reads the next row. `Ok(None)` at the end of the last file; a ragged
    /// row is an `Err(BadRow)` after which reading may go on.
    pub fn next_row(&mut self) -> std::result::Result<Option<Row<'_>>, BadRow> {
        loop {
            let Some(cur) = self.current.as_mut() else {
                return Ok(None);
            };
            let fi = self.next_file - 1;
            let found = cur
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| csv_bad_row(&self.files[fi], e));
            let found = match found {
                Ok(found) => found,
                Err(bad) => {
                    if bad.reason == Reason::TooLong {
                        // The parser is inside the long line: reading ends.
                        self.current = None;
                    }
                    return Err(bad);
                }
            };
            if !found {
                self.open_next().map_err(|error| BadRow {
                    reason: Reason::Ragged,
                    error,
                })?;
                continue;
            }
            self.line = self.record.position().map_or(0, |p| p.line());
            let path = &self.files[fi];
            if self.record.len() != self.header.len() {
                return Err(ragged(
                    path,
                    self.line,
                    self.record.len(),
                    self.header.len(),
                ));
            }
            let perm = match &self.current {
                Some(cur) if !cur.identity => Some(cur.perm.as_slice()),
                _ => None,
            };
            return Ok(Some(Row {
                file: path,
                line: self.line,
                fields: Fields::Record(&self.record),
                perm,
                header: &self.header,
            }));
        }
    }
}

/// The bytes of `input`: a file, or the pipe from a capture's extraction
/// thread (with its handle).
fn open_raw(input: &TableInput) -> Result<(Box<dyn Read + Send>, Producer)> {
    Ok(match input {
        TableInput::Csv(path) => {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            (Box::new(file), None)
        }
        TableInput::Generated(g) => {
            let (pipe, handle) = g.start()?;
            (Box::new(pipe), Some(handle))
        }
    })
}

/// `perm[c]` = field index in `names` (one file's header) of column `c` of
/// `header` (the first file's); an error names `path` when they differ.
fn permutation(header: &[String], path: &Path, names: &[String]) -> Result<Vec<usize>> {
    let pos: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    if names.len() != header.len() {
        return Err(Error::Input {
            file: path.to_owned(),
            line: 1,
            msg: format!(
                "{} columns, but the first file has {}: all --data files need the same columns",
                names.len(),
                header.len()
            ),
        });
    }
    header
        .iter()
        .map(|n| {
            pos.get(n.as_str()).copied().ok_or_else(|| Error::Input {
                file: path.to_owned(),
                line: 1,
                msg: format!("column '{n}' of the first file is missing"),
            })
        })
        .collect()
}

/// Waits for the thread of a finished generated input: its errors end the
/// read, its warnings are printed (the rows before a damage were read).
fn finish_capture(producer: Producer, path: &Path) -> Result<()> {
    let Some(handle) = producer else {
        return Ok(());
    };
    let warnings = handle
        .join()
        .map_err(|_| Error::Data(format!("{}: feature extraction failed", path.display())))??;
    for w in &warnings {
        eprintln!("floodwatch: warning: {w}");
    }
    Ok(())
}

/// A parser error as a rejected row: a too-long line, or ragged.
fn csv_bad_row(path: &Path, e: csv::Error) -> BadRow {
    let too_long = matches!(e.kind(), csv::ErrorKind::Io(io)
        if io.get_ref().is_some_and(|i| i.is::<LineTooLong>()));
    BadRow {
        reason: if too_long {
            Reason::TooLong
        } else {
            Reason::Ragged
        },
        error: csv_error(path, e),
    }
}

/// Errors from the CSV parser (I/O, mostly), with the file and line.
fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => {
            match io.get_ref().and_then(|i| i.downcast_ref::<LineTooLong>()) {
                Some(long) => Error::Input {
                    file: path.to_owned(),
                    line: long.line,
                    msg: long.to_string(),
                },
                None => Error::io(path, io),
            }
        }
        other => Error::Input {
            file: path.to_owned(),
            line,
            msg: format!("{other:?}"),
        },
    }
}

/// The fields of a row: a parsed record, or one unquoted line and the
/// offsets of its field ends (the fast path of [`blocks`]).
#[derive(Debug, Clone, Copy)]
enum Fields<'a> {
    Record(&'a ByteRecord),
    Split { line: &'a [u8], ends: &'a [usize] },
}

impl<'a> Fields<'a> {
    fn get(&self, i: usize) -> &'a [u8] {
        match *self {
            Fields::Record(r) => &r[i],
            Fields::Split { line, ends } => {
                let start = if i == 0 { 0 } else { ends[i - 1] + 1 };
                &line[start..ends[i]]
            }
        }
    }
}

/// One row of a [`CsvSource`], borrowed until the next read.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// The file it comes from.
    pub file: &'a Path,
    /// Its 1-based line.
    pub line: u64,
    fields: Fields<'a>,
    perm: Option<&'a [usize]>,
    header: &'a [String],
}

impl<'a> Row<'a> {
    /// A row over `record`, whose fields are in `header` order (e.g. a copy
    /// kept with [`Row::to_record`]).
    ///
    /// # Panics
    /// Later, in [`Row::get`], if `record` is shorter than `header`.
    pub fn new(file: &'a Path, line: u64, record: &'a ByteRecord, header: &'a [String]) -> Self {
        Row {
            file,
            line,
            fields: Fields::Record(record),
            perm: None,
            header,
        }
    }

    /// The raw bytes of canonical column `col` (an index into the header).
    ///
    /// # Panics
    /// If `col` is not below the header length (a programming error).
    #[inline]
    pub fn get(&self, col: usize) -> &'a [u8] {
        let field = match self.perm {
            Some(p) => p[col],
            None => col,
        };
        // Length equality with the header is checked before a Row is made.
        self.fields.get(field)
    }

    /// Canonical column `col` as trimmed text (lossy on invalid UTF-8).
    pub fn text(&self, col: usize) -> std::borrow::Cow<'a, str> {
        field_text(self.get(col))
    }

    /// An input error about column `col` of this row.
    pub fn error(&self, col: usize, reason: Reason, msg: impl std::fmt::Display) -> BadRow {
        let name = self.header.get(col).map_or("?", String::as_str);
        BadRow {
            reason,
            error: Error::Input {
                file: self.file.to_owned(),
                line: self.line,
                msg: format!("column '{name}' (field {}): {msg}", col + 1),
            },
        }
    }

    /// Copies the fields, in canonical order, into `out` (reusing its buffers).
    pub fn copy_into(&self, out: &mut ByteRecord) {
        out.clear();
        (0..self.header.len()).for_each(|c| out.push_field(self.get(c)));
    }

    /// The fields in canonical order, as an owned record (for sampling).
    pub fn to_record(&self) -> ByteRecord {
        (0..self.header.len()).map(|c| self.get(c)).collect()
    }
}

/// A field as trimmed text (lossy on invalid UTF-8).
pub fn field_text(field: &[u8]) -> std::borrow::Cow<'_, str> {
    match String::from_utf8_lossy(field) {
        std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(s.trim()),
        std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s.trim().to_owned()),
    }
}

/// A row whose field count differs from the header's.
fn ragged(file: &Path, line: u64, fields: usize, header: usize) -> BadRow {
    BadRow {
        reason: Reason::Ragged,
        error: Error::Input {
            file: file.to_owned(),
            line,
            msg: format!("{fields} fields, but the header has {header}"),
        },
    }
}

/// What a field holds, read as a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A finite number.
    Finite(f64),
    /// NaN or an infinity.
    NonFinite,
    /// Not a number at all (text, or nothing).
    Text,
}

/// Parses a field (surrounding spaces allowed) as a number.
pub fn parse_number(field: &[u8]) -> Number {
    if let Some(v) = parse_plain_decimal(field) {
        return Number::Finite(v);
    }
    let Ok(s) = std::str::from_utf8(field) else {
        return Number::Text;
    };
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Number::Finite(v),
        Ok(_) => Number::NonFinite,
        Err(_) => Number::Text,
    }
}

/// Exact powers of ten up to 1e22, the largest exactly representable in `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The fast path of number parsing (Clinger's): `[-+]digits[.digits]` with at
/// most 2^53 as integer mantissa and at most 22 decimals is one exact integer
/// divided by one exact power of ten, so one correctly rounded division gives
/// the same value as the standard parser. `None` for anything else (the
/// caller falls back to the standard parser).
fn parse_plain_decimal(b: &[u8]) -> Option<f64> {
    let (neg, b) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, b),
    };
    let mut mant = 0u64;
    let int = accumulate_digits(b, &mut mant);
    let (decimals, used) = match b.get(int) {
        Some(b'.') => {
            let n = accumulate_digits(&b[int + 1..], &mut mant);
            (n, int + 1 + n)
        }
        _ => (0, int),
    };
    // At most 19 digits cannot overflow the (wrapping) accumulation.
    if used != b.len() || int + decimals == 0 || int + decimals > 19 || mant > 1 << 53 {
        return None;
    }
    let v = mant as f64 / *POW10.get(decimals)?;
    Some(if neg { -v } else { v })
}

/// A decimal read by [`scan_decimal`]: `mant / 10^decimals`, negated with
/// `neg`; both parts exact (at most 14 digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    mant: u64,
    decimals: usize,
    neg: bool,
}

impl Decimal {
    /// The nearest `f64` (Clinger: one correctly rounded division of exact
    /// operands), as the standard parser gives. The sign is set, not
    /// branched on (see [`scan_decimal`]).
    #[inline]
    pub fn to_f64(self) -> f64 {
        let v = self.mant as f64 / POW10[self.decimals];
        f64::from_bits(v.to_bits() | u64::from(self.neg) << 63)
    }

    /// The nearest `f32`, equal to `to_f64() as f32`: when both operands are
    /// exact in `f32`, one `f32` division is correctly rounded, and rounding
    /// a quotient to `f64` first cannot change that (53 >= 2 * 24 + 2 bits:
    /// double rounding is innocuous for division). The scoring path needs
    /// `f32`, and this division is the cheaper.
    #[inline]
    pub fn to_f32(self) -> f32 {
        if self.mant >= 1 << 24 || self.decimals > 10 {
            return self.to_f64() as f32;
        }
        let v = self.mant as u32 as f32 / POW10_F32[self.decimals];
        f32::from_bits(v.to_bits() | u32::from(self.neg) << 31)
    }
}

/// Powers of ten exact in `f32` (5^10 < 2^24).
const POW10_F32: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

/// A plain decimal (`[-+]digits[.digits]`, the form the fast number parser reads) starting at
/// `data[at]` and running to the first byte that cannot continue it, and
/// where it ends. The fused scoring path reads fields with it instead of
/// splitting first, eight bytes at a time, so the cost of a field does not
/// grow digit by digit. `None` where a part has 8 digits or more or lies
/// within 8 bytes of the end of `data` (the caller takes the general path).
#[inline]
pub fn scan_decimal(data: &[u8], at: usize) -> Option<(Decimal, usize)> {
    // No branch on the sign: signs vary from row to row, and a mispredicted
    // branch costs more than the rest of the field.
    let first = *data.get(at)?;
    let neg = first == b'-';
    let mut i = at + usize::from(neg || first == b'+');
    let (int, n) = digit_bytes(data, i)?;
    i += n;
    let (frac, k) = if data.get(i) == Some(&b'.') {
        let (frac, k) = digit_bytes(data, i + 1)?;
        i += 1 + k;
        (frac, k)
    } else {
        (0, 0)
    };
    if n + k == 0 {
        return None;
    }
    let d = Decimal {
        mant: join(int, n, frac, k),
        decimals: k,
        neg,
    };
    Some((d, i))
}

/// The leading ASCII digits at `data[at..]`, one a byte as values 0..=9
/// (bytes past them are junk), and how many, when there are fewer than 8
/// and 8 bytes are readable there.
#[inline]
fn digit_bytes(data: &[u8], at: usize) -> Option<(u64, usize)> {
    let chunk: [u8; 8] = data.get(at..at.checked_add(8)?)?.try_into().ok()?;
    // A borrow or carry only spoils bytes after the first non-digit, and
    // only the first counts.
    let x = u64::from_le_bytes(chunk).wrapping_sub(0x3030_3030_3030_3030);
    let non_digit = (x | x.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080;
    let n = (non_digit.trailing_zeros() / 8) as usize;
    (n < 8).then_some((x, n))
}

/// The integer of the `n` integer digits then the `k` decimals: one SWAR
/// conversion when they fit in 8 digits (the common case), else two.
#[inline]
fn join(int: u64, n: usize, frac: u64, k: usize) -> u64 {
    let (int, frac) = (high_bytes(int, n), high_bytes(frac, k));
    if n + k <= 8 {
        eight_digits((int >> (8 * k)) | frac)
    } else {
        eight_digits(int) * POW10_INT[k] + eight_digits(frac)
    }
}

/// The low `n` bytes of `x` (n < 8) moved to the top, zeros below: as
/// digits, the same number with leading zeros.
#[inline]
fn high_bytes(x: u64, n: usize) -> u64 {
    x.checked_shl(8 * (8 - n) as u32).unwrap_or(0)
}

/// Powers of ten below 10^8, for [`scan_decimal`]'s mantissas.
const POW10_INT: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// The value of 8 decimal digits, one a byte, the first in the lowest
/// byte: neighbours join into 2-, 4-, then 8-digit groups (Lemire's SWAR).
#[inline]
fn eight_digits(x: u64) -> u64 {
    let x = (x.wrapping_mul(10) + (x >> 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x.wrapping_mul(100) + (x >> 16)) & 0x0000_ffff_0000_ffff;
    (x.wrapping_mul(10_000) + (x >> 32)) & 0xffff_ffff
}

/// Appends the leading ASCII digits of `b` to `mant`; returns how many.
#[inline]
fn accumulate_digits(b: &[u8], mant: &mut u64) -> usize {
    let mut n = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        *mant = mant.wrapping_mul(10).wrapping_add(u64::from(d));
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    fn collect(src: &mut CsvSource) -> (Vec<Vec<String>>, Vec<String>) {
        let (mut rows, mut errs) = (Vec::new(), Vec::new());
        let n = src.header().len();
        loop {
            match src.next_row() {
                Ok(Some(r)) => rows.push((0..n).map(|c| r.text(c).into_owned()).collect()),
                Ok(None) => break,
                Err(bad) => errs.push(bad.error.to_string()),
            }
        }
        (rows, errs)
    }

    #[test]
    fn several_files_matched_by_name() {
        let d = tempfile::tempdir().unwrap();
        let a = file(&d, "a.csv", "x,y,label\n1,2,normal\n");
        let b = file(&d, "b.csv", "label, x ,y\nattack,3,4\n");
        let mut src = CsvSource::open(&[a, b], None).unwrap();
        assert_eq!(src.header(), ["x", "y", "label"]);
        let (rows, errs) = collect(&mut src);
        assert!(errs.is_empty());
        assert_eq!(rows, [["1", "2", "normal"], ["3", "4", "attack"]]);
    }

    #[test]
    fn ragged_row_names_file_and_line_then_goes_on() {
        let d = tempfile::tempdir().unwrap();
        let a = file(&d, "a.csv", "x,y,label\n1,2\n3,4,normal\n");
        let mut src = CsvSource::open(&[a], None).unwrap();
        let (rows, errs) = collect(&mut src);
        assert_eq!(rows.len(), 1);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].contains("a.csv:2") && errs[0].contains("2 fields"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn headerless_with_columns() {
        let d = tempfile::tempdir().unwrap();
        let a = file(&d, "a.txt", "1,2,normal\n");
        let cols = file(&d, "cols.txt", "x\ny\n\nlabel\n");
        let names = read_columns_file(&cols).unwrap();
        let mut src = CsvSource::open(&[a], Some(&names)).unwrap();
        let (rows, _) = collect(&mut src);
        assert_eq!(rows, [["1", "2", "normal"]]);
    }

    #[test]
    fn empty_file_and_mismatched_columns_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = file(&d, "e.csv", "");
        let err = CsvSource::open(&[e], None).unwrap_err().to_string();
        assert!(err.contains("e.csv:1: empty file"), "{err}");
        let a = file(&d, "a.csv", "x,y\n1,2\n");
        let b = file(&d, "b.csv", "x,z\n1,2\n");
        let mut src = CsvSource::open(&[a, b], None).unwrap();
        let (_, errs) = collect(&mut src);
        assert!(errs[0].contains("column 'y'"), "{errs:?}");
        let dup = file(&d, "d.csv", "x,x\n");
        assert!(CsvSource::open(&[dup], None).is_err());
        assert!(CsvSource::open(&[], None).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b" 1.5 "), Number::Finite(1.5));
        assert_eq!(parse_number(b"tcp"), Number::Text);
        assert_eq!(parse_number(b""), Number::Text);
        assert_eq!(parse_number(b"NaN"), Number::NonFinite);
        assert_eq!(parse_number(b"-Infinity"), Number::NonFinite);
        assert_eq!(parse_number(&[0xff]), Number::Text);
        assert_eq!(parse_number(b"."), Number::Text);
        assert_eq!(parse_number(b"-"), Number::Text);
        assert_eq!(parse_number(b"1.2.3"), Number::Text);
        assert_eq!(parse_number(b"1e3"), Number::Finite(1000.0));
    }

    #[test]
    fn fast_path_agrees_with_the_standard_parser() {
        let cases = [
            "0",
            "-0",
            "+7",
            "0.1",
            "0.3",
            "123.456",
            "-98765.4321",
            "1.",
            ".5",
            "9007199254740992",
            "9007199254740993",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
            "123456789012345678901234",
            "35.186224",
            "2.2250738585072014",
        ];
        for c in cases {
            let want: f64 = c.parse().unwrap();
            match parse_plain_decimal(c.as_bytes()) {
                Some(v) => assert_eq!(v.to_bits(), want.to_bits(), "{c}"),
                None => assert_eq!(parse_number(c.as_bytes()), Number::Finite(want), "{c}"),
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let s = format!(
                "{}.{:0w$}",
                x % 1_000_000,
                (x >> 20) % 10_000_000,
                w = (x % 8) as usize
            );
            let want: f64 = s.parse().unwrap();
            assert_eq!(parse_number(s.as_bytes()), Number::Finite(want), "{s}");
        }
    }

    /// `field` followed by `next` and padding, scanned from its start.
    fn scan(field: &str, next: &str) -> Option<(f64, usize)> {
        let data = format!("{field}{next}________");
        let (d, end) = scan_decimal(data.as_bytes(), 0)?;
        // The f32 shortcut is the rounding of the f64 value.
        assert_eq!(
            d.to_f32().to_bits(),
            (d.to_f64() as f32).to_bits(),
            "{field}"
        );
        Some((d.to_f64(), end))
    }

    #[test]
    fn scan_decimal_reads_what_the_standard_parser_reads() {
        for c in [
            "0",
            "-0",
            "+7",
            "0.1",
            "123.456",
            "-98765.4321",
            "1.",
            ".5",
            "1234567",
            "0.1234567",
            "-1234567.7654321",
            "35.1862",
            "000.000",
        ] {
            let want: f64 = c.parse().unwrap();
            let (v, end) = scan(c, ",").unwrap_or_else(|| panic!("{c}"));
            assert_eq!((v.to_bits(), end), (want.to_bits(), c.len()), "{c}");
            // Any byte that cannot continue the number ends it.
            for next in ["\n", "\r", "e5", " ", "x", "-"] {
                assert_eq!(scan(c, next).map(|s| s.1), Some(c.len()), "{c}{next}");
            }
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let sign = ["", "-", "+"][(x % 3) as usize];
            let int = (x >> 8) % 10u64.pow((x >> 40) as u32 % 8);
            let frac = format!("{:0w$}", (x >> 20) % 10_000_000, w = (x >> 50) as usize % 8);
            let c = format!("{sign}{int}.{frac}");
            let want: f64 = c.parse().unwrap();
            match scan(&c, ",") {
                Some((v, end)) => assert_eq!((v.to_bits(), end), (want.to_bits(), c.len()), "{c}"),
                // Only parts of 8 digits and more are left to the general path.
                None => assert!(frac.len() >= 8 || int >= 10_000_000, "{c}"),
            }
        }
    }

    #[test]
    fn f32_division_is_the_rounded_f64_one() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1_000_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = Decimal {
                mant: x % (1 << 24),
                decimals: (x >> 40) as usize % 11,
                neg: x >> 63 == 1,
            };
            assert_eq!(d.to_f32().to_bits(), (d.to_f64() as f32).to_bits(), "{d:?}");
        }
    }

    #[test]
    fn scan_decimal_leaves_the_rest_to_the_general_path() {
        // Not a number at all.
        for c in ["", "-", "+", ".", "-.", "x1", " 1", "nan"] {
            assert_eq!(scan(c, ","), None, "{c:?}");
        }
        // 8 digits or more in a part.
        assert_eq!(scan("12345678", ","), None);
        assert_eq!(scan("1.12345678", ","), None);
        // Fewer than 8 readable bytes.
        assert!(scan_decimal(b"12,3456", 0).is_none());
        assert!(scan_decimal(b"1.5", 0).is_none());
        assert!(scan_decimal(b"1", usize::MAX).is_none());
        // Where a number stops short of its field is the caller's to judge.
        assert_eq!(scan("1.2.3", ","), Some((1.2, 3)));
    }

    #[test]
    fn rejections_count_by_reason() {
        let mut r = Rejections::default();
        let bad = BadRow {
            reason: Reason::NonFinite,
            error: Error::Data("x".into()),
        };
        r.add(&bad);
        r.add(&bad);
        assert_eq!(r.total(), 2);
        assert_eq!(r.by_reason()["non_finite"], 2);
        assert!(r.summary().starts_with("2 rows rejected (non_finite 2"));
    }
}
