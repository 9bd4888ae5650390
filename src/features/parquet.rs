//! Feature tables as Apache Parquet files: an `INT64` index column, then
//! `DOUBLE` and `FLOAT` value columns, written through the `parquet` crate's
//! column writers (no Arrow). Rows are gathered `BLOCK` at a time, then
//! moved into one buffer per column (a push per value into a hundred
//! buffers cost 16 % of `extract`), and written as a row group once
//! [`ParquetWriter::group_rows`] are in, so memory is bounded by that size
//! and the width, not by the table length. Pages are plain by default, or
//! Snappy-compressed ([`Codec`]). Only the index column carries min/max
//! statistics: they serve range reads by packet; on feature columns they
//! cost 6 % of `extract` and serve nothing.

use std::io::{self, Write};
use std::sync::Arc;

use parquet::basic::{Compression, Repetition, Type as Physical};
use parquet::data_type::{DataType, DoubleType, FloatType, Int64Type};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::types::{ColumnPath, Type};

/// The most values (rows x columns) buffered before a row group is written:
/// at most 32 MiB.
const GROUP_VALUES: usize = 4 << 20;
/// The most rows of a row group (fewer for wide tables).
const GROUP_ROWS: usize = 65_536;
/// Rows gathered row by row before they are moved into the columns.
const BLOCK: usize = 64;

/// How pages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// Plain pages.
    #[default]
    None,
    /// Snappy: a quarter smaller than plain pages for features, at a third
    /// more CPU for `extract`.
    Snappy,
}

/// Writes rows of an index and values (first the `DOUBLE` columns, then the
/// `FLOAT` ones) into row groups.
pub struct ParquetWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    group_rows: usize,
    index: Vec<i64>,
    /// The last rows (up to [`BLOCK`]), one after the other.
    block: Vec<f64>,
    /// One buffer per `DOUBLE` column.
    doubles: Vec<Vec<f64>>,
    /// One buffer per `FLOAT` column.
    floats: Vec<Vec<f32>>,
    rows: u64,
}

impl<W: Write + Send> std::fmt::Debug for ParquetWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetWriter")
            .field("doubles", &self.doubles.len())
            .field("floats", &self.floats.len())
            .field("group_rows", &self.group_rows)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> ParquetWriter<W> {
    /// Starts a table of required columns: `INT64` `index`, one `DOUBLE` per
    /// name of `doubles`, then one `FLOAT` per name of `floats`; its pages
    /// compressed by `codec`.
    pub fn new(
        out: W,
        index: &str,
        doubles: &[String],
        floats: &[String],
        codec: Codec,
    ) -> io::Result<Self> {
        let schema = Arc::new(schema(index, doubles, floats).map_err(io::Error::other)?);
        // Measured on 1 M packets x 102 columns (kitsune-corrected):
        // dictionaries of float features cost 45 % more CPU.
        let compression = match codec {
            Codec::Snappy => Compression::SNAPPY,
            Codec::None => Compression::UNCOMPRESSED,
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_column_statistics_enabled(ColumnPath::from(index), EnabledStatistics::Page)
            .set_created_by(format!("floodwatch {}", env!("CARGO_PKG_VERSION")))
            .build();
        let file =
            SerializedFileWriter::new(out, schema, Arc::new(props)).map_err(io::Error::other)?;
        let width = doubles.len() + floats.len();
        let group_rows = (GROUP_VALUES / (width + 1)).clamp(1, GROUP_ROWS);
        Ok(ParquetWriter {
            file,
            group_rows,
            index: Vec::with_capacity(group_rows),
            block: Vec::with_capacity(BLOCK * width),
            doubles: buffers(doubles.len(), group_rows),
            floats: buffers(floats.len(), group_rows),
            rows: 0,
        })
    }

    /// Rows per row group (all but the last).
    pub fn group_rows(&self) -> usize {
        self.group_rows
    }

    /// Writes one row: its index and one value per column (`FLOAT` ones
    /// rounded to the nearest `f32`).
    ///
    /// # Panics
    /// If `values` is not as long as the names given (a caller bug).
    pub fn write_row(&mut self, index: i64, values: &[f64]) -> io::Result<()> {
        let width = self.doubles.len() + self.floats.len();
        assert_eq!(values.len(), width, "row width");
        self.index.push(index);
        self.block.extend_from_slice(values);
        self.rows += 1;
        if self.block.len() >= BLOCK * values.len() {
            self.spill_block();
        }
        if self.index.len() >= self.group_rows {
            self.flush_group()?;
        }
        Ok(())
    }

    /// Moves the gathered rows into the column buffers.
    fn spill_block(&mut self) {
        let first = self.doubles.len();
        let width = first + self.floats.len();
        let rows = self.block.len() / width.max(1);
        for (c, column) in self.doubles.iter_mut().enumerate() {
            gather(column, &self.block, width, c, rows, |v| v);
        }
        for (c, column) in self.floats.iter_mut().enumerate() {
            gather(column, &self.block, width, first + c, rows, |v| v as f32);
        }
        self.block.clear();
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the last row group and the footer; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_group()?;
        self.file.into_inner().map_err(io::Error::other)
    }

    /// Writes the buffered rows as one row group.
    fn flush_group(&mut self) -> io::Result<()> {
        self.spill_block();
        if self.index.is_empty() {
            return Ok(());
        }
        let mut group = self.file.next_row_group().map_err(io::Error::other)?;
        write_column::<Int64Type, W>(&mut group, &self.index).map_err(io::Error::other)?;
        for values in &self.doubles {
            write_column::<DoubleType, W>(&mut group, values).map_err(io::Error::other)?;
        }
        for values in &self.floats {
            write_column::<FloatType, W>(&mut group, values).map_err(io::Error::other)?;
        }
        group.close().map_err(io::Error::other)?;
        self.index.clear();
        self.doubles.iter_mut().for_each(Vec::clear);
        self.floats.iter_mut().for_each(Vec::clear);
        Ok(())
    }
}

/// `n` empty buffers of `capacity` values each.
fn buffers<T>(n: usize, capacity: usize) -> Vec<Vec<T>> {
    (0..n).map(|_| Vec::with_capacity(capacity)).collect()
}

/// Appends column `c` of the `rows` rows of `block` (`width` values each),
/// through `convert`, to `column`.
fn gather<T: Copy + Default>(
    column: &mut Vec<T>,
    block: &[f64],
    width: usize,
    c: usize,
    rows: usize,
    convert: impl Fn(f64) -> T,
) {
    let at = column.len();
    column.resize(at + rows, T::default());
    for (r, v) in column[at..].iter_mut().enumerate() {
        *v = convert(block[r * width + c]);
    }
}

/// Writes `values` as the next column of `group`.
fn write_column<T: DataType, W: Write + Send>(
    group: &mut SerializedRowGroupWriter<'_, W>,
    values: &[T::T],
) -> parquet::errors::Result<()> {
    let Some(mut column) = group.next_column()? else {
        let msg = "row group has fewer columns than the schema";
        return Err(parquet::errors::ParquetError::General(msg.into()));
    };
    column.typed::<T>().write_batch(values, None, None)?;
    column.close()
}

/// The message type: `index` as `INT64`, then `doubles` as `DOUBLE` and
/// `floats` as `FLOAT`. Built, not parsed, so that any column name is taken
/// as it is.
fn schema(index: &str, doubles: &[String], floats: &[String]) -> parquet::errors::Result<Type> {
    let column = |name: &str, physical| {
        Type::primitive_type_builder(name, physical)
            .with_repetition(Repetition::REQUIRED)
            .build()
            .map(Arc::new)
    };
    let mut fields = vec![column(index, Physical::INT64)?];
    for name in doubles {
        fields.push(column(name, Physical::DOUBLE)?);
    }
    for name in floats {
        fields.push(column(name, Physical::FLOAT)?);
    }
    Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::column::reader::ColumnReader;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    /// Every column of every row group, as `f64` (others converted).
    fn read_back(bytes: Vec<u8>) -> (Vec<String>, Vec<usize>, Vec<Vec<f64>>) {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(&bytes).unwrap();
        let file = SerializedFileReader::new(tmp).unwrap();
        let schema = file.metadata().file_metadata().schema_descr();
        let names: Vec<String> = schema.columns().iter().map(|c| c.name().into()).collect();
        let mut groups = Vec::new();
        let mut columns = vec![Vec::new(); names.len()];
        for g in 0..file.num_row_groups() {
            let group = file.get_row_group(g).unwrap();
            let n = group.metadata().num_rows() as usize;
            groups.push(n);
            for (c, out) in columns.iter_mut().enumerate() {
                match group.get_column_reader(c).unwrap() {
                    ColumnReader::Int64ColumnReader(mut r) => {
                        let mut v = Vec::new();
                        r.read_records(n, None, None, &mut v).unwrap();
                        out.extend(v.iter().map(|&i| i as f64));
                    }
                    ColumnReader::DoubleColumnReader(mut r) => {
                        r.read_records(n, None, None, out).unwrap();
                    }
                    ColumnReader::FloatColumnReader(mut r) => {
                        let mut v = Vec::new();
                        r.read_records(n, None, None, &mut v).unwrap();
                        out.extend(v.iter().map(|&x| f64::from(x)));
                    }
                    _ => panic!("column {c}: unexpected type"),
                }
            }
        }
        (names, groups, columns)
    }

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn rows_come_back_column_by_column() {
        let doubles = ["a".to_string(), "b c".to_string()];
        let floats = ["d".to_string(), "e".to_string()];
        let mut w =
            ParquetWriter::new(Vec::new(), "packet_index", &doubles, &floats, Codec::Snappy)
                .unwrap();
        let third = 1.0 / 3.0;
        w.write_row(7, &[1.5, f64::NAN, third, f64::NAN]).unwrap();
        w.write_row(8, &[-0.0, f64::INFINITY, -0.0, 1e300]).unwrap();
        assert_eq!(w.rows(), 2);
        let (got, groups, columns) = read_back(w.finish().unwrap());
        assert_eq!(got, ["packet_index", "a", "b c", "d", "e"]);
        assert_eq!(groups, [2]);
        assert_eq!(columns[0], [7.0, 8.0]);
        assert_eq!(columns[1][0], 1.5);
        assert_eq!(columns[1][1].to_bits(), (-0.0f64).to_bits());
        assert!(columns[2][0].is_nan() && columns[2][1] == f64::INFINITY);
        // FLOAT columns hold the nearest f32; doubles keep every bit.
        assert_eq!(columns[3][0], f64::from(third as f32));
        assert_ne!(columns[3][0], third);
        assert_eq!(columns[3][1].to_bits(), (-0.0f64).to_bits());
        assert!(columns[4][0].is_nan() && columns[4][1] == f64::INFINITY);
    }

    #[test]
    fn row_groups_are_bounded() {
        let (doubles, floats) = (names("d", 9), names("f", 90));
        let mut w = ParquetWriter::new(Vec::new(), "i", &doubles, &floats, Codec::None).unwrap();
        let per_group = w.group_rows();
        assert_eq!(per_group, GROUP_VALUES / 100);
        let rows = 2 * per_group + 3;
        for i in 0..rows {
            let row: Vec<f64> = (0..99).map(|c| (i * 100 + c) as f64).collect();
            w.write_row(i as i64, &row).unwrap();
        }
        let (_, groups, columns) = read_back(w.finish().unwrap());
        assert_eq!(groups, [per_group, per_group, 3]);
        for (c, column) in columns.iter().enumerate().skip(1) {
            let want: Vec<f64> = (0..rows).map(|i| (i * 100 + c - 1) as f64).collect();
            assert_eq!(*column, want, "column {c}");
        }
    }

    #[test]
    fn the_codec_is_kept_and_only_the_index_has_statistics() {
        let (doubles, floats) = (["a".to_string()], ["b".to_string()]);
        for (codec, want) in [
            (Codec::Snappy, Compression::SNAPPY),
            (Codec::None, Compression::UNCOMPRESSED),
        ] {
            let mut w = ParquetWriter::new(Vec::new(), "i", &doubles, &floats, codec).unwrap();
            for i in 0..10 {
                w.write_row(i, &[i as f64, -(i as f64)]).unwrap();
            }
            let mut tmp = tempfile::tempfile().unwrap();
            tmp.write_all(&w.finish().unwrap()).unwrap();
            let file = SerializedFileReader::new(tmp).unwrap();
            let group = file.metadata().row_group(0);
            let columns = group.columns();
            assert!(columns.iter().all(|c| c.compression() == want), "{codec:?}");
            let index = columns[0].statistics().expect("index statistics");
            assert_eq!(index.min_bytes_opt(), Some(&0i64.to_le_bytes()[..]));
            assert_eq!(index.max_bytes_opt(), Some(&9i64.to_le_bytes()[..]));
            assert!(columns[1..].iter().all(|c| c.statistics().is_none()));
        }
    }

    #[test]
    fn an_empty_table_has_its_schema() {
        let w = ParquetWriter::new(Vec::new(), "i", &names("x", 1), &[], Codec::Snappy).unwrap();
        let (names, groups, _) = read_back(w.finish().unwrap());
        assert_eq!((names.len(), groups.len()), (2, 0));
    }
}
