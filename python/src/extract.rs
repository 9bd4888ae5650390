//! Per-packet features of a capture into numpy arrays, written by the
//! extractor straight into the array's buffer (no text in between): the
//! values `floodwatch extract` writes as CSV.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Mutex;

use floodwatch::features::capture_table::ID_COLUMNS;
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::packet::FeatureExtractor;
use floodwatch::features::stream_table::TableConfig;
use floodwatch::ingest::packets::capture::PacketSource;
use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::prelude::*;

use crate::error::{to_py, Error};

/// A capture being read in chunks (from `iter_extract`): iterate over it.
#[pyclass(module = "floodwatch")]
pub(crate) struct Extraction {
    /// Locked by the one call reading it at a time.
    reading: Mutex<Reading>,
    names: Vec<String>,
    chunk: usize,
    as_frame: bool,
}

/// The extractor and its source.
struct Reading {
    extractor: Box<dyn FeatureExtractor>,
    source: PacketSource<BufReader<File>>,
    /// Warnings given once the capture is read.
    warned: bool,
}

/// Packets of one chunk: features row-major, index and time of each.
struct Chunk {
    x: Vec<f64>,
    index: Vec<u64>,
    time: Vec<f64>,
}

impl Extraction {
    fn open(path: PathBuf, layout: &str, table_capacity: usize) -> PyResult<Self> {
        let layout: PacketLayout = layout.parse().map_err(to_py)?;
        let config = TableConfig {
            capacity: table_capacity,
            ..TableConfig::default()
        };
        let extractor = layout.extractor(config).map_err(to_py)?;
        let source = PacketSource::open(&path).map_err(to_py)?;
        Ok(Extraction {
            names: extractor.names().to_vec(),
            reading: Mutex::new(Reading {
                extractor,
                source,
                warned: false,
            }),
            chunk: 65_536,
            as_frame: false,
        })
    }

    /// Up to `max` packets' features, the GIL released; warns at the end.
    fn read(&self, py: Python<'_>, max: usize) -> PyResult<Chunk> {
        let mut r = self
            .reading
            .lock()
            .map_err(|_| Error::new_err("an earlier read of this capture failed"))?;
        let d = self.names.len();
        let mut c = Chunk {
            x: Vec::with_capacity(max.min(self.chunk) * d),
            index: Vec::with_capacity(max.min(self.chunk)),
            time: Vec::with_capacity(max.min(self.chunk)),
        };
        let reading = &mut *r;
        py.detach(|| reading.read(max, d, &mut c));
        if c.index.len() < max {
            r.warn(py)?;
        }
        Ok(c)
    }
}

impl Reading {
    /// Up to `max` packets' features (`d` each), appended to `c`.
    fn read(&mut self, max: usize, d: usize, c: &mut Chunk) {
        for _ in 0..max {
            let Some(p) = self.source.next_packet() else {
                return;
            };
            let at = c.x.len();
            c.x.resize(at + d, 0.0);
            self.extractor.update(&p, &mut c.x[at..]);
            c.index.push(p.index);
            c.time.push(p.timestamp);
        }
    }

    /// Warns (Python's `warnings`) of skipped records and damage, once, as
    /// `extract` prints them.
    fn warn(&mut self, py: Python<'_>) -> PyResult<()> {
        if std::mem::replace(&mut self.warned, true) {
            return Ok(());
        }
        let skipped = self
            .source
            .problems()
            .iter()
            .map(|p| format!("skipped: {p}"));
        let damage = self
            .source
            .damage()
            .map(|d| format!("capture ends early: {d}"));
        let warnings = py.import("warnings")?;
        for w in skipped.chain(damage) {
            warnings.call_method1("warn", (format!("floodwatch: {w}"),))?;
        }
        Ok(())
    }
}

impl Extraction {
    /// A chunk as an array, or a DataFrame with `extract`'s CSV columns.
    fn to_python<'py>(&self, py: Python<'py>, c: Chunk) -> PyResult<Bound<'py, PyAny>> {
        let (n, d) = (c.index.len(), self.names.len());
        let x = c.x.into_pyarray(py).reshape([n, d])?;
        if !self.as_frame {
            return Ok(x.into_any());
        }
        let pd = py.import("pandas")?;
        let kw = pyo3::types::PyDict::new(py);
        kw.set_item("columns", self.names.clone())?;
        kw.set_item("copy", false)?;
        let df = pd.getattr("DataFrame")?.call((x,), Some(&kw))?;
        df.call_method1("insert", (0, ID_COLUMNS[0], c.index.into_pyarray(py)))?;
        df.call_method1("insert", (1, ID_COLUMNS[1], c.time.into_pyarray(py)))?;
        Ok(df)
    }
}

#[pymethods]
impl Extraction {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next chunk of at most `chunk` packets; StopIteration at the end.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let c = self.read(py, self.chunk)?;
        if c.index.is_empty() {
            return Ok(None);
        }
        self.to_python(py, c).map(Some)
    }

    /// The layout's feature names, in column order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.names.clone()
    }
}

/// Features of every packet of the capture at `path`, in the layout's
/// column order (`as_frame`: a DataFrame with `packet_index`, `timestamp`
/// and the layout's names, as `floodwatch extract`'s CSV).
#[pyfunction]
#[pyo3(signature = (path, layout=PacketLayout::DEFAULT, *, as_frame=false, table_capacity=100_000))]
pub(crate) fn extract<'py>(
    py: Python<'py>,
    path: PathBuf,
    layout: &str,
    as_frame: bool,
    table_capacity: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let mut e = Extraction::open(path, layout, table_capacity)?;
    e.as_frame = as_frame;
    let c = e.read(py, usize::MAX)?;
    e.to_python(py, c)
}

/// An iterator over the capture at `path` in chunks of at most `chunk`
/// packets (arrays, or DataFrames with `as_frame`): memory bounded by the
/// chunk, whatever the capture's length.
#[pyfunction]
#[pyo3(signature = (path, layout=PacketLayout::DEFAULT, *, chunk=65_536, as_frame=false, table_capacity=100_000))]
pub(crate) fn iter_extract(
    path: PathBuf,
    layout: &str,
    chunk: usize,
    as_frame: bool,
    table_capacity: usize,
) -> PyResult<Extraction> {
    if chunk == 0 {
        return Err(Error::new_err("chunk should be at least 1 packet"));
    }
    let mut e = Extraction::open(path, layout, table_capacity)?;
    (e.chunk, e.as_frame) = (chunk, as_frame);
    Ok(e)
}

/// The feature names of `layout`.
#[pyfunction]
pub(crate) fn feature_names(layout: &str) -> PyResult<Vec<String>> {
    let layout: PacketLayout = layout.parse().map_err(to_py)?;
    let x = layout.extractor(TableConfig::default()).map_err(to_py)?;
    Ok(x.names().to_vec())
}
