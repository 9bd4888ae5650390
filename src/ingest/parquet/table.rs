//! A Parquet file read as a CSV table: a thread decodes it row group by row
//! group, [`BATCH`] rows of every column at a time, and writes the rows as
//! CSV text into a pipe, numbers in the shortest round-trip decimals that
//! `extract` writes to its CSV. The table therefore reads, row for row and
//! bit for bit, as that CSV does, through the same parser, encoders and
//! checks. Memory holds a batch and a page per column, whatever the file.
//!
//! Flat tables of `DOUBLE`, `FLOAT`, `INT32`, `INT64` (signed or not) and
//! text (`BYTE_ARRAY`, plain or `STRING`) columns are read; a null is an
//! empty field (a missing value). Other columns are refused by name.

use std::fs::File;
use std::io::{PipeReader, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use parquet::basic::{ConvertedType, LogicalType, Type as Physical};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, DataType};
use parquet::errors::ParquetError;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnDescriptor;

use crate::ingest::csv::GeneratedTable;
use crate::{Error, Result};

/// Rows decoded per column before they are written out.
const BATCH: usize = 4096;
/// Bytes of CSV text gathered before they go into the pipe.
const FLUSH_BYTES: usize = 1 << 16;

/// A `.parquet` input: validated when started, then read by its thread.
#[derive(Debug)]
pub struct ParquetTable {
    path: PathBuf,
}

impl ParquetTable {
    /// The table of the Parquet file `path` (opened when started).
    pub fn new(path: &Path) -> Self {
        ParquetTable {
            path: path.to_owned(),
        }
    }
}

impl GeneratedTable for ParquetTable {
    fn path(&self) -> &Path {
        &self.path
    }

    fn start(&self) -> Result<(PipeReader, JoinHandle<Result<Vec<String>>>)> {
        let table = guard(&self.path, || Table::open(&self.path))?;
        let (read, write) = std::io::pipe().map_err(|e| Error::io(&self.path, e))?;
        let path = self.path.clone();
        let handle = std::thread::spawn(move || {
            guard(&path, || table.write_csv(write)).map(|()| Vec::new())
        });
        Ok((read, handle))
    }
}

/// Runs `f`; a panic in the decoder (on a hostile file) becomes an error
/// naming the file.
fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::Data(format!(
            "{}: damaged Parquet file (its decoder failed)",
            path.display()
        )))
    })
}

/// How a column's values become CSV fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Double,
    Float,
    Int32 { unsigned: bool },
    Int64 { unsigned: bool },
    Text,
}

/// An open file whose columns are all of a readable [`Kind`].
struct Table {
    path: PathBuf,
    reader: SerializedFileReader<File>,
    names: Vec<String>,
    kinds: Vec<Kind>,
}

impl Table {
    /// Opens `path`, reads its footer and checks its schema.
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| {
            Error::Data(format!(
                "{}: not a readable Parquet file: {e}",
                path.display()
            ))
        })?;
        let schema = reader.metadata().file_metadata().schema_descr();
        let refuse = |name: &str, what: String| {
            Error::Data(format!(
                "{}: column '{name}' is {what}: only flat tables of numbers and text are read",
                path.display()
            ))
        };
        for field in schema.root_schema().get_fields() {
            if !field.is_primitive() {
                return Err(refuse(field.name(), "a group (nested data)".into()));
            }
        }
        if schema.num_columns() == 0 {
            return Err(Error::Data(format!("{}: no columns", path.display())));
        }
        let names = schema.columns().iter().map(|c| c.name().into()).collect();
        let kinds = (schema.columns().iter())
            .map(|c| kind(c).map_err(|what| refuse(c.name(), what)))
            .collect::<Result<_>>()?;
        Ok(Table {
            path: path.to_owned(),
            reader,
            names,
            kinds,
        })
    }

    fn schema(&self) -> &parquet::schema::types::SchemaDescriptor {
        self.reader.metadata().file_metadata().schema_descr()
    }

    /// Writes the header and every row as CSV into `out`.
    fn write_csv(&self, mut out: impl Write) -> Result<()> {
        let width = self.names.len();
        let mut text = Vec::with_capacity(2 * FLUSH_BYTES);
        for (c, name) in self.names.iter().enumerate() {
            if c > 0 {
                text.push(b',');
            }
            push_text(&mut text, name.as_bytes(), width);
        }
        text.push(b'\n');
        let mut fmt = ryu::Buffer::new();
        for g in 0..self.reader.num_row_groups() {
            self.write_group(g, &mut out, &mut text, &mut fmt)?;
        }
        out.write_all(&text).map_err(|e| Error::io(&self.path, e))
    }

    /// Writes the rows of row group `g`, a batch at a time, through `text`.
    fn write_group(
        &self,
        g: usize,
        out: &mut impl Write,
        text: &mut Vec<u8>,
        fmt: &mut ryu::Buffer,
    ) -> Result<()> {
        let at = |c: usize, e: String| {
            Error::Data(format!(
                "{}: row group {g}, column '{}': {e}",
                self.path.display(),
                self.names.get(c).map_or("?", String::as_str)
            ))
        };
        let group = self
            .reader
            .get_row_group(g)
            .map_err(|e| at(0, e.to_string()))?;
        let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
        let width = self.names.len();
        let mut columns = (0..width)
            .map(|c| {
                let reader = group
                    .get_column_reader(c)
                    .map_err(|e| at(c, e.to_string()))?;
                let nullable = self.schema().column(c).max_def_level() > 0;
                Ok(Column::new(reader, self.kinds[c], nullable))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut done = 0;
        while done < rows {
            let want = BATCH.min(rows - done);
            for (c, column) in columns.iter_mut().enumerate() {
                let got = column.read(want).map_err(|e| at(c, e.to_string()))?;
                if got != want {
                    let msg = format!("{} rows, but the row group has {rows}", done + got);
                    return Err(at(c, msg));
                }
            }
            for _ in 0..want {
                for (c, column) in columns.iter_mut().enumerate() {
                    if c > 0 {
                        text.push(b',');
                    }
                    column.push_field(text, fmt, width).map_err(|e| at(c, e))?;
                }
                text.push(b'\n');
                if text.len() >= FLUSH_BYTES {
                    out.write_all(text).map_err(|e| Error::io(&self.path, e))?;
                    text.clear();
                }
            }
            done += want;
        }
        Ok(())
    }
}

/// Appends a text field, quoted where CSV needs it: a separator, quote or
/// line end inside, or a lone empty field (else its line reads as blank).
fn push_text(out: &mut Vec<u8>, field: &[u8], width: usize) {
    let special = |b: &u8| matches!(b, b',' | b'"' | b'\n' | b'\r');
    let quote = field.iter().any(special) || field.is_empty() && width == 1;
    if !quote {
        out.extend_from_slice(field);
        return;
    }
    out.push(b'"');
    for &b in field {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// The [`Kind`] of a column, or what it is when it cannot be read.
fn kind(c: &ColumnDescriptor) -> std::result::Result<Kind, String> {
    let physical = c.physical_type();
    if c.max_rep_level() > 0 {
        return Err(format!("a repeated {physical} column (a list)"));
    }
    let unsigned = match c.logical_type_ref() {
        None | Some(LogicalType::String | LogicalType::Enum | LogicalType::Json) => false,
        Some(LogicalType::Integer(t)) => !t.is_signed,
        Some(other) => return Err(format!("of type {physical} ({other:?})")),
    };
    if c.converted_type() == ConvertedType::DECIMAL {
        return Err(format!("of type {physical} (DECIMAL)"));
    }
    Ok(match physical {
        Physical::DOUBLE => Kind::Double,
        Physical::FLOAT => Kind::Float,
        Physical::INT32 => Kind::Int32 { unsigned },
        Physical::INT64 => Kind::Int64 { unsigned },
        Physical::BYTE_ARRAY => Kind::Text,
        other => return Err(format!("of type {other}")),
    })
}

/// A column's decoded values of the current batch.
enum Values {
    Double(Vec<f64>),
    Float(Vec<f32>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Text(Vec<ByteArray>),
}

/// One column of a row group: its reader and the current batch.
struct Column {
    reader: ColumnReader,
    kind: Kind,
    values: Values,
    /// Definition levels of a nullable column (a row is null below the max).
    levels: Vec<i16>,
    nullable: bool,
    /// The next row of the batch, and the next value (nulls have none).
    row: usize,
    value: usize,
}

impl Column {
    fn new(reader: ColumnReader, kind: Kind, nullable: bool) -> Self {
        let values = match kind {
            Kind::Double => Values::Double(Vec::new()),
            Kind::Float => Values::Float(Vec::new()),
            Kind::Int32 { .. } => Values::Int32(Vec::new()),
            Kind::Int64 { .. } => Values::Int64(Vec::new()),
            Kind::Text => Values::Text(Vec::new()),
        };
        Column {
            reader,
            kind,
            values,
            levels: Vec::new(),
            nullable,
            row: 0,
            value: 0,
        }
    }

    /// Decodes the next `n` rows (fewer at the end of the column).
    fn read(&mut self, n: usize) -> std::result::Result<usize, ParquetError> {
        self.levels.clear();
        let levels = self.nullable.then_some(&mut self.levels);
        (self.row, self.value) = (0, 0);
        match (&mut self.reader, &mut self.values) {
            (ColumnReader::DoubleColumnReader(r), Values::Double(v)) => records(r, n, levels, v),
            (ColumnReader::FloatColumnReader(r), Values::Float(v)) => records(r, n, levels, v),
            (ColumnReader::Int32ColumnReader(r), Values::Int32(v)) => records(r, n, levels, v),
            (ColumnReader::Int64ColumnReader(r), Values::Int64(v)) => records(r, n, levels, v),
            (ColumnReader::ByteArrayColumnReader(r), Values::Text(v)) => records(r, n, levels, v),
            _ => Err(ParquetError::General(
                "column reader of another type".into(),
            )),
        }
    }

    /// Appends the next row's field of the batch: its text, nothing for a
    /// null (a missing value).
    fn push_field(
        &mut self,
        text: &mut Vec<u8>,
        fmt: &mut ryu::Buffer,
        width: usize,
    ) -> std::result::Result<(), String> {
        let row = self.row;
        self.row += 1;
        if self.nullable && self.levels.get(row).is_some_and(|&l| l == 0) {
            push_text(text, b"", width);
            return Ok(());
        }
        let i = self.value;
        self.value += 1;
        let short = || "fewer values than rows".to_string();
        match (&self.values, self.kind) {
            (Values::Double(v), _) => {
                let x = v.get(i).ok_or_else(short)?;
                text.extend_from_slice(fmt.format(*x).as_bytes());
            }
            (Values::Float(v), _) => {
                let x = v.get(i).ok_or_else(short)?;
                text.extend_from_slice(fmt.format(*x).as_bytes());
            }
            (Values::Int32(v), Kind::Int32 { unsigned }) => {
                let x = *v.get(i).ok_or_else(short)?;
                integer(text, i64::from(x), unsigned.then_some(x as u32 as u64));
            }
            (Values::Int64(v), Kind::Int64 { unsigned }) => {
                let x = *v.get(i).ok_or_else(short)?;
                integer(text, x, unsigned.then_some(x as u64));
            }
            (Values::Text(v), _) => {
                let x = v.get(i).ok_or_else(short)?;
                push_text(text, x.data(), width);
            }
            _ => return Err("values of another type".into()),
        }
        Ok(())
    }
}

/// Writes `signed`, or `unsigned` when the column is unsigned.
fn integer(out: &mut Vec<u8>, signed: i64, unsigned: Option<u64>) {
    // Writing into a Vec cannot fail.
    let _ = match unsigned {
        Some(u) => write!(out, "{u}"),
        None => write!(out, "{signed}"),
    };
}

/// Reads `n` records of a flat column: their count.
fn records<T: DataType>(
    r: &mut ColumnReaderImpl<T>,
    n: usize,
    levels: Option<&mut Vec<i16>>,
    values: &mut Vec<T::T>,
) -> std::result::Result<usize, ParquetError> {
    values.clear();
    let (records, _, _) = r.read_records(n, levels, None, values)?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::csv::{CsvSource, TableInput};
    use parquet::data_type::{BoolType, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    /// Writes a Parquet file of schema `message`, `groups` row groups each
    /// filled by `fill` (given the group's number).
    fn write(
        path: &Path,
        message: &str,
        groups: usize,
        fill: impl Fn(usize, usize, &mut SerializedColumnWriter<'_>),
    ) {
        let schema = Arc::new(parse_message_type(message).unwrap());
        let props = Arc::new(WriterProperties::builder().build());
        let file = File::create(path).unwrap();
        let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
        for g in 0..groups {
            let mut group = w.next_row_group().unwrap();
            let mut c = 0;
            while let Some(mut column) = group.next_column().unwrap() {
                fill(g, c, &mut column);
                column.close().unwrap();
                c += 1;
            }
            group.close().unwrap();
        }
        w.close().unwrap();
    }

    /// Every row of `path` as text, or the first error.
    fn read(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        let input = TableInput::Generated(Arc::new(ParquetTable::new(path)));
        let mut src = CsvSource::open_inputs(&[input], None)?;
        let header = src.header().to_vec();
        let mut rows = Vec::new();
        loop {
            match src.next_row() {
                Ok(Some(r)) => rows.push((0..header.len()).map(|c| r.text(c).into()).collect()),
                Ok(None) => return Ok((header, rows)),
                Err(bad) => return Err(bad.error),
            }
        }
    }

    const MIXED: &str = "message m { required int64 packet_index; required double x; \
                         optional double y; required binary label (UTF8); }";

    /// Two rows of [`MIXED`], the second `y` null, in each of `groups`.
    fn mixed(path: &Path, groups: usize) {
        write(path, MIXED, groups, |g, c, col| {
            let g = g as i64;
            match c {
                0 => col
                    .typed::<Int64Type>()
                    .write_batch(&[2 * g, 2 * g + 1], None, None),
                1 => col
                    .typed::<DoubleType>()
                    .write_batch(&[0.1, -2.5e-300], None, None),
                2 => col
                    .typed::<DoubleType>()
                    .write_batch(&[f64::NAN], Some(&[1, 0]), None),
                _ => col.typed::<ByteArrayType>().write_batch(
                    &["normal".into(), "a, \"b\"".into()],
                    None,
                    None,
                ),
            }
            .unwrap();
        });
    }

    #[test]
    fn rows_read_as_their_csv_would() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.parquet");
        mixed(&p, 2);
        let (header, rows) = read(&p).unwrap();
        assert_eq!(header, ["packet_index", "x", "y", "label"]);
        let want = |i: &str| [i, "0.1", "NaN", "normal"].map(String::from).to_vec();
        let null = |i: &str| [i, "-2.5e-300", "", "a, \"b\""].map(String::from).to_vec();
        assert_eq!(rows, [want("0"), null("1"), want("2"), null("3")]);
    }

    #[test]
    fn a_null_in_a_single_column_is_a_row_still() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("one.parquet");
        write(&p, "message m { optional double v; }", 1, |_, _, col| {
            let v = col.typed::<DoubleType>();
            v.write_batch(&[3.0], Some(&[0, 1]), None).unwrap();
        });
        let (_, rows) = read(&p).unwrap();
        assert_eq!(rows, [[""], ["3.0"]]);
    }

    #[test]
    fn batches_and_row_groups_keep_the_row_order() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.parquet");
        let n = BATCH + 7;
        write(&p, "message m { required double v; }", 3, |g, _, col| {
            let v: Vec<f64> = (0..n).map(|i| (g * n + i) as f64).collect();
            col.typed::<DoubleType>()
                .write_batch(&v, None, None)
                .unwrap();
        });
        let (_, rows) = read(&p).unwrap();
        let got: Vec<f64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
        let want: Vec<f64> = (0..3 * n).map(|i| i as f64).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_unsupported_column_is_named_with_its_type() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("b.parquet");
        let message = "message m { required double x; required boolean flag; }";
        write(&p, message, 1, |_, c, col| {
            match c {
                0 => col.typed::<DoubleType>().write_batch(&[1.0], None, None),
                _ => col.typed::<BoolType>().write_batch(&[true], None, None),
            }
            .unwrap();
        });
        let err = read(&p).unwrap_err().to_string();
        assert!(
            err.contains("b.parquet") && err.contains("column 'flag' is of type BOOLEAN"),
            "{err}"
        );
        let p = d.path().join("l.parquet");
        let message = "message m { repeated double xs; }";
        write(&p, message, 1, |_, _, col| {
            let v = col.typed::<DoubleType>();
            v.write_batch(&[1.0, 2.0], Some(&[1, 1]), Some(&[0, 1]))
                .unwrap();
        });
        let err = read(&p).unwrap_err().to_string();
        assert!(
            err.contains("column 'xs' is a repeated DOUBLE column"),
            "{err}"
        );
    }

    #[test]
    fn other_files_and_damaged_ones_are_errors_naming_them() {
        let d = tempfile::tempdir().unwrap();
        let csv = d.path().join("text.parquet");
        std::fs::write(&csv, "x,y\n1,2\n").unwrap();
        let err = read(&csv).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: not a readable Parquet file", csv.display())),
            "{err}"
        );
        let good = d.path().join("good.parquet");
        mixed(&good, 3);
        let bytes = std::fs::read(&good).unwrap();
        // Cut short: the footer is gone.
        let cut = d.path().join("cut.parquet");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = read(&cut).unwrap_err().to_string();
        assert!(
            err.contains("cut.parquet: not a readable Parquet file"),
            "{err}"
        );
        // The footer kept, the pages before it shifted by a hole.
        let mut holed = bytes[..40].to_vec();
        holed.extend_from_slice(&bytes[60..]);
        let hole = d.path().join("hole.parquet");
        std::fs::write(&hole, &holed).unwrap();
        let err = read(&hole).unwrap_err().to_string();
        assert!(err.contains("hole.parquet"), "{err}");
        assert!(read(&d.path().join("absent.parquet")).is_err());
    }
}
