//! Blocks of whole CSV records: cut by one thread, parsed by many.
//!
//! Scoring parses, encodes and scores on every core, so the reading thread
//! only cuts the byte stream at record boundaries: a newline after an even
//! number of quotes (RFC 4180 doubles a quote inside a quoted field, so the
//! parity tells whether a newline is inside one). Each block names its file
//! and first line, so whichever thread parses it reports a bad row exactly
//! as [`super::CsvSource`] does. Blocks without quotes or lone carriage
//! returns, nearly every machine-written table, are split with `memchr`
//! (in a profile of scoring 40 numeric columns, half the time of the csv
//! parser); others go through the csv parser.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use csv::ByteRecord;

use super::{
    check_header, finish_capture, open_raw, permutation, ragged, BadRow, Fields, LineTooLong,
    Producer, Row, TableInput, MAX_LINE_BYTES,
};
use crate::{Error, Result};

/// Bytes per block: enough to amortise the hand-off between threads.
const BLOCK_BYTES: usize = 1 << 20;
/// Bytes asked of the input per read (below [`MAX_LINE_BYTES`], so only the
/// line running across reads can grow past the cap).
const READ_BYTES: usize = 1 << 18;

/// Whole records of one input file.
#[derive(Debug, Default)]
pub struct RawBlock {
    /// Index of the file among the inputs.
    pub file: usize,
    /// 1-based line of its first byte.
    pub first_line: u64,
    /// The records' bytes.
    pub data: Vec<u8>,
    /// Bytes consumed over all inputs once this block was cut (for progress).
    pub bytes_done: u64,
    /// Where each canonical column sits in this file; `None`: in order.
    pub perm: Option<Arc<[usize]>>,
    /// No quote and no carriage return: the records are the lines (known
    /// from the cut, so workers need not scan for them again).
    pub plain: bool,
}

/// The open input and what is known of it.
struct OpenInput {
    read: Box<dyn Read + Send>,
    producer: Producer,
    eof: bool,
}

/// Cuts one or several CSV inputs into [`RawBlock`]s.
pub struct BlockReader {
    inputs: Vec<TableInput>,
    files: Vec<PathBuf>,
    header: Vec<String>,
    given_columns: bool,
    next_file: usize,
    current: Option<OpenInput>,
    perm: Option<Arc<[usize]>>,
    /// Bytes read but not handed out yet: they start at a record boundary.
    carry: Vec<u8>,
    /// Bytes after the last newline of `carry`.
    run: usize,
    /// Lines of the current file handed out (the header included).
    line: u64,
    consumed: u64,
}

impl BlockReader {
    /// Opens `inputs`; `columns` names the columns of header-less CSV files.
    pub fn open(inputs: &[TableInput], columns: Option<&[String]>) -> Result<Self> {
        let Some(first) = inputs.first() else {
            return Err(Error::Data("no input file given".into()));
        };
        let mut reader = BlockReader {
            inputs: inputs.to_vec(),
            files: inputs.iter().map(|i| i.path().to_owned()).collect(),
            header: Vec::new(),
            given_columns: columns.is_some(),
            next_file: 0,
            current: None,
            perm: None,
            carry: Vec::new(),
            run: 0,
            line: 0,
            consumed: 0,
        };
        if let (Some(names), TableInput::Csv(_)) = (columns, first) {
            reader.header = names.to_vec();
        }
        reader.open_next()?;
        Ok(reader)
    }

    /// The column names, in the first file's order.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The input files, indexed by [`RawBlock::file`].
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Total size of the input files (for progress; 0 where unknown).
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Fills `out` with the next records; false once every input is read.
    /// Errors (I/O, a line over [`MAX_LINE_BYTES`]) end the reading.
    pub fn next_block(&mut self, out: &mut RawBlock) -> Result<bool> {
        loop {
            let Some(cur) = self.current.as_ref() else {
                return Ok(false);
            };
            let eof = cur.eof;
            if !eof && self.carry.len() < BLOCK_BYTES {
                self.fill()?;
                continue;
            }
            let (cut, plain) = if eof {
                (self.carry.len(), is_plain(&self.carry))
            } else {
                match last_boundary(&self.carry) {
                    (Some(cut), plain) => (cut, plain),
                    (None, _) => {
                        self.check_record_size()?;
                        self.fill()?;
                        continue;
                    }
                }
            };
            if cut == 0 {
                self.open_next()?;
                continue;
            }
            // The block takes the buffer; only the tail past the cut is copied.
            out.data.clear();
            out.data.extend_from_slice(&self.carry[cut..]);
            std::mem::swap(&mut out.data, &mut self.carry);
            out.data.truncate(cut);
            out.file = self.next_file - 1;
            out.first_line = self.line + 1;
            out.perm = self.perm.clone();
            out.plain = plain;
            self.line += newlines(&out.data);
            self.consumed += cut as u64;
            out.bytes_done = self.consumed;
            return Ok(true);
        }
    }

    fn path(&self) -> &Path {
        let i = self.next_file.saturating_sub(1);
        self.files.get(i).map_or(Path::new("-"), PathBuf::as_path)
    }

    /// Opens the next input (finishing the current one); false when none is left.
    fn open_next(&mut self) -> Result<bool> {
        if let Some(done) = self.current.take() {
            finish_capture(done.producer, self.path())?;
        }
        let Some(input) = self.inputs.get(self.next_file).cloned() else {
            return Ok(false);
        };
        self.next_file += 1;
        let (read, producer) = open_raw(&input)?;
        self.current = Some(OpenInput {
            read,
            producer,
            eof: false,
        });
        self.carry.clear();
        (self.run, self.line) = (0, 0);
        let names = match input {
            TableInput::Csv(_) if self.given_columns => self.header.clone(),
            _ => self.read_header()?,
        };
        if self.header.is_empty() {
            self.header = names.clone();
        }
        let perm = permutation(&self.header, input.path(), &names)?;
        let identity = perm.iter().enumerate().all(|(i, &p)| i == p);
        self.perm = (!identity).then(|| Arc::from(perm));
        Ok(true)
    }

    /// Reads the header: the first non-blank record.
    fn read_header(&mut self) -> Result<Vec<String>> {
        let mut rec = ByteRecord::new();
        loop {
            let eof = self.current.as_ref().is_none_or(|c| c.eof);
            let cut = match first_boundary(&self.carry) {
                Some(cut) => cut,
                None if eof => self.carry.len(),
                None => {
                    self.check_record_size()?;
                    self.fill()?;
                    continue;
                }
            };
            if cut == 0 {
                return Err(Error::Input {
                    file: self.path().to_owned(),
                    line: 1,
                    msg: "empty file: no header line (for a file without one, pass --columns)"
                        .into(),
                });
            }
            let found = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(&self.carry[..cut])
                .read_byte_record(&mut rec)
                .map_err(|e| super::csv_error(self.path(), e))?;
            self.line += newlines(&self.carry[..cut]);
            self.consumed += cut as u64;
            self.carry.drain(..cut);
            if found {
                let names: Vec<String> = rec
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).trim().to_owned())
                    .collect();
                check_header(self.path(), &names)?;
                return Ok(names);
            }
        }
    }

    /// Appends one read to `carry`, failing on a line over the cap.
    fn fill(&mut self) -> Result<()> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        let len = self.carry.len();
        // Appends without zero-filling first; short only at the end.
        let n = match (&mut cur.read)
            .take(READ_BYTES as u64)
            .read_to_end(&mut self.carry)
        {
            Ok(n) => n,
            Err(e) => {
                self.carry.truncate(len);
                let path = self.path().to_owned();
                return Err(Error::io(path, e));
            }
        };
        cur.eof = n < READ_BYTES;
        let new = &self.carry[len..];
        let first = memchr::memchr(b'\n', new);
        let over = match (first, memchr::memrchr(b'\n', new)) {
            (Some(first), Some(last)) => {
                let over = self.run + first > MAX_LINE_BYTES;
                self.run = new.len() - last - 1;
                over
            }
            _ => {
                self.run += new.len();
                false
            }
        };
        if over || self.run > MAX_LINE_BYTES {
            return Err(self.too_long(first.map_or(len + n, |f| len + f)));
        }
        Ok(())
    }

    /// A record spanning more than a block and a line (newlines in an
    /// unclosed quote) is refused like a long line.
    fn check_record_size(&self) -> Result<()> {
        if self.carry.len() > BLOCK_BYTES + MAX_LINE_BYTES {
            return Err(self.too_long(0));
        }
        Ok(())
    }

    /// The error for an over-long line that runs through `carry[at]`.
    fn too_long(&self, at: usize) -> Error {
        let before = memchr::memrchr(b'\n', &self.carry[..at.min(self.carry.len())])
            .map_or(0, |i| newlines(&self.carry[..=i]));
        let long = LineTooLong {
            line: self.line + before + 1,
        };
        Error::Input {
            file: self.path().to_owned(),
            line: long.line,
            msg: long.to_string(),
        }
    }
}

fn newlines(data: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', data).count() as u64
}

/// The end of the last whole record in `data` (None: not one yet), and
/// whether `data` [`is_plain`] (one scan tells both, in the common case).
fn last_boundary(data: &[u8]) -> (Option<usize>, bool) {
    let plain = is_plain(data);
    if plain || memchr::memchr(b'"', data).is_none() {
        return (memchr::memrchr(b'\n', data).map(|i| i + 1), plain);
    }
    // The start of the last record, as the csv parser sees it.
    (record_starts(data).last().filter(|&s| s > 0), false)
}

/// No quote and no carriage return: records are lines, fields end at commas.
fn is_plain(data: &[u8]) -> bool {
    memchr::memchr2(b'"', b'\r', data).is_none()
}

/// The end of the first whole record in `data` (None: not one yet). Used
/// once per file (the header), so always by the parser: a lone `\r` ends a
/// record too.
fn first_boundary(data: &[u8]) -> Option<usize> {
    record_starts(data).nth(1)
}

/// Where the csv parser starts each record of `data`. Quotes decide which
/// newlines end records, so quoted data is cut where the parser says, not
/// by a rule of thumb. A start on the `\n` of a `\r\n` moves past it, so
/// that a block never begins with the end of the previous line.
fn record_starts(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut rec = ByteRecord::new();
    std::iter::from_fn(move || {
        // Over bytes in memory with flexible records the parser cannot fail.
        let start = match reader.read_byte_record(&mut rec) {
            Ok(true) => rec.position().map_or(0, |p| p.byte() as usize),
            _ => return None,
        };
        let crlf =
            start > 0 && data.get(start - 1) == Some(&b'\r') && data.get(start) == Some(&b'\n');
        Some(start + usize::from(crlf))
    })
}

/// True when plain splitting reads `data` as the csv parser would: no
/// quotes, and every carriage return ends a line.
fn splittable(data: &[u8]) -> bool {
    memchr::memchr(b'"', data).is_none()
        && memchr::memchr_iter(b'\r', data).all(|i| data.get(i + 1) == Some(&b'\n'))
}

/// Splits blocks into [`Row`]s, reusing its buffers from block to block.
#[derive(Debug, Default)]
pub struct BlockRows {
    ends: Vec<usize>,
    record: ByteRecord,
}

/// One record of a block, as [`BlockRows::for_each`] hands it over.
#[derive(Debug)]
pub enum Record<'a> {
    /// A line of a block without quotes: the caller may read its fields
    /// straight from the bytes, or split it with [`PlainLine::into_row`].
    Plain(PlainLine<'a>),
    /// A record the csv parser read, or the reason it is malformed.
    Parsed(std::result::Result<Row<'a>, BadRow>),
}

/// A non-empty line of a quote-free block: fields end at commas.
#[derive(Debug)]
pub struct PlainLine<'a> {
    block: &'a [u8],
    span: Range<usize>,
    line: u64,
    ends: &'a mut Vec<usize>,
    path: &'a Path,
    perm: Option<&'a [usize]>,
    header: &'a [String],
}

impl<'a> PlainLine<'a> {
    /// The whole block: bytes past the line may be read (and ignored) by
    /// scanners that work 8 bytes at a time.
    pub fn block(&self) -> &'a [u8] {
        self.block
    }

    /// Where the line lies in [`PlainLine::block`] (without its line end).
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The line split into fields, or a ragged-row error.
    pub fn into_row(self) -> std::result::Result<Row<'a>, BadRow> {
        let text = &self.block[self.span];
        self.ends.clear();
        self.ends.extend(memchr::memchr_iter(b',', text));
        self.ends.push(text.len());
        if self.ends.len() != self.header.len() {
            return Err(ragged(
                self.path,
                self.line,
                self.ends.len(),
                self.header.len(),
            ));
        }
        Ok(Row {
            file: self.path,
            line: self.line,
            fields: Fields::Split {
                line: text,
                ends: self.ends,
            },
            perm: self.perm,
            header: self.header,
        })
    }
}

impl BlockRows {
    /// Calls `f` with each record of `block`, in order; `path` and `header`
    /// are the block's file and the columns. Stops at the first error `f`
    /// returns.
    pub fn for_each<E>(
        &mut self,
        block: &RawBlock,
        path: &Path,
        header: &[String],
        mut f: impl FnMut(Record<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        if !(block.plain || splittable(&block.data)) {
            return self.parse(block, path, header, f);
        }
        let data = &block.data[..];
        let (mut start, mut line) = (0, block.first_line);
        for end in memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len())) {
            let stop = if end > start && data[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            let span = start.min(stop)..stop;
            let this = line;
            (start, line) = (end + 1, line + 1);
            if span.is_empty() {
                continue;
            }
            f(Record::Plain(PlainLine {
                block: data,
                span,
                line: this,
                ends: &mut self.ends,
                path,
                perm: block.perm.as_deref(),
                header,
            }))?;
        }
        Ok(())
    }

    /// The general case: the csv parser over the block.
    fn parse<E>(
        &mut self,
        block: &RawBlock,
        path: &Path,
        header: &[String],
        mut f: impl FnMut(Record<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(&block.data[..]);
        // Over bytes in memory with flexible records the parser cannot fail.
        while let Ok(true) = reader.read_byte_record(&mut self.record) {
            let line = block.first_line - 1 + self.record.position().map_or(1, |p| p.line());
            let row = if self.record.len() == header.len() {
                Ok(Row {
                    file: path,
                    line,
                    fields: Fields::Record(&self.record),
                    perm: block.perm.as_deref(),
                    header,
                })
            } else {
                Err(ragged(path, line, self.record.len(), header.len()))
            };
            f(Record::Parsed(row))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Every row of `files` as (line, fields in canonical order) or the error.
    fn rows(files: &[PathBuf]) -> Vec<std::result::Result<(u64, Vec<String>), String>> {
        let inputs: Vec<TableInput> = files.iter().cloned().map(TableInput::Csv).collect();
        let mut reader = BlockReader::open(&inputs, None).unwrap();
        let header = reader.header().to_vec();
        let (mut out, mut block, mut parser) =
            (Vec::new(), RawBlock::default(), BlockRows::default());
        while reader.next_block(&mut block).unwrap() {
            let path = reader.files()[block.file].clone();
            parser
                .for_each(&block, &path, &header, |r| {
                    let r = match r {
                        Record::Plain(line) => line.into_row(),
                        Record::Parsed(row) => row,
                    };
                    out.push(match r {
                        Ok(r) => Ok((
                            r.line,
                            (0..header.len()).map(|c| r.text(c).into()).collect(),
                        )),
                        Err(bad) => Err(bad.error.to_string()),
                    });
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        out
    }

    /// The same rows through [`super::super::CsvSource`].
    fn reference(files: &[PathBuf]) -> Vec<std::result::Result<(u64, Vec<String>), String>> {
        let mut src = super::super::CsvSource::open(files, None).unwrap();
        let n = src.header().len();
        let mut out = Vec::new();
        loop {
            match src.next_row() {
                Ok(Some(r)) => out.push(Ok((r.line, (0..n).map(|c| r.text(c).into()).collect()))),
                Ok(None) => return out,
                Err(bad) => out.push(Err(bad.error.to_string())),
            }
        }
    }

    #[test]
    fn agrees_with_the_record_reader() {
        let d = tempfile::tempdir().unwrap();
        let cases: [&[u8]; 6] = [
            b"x,y,label\n1,2,normal\n3,4,attack\n",
            b"x,y,label\n1,2\n5,6,normal\n7,8,9,10\n",
            b"x,y,label\n\"1\",2,\"a\nb\"\n3,4,\"say \"\"hi\"\"\"\n5,6,c\n",
            b"x,y,label\n1,2,a\r3,4,b\n",
            b"\n\nx,y,label\n1,2,a\n",
            b"x,y,label\n , ,\n1,,a\n",
        ];
        for (i, text) in cases.iter().enumerate() {
            let p = write(&d, &format!("c{i}.csv"), text);
            assert_eq!(rows(std::slice::from_ref(&p)), reference(&[p]), "case {i}");
        }
    }

    #[test]
    fn carriage_returns_alone_end_records() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "cr.csv", b"x,y\r1,2\r3,4\r");
        let got = rows(std::slice::from_ref(&p));
        assert_eq!(got.len(), 2);
        assert_eq!(got, reference(&[p]));
    }

    #[test]
    fn crlf_lines_are_physical_lines() {
        // The csv parser numbers a record after CRLF or a blank line one line early.
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "crlf.csv", b"x,y,label\r\n1,2,normal\r\n\r\n3,4,attack");
        let want = |l: u64, row: [&str; 3]| Ok((l, row.map(String::from).to_vec()));
        assert_eq!(
            rows(&[p]),
            [want(2, ["1", "2", "normal"]), want(4, ["3", "4", "attack"])]
        );
    }

    #[test]
    fn blocks_end_on_record_boundaries() {
        let d = tempfile::tempdir().unwrap();
        let mut text = b"a,b,label\n".to_vec();
        for i in 0..60_000 {
            // Every 7th record holds a quoted newline.
            if i % 7 == 0 {
                text.extend_from_slice(format!("{i},\"x\ny\",n\n").as_bytes());
            } else {
                text.extend_from_slice(format!("{i},{},n\n", i * 3).as_bytes());
            }
        }
        let p = write(&d, "big.csv", &text);
        let got = rows(std::slice::from_ref(&p));
        assert_eq!(got.len(), 60_000);
        assert_eq!(got, reference(&[p]));
    }

    #[test]
    fn several_files_reordered_columns() {
        let d = tempfile::tempdir().unwrap();
        let a = write(&d, "a.csv", b"x,y,label\n1,2,normal\n");
        let b = write(&d, "b.csv", b"label,x,y\nattack,3,4\n");
        let got = rows(&[a.clone(), b.clone()]);
        assert_eq!(got, reference(&[a, b]));
        assert_eq!(
            got[1],
            Ok((2, vec!["3".into(), "4".into(), "attack".into()]))
        );
    }

    #[test]
    fn header_problems_and_long_lines_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let empty = write(&d, "empty.csv", b"");
        let err = BlockReader::open(&[TableInput::Csv(empty)], None)
            .err()
            .unwrap();
        assert!(err.to_string().contains("empty file"), "{err}");
        let twice = write(&d, "twice.csv", b"x,x\n1,2\n");
        let err = BlockReader::open(&[TableInput::Csv(twice)], None)
            .err()
            .unwrap();
        assert!(err.to_string().contains("appears twice"), "{err}");
        let mut long = b"x,label\n1,a\n2,b\n".to_vec();
        long.extend(std::iter::repeat_n(b'7', MAX_LINE_BYTES + 10));
        long.extend_from_slice(b",c\n");
        let p = write(&d, "long.csv", &long);
        let mut reader = BlockReader::open(&[TableInput::Csv(p)], None).unwrap();
        let mut block = RawBlock::default();
        let err = loop {
            match reader.next_block(&mut block) {
                Ok(true) => continue,
                Ok(false) => panic!("a line over the cap was read"),
                Err(e) => break e,
            }
        };
        assert!(
            err.to_string().contains(":4") && err.to_string().contains("longer than"),
            "{err}"
        );
        // An unclosed quote does not grow a record without limit either.
        let mut open = b"x,label\n1,\"".to_vec();
        for _ in 0..(3 * MAX_LINE_BYTES / 10) {
            open.extend_from_slice(b"123456789\n");
        }
        let p = write(&d, "open.csv", &open);
        let mut reader = BlockReader::open(&[TableInput::Csv(p)], None).unwrap();
        assert!(reader.next_block(&mut block).is_err());
    }

    #[test]
    fn boundaries() {
        assert_eq!(last_boundary(b"a\nb\nc"), (Some(4), true));
        assert_eq!(last_boundary(b"a\n\"b\nc"), (Some(2), false));
        assert_eq!(last_boundary(b"a\r\nb\r\nc"), (Some(6), false));
        assert_eq!(last_boundary(b"abc"), (None, true));
        assert_eq!(first_boundary(b"\"a\nb\"\nc\n"), Some(6));
        // A stray quote inside an unquoted field is a plain character: the
        // cut stays on the parser's record boundaries.
        assert_eq!(last_boundary(b"x,a\"b\n\"c\nd\",e\nf").0, Some(14));
        assert_eq!(last_boundary(b"\"a\"\r\nb\r\nc").0, Some(8));
        assert!(splittable(b"1,2\r\n3,4\n"));
        assert!(!splittable(b"1,2\r3,4\n"));
        assert!(!splittable(b"\"1\",2\n"));
    }
}
