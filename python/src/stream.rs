//! `floodwatch.Stream`: `watch --model` in a notebook. Rows (a table model)
//! or packets (a stream model, or a table model trained on captures) fed
//! from Python run through the streaming engine (the same sources, scorers,
//! vote and alert episodes as `watch --stdin` and `watch --pcap`) on a
//! thread of its own; each feed returns the scores of what it fed and the
//! alerts raised meanwhile.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use floodwatch::detect::alert::Alert;
use floodwatch::detect::episode::TrackerParams;
use floodwatch::detect::metrics::Metrics;
use floodwatch::detect::saved::{self, Saved};
use floodwatch::detect::sink::AlertSink;
use floodwatch::detect::stream::source::{PacketRecords, QueueFeed};
use floodwatch::detect::stream::tabular::{BundleScorer, LineRecords};
use floodwatch::detect::stream::{
    Calibrate, Engine, EngineParams, RecordInfo, RecordSource, ScoreSink, SideSpec, StreamScorer,
    Summary,
};
use floodwatch::detect::vote::VoteParams;
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::packet::{FeatureExtractor, Side};
use floodwatch::features::stream_table::TableConfig;
use floodwatch::ingest::lines::Lines;
use floodwatch::ingest::packets::capture::PacketSource;
use floodwatch::ingest::packets::decode::decode;
use floodwatch::ingest::packets::frame::{LinkType, RawFrame};
use floodwatch::ingest::packets::PacketMeta;
use floodwatch::model::bundle::Bundle;
use numpy::{IntoPyArray, PyArrayMethods};
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
    /// One record's score on each side.
    Score(Vec<f64>),
    Alert(String),
}

/// Where fed records go.
#[derive(Clone)]
enum Input {
    /// CSV lines, as `watch --stdin` reads them.
    Rows(SyncSender<Lines>),
    /// Decoded packets, as a live capture's queue holds them.
    Packets(SyncSender<(PacketMeta, Instant)>),
}

/// What builds the engine's source and sides on its thread.
type Build = Box<dyn FnOnce() -> floodwatch::Result<(Box<dyn RecordSource>, Vec<SideSpec>)> + Send>;

/// A stream scored by a model: rows with `feed(X)` for a model of table
/// rows, packets with `feed_packets` or `feed_pcap` for a model of
/// packets. Each returns the scores and the alerts raised meanwhile;
/// `close()` the last alerts (open episodes end) and a summary.
#[pyclass(module = "floodwatch")]
pub(crate) struct Stream {
    /// The table model whose rows `feed` reads (None for packets).
    rows: Option<Arc<Bundle>>,
    /// Towards the engine; `None` once closed.
    input: Mutex<Option<Input>>,
    out: Mutex<Receiver<Out>>,
    engine: Mutex<Option<JoinHandle<floodwatch::Result<Summary>>>>,
    /// The header sent with the first rows.
    columns: Mutex<Option<Vec<String>>>,
    /// Packets fed so far (the next one's 1-based index is one more).
    packets: AtomicU64,
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
        let vote = VoteParams::new(vote.0, vote.1).map_err(to_py)?;
        let (input, rows, build) = source(model)?;
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
        let (out_tx, out_rx) = mpsc::channel();
        let engine = spawn(params, out_tx, build)?;
        Ok(Stream {
            rows,
            input: Mutex::new(Some(input)),
            out: Mutex::new(out_rx),
            engine: Mutex::new(Some(engine)),
            columns: Mutex::new(None),
            packets: AtomicU64::new(0),
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
        let Some(bundle) = &self.rows else {
            return Err(Error::new_err(
                "this stream scores packets: feed it with feed_packets or feed_pcap",
            ));
        };
        // Never wait for the lock holding the GIL: its holder needs the GIL
        // back to finish.
        let mut columns = self.columns.try_lock().map_err(|e| match e {
            std::sync::TryLockError::WouldBlock => {
                Error::new_err("this stream is being fed by another thread")
            }
            std::sync::TryLockError::Poisoned(_) => poisoned(()),
        })?;
        let (names, rows, chunks) = with_table(X, |t| {
            let names = header(bundle, &t);
            if let Some(c) = columns.as_ref().filter(|c| **c != names) {
                return Err(Error::new_err(format!(
                    "X has columns {names:?}, but the stream started with {c:?}"
                )));
            }
            let mut enc = bundle.schema.bind(&names, Path::new("X")).map_err(to_py)?;
            let mut row = vec![0.0; enc.width()];
            for r in 0..t.rows {
                enc.encode_cells(|c| t.cell(r, c), &mut row)
                    .map_err(|m| Error::new_err(format!("X, row {r}: {m}")))?;
            }
            let chunks = csv_lines(&t, &names, columns.is_none())?;
            Ok((names, t.rows, chunks))
        })?;
        let Input::Rows(sender) = self.sender()? else {
            return Err(Error::new_err("this stream scores packets"));
        };
        let sent = py.detach(|| {
            let sent = chunks.into_iter().try_for_each(|c| sender.send(c));
            self.collect(sent.is_ok(), rows)
        });
        let (scores, alerts) = sent?;
        *columns = Some(names);
        let first: Vec<f64> = scores
            .iter()
            .map(|s| s.first().copied().unwrap_or(f64::NAN))
            .collect();
        Ok((first.into_pyarray(py).into_any(), alerts_of(py, &alerts)?))
    }

    /// Scores packets given as `(timestamp, frame)` pairs (seconds since
    /// the epoch, the captured bytes from the link layer on, `link_type` as
    /// pcap's LINKTYPE_ values, 1 = Ethernet): an array of one column per
    /// side (destination, then source) and the alerts raised meanwhile.
    #[pyo3(signature = (packets, link_type=1))]
    fn feed_packets<'py>(
        &self,
        packets: &Bound<'py, PyAny>,
        link_type: u16,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>)> {
        let py = packets.py();
        let sender = self.packet_sender()?;
        let mut decoded = Vec::new();
        for item in packets.try_iter()? {
            let (ts, frame): (f64, Vec<u8>) = item?.extract().map_err(|e| {
                Error::new_err(format!("packets are (timestamp, bytes) pairs: {e}"))
            })?;
            let index = self.packets.fetch_add(1, Ordering::Relaxed) + 1;
            let raw = RawFrame {
                index,
                ts_ns: (ts * 1e9).round() as i64,
                wire_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
                link_type: LinkType(link_type),
                interface: 0,
                data: &frame,
            };
            decoded.push(decode(&raw));
        }
        let n = decoded.len();
        let (scores, alerts) = py.detach(|| {
            let sent = decoded
                .into_iter()
                .try_for_each(|p| sender.send((p, Instant::now())));
            self.collect(sent.is_ok(), n)
        })?;
        Ok((sides_array(py, scores)?, alerts_of(py, &alerts)?))
    }

    /// Scores every packet of the capture at `path` (pcap or pcapng), as
    /// `feed_packets` does; a damaged capture warns and scores what it read.
    fn feed_pcap<'py>(
        &self,
        py: Python<'py>,
        path: std::path::PathBuf,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<Bound<'py, PyAny>>)> {
        let sender = self.packet_sender()?;
        let mut source = PacketSource::open(&path).map_err(to_py)?;
        let (scores, alerts) = py.detach(|| {
            let mut n = 0;
            let mut sent = true;
            while let Some(p) = source.next_packet() {
                sent = sender.send((p, Instant::now())).is_ok();
                if !sent {
                    break;
                }
                n += 1;
            }
            self.collect(sent, n)
        })?;
        if let Some(damage) = source.damage() {
            let warnings = py.import("warnings")?;
            warnings.call_method1(
                "warn",
                (format!("floodwatch: capture ends early: {damage}"),),
            )?;
        }
        Ok((sides_array(py, scores)?, alerts_of(py, &alerts)?))
    }

    /// Ends the stream: open episodes end (their `end` alerts are returned)
    /// and the engine's summary (records, anomalies, episodes, alerts).
    fn close<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Vec<Bound<'py, PyAny>>, Bound<'py, PyDict>)> {
        let handle = {
            self.input.lock().map_err(poisoned)?.take();
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
        let alerts = alerts_of(py, &alerts)?;
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
    fn sender(&self) -> PyResult<Input> {
        self.input
            .lock()
            .map_err(poisoned)?
            .clone()
            .ok_or_else(|| Error::new_err("this stream is closed"))
    }

    fn packet_sender(&self) -> PyResult<SyncSender<(PacketMeta, Instant)>> {
        match self.sender()? {
            Input::Packets(s) => Ok(s),
            Input::Rows(_) => Err(Error::new_err(
                "this stream scores table rows: feed it with feed(X)",
            )),
        }
    }

    /// Waits for the scores of `n` records once they are all `sent` (else
    /// the engine stopped: its error).
    fn collect(&self, sent: bool, n: usize) -> PyResult<(Vec<Vec<f64>>, Vec<String>)> {
        if !sent {
            return Err(self.failure());
        }
        self.drain(n)
    }

    /// Up to `rows` scores (all that come, for `usize::MAX`) and the alerts
    /// sent meanwhile.
    fn drain(&self, rows: usize) -> PyResult<(Vec<Vec<f64>>, Vec<String>)> {
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

/// Starts the engine on its own thread, with the source and sides `build`
/// makes there; alerts and scores are sent to `out`.
fn spawn(
    params: EngineParams,
    out: Sender<Out>,
    build: Build,
) -> PyResult<JoinHandle<floodwatch::Result<Summary>>> {
    std::thread::Builder::new()
        .name("floodwatch-stream".into())
        .spawn(move || {
            let (mut source, sides) = build()?;
            let stop = Arc::new(AtomicBool::new(false));
            let metrics = Arc::new(Metrics::default());
            let mut engine = Engine::new(params, sides, metrics, stop)?
                .score_sink(Box::new(Scores(out.clone())));
            engine.run(source.as_mut(), &mut Alerts(out))
        })
        .map_err(|e| Error::new_err(format!("cannot start the stream's engine: {e}")))
}

/// The input, the table model of rows (if rows are fed) and the builder of
/// the engine's source and sides, for `model`: an AutoEncoder or a model
/// file's path.
fn source(model: &Bound<'_, PyAny>) -> PyResult<(Input, Option<Arc<Bundle>>, Build)> {
    let saved = match model.cast::<AutoEncoder>() {
        Ok(ae) => Saved::Table(Box::new((*ae.borrow().shared()?).clone())),
        Err(_) => {
            let path: std::path::PathBuf = model.extract()?;
            saved::load(&path).map_err(to_py)?
        }
    };
    match saved {
        Saved::Table(b) if b.capture.is_none() => {
            let bundle: Arc<Bundle> = Arc::from(b);
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            let shared = Arc::clone(&bundle);
            let build: Build = Box::new(move || {
                let records =
                    LineRecords::new(rx, Arc::new(AtomicU64::new(0)), shared.schema.clone(), "X");
                let (source, scorer) = floodwatch::detect::microbatch::batched(records, &shared);
                Ok((
                    Box::new(source) as Box<dyn RecordSource>,
                    vec![table_side(&shared, Box::new(scorer))],
                ))
            });
            Ok((Input::Rows(tx), Some(bundle), build))
        }
        Saved::Table(b) => {
            let capture = b
                .capture
                .as_ref()
                .map(|c| c.extractor())
                .transpose()
                .map_err(to_py)?;
            let features = capture.ok_or_else(|| Error::new_err("no capture layout"))?;
            if features.names() != b.schema.feature_names() {
                return Err(Error::new_err(
                    "the model's columns are not its layout's features",
                ));
            }
            let side = move || vec![table_side(&b, Box::new(BundleScorer::new(&b)))];
            Ok(packets(features, Box::new(move || Ok(side()))))
        }
        Saved::Stream(m) => {
            let layout = m
                .layout
                .clone()
                .unwrap_or_else(|| PacketLayout::DEFAULT.into());
            let layout: PacketLayout = layout.parse().map_err(to_py)?;
            let mut features = layout.extractor(TableConfig::default()).map_err(to_py)?;
            if features.names() != m.features() {
                return Err(Error::new_err(format!(
                    "the model reads {} features, but layout '{layout}' gives {} others: \
                     relearn it with watch --grace",
                    m.features().len(),
                    features.names().len()
                )));
            }
            if let Some(state) = &m.state {
                // As `watch`: tables that cannot be restored start cold.
                if let Err(e) = features.restore(state.json()) {
                    let warnings = model.py().import("warnings")?;
                    let msg =
                        format!("floodwatch: feature tables not restored ({e}): starting cold");
                    warnings.call_method1("warn", (msg,))?;
                }
            }
            Ok(packets(features, Box::new(move || Ok(m.into_sides()))))
        }
    }
}

/// A packet stream through `features`, scored by the sides `sides` makes.
fn packets(
    features: Box<dyn FeatureExtractor>,
    sides: Box<dyn FnOnce() -> floodwatch::Result<Vec<SideSpec>> + Send>,
) -> (Input, Option<Arc<Bundle>>, Build) {
    let (tx, rx) = mpsc::sync_channel(QUEUE * CHUNK_LINES);
    let build: Build = Box::new(move || {
        let feed = QueueFeed::new(rx, Arc::new(AtomicU64::new(0)));
        let source = PacketRecords::new(feed, features);
        Ok((Box::new(source) as Box<dyn RecordSource>, sides()?))
    });
    (Input::Packets(tx), None, build)
}

/// The one side of a table model: the destination, every feature.
fn table_side(b: &Bundle, scorer: Box<dyn StreamScorer>) -> SideSpec {
    SideSpec {
        side: Side::Destination,
        range: 0..b.schema.feature_names().len(),
        scorer,
        threshold: Some(f64::from(b.threshold)),
        calibration: None,
    }
}

/// Per-record side scores as an array of one column per side.
fn sides_array(py: Python<'_>, scores: Vec<Vec<f64>>) -> PyResult<Bound<'_, PyAny>> {
    let (n, k) = (scores.len(), scores.first().map_or(0, Vec::len));
    let flat: Vec<f64> = scores.into_iter().flatten().collect();
    if flat.len() != n * k {
        return Err(Error::new_err(
            "records scored by different numbers of sides",
        ));
    }
    Ok(flat.into_pyarray(py).reshape([n, k])?.into_any())
}

/// Alerts' JSON as Python dicts.
fn alerts_of<'py>(py: Python<'py>, alerts: &[String]) -> PyResult<Vec<Bound<'py, PyAny>>> {
    alerts.iter().map(|a| json(py, a)).collect()
}

/// Scores into the channel.
struct Scores(Sender<Out>);

impl ScoreSink for Scores {
    fn start(&mut self, _sides: usize) -> io::Result<()> {
        Ok(())
    }

    fn record(&mut self, _info: &RecordInfo, sides: Option<&[(f64, bool)]>) -> io::Result<()> {
        let scores = sides.map_or_else(Vec::new, |s| s.iter().map(|(v, _)| *v).collect());
        self.0.send(Out::Score(scores)).map_err(|_| closed())
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
