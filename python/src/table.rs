//! In-memory tables from Python (a 2-D numpy array or a pandas DataFrame),
//! read cell by cell as floodwatch reads a CSV file's fields.
//!
//! Numeric columns are copied out as `f64` (a C-contiguous `float64` array
//! is borrowed as it is); other columns become typed cells, so that text
//! columns go through the same schema and encoders as the command line.
//! Fitting hands the table to the library's training as CSV text written
//! on a thread ([`FrameTable`]), which reads it exactly as `train` reads a
//! file: numbers in their shortest round-trip form parse back to the same
//! `f64`.

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use floodwatch::features::tabular::Cell;
use floodwatch::ingest::csv::GeneratedTable;
use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

use crate::error::Error;

/// One cell of a text column, owned.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Number(f64),
    Text(String),
    Missing,
}

/// One column of a data frame.
#[derive(Debug, Clone)]
pub(crate) enum Column {
    /// A numeric dtype, as `float64` (NaN where missing).
    Numbers(Vec<f64>),
    /// Anything else, cell by cell.
    Values(Vec<Value>),
}

#[derive(Debug, Clone)]
enum Data<'a> {
    /// A row-major `rows x names.len()` block of numbers.
    Dense(Cow<'a, [f64]>),
    /// One entry a column.
    Columns(Vec<Column>),
}

/// A table: column names and cells.
#[derive(Debug, Clone)]
pub(crate) struct Table<'a> {
    pub(crate) names: Vec<String>,
    pub(crate) rows: usize,
    data: Data<'a>,
}

impl<'a> Table<'a> {
    /// The cell at row `r`, column `c`.
    #[inline]
    pub(crate) fn cell(&self, r: usize, c: usize) -> Cell<'_> {
        match &self.data {
            Data::Dense(v) => Cell::Number(v[r * self.names.len() + c]),
            Data::Columns(cols) => match &cols[c] {
                Column::Numbers(v) => Cell::Number(v[r]),
                Column::Values(v) => match &v[r] {
                    Value::Number(x) => Cell::Number(*x),
                    Value::Text(t) => Cell::Text(t),
                    Value::Missing => Cell::Missing,
                },
            },
        }
    }

    /// The same table owning its cells.
    pub(crate) fn into_owned(self) -> Table<'static> {
        Table {
            names: self.names,
            rows: self.rows,
            data: match self.data {
                Data::Dense(v) => Data::Dense(Cow::Owned(v.into_owned())),
                Data::Columns(c) => Data::Columns(c),
            },
        }
    }

    /// Whether the table is a numpy array (its columns named by position).
    pub(crate) fn is_array(&self) -> bool {
        matches!(self.data, Data::Dense(_))
    }
}

/// A numpy array or data frame as a borrowed table, handed to `then`.
pub(crate) fn with_table<R>(
    x: &Bound<'_, PyAny>,
    then: impl FnOnce(Table<'_>) -> PyResult<R>,
) -> PyResult<R> {
    if is_data_frame(x)? {
        return then(frame(x)?);
    }
    let np = x.py().import("numpy")?;
    let arr = np
        .call_method1("ascontiguousarray", (x, "float64"))
        .map_err(|e| {
            Error::new_err(format!(
                "X must be a 2-D numeric array or a pandas DataFrame: {e}"
            ))
        })?;
    let ndim: usize = arr.getattr("ndim")?.extract()?;
    if ndim != 2 {
        return Err(Error::new_err(format!(
            "X must be 2-D (rows x columns), but has {ndim} dimensions: \
             reshape a single feature with X.reshape(-1, 1)"
        )));
    }
    let arr: PyReadonlyArray2<'_, f64> = arr.extract()?;
    let [rows, cols] = [arr.shape()[0], arr.shape()[1]];
    let names = (0..cols).map(position_name).collect();
    let values = arr
        .as_slice()
        .map_err(|e| Error::new_err(format!("X: {e}")))?;
    then(Table {
        names,
        rows,
        data: Data::Dense(Cow::Borrowed(values)),
    })
}

/// The name of a column known by its position: `x0`, `x1`, ... (a header
/// of numbers would read as a line of data).
fn position_name(i: usize) -> String {
    format!("x{i}")
}

fn is_data_frame(x: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(x.hasattr("columns")? && x.hasattr("dtypes")? && x.hasattr("iloc")?)
}

/// A data frame, column by column.
fn frame(df: &Bound<'_, PyAny>) -> PyResult<Table<'static>> {
    let names: Vec<String> = df
        .getattr("columns")?
        .try_iter()?
        .map(|c| {
            c.and_then(|c| match c.extract::<usize>() {
                Ok(i) if c.is_instance_of::<PyInt>() => Ok(position_name(i)),
                _ => c.str().map(|s| s.to_string()),
            })
        })
        .collect::<PyResult<_>>()?;
    let rows: usize = df.len()?;
    let iloc = df.getattr("iloc")?;
    let mut cols = Vec::with_capacity(names.len());
    for i in 0..names.len() {
        let s = iloc.get_item((pyo3::types::PySlice::full(df.py()), i))?;
        cols.push(series(&s)?);
    }
    Ok(Table {
        names,
        rows,
        data: Data::Columns(cols),
    })
}

/// One column of a data frame: numbers for a numeric dtype (not bool,
/// which a CSV file holds as `True`/`False`), else its values.
fn series(s: &Bound<'_, PyAny>) -> PyResult<Column> {
    let kind: String = s.getattr("dtype")?.getattr("kind")?.extract()?;
    if matches!(kind.as_str(), "i" | "u" | "f") {
        let np = s.py().import("numpy")?;
        let kw = pyo3::types::PyDict::new(s.py());
        kw.set_item("dtype", "float64")?;
        kw.set_item("na_value", np.getattr("nan")?)?;
        let a = s.call_method("to_numpy", (), Some(&kw))?;
        let a: PyReadonlyArray2<'_, f64> = a.call_method1("reshape", (-1, 1))?.extract()?;
        return Ok(Column::Numbers(a.as_array().iter().copied().collect()));
    }
    let values = s.call_method0("tolist")?;
    let values = values
        .try_iter()?
        .map(|v| v.and_then(|v| value(&v)))
        .collect::<PyResult<_>>()?;
    Ok(Column::Values(values))
}

/// A Python value as a cell: None and NaN are missing; bools are the text
/// pandas writes.
fn value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    Ok(if v.is_none() {
        Value::Missing
    } else if let Ok(b) = v.cast::<PyBool>() {
        Value::Text(if b.is_true() { "True" } else { "False" }.into())
    } else if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        match v.extract::<f64>()? {
            x if x.is_nan() => Value::Missing,
            x => Value::Number(x),
        }
    } else if let Ok(s) = v.cast::<PyString>() {
        Value::Text(s.to_cow()?.into_owned())
    } else {
        Value::Text(v.str()?.to_string())
    })
}

/// A table (and its labels) as the CSV text `train` reads, written by a
/// thread into a pipe; errors name it as `path`.
#[derive(Debug)]
pub(crate) struct FrameTable {
    pub(crate) path: PathBuf,
    pub(crate) table: Arc<Table<'static>>,
    /// One label a row, written as the last column, named `label_column`.
    pub(crate) labels: Option<(String, Arc<Vec<String>>)>,
}

impl GeneratedTable for FrameTable {
    fn path(&self) -> &Path {
        &self.path
    }

    fn start(
        &self,
    ) -> floodwatch::Result<(
        std::io::PipeReader,
        JoinHandle<floodwatch::Result<Vec<String>>>,
    )> {
        let (reader, writer) = std::io::pipe().map_err(|e| floodwatch::Error::io(&self.path, e))?;
        let (table, labels, path) = (self.table.clone(), self.labels.clone(), self.path.clone());
        let handle = std::thread::spawn(move || {
            let w = BufWriter::with_capacity(1 << 16, writer);
            write_csv(&table, labels.as_ref(), w)
                .map(|()| Vec::new())
                .map_err(|e| floodwatch::Error::io(&path, e))
        });
        Ok((reader, handle))
    }
}

/// Writes the header and every row as CSV.
fn write_csv(
    t: &Table<'_>,
    labels: Option<&(String, Arc<Vec<String>>)>,
    w: impl Write,
) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    let label_name = labels.map(|(n, _)| n.as_str());
    csv.write_record(t.names.iter().map(String::as_str).chain(label_name))?;
    let mut fields: Vec<Vec<u8>> = vec![Vec::new(); t.names.len()];
    for r in 0..t.rows {
        for (c, f) in fields.iter_mut().enumerate() {
            f.clear();
            t.cell(r, c).write_text(f);
        }
        let label = labels.map(|(_, l)| l[r].as_bytes());
        csv.write_record(fields.iter().map(Vec::as_slice).chain(label))?;
    }
    csv.flush()
}
