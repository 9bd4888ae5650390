//! Per-packet features of a capture into numpy arrays, written by the
//! extractor straight into the array's buffer (no text in between): the
//! values `floodwatch extract` writes as CSV.
//!
//! Fresh memory costs a page fault a 4 KiB page when first written: at 800
//! bytes a packet (100 features), a quarter of the time went there. A second
//! thread therefore writes to each page a few blocks ahead of the extractor
//! ([`prefaulted`]), so faults are taken on the other core. (numpy's huge
//! pages were slower: the kernel compacts memory to find them.)

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::sync::Mutex;

use floodwatch::features::capture_table::ID_COLUMNS;
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::packet::FeatureExtractor;
use floodwatch::features::stream_table::TableConfig;
use floodwatch::ingest::packets::capture::PacketSource;
use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::prelude::*;

use crate::error::{to_py, Error};

/// Bytes of capture per packet assumed when sizing `extract`'s buffer: a
/// minimal frame and its record header. Smaller records grow the buffer;
/// pages of rows never written are never touched.
const MIN_RECORD_BYTES: u64 = 64;
/// Rows handed from the page-touching thread to the extractor at a time.
const BLOCK_ROWS: usize = 1024;
/// Blocks the page-touching thread may run ahead.
const AHEAD: usize = 4;
/// `f64` values a page.
const PAGE_VALUES: usize = 4096 / 8;

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

/// Buffers being filled: features (row-major), index and time of each
/// packet; zeroed allocations, so untouched pages cost nothing.
struct Chunk {
    x: Vec<f64>,
    index: Vec<u64>,
    time: Vec<f64>,
}

impl Chunk {
    fn new(rows: usize, d: usize) -> Self {
        Chunk {
            x: vec![0.0; rows * d],
            index: vec![0; rows],
            time: vec![0.0; rows],
        }
    }

    fn resize(&mut self, rows: usize, d: usize) {
        self.x.resize(rows * d, 0.0);
        self.index.resize(rows, 0);
        self.time.resize(rows, 0.0);
    }
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

    /// Fills rows `from..` of `c` with the next packets, the GIL released;
    /// returns the rows filled in all, and warns when the capture ended.
    fn fill(&self, py: Python<'_>, c: &mut Chunk, from: usize) -> PyResult<usize> {
        // Never wait for the lock holding the GIL: its holder needs the GIL
        // back to finish.
        let mut r = self.reading.try_lock().map_err(|e| match e {
            std::sync::TryLockError::WouldBlock => {
                Error::new_err("this capture is being read by another thread")
            }
            std::sync::TryLockError::Poisoned(_) => {
                Error::new_err("an earlier read of this capture failed")
            }
        })?;
        let d = self.names.len();
        let reading = &mut *r;
        let (x, index, time) = (
            &mut c.x[from * d..],
            &mut c.index[from..],
            &mut c.time[from..],
        );
        let n = py.detach(|| prefaulted(reading, d, x, index, time));
        if from + n < c.index.len() {
            r.warn(py)?;
        }
        Ok(from + n)
    }

    /// The first `rows` rows of `c` as an array, or a DataFrame with
    /// `extract`'s CSV columns.
    fn to_python<'py>(
        &self,
        py: Python<'py>,
        mut c: Chunk,
        rows: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let d = self.names.len();
        c.resize(rows, d);
        c.x.shrink_to_fit();
        let x = c.x.into_pyarray(py).reshape([rows, d])?;
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

/// [`Reading::read`] into `x`, `index` and `time` (rows of `d` features)
/// block by block, while a second thread writes once to every page of the
/// blocks ahead, taking their page faults; returns the rows read.
fn prefaulted(
    r: &mut Reading,
    d: usize,
    x: &mut [f64],
    index: &mut [u64],
    time: &mut [f64],
) -> usize {
    let blocks = x.chunks_mut(BLOCK_ROWS * d.max(1)).zip(
        index
            .chunks_mut(BLOCK_ROWS)
            .zip(time.chunks_mut(BLOCK_ROWS)),
    );
    std::thread::scope(|s| {
        let (ready, blocks_in) = sync_channel(AHEAD);
        s.spawn(move || {
            for (x, (i, t)) in blocks {
                x.iter_mut().step_by(PAGE_VALUES).for_each(|v| *v = 0.0);
                i.iter_mut().step_by(PAGE_VALUES).for_each(|v| *v = 0);
                t.iter_mut().step_by(PAGE_VALUES).for_each(|v| *v = 0.0);
                // A closed channel: the capture ended, nothing more to touch.
                if ready.send((x, i, t)).is_err() {
                    return;
                }
            }
        });
        let mut n = 0;
        for (x, i, t) in blocks_in {
            let k = r.read(x, i, t);
            n += k;
            if k < i.len() {
                break;
            }
        }
        n
    })
}

impl Reading {
    /// Features (`x`, row-major), index and time of the next packets, as
    /// many as `index` has room for; returns how many were read.
    fn read(&mut self, x: &mut [f64], index: &mut [u64], time: &mut [f64]) -> usize {
        let d = x.len() / index.len().max(1);
        let rows = x.chunks_exact_mut(d.max(1)).zip(index.iter_mut().zip(time));
        let mut n = 0;
        for (out, (i, t)) in rows {
            let Some(p) = self.source.next_packet() else {
                break;
            };
            self.extractor.update(&p, out);
            (*i, *t) = (p.index, p.timestamp);
            n += 1;
        }
        n
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

#[pymethods]
impl Extraction {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next chunk of at most `chunk` packets; StopIteration at the end.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut c = Chunk::new(self.chunk, self.names.len());
        match self.fill(py, &mut c, 0)? {
            0 => Ok(None),
            n => self.to_python(py, c, n).map(Some),
        }
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
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    let mut e = Extraction::open(path, layout, table_capacity)?;
    e.as_frame = as_frame;
    let d = e.names.len();
    let mut rows = (bytes / MIN_RECORD_BYTES).max(BLOCK_ROWS as u64) as usize;
    let mut c = Chunk::new(rows, d);
    let mut n = 0;
    loop {
        n = e.fill(py, &mut c, n)?;
        if n < rows {
            return e.to_python(py, c, n);
        }
        rows *= 2;
        c.resize(rows, d);
    }
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
