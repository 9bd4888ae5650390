//! `floodwatch.Stream`: `watch --stdin --model` in a notebook. Rows fed from
//! Python run through the streaming engine (the same source, batched
//! scorer, vote and alert episodes as `watch`) on a thread of its own; each
//! `feed` returns the rows' scores and the alerts they raised.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use floodwatch::detect::alert::Alert;
use floodwatch::detect::episode::TrackerParams;
use floodwatch::detect::metrics::Metrics;
use floodwatch::detect::sink::AlertSink;
use floodwatch::detect::stream::tabular::LineRecords;
use floodwatch::detect::stream::{
    Calibrate, Engine, EngineParams, RecordInfo, ScoreSink, SideSpec, Summary,
};
use floodwatch::detect::vote::VoteParams;
use floodwatch::features::packet::Side;
use floodwatch::ingest::lines::Lines;
use floodwatch::model::bundle::Bundle;
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{to_py, Error};
use crate::estimator::{header, AutoEncoder};
use crate::table::{with_table, Table};

/// Lines a chunk, as `watch` reads standard input.
const CHUNK_LINES: usize = 256;
/// Chunks queued towards the engine (memory stays bounded by it).
const QUEUE: usize = 64;

/// What the engine thread sends back.
enum Out {
    Score(f64),
    Alert(String),
}

/// A stream of table rows scored by a model from `train` (or
/// `AutoEncoder.fit`): `feed(X)` returns `(scores, alerts)`, `close()` the
/// last alerts (open episodes end) and a summary.
#[pyclass(module = "floodwatch")]
pub(crate) struct Stream {
    bundle: Arc<Bundle>,
    /// Towards the engine; `None` once closed.
    lines: Mutex<Option<SyncSender<Lines>>>,
    out: Mutex<Receiver<Out>>,
    engine: Mutex<Option<JoinHandle<floodwatch::Result<Summary>>>>,
    /// The header sent with the first rows.
    columns: Mutex<Option<Vec<String>>>,
}

#[pymethods]
impl Stream {
    /// A stream scored by `model` (an AutoEncoder, or a model file's path),
    /// with `watch`'s vote (`vote` = (window, votes)), episode timeout in
    /// seconds of record time, and features named in each alert.
    #[new]
    #[pyo3(signature = (model, *, vote=(10, 6), episode_timeout=30.0, top_features=5))]
    fn new(
        model: &Bound<'_, PyAny>,
        vote: (u32, u32),
        episode_timeout: f64,
        top_features: usize,
    ) -> PyResult<Self> {
        let bundle = match model.cast::<AutoEncoder>() {
            Ok(ae) => ae.borrow().shared()?,
            Err(_) => {
                let path: std::path::PathBuf = model.extract()?;
                Arc::new(Bundle::load(&path).map_err(to_py)?)
            }
        };
        let vote = VoteParams::new(vote.0, vote.1).map_err(to_py)?;
        let params = EngineParams {
            tracker: TrackerParams::new()
                .vote(vote)
                .episode_timeout(episode_timeout)
                .top_features(top_features),
            top_features,
            save_model: None,
            grace: None,
            calibrate: Calibrate::Budget(1.0),
            drift: None,
            layout: None,
        };
        let (lines_tx, lines_rx) = mpsc::sync_channel(QUEUE);
        let (out_tx, out_rx) = mpsc::channel();
        let engine = spawn(Arc::clone(&bundle), params, lines_rx, out_tx)?;
        Ok(Stream {
            bundle,
            lines: Mutex::new(Some(lines_tx)),
            out: Mutex::new(out_rx),
            engine: Mutex::new(Some(engine)),
            columns: Mutex::new(None),
        })
    }

    /// Scores the rows of `X` (an array or a DataFrame with the model's
    /// columns; address and time columns name the alerts' hosts and
    /// times, as in `watch --stdin`): their scores (float64 holding the
    /// float32 scores) and the alerts (EVE dicts) raised meanwhile. A row
    /// the model cannot read raises before any row is fed.
    #[allow(non_snake_case)]
    fn feed<'py>(
        &self,
        X: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>)> {
        let py = X.py();
        // Never wait for the lock holding the GIL: its holder needs the GIL
        // back to finish.
        let mut columns = self.columns.try_lock().map_err(|e| match e {
            std::sync::TryLockError::WouldBlock => {
                Error::new_err("this stream is being fed by another thread")
            }
            std::sync::TryLockError::Poisoned(_) => poisoned(()),
        })?;
        let (names, rows, chunks) = with_table(X, |t| {
            let names = header(&self.bundle, &t);
            if let Some(c) = columns.as_ref().filter(|c| **c != names) {
                return Err(Error::new_err(format!(
                    "X has columns {names:?}, but the stream started with {c:?}"
                )));
            }
            let mut enc = self
                .bundle
                .schema
                .bind(&names, Path::new("X"))
                .map_err(to_py)?;
            let mut row = vec![0.0; enc.width()];
            for r in 0..t.rows {
                enc.encode_cells(|c| t.cell(r, c), &mut row)
                    .map_err(|m| Error::new_err(format!("X, row {r}: {m}")))?;
            }
            let chunks = csv_lines(&t, &names, columns.is_none())?;
            Ok((names, t.rows, chunks))
        })?;
        let sender = self.sender()?;
        let (scores, alerts) = py.detach(|| self.send_and_collect(&sender, chunks, rows))?;
        *columns = Some(names);
        let alerts = alerts
            .iter()
            .map(|a| json(py, a))
            .collect::<PyResult<_>>()?;
        Ok((scores.into_pyarray(py).into_any(), alerts))
    }

    /// Ends the stream: open episodes end (their `end` alerts are returned)
    /// and the engine's summary (records, anomalies, episodes, alerts).
    fn close<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Vec<Bound<'py, PyAny>>, Bound<'py, PyDict>)> {
        let handle = {
            self.lines.lock().map_err(poisoned)?.take();
            self.engine.lock().map_err(poisoned)?.take()
        };
        let Some(handle) = handle else {
            return Err(Error::new_err("this stream is closed"));
        };
        let summary = py.detach(|| handle.join());
        let summary = summary
            .map_err(|_| Error::new_err("the stream's engine failed"))?
            .map_err(to_py)?;
        let (_, alerts) = self.drain(usize::MAX)?;
        let alerts = alerts
            .iter()
            .map(|a| json(py, a))
            .collect::<PyResult<_>>()?;
        let d = PyDict::new(py);
        d.set_item("records", summary.records)?;
        d.set_item("rejected", summary.rejected)?;
        d.set_item("anomalies", summary.anomalies)?;
        d.set_item("episodes", summary.episodes)?;
        d.set_item("alerts", summary.alerts)?;
        Ok((alerts, d))
    }
}

impl Stream {
    fn sender(&self) -> PyResult<SyncSender<Lines>> {
        self.lines
            .lock()
            .map_err(poisoned)?
            .clone()
            .ok_or_else(|| Error::new_err("this stream is closed"))
    }

    /// Sends the chunks and waits for `rows` scores.
    fn send_and_collect(
        &self,
        sender: &SyncSender<Lines>,
        chunks: Vec<Lines>,
        rows: usize,
    ) -> PyResult<(Vec<f64>, Vec<String>)> {
        for chunk in chunks {
            if sender.send(chunk).is_err() {
                return Err(self.failure());
            }
        }
        self.drain(rows)
    }

    /// Up to `rows` scores (all that come, for `usize::MAX`) and the alerts
    /// sent meanwhile.
    fn drain(&self, rows: usize) -> PyResult<(Vec<f64>, Vec<String>)> {
        let out = self.out.lock().map_err(poisoned)?;
        let (mut scores, mut alerts) = (Vec::new(), Vec::new());
        while scores.len() < rows {
            let next = if rows == usize::MAX {
                out.try_recv().ok()
            } else {
                out.recv().ok()
            };
            match next {
                Some(Out::Score(s)) => scores.push(s),
                Some(Out::Alert(a)) => alerts.push(a),
                None if rows == usize::MAX => break,
                None => {
                    drop(out);
                    return Err(self.failure());
                }
            }
        }
        while let Ok(Out::Alert(a)) = out.try_recv() {
            alerts.push(a);
        }
        Ok((scores, alerts))
    }

    /// The engine's error, once its thread has ended.
    fn failure(&self) -> PyErr {
        let handle = self.engine.lock().ok().and_then(|mut e| e.take());
        match handle.map(JoinHandle::join) {
            Some(Ok(Err(e))) => to_py(e),
            _ => Error::new_err("the stream's engine stopped"),
        }
    }
}

/// Starts the engine on its own thread: `watch --stdin`'s source and
/// batched scorer, alerts and scores sent to `out`.
fn spawn(
    bundle: Arc<Bundle>,
    params: EngineParams,
    lines: Receiver<Lines>,
    out: Sender<Out>,
) -> PyResult<JoinHandle<floodwatch::Result<Summary>>> {
    std::thread::Builder::new()
        .name("floodwatch-stream".into())
        .spawn(move || {
            let records = LineRecords::new(
                lines,
                Arc::new(AtomicU64::new(0)),
                bundle.schema.clone(),
                "X",
            );
            let (mut source, scorer) = floodwatch::detect::microbatch::batched(records, &bundle);
            let side = SideSpec {
                side: Side::Destination,
                range: 0..bundle.schema.feature_names().len(),
                scorer: Box::new(scorer),
                threshold: Some(f64::from(bundle.threshold)),
                calibration: None,
            };
            let stop = Arc::new(AtomicBool::new(false));
            let metrics = Arc::new(Metrics::default());
            let mut engine = Engine::new(params, vec![side], metrics, stop)?
                .score_sink(Box::new(Scores(out.clone())));
            engine.run(&mut source, &mut Alerts(out))
        })
        .map_err(|e| Error::new_err(format!("cannot start the stream's engine: {e}")))
}

/// Scores into the channel.
struct Scores(Sender<Out>);

impl ScoreSink for Scores {
    fn start(&mut self, _sides: usize) -> io::Result<()> {
        Ok(())
    }

    fn record(&mut self, _info: &RecordInfo, sides: Option<&[(f64, bool)]>) -> io::Result<()> {
        let score = sides.and_then(|s| s.first()).map_or(f64::NAN, |s| s.0);
        self.0.send(Out::Score(score)).map_err(|_| closed())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Alerts, as their EVE JSON, into the channel.
struct Alerts(Sender<Out>);

impl AlertSink for Alerts {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        let text = serde_json::to_string(alert)?;
        self.0.send(Out::Alert(text)).map_err(|_| closed())
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the stream was dropped")
}

fn poisoned<T>(_: T) -> PyErr {
    Error::new_err("an earlier call on this stream failed")
}

/// The rows of `t` (columns `names`) as CSV lines in chunks, the header
/// first when `header` is set. A blank line would be skipped, not scored:
/// a row that makes one is refused.
fn csv_lines(t: &Table<'_>, names: &[String], header: bool) -> PyResult<Vec<Lines>> {
    let mut chunks = vec![Lines::new()];
    let mut field = Vec::new();
    let header = header.then(|| names.iter().map(|n| n.as_bytes().to_vec()).collect());
    let skip = usize::from(header.is_some());
    let rows = (0..t.rows).map(|r| {
        (0..names.len())
            .map(|c| {
                field.clear();
                t.cell(r, c).write_text(&mut field);
                field.clone()
            })
            .collect::<Vec<_>>()
    });
    for (i, record) in header.into_iter().chain(rows).enumerate() {
        let line = csv_line(&record)?;
        if line.trim().is_empty() {
            return Err(Error::new_err(format!(
                "X, row {}: an empty row cannot be streamed (watch skips blank lines)",
                i.saturating_sub(skip)
            )));
        }
        if chunks.last().is_some_and(|c| c.len() >= CHUNK_LINES) {
            chunks.push(Lines::new());
        }
        if let Some(c) = chunks.last_mut() {
            c.push(&line);
        }
    }
    Ok(chunks)
}

/// One record as a CSV line (quoted where needed), without its line end.
fn csv_line(record: &[Vec<u8>]) -> PyResult<String> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(record)
        .map_err(|e| Error::new_err(e.to_string()))?;
    let bytes = w
        .into_inner()
        .map_err(|e| Error::new_err(e.error().to_string()))?;
    Ok(String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_owned())
}

/// An alert's JSON as a Python dict.
fn json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}
