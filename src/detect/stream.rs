//! The streaming engine: records one at a time from a [`RecordSource`],
//! through a [`StreamScorer`], into the vote and alert episodes
//! ([`EpisodeTracker`]) and an [`AlertSink`], with every record's latency
//! measured into [`Metrics`] and, on request, a score line per record.
//!
//! ```text
//! source ──features──▶ scorer ──score──▶ threshold ──▶ vote ─▶ episodes ─▶ sinks
//!                        │ (grace: learn)                       (start/end alerts)
//!                        └──▶ --scores FILE.csv, Metrics (latency, counts, tables)
//! ```
//!
//! The hot path allocates nothing: explanations (the top contributing
//! features) are computed only for anomalous records.

pub mod calibrate;
pub mod drift;
pub mod flows;
pub mod grace;
pub mod scorer;
pub mod scores;
pub mod source;
pub mod tabular;

use std::io::{self, Write};
use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::alert::{Alert, FeatureShare, ScoredRecord};
use super::episode::{EpisodeTracker, TargetKey, TrackerParams};
use super::metrics::Metrics;
use super::sink::AlertSink;
use crate::features::packet::{FeatureGroup, Side};
use crate::model::kitnet::KitNetParams;
use crate::model::AutoencoderParams;
use crate::{Error, Result};
use calibrate::{Calibration, Calibrator};
use drift::{Drift, DriftSummary};
pub use grace::Grace;
pub use scorer::{Detector, OnlineAutoencoder, OnlineKitNet, SavedModel, SavedSide, StreamScorer};
pub use scores::{CsvScores, ScoreSink};
pub use source::{Next, RecordInfo, RecordSource, TableUsage};

/// Records between two refreshes of the table gauges in the metrics.
const USAGE_EVERY: u64 = 1024;
/// Rejection messages kept for the summary.
const KEPT_REJECTIONS: usize = 5;

/// Counts the alerts going to the sink into the metrics.
struct Counted<'a, S: ?Sized> {
    sink: &'a mut S,
    metrics: &'a Metrics,
}

impl<S: AlertSink + ?Sized> AlertSink for Counted<'_, S> {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        self.metrics.alerts.fetch_add(1, Relaxed);
        self.sink.alert(alert)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.sink.finish()
    }
}

/// What one side of a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct SideSummary {
    /// The end of the packet the side is about.
    pub side: Side,
    /// Its threshold (infinite while in grace).
    pub threshold: f64,
    /// How the threshold was calibrated, when it was in this run.
    pub calibration: Option<Calibration>,
    /// Records above the threshold.
    pub anomalies: u64,
    /// Alert episodes started.
    pub episodes: u64,
    /// How the threshold followed drift, when it did.
    pub drift: Option<DriftSummary>,
}

/// What a run did, for the summary printed at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Records read and processed (learned from or scored).
    pub records: u64,
    /// Records learned from or held back during grace (not scored for alerts).
    pub grace: u64,
    /// Capture seconds grace spanned.
    pub grace_seconds: f64,
    /// Malformed records rejected (including unreadable frames).
    pub rejected: u64,
    /// Records dropped because input outran scoring.
    pub dropped: u64,
    /// Scored records above a threshold (of any side).
    pub anomalies: u64,
    /// Alert events written (episode starts and ends).
    pub alerts: u64,
    /// Alert episodes started.
    pub episodes: u64,
    /// Each side's figures.
    pub sides: Vec<SideSummary>,
    /// State table entries at the end.
    pub table_entries: u64,
    /// State table evictions.
    pub evictions: u64,
    /// Upper bound of the 99th percentile of per-record latency (seconds),
    /// from the histogram buckets; `None` when beyond the last bucket.
    pub p99_latency: Option<f64>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Whether the run ended on a stop request rather than end of input.
    pub stopped: bool,
    /// The first rejection messages.
    pub rejections: Vec<String>,
    /// Where the learned model was saved, if it was.
    pub saved_model: Option<PathBuf>,
}

/// One detector of an [`Engine`]: the features of one end of the packet,
/// its scorer and, once known, its threshold.
pub struct SideSpec {
    /// The end of the packet: the host its episodes name.
    pub side: Side,
    /// Where its features are in the record.
    pub range: Range<usize>,
    /// The scorer (fitted, or to learn during grace).
    pub scorer: Box<dyn StreamScorer>,
    /// The threshold, when loaded with the scorer.
    pub threshold: Option<f64>,
    /// How that threshold was calibrated, when known (drift is followed
    /// from it).
    pub calibration: Option<Calibration>,
}

impl std::fmt::Debug for SideSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideSpec")
            .field("side", &self.side)
            .field("range", &self.range)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// The detector each side learns during grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlineDetector {
    /// A dense autoencoder trained for this many epochs.
    Autoencoder {
        /// Training epochs.
        epochs: usize,
    },
    /// Kitsune's KitNET ensemble.
    Kitnet,
}

/// Hidden widths for `d` inputs: 3/4 then 1/3 of the input, as Kitsune's
/// small autoencoders, which keeps per-record scoring cheap.
pub fn hidden_for(d: usize) -> [usize; 4] {
    let h1 = (d * 3 / 4).max(2);
    let h2 = (d / 3).max(1);
    [h1, h2, h2, h1]
}

/// One detector to learn per feature group (signed log1p scaling, at most
/// `sample` grace records kept to learn from).
pub fn learning_sides(
    groups: Vec<FeatureGroup>,
    detector: OnlineDetector,
    sample: usize,
) -> Vec<SideSpec> {
    groups
        .into_iter()
        .map(|g| {
            let d = g.range.len();
            let scorer: Box<dyn StreamScorer> = match detector {
                OnlineDetector::Autoencoder { epochs } => {
                    let ae = AutoencoderParams::new()
                        .hidden(hidden_for(d))
                        .epochs(epochs)
                        .batch_size(32);
                    Box::new(OnlineAutoencoder::new(d, ae, true, sample))
                }
                OnlineDetector::Kitnet => {
                    Box::new(OnlineKitNet::new(d, KitNetParams::new(), true, sample))
                }
            };
            SideSpec {
                side: g.side,
                range: g.range,
                scorer,
                threshold: None,
                calibration: None,
            }
        })
        .collect()
}

impl SavedModel {
    /// Its sides, ready to score.
    pub fn into_sides(self) -> Vec<SideSpec> {
        self.sides
            .into_iter()
            .map(|s| SideSpec {
                side: s.side,
                range: s.range.0..s.range.1,
                scorer: s.detector.into_scorer(),
                threshold: Some(s.threshold),
                calibration: s.calibration,
            })
            .collect()
    }
}

/// How thresholds are set at the end of grace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Calibrate {
    /// For this many false alert episodes a day (over all sides).
    Budget(f64),
    /// The quantile of the held-back records' scores (per record).
    Quantile(f64),
}

/// Settings of an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineParams {
    /// Vote, episode timeout; its threshold is set per side once known.
    pub tracker: TrackerParams,
    /// Features named in each alert.
    pub top_features: usize,
    /// Where to save the model learned online, once out of grace and again
    /// at the end of the run (with the feature tables, for a warm restart).
    pub save_model: Option<PathBuf>,
    /// The grace period, when the sides learn.
    pub grace: Option<Grace>,
    /// How thresholds are set at the end of grace.
    pub calibrate: Calibrate,
    /// Seconds between moves of the thresholds with benign drift (`None`:
    /// they stay as calibrated); see [`drift`].
    pub drift: Option<f64>,
    /// The packet layout's name, kept in a saved model.
    pub layout: Option<String>,
}

/// Where the engine is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Learn,
    Calibrate,
    Detect,
}

/// One side at run time.
struct SideRun {
    spec: SideSpec,
    tracker: Option<EpisodeTracker>,
    calibrator: Option<Calibrator>,
    threshold: f64,
    calibration: Option<Calibration>,
    drift: Option<Drift>,
    anomalies: u64,
}

impl SideRun {
    fn host(&self, info: &RecordInfo) -> IpAddr {
        match self.spec.side {
            Side::Destination => info.flow.dest_ip,
            Side::Source => info.flow.src_ip,
        }
    }

    /// Starts following drift from the calibration, at capture time `t`;
    /// without a reference to follow from, drift is not followed.
    fn follow_drift(&mut self, t: f64) {
        let cal = self.calibration.as_ref().filter(|c| c.reference > 0.0);
        match (cal, &mut self.drift) {
            (Some(c), Some(d)) => d.start(c.threshold, c.reference, self.threshold, t),
            _ => self.drift = None,
        }
    }

    /// Counts a scored record judged normal towards drift, and moves the
    /// threshold when a period ends.
    #[inline]
    fn track_drift(&mut self, info: &RecordInfo, score: f64, above: bool) {
        let host = self.host(info);
        let (Some(d), Some(tracker)) = (&mut self.drift, &mut self.tracker) else {
            return;
        };
        let t = info.timestamp;
        if !t.is_finite() {
            return;
        }
        if !above && Drift::sampled(info.index) {
            d.observe(host, t, score, |h| tracker.open_family(h).is_some());
        }
        if d.due(t) {
            if let Some(new) = d.tick(t, |h| tracker.open_family(h).is_some()) {
                self.threshold = new;
                tracker.set_threshold(new);
            }
        }
    }
}

/// The grace report, handed to [`Engine::on_grace_end`]'s callback.
#[derive(Debug, Clone)]
pub struct GraceReport {
    /// Records of grace (learned from and held back).
    pub records: u64,
    /// Capture seconds grace spanned.
    pub seconds: f64,
    /// Each side and its calibration.
    pub sides: Vec<(Side, Calibration)>,
}

/// Called once grace ends.
pub type GraceHook = Box<dyn FnMut(&GraceReport)>;

/// The streaming engine; see the [module docs](self).
pub struct Engine {
    params: EngineParams,
    sides: Vec<SideRun>,
    phase: Phase,
    grace_t0: f64,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    scores: Option<Box<dyn ScoreSink>>,
    on_grace_end: Option<GraceHook>,
    x: Vec<f64>,
    shares: Vec<f64>,
    top: Vec<FeatureShare>,
    names: Vec<String>,
    summary: Summary,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("params", &self.params)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine scoring with `sides`, counting into `metrics`, and
    /// stopping (after the current record) once `stop` is set. Without a
    /// grace period every side needs a fitted scorer and a threshold.
    pub fn new(
        params: EngineParams,
        sides: Vec<SideSpec>,
        metrics: Arc<Metrics>,
        stop: Arc<AtomicBool>,
    ) -> Result<Self> {
        if sides.is_empty() {
            return Err(Error::Model(
                "the engine needs at least one detector".into(),
            ));
        }
        let phase = match params.grace {
            Some(g) => {
                g.validate()?;
                Phase::Learn
            }
            None => {
                if sides
                    .iter()
                    .any(|s| !s.scorer.ready() || s.threshold.is_none())
                {
                    return Err(Error::Model(
                        "a detector without a threshold needs a grace period to learn".into(),
                    ));
                }
                Phase::Detect
            }
        };
        let sides = sides
            .into_iter()
            .map(|mut spec| {
                let threshold = spec.threshold.unwrap_or(f64::INFINITY);
                let calibration = spec.calibration.take();
                let drift = params.drift.map(Drift::new);
                let mut run = SideRun {
                    threshold,
                    spec,
                    tracker: None,
                    calibrator: None,
                    calibration,
                    drift,
                    anomalies: 0,
                };
                if params.grace.is_none() {
                    run.follow_drift(f64::NAN);
                }
                run
            })
            .collect();
        Ok(Engine {
            params,
            sides,
            phase,
            grace_t0: f64::NAN,
            metrics,
            stop,
            scores: None,
            on_grace_end: None,
            x: Vec::new(),
            shares: Vec::new(),
            top: Vec::new(),
            names: Vec::new(),
            summary: Summary {
                records: 0,
                grace: 0,
                grace_seconds: 0.0,
                rejected: 0,
                dropped: 0,
                anomalies: 0,
                alerts: 0,
                episodes: 0,
                sides: Vec::new(),
                table_entries: 0,
                evictions: 0,
                p99_latency: None,
                elapsed: Duration::ZERO,
                stopped: false,
                rejections: Vec::new(),
                saved_model: None,
            },
        })
    }

    /// Also writes `index,timestamp,score,is_anomaly` for every record to
    /// `out` (score and flag empty during grace), and `src_score,
    /// src_is_anomaly` when there is a source side.
    pub fn scores_to(self, out: Box<dyn Write>) -> Self {
        self.score_sink(Box::new(CsvScores::new(out)))
    }

    /// Gives every record's scores to `sink`.
    pub fn score_sink(mut self, sink: Box<dyn ScoreSink>) -> Self {
        self.scores = Some(sink);
        self
    }

    /// Calls `hook` once grace ends, with the calibration of each side.
    pub fn on_grace_end(mut self, hook: GraceHook) -> Self {
        self.on_grace_end = Some(hook);
        self
    }

    /// Runs until the source ends or a stop is requested, then flushes the
    /// open episodes to `sink` and saves the model when asked to. Errors:
    /// writing alerts or scores, saving the model, a scorer failing to
    /// learn, and input that ends before grace does.
    pub fn run(
        &mut self,
        source: &mut dyn RecordSource,
        sink: &mut dyn AlertSink,
    ) -> Result<Summary> {
        let started = Instant::now();
        self.names = source.names().to_vec();
        let width = self.names.len();
        if let Some(s) = self.sides.iter().find(|s| s.spec.range.end > width) {
            return Err(Error::Model(format!(
                "a detector reads features {:?} of a record of {width}",
                s.spec.range
            )));
        }
        self.x = vec![0.0; width];
        self.shares = vec![0.0; width];
        self.write_header()?;
        let metrics = Arc::clone(&self.metrics);
        let mut sink = Counted {
            sink,
            metrics: &metrics,
        };
        if self.phase == Phase::Detect {
            self.build_trackers()?;
        }
        let mut batch = Batch::default();
        let mut next_usage = USAGE_EVERY;
        loop {
            if self.stop.load(Relaxed) {
                self.summary.stopped = true;
                break;
            }
            let after = if self.phase == Phase::Detect {
                let after = batch.fill(source, width, self.sides.len());
                self.detect_batch(&mut batch, &mut sink, source)?;
                after
            } else {
                let mut x = std::mem::take(&mut self.x);
                let next = source.next(&mut x);
                let result = match next {
                    Next::Record(info) => self.record(&info, &x, &mut sink, source),
                    other => {
                        self.x = x;
                        if self.end_of_fill(other, source)? {
                            break;
                        }
                        continue;
                    }
                };
                self.x = x;
                result?;
                None
            };
            if let Some(other) = after {
                if self.end_of_fill(other, source)? {
                    break;
                }
            }
            if self.summary.records >= next_usage {
                next_usage = self.summary.records + USAGE_EVERY;
                self.refresh_usage(source);
            }
        }
        if self.phase != Phase::Detect {
            if !self.summary.stopped {
                return Err(self.grace_unfinished(source));
            }
            // A requested stop in grace is not a failure, but nothing was
            // learned: the summary's thresholds say so.
            return Ok(self.finish_summary(started));
        }
        for s in &mut self.sides {
            if let Some(t) = &mut s.tracker {
                t.flush(&mut sink).map_err(alert_err)?;
            }
        }
        sink.finish().map_err(alert_err)?;
        if let Some(out) = &mut self.scores {
            out.finish().map_err(scores_err)?;
        }
        self.save(source)?;
        self.refresh_usage(source);
        Ok(self.finish_summary(started))
    }

    /// Why nothing was learned, with what the source skipped or rejected
    /// (a capture of the wrong kind reads as no records).
    fn grace_unfinished(&self, source: &dyn RecordSource) -> Error {
        let g = self.params.grace.map_or(String::new(), |g| g.to_string());
        let rejected = source.skipped();
        let mut skipped = match rejected {
            0 => String::new(),
            n => format!("; {n} inputs were skipped or rejected"),
        };
        let notes = source.notes();
        if !notes.is_empty() {
            let more = match notes.len().saturating_sub(3) {
                0 => String::new(),
                m => format!(" and {m} more"),
            };
            let first: Vec<&str> = notes.iter().take(3).map(String::as_str).collect();
            skipped += &format!(" ({}{more})", first.join("; "));
        }
        // With no record at all, a shorter grace would not help.
        let what_to_do = if self.summary.records == 0 && rejected > 0 {
            "see why the inputs were rejected"
        } else {
            "give a shorter --grace or a longer input"
        };
        Error::Data(format!(
            "{} during grace ({g} requested): {} records over {:.1} s were read{skipped}, so \
             nothing was scored and no model was saved; {what_to_do}",
            if self.summary.stopped {
                "stopped"
            } else {
                "the input ended"
            },
            self.summary.records,
            self.summary.grace_seconds
        ))
    }

    fn write_header(&mut self) -> Result<()> {
        let sides = self.sides.len();
        match &mut self.scores {
            Some(out) => out.start(sides).map_err(scores_err),
            None => Ok(()),
        }
    }

    /// Learns from, calibrates on or scores one record.
    #[inline]
    fn record(
        &mut self,
        info: &RecordInfo,
        x: &[f64],
        sink: &mut dyn AlertSink,
        source: &dyn RecordSource,
    ) -> Result<()> {
        if self.phase != Phase::Detect {
            self.advance_grace(info, source)?;
        }
        let outcome = match self.phase {
            Phase::Detect => self.detect(info, x, sink),
            _ => self.grace_record(info, x),
        };
        if let Err(e) = outcome {
            // Errors of one record reject it; the run goes on.
            self.reject(format!("record {}: {e}", info.index));
            return Ok(());
        }
        self.count(info, Instant::now());
        Ok(())
    }

    /// Handles what ended a read: a rejection, idleness, the end of the
    /// input (returns true) or an input that cannot be read (an error).
    fn end_of_fill(&mut self, next: Next, source: &dyn RecordSource) -> Result<bool> {
        match next {
            Next::Rejected(e) => self.reject(e.to_string()),
            Next::Idle => self.refresh_usage(source),
            Next::End => return Ok(true),
            Next::Failed(e) => return Err(e),
            Next::Record(_) => {}
        }
        Ok(false)
    }

    /// Scores the records of a batch together, each side with its batch
    /// kernel, then passes them on one by one in order; a batch a scorer
    /// refuses (a malformed record) goes record by record instead.
    fn detect_batch(
        &mut self,
        b: &mut Batch,
        sink: &mut dyn AlertSink,
        source: &dyn RecordSource,
    ) -> Result<()> {
        let (n, width) = (b.infos.len(), self.names.len());
        let rows = &b.x[..n * width];
        let mut batched = true;
        for (s, out) in self.sides.iter_mut().zip(&mut b.scores) {
            out.resize(n, 0.0);
            batched &= s
                .spec
                .scorer
                .score_rows(rows, width, s.spec.range.clone(), out)
                .is_ok();
        }
        // One clock reading for the batch's latencies: its records were
        // scored together.
        let now = Instant::now();
        for (i, info) in b.infos.iter().enumerate() {
            let x = &rows[i * width..(i + 1) * width];
            if !batched {
                self.record(info, x, sink, source)?;
                continue;
            }
            let mut scored = [(0.0, false); 2];
            for ((slot, s), out) in scored.iter_mut().zip(&self.sides).zip(&b.scores) {
                *slot = (out[i], out[i] > s.threshold);
            }
            self.pass_on(info, x, Some(i), scored, sink)?;
            self.count(info, now);
        }
        Ok(())
    }

    fn count(&mut self, info: &RecordInfo, now: Instant) {
        self.summary.records += 1;
        let counter = if self.phase == Phase::Detect {
            &self.metrics.records
        } else {
            &self.metrics.grace_records
        };
        counter.fetch_add(1, Relaxed);
        let latency = now.saturating_duration_since(info.arrived);
        self.metrics.latency.observe(latency);
    }

    /// Moves from learning to calibration to detection as grace passes.
    fn advance_grace(&mut self, info: &RecordInfo, source: &dyn RecordSource) -> Result<()> {
        let Some(grace) = self.params.grace else {
            return Ok(());
        };
        let t = info.timestamp;
        if self.grace_t0.is_nan() && t.is_finite() {
            self.grace_t0 = t;
        }
        let n = self.summary.grace;
        if self.phase == Phase::Learn && grace.learned(n, self.grace_t0, t) {
            for s in &mut self.sides {
                s.spec.scorer.fit()?;
                s.calibrator = Some(Calibrator::new(self.params.tracker.vote_params(), 65_536));
            }
            self.phase = Phase::Calibrate;
        }
        if self.phase == Phase::Calibrate && grace.over(n, self.grace_t0, t) {
            self.end_grace(t, source)?;
        }
        Ok(())
    }

    fn grace_record(&mut self, info: &RecordInfo, x: &[f64]) -> Result<()> {
        let t = info.timestamp;
        for s in &mut self.sides {
            let xs = &x[s.spec.range.clone()];
            if self.phase == Phase::Learn {
                s.spec.scorer.learn(xs)?;
            } else {
                let score = s.spec.scorer.score(xs)?;
                let host = s.host(info);
                if let Some(c) = &mut s.calibrator {
                    c.observe(host, t, score);
                }
                if let Some(d) = s.drift.as_mut().filter(|_| Drift::sampled(info.index)) {
                    d.observe(host, t, score, |_| false);
                }
            }
        }
        self.summary.grace += 1;
        if t.is_finite() {
            self.summary.grace_seconds = (t - self.grace_t0).max(0.0);
        }
        self.write_score(info, None)
    }

    fn end_grace(&mut self, t: f64, source: &dyn RecordSource) -> Result<()> {
        let per_side = match self.params.calibrate {
            Calibrate::Budget(b) => Calibrate::Budget(b / self.sides.len() as f64),
            q => q,
        };
        let mut report = GraceReport {
            records: self.summary.grace,
            seconds: self.summary.grace_seconds,
            sides: Vec::new(),
        };
        for s in &mut self.sides {
            let c = s
                .calibrator
                .take()
                .ok_or_else(|| Error::Model("grace ended before calibration".into()))?;
            let mut cal = match per_side {
                Calibrate::Budget(b) => c.finish(b)?,
                Calibrate::Quantile(q) => c.finish_quantile(q)?,
            };
            cal.reference = s.drift.as_mut().and_then(Drift::reference).unwrap_or(0.0);
            s.threshold = cal.threshold;
            report.sides.push((s.spec.side, cal.clone()));
            s.calibration = Some(cal);
            s.follow_drift(t);
        }
        self.phase = Phase::Detect;
        self.build_trackers()?;
        if let Some(hook) = &mut self.on_grace_end {
            hook(&report);
        }
        self.save(source)
    }

    fn build_trackers(&mut self) -> Result<()> {
        for s in &mut self.sides {
            let names = self.names[s.spec.range.clone()].to_vec();
            let key = match s.spec.side {
                Side::Destination => TargetKey::DestIp,
                Side::Source => TargetKey::SrcIp,
            };
            let t = self
                .params
                .tracker
                .clone()
                .target(key)
                .threshold(s.threshold)
                .feature_names(names)
                .build()?;
            s.tracker = Some(t);
        }
        Ok(())
    }

    /// Scores one record on every side and passes it on.
    #[inline]
    fn detect(&mut self, info: &RecordInfo, x: &[f64], sink: &mut dyn AlertSink) -> Result<()> {
        let mut scored = [(0.0, false); 2];
        for (s, slot) in self.sides.iter_mut().zip(scored.iter_mut()) {
            let score = s.spec.scorer.score(&x[s.spec.range.clone()])?;
            *slot = (score, score > s.threshold);
        }
        self.pass_on(info, x, None, scored, sink)
    }

    /// Votes, episodes and the scores file for a scored record (row `row`
    /// of the batch just scored, if it came in one).
    fn pass_on(
        &mut self,
        info: &RecordInfo,
        x: &[f64],
        row: Option<usize>,
        scored: [(f64, bool); 2],
        sink: &mut dyn AlertSink,
    ) -> Result<()> {
        // Only an anomalous record needs to know which episodes are open.
        let open = if scored.iter().any(|s| s.1) {
            self.open_episodes(info, x)
        } else {
            OpenEpisodes::default()
        };
        let mut any = false;
        for (i, s) in self.sides.iter_mut().enumerate() {
            let (score, above) = scored.get(i).copied().unwrap_or_default();
            any |= above;
            let Some(tracker) = &mut s.tracker else {
                continue;
            };
            let is_anomaly = above && open.admits(s.spec.side);
            self.top.clear();
            let mut family = None;
            if above {
                s.anomalies += 1;
            }
            let xs = &x[s.spec.range.clone()];
            if is_anomaly && tracker.wants_explanation(&info.flow, info.timestamp, score) {
                let shares = &mut self.shares[..xs.len()];
                let explained = self.params.top_features > 0
                    && match row {
                        Some(i) => s.spec.scorer.explain_row(i, xs, shares),
                        None => s.spec.scorer.explain(xs, shares),
                    }
                    .is_ok();
                if explained {
                    FeatureShare::top_k(shares, self.params.top_features, &mut self.top);
                }
                let names = &self.names[s.spec.range.clone()];
                family = s
                    .spec
                    .scorer
                    .family(xs)
                    .or_else(|| side_family(s.spec.side, names, xs));
            }
            let rec = ScoredRecord {
                timestamp: info.timestamp,
                score,
                is_anomaly,
                flow: info.flow,
                top_features: &self.top,
                family,
            };
            tracker.observe(&rec, sink).map_err(alert_err)?;
            s.track_drift(info, score, above);
        }
        if any {
            self.summary.anomalies += 1;
            self.metrics.anomalies.fetch_add(1, Relaxed);
        }
        let n = self.sides.len().min(2);
        self.write_score(info, Some(&scored[..n]))
    }

    /// Which episodes about this record's two hosts are open now.
    fn open_episodes(&self, info: &RecordInfo, x: &[f64]) -> OpenEpisodes {
        let mut open = OpenEpisodes::default();
        for s in &self.sides {
            let Some(t) = &s.tracker else { continue };
            match s.spec.side {
                Side::Destination => open.target = t.open_family(&info.flow.dest_ip).is_some(),
                Side::Source => {
                    let family = t.open_family(&info.flow.src_ip);
                    open.source = family.is_some();
                    // A probe, not the flood an infected scanner turns to.
                    let r = s.spec.range.clone();
                    open.scanner = family.is_some_and(|f| f.ends_with("_scan"))
                        && side_family(s.spec.side, &self.names[r.clone()], &x[r])
                            .is_some_and(|f| f.ends_with("_scan"));
                }
            }
        }
        open
    }

    #[inline]
    fn write_score(&mut self, info: &RecordInfo, s: Option<&[(f64, bool)]>) -> Result<()> {
        match &mut self.scores {
            Some(out) => out.record(info, s).map_err(scores_err),
            None => Ok(()),
        }
    }

    fn reject(&mut self, msg: String) {
        self.summary.rejected += 1;
        self.metrics.rejected.fetch_add(1, Relaxed);
        if self.summary.rejections.len() < KEPT_REJECTIONS {
            self.summary.rejections.push(msg);
        }
    }

    /// The model as it stands (with the source's tables), or `None` while
    /// a side has no fitted detector.
    pub fn model(&self, source: &dyn RecordSource) -> Option<SavedModel> {
        let sides = self
            .sides
            .iter()
            .map(|s| {
                Some(SavedSide {
                    side: s.spec.side,
                    range: (s.spec.range.start, s.spec.range.end),
                    detector: s.spec.scorer.detector()?,
                    threshold: Some(s.threshold).filter(|t| t.is_finite())?,
                    calibration: s.calibration.clone(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SavedModel {
            format: scorer::FORMAT,
            layout: self.params.layout.clone(),
            features: self.names.clone(),
            sides,
            state: source.state(),
        })
    }

    fn save(&mut self, source: &dyn RecordSource) -> Result<()> {
        let Some(path) = self.params.save_model.clone() else {
            return Ok(());
        };
        if let Some(model) = self.model(source) {
            model.save(&path)?;
            self.summary.saved_model = Some(path);
        }
        Ok(())
    }

    fn refresh_usage(&mut self, source: &dyn RecordSource) {
        let usage = source.usage();
        self.metrics.table_entries.store(usage.entries, Relaxed);
        self.metrics.evictions.store(usage.evictions, Relaxed);
        self.metrics.dropped.store(source.dropped(), Relaxed);
        let skipped = source.skipped();
        let counted = self.summary.rejected + skipped;
        self.metrics.rejected.store(counted, Relaxed);
        let grace = u64::from(self.phase != Phase::Detect);
        self.metrics.in_grace.store(grace, Relaxed);
        let open = self.sides.iter().filter_map(|s| s.tracker.as_ref());
        let open: u64 = open.map(|t| t.stats().open_episodes).sum();
        self.metrics.open_episodes.store(open, Relaxed);
        for s in &self.sides {
            let slot = usize::from(s.spec.side == Side::Source);
            self.metrics.thresholds[slot].store(s.threshold.to_bits(), Relaxed);
        }
    }

    fn finish_summary(&mut self, started: Instant) -> Summary {
        let mut s = self.summary.clone();
        s.rejected = self.metrics.rejected.load(Relaxed);
        s.dropped = self.metrics.dropped.load(Relaxed);
        s.alerts = self.metrics.alerts.load(Relaxed);
        s.sides = self
            .sides
            .iter()
            .map(|r| SideSummary {
                side: r.spec.side,
                threshold: r.threshold,
                calibration: r.calibration.clone(),
                anomalies: r.anomalies,
                episodes: r.tracker.as_ref().map_or(0, |t| t.stats().started),
                drift: r.drift.as_ref().map(Drift::summary),
            })
            .collect();
        s.episodes = s.sides.iter().map(|r| r.episodes).sum();
        s.table_entries = self.metrics.table_entries.load(Relaxed);
        s.evictions = self.metrics.evictions.load(Relaxed);
        s.p99_latency = self.metrics.latency.quantile_bound(0.99);
        s.elapsed = started.elapsed();
        s
    }
}

/// Records read and scored together, at most: one AVX-512 vector of
/// records. A record waits for the features of the others in its batch, so
/// the batch bounds latency: on `watch --layout floodwatch` at about 500,000
/// packets a second, batches of 64 put the 99th percentile at 250 us and
/// were 3-8 % faster; batches of 16 keep it under 50 us while a record's
/// features take about 2 us or less.
const BATCH: usize = 16;

/// A batch of records: their features row after row, their identities and
/// each side's scores. Reused from batch to batch.
#[derive(Default)]
struct Batch {
    x: Vec<f64>,
    infos: Vec<RecordInfo>,
    scores: Vec<Vec<f64>>,
}

impl Batch {
    /// Reads up to [`BATCH`] records, stopping early at anything else the
    /// source has (returned): live input is never held back waiting.
    fn fill(&mut self, source: &mut dyn RecordSource, width: usize, sides: usize) -> Option<Next> {
        self.x.resize(BATCH * width, 0.0);
        self.scores.resize_with(sides, Vec::new);
        self.infos.clear();
        while self.infos.len() < BATCH {
            let at = self.infos.len() * width;
            match source.next(&mut self.x[at..at + width]) {
                Next::Record(info) => self.infos.push(info),
                other => return Some(other),
            }
        }
        None
    }
}

/// Open episodes about a record's destination and source.
///
/// One packet feeds both sides, but one attack should make one episode:
/// traffic toward a target under attack belongs to the target's episode
/// (which counts its sources), so it opens no episode per source, only
/// feeds a source's open one; and probes of a scanner with an open episode
/// open none per probed address (its other records, such as the flood an
/// infected device turns to, still do).
#[derive(Debug, Clone, Copy, Default)]
struct OpenEpisodes {
    target: bool,
    source: bool,
    scanner: bool,
}

impl OpenEpisodes {
    /// Whether an anomalous record may count in `side`'s vote.
    fn admits(&self, side: Side) -> bool {
        match side {
            Side::Destination => self.target || !self.scanner,
            Side::Source => self.source || !self.target,
        }
    }
}

/// What a source-side anomaly looks like, from the source's new peers a
/// second (the fastest window): new addresses is a horizontal scan, new
/// ports of known addresses a vertical scan (or, thousands a second, a
/// random-port flood), anything else an infected host. Destination-side
/// anomalies take the tracker's default.
fn side_family(side: Side, names: &[String], x: &[f64]) -> Option<&'static str> {
    if side != Side::Source {
        return None;
    }
    let value = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .and_then(|i| x.get(i).copied())
            .unwrap_or(0.0)
    };
    let (dsts, services) = (value("src_L5_new_dsts"), value("src_L5_new_services"));
    Some(if !(SCAN_RATE..=FLOOD_RATE).contains(&services) {
        "infected_host"
    } else if dsts >= 0.5 * services {
        "horizontal_scan"
    } else {
        "vertical_scan"
    })
}

/// New peers a second from which a source is probing.
const SCAN_RATE: f64 = 3.0;
/// New services a second above which a source is flooding, not probing.
const FLOOD_RATE: f64 = 1000.0;

fn alert_err(e: io::Error) -> Error {
    Error::io("alerts", e)
}

fn scores_err(e: io::Error) -> Error {
    Error::io("scores", e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::{FlowContext, Proto, State};
    use crate::detect::vote::VoteParams;
    use std::net::{IpAddr, Ipv4Addr};

    /// One feature per record: `value`; the flood targets 10.0.0.9.
    struct Values {
        names: Vec<String>,
        values: std::vec::IntoIter<(f64, u8)>,
        n: u64,
    }

    impl Values {
        fn new(values: Vec<(f64, u8)>) -> Self {
            Values {
                names: vec!["a".into(), "b".into()],
                values: values.into_iter(),
                n: 0,
            }
        }
    }

    impl RecordSource for Values {
        fn names(&self) -> &[String] {
            &self.names
        }

        fn next(&mut self, out: &mut [f64]) -> Next {
            let Some((v, dst)) = self.values.next() else {
                return Next::End;
            };
            self.n += 1;
            if v.is_nan() {
                return Next::Rejected(Error::Data(format!("record {} is bad", self.n)));
            }
            out.copy_from_slice(&[v, 1.0 - v]);
            let ip = |n| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
            Next::Record(RecordInfo {
                index: self.n,
                timestamp: self.n as f64 * 0.1,
                flow: FlowContext {
                    src_ip: ip(1),
                    src_port: 1,
                    dest_ip: ip(dst),
                    dest_port: 80,
                    proto: Proto::Tcp,
                    bytes: 60,
                    tcp_flags: 0,
                    packets: 1,
                    exporter: None,
                },
                arrived: Instant::now(),
            })
        }
    }

    #[derive(Default)]
    struct Collect(Vec<Alert>);

    impl AlertSink for Collect {
        fn alert(&mut self, a: &Alert) -> io::Result<()> {
            self.0.push(a.clone());
            Ok(())
        }
    }

    fn params(grace: Option<Grace>) -> EngineParams {
        EngineParams {
            tracker: TrackerParams::new().vote(VoteParams::new(5, 3).unwrap()),
            top_features: 2,
            save_model: None,
            grace,
            calibrate: Calibrate::Budget(1.0),
            drift: None,
            layout: None,
        }
    }

    fn ae_side() -> SideSpec {
        let ae = crate::model::AutoencoderParams::new()
            .hidden([4, 2, 2, 4])
            .epochs(20)
            .batch_size(16)
            .learning_rate(1e-2);
        SideSpec {
            side: Side::Destination,
            range: 0..2,
            scorer: Box::new(OnlineAutoencoder::new(2, ae, false, 10_000)),
            threshold: None,
            calibration: None,
        }
    }

    fn engine(grace: u64, stop: Arc<AtomicBool>) -> Engine {
        let p = params(Some(Grace::Records(grace)));
        Engine::new(p, vec![ae_side()], Arc::default(), stop).unwrap()
    }

    fn normal(i: usize) -> f64 {
        0.4 + 0.1 * (i as f64 * 0.7).sin()
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn learns_then_alerts_once_per_episode_and_writes_every_score() {
        let mut values: Vec<(f64, u8)> = (0..2500).map(|i| (normal(i), 2)).collect();
        values.push((f64::NAN, 2));
        values.extend((0..50).map(|_| (30.0, 9)));
        values.extend((0..20).map(|i| (normal(i), 2)));
        let scores = Shared::default();
        let mut e = engine(2000, Arc::default()).scores_to(Box::new(scores.clone()));
        let mut src = Values::new(values);
        let mut alerts = Collect::default();
        let s = e.run(&mut src, &mut alerts).unwrap();
        assert_eq!((s.records, s.grace, s.rejected), (2570, 2000, 1));
        assert!(
            s.rejections[0].contains("record 2501"),
            "{:?}",
            s.rejections
        );
        assert!(s.anomalies >= 50, "{s:?}");
        let cal = s.sides[0].calibration.as_ref().unwrap();
        assert_eq!(cal.records, 400);
        assert!(cal.threshold > cal.max_voted, "{cal:?}");
        let starts: Vec<_> = alerts
            .0
            .iter()
            .filter(|a| a.state() == State::Start)
            .collect();
        assert_eq!(starts.len(), 1, "{:?}", alerts.0);
        assert_eq!(starts[0].dest_ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)));
        assert!(!starts[0].alert.context.top_features.is_empty());
        let states: Vec<State> = alerts.0.iter().map(|a| a.state()).collect();
        assert_eq!(states, [State::Start, State::Details, State::End]);
        assert_eq!(s.alerts, 3);
        assert!(s.p99_latency.is_some());
        let text = String::from_utf8(scores.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "index,timestamp,score,is_anomaly");
        assert_eq!(lines.len(), 2571);
        assert_eq!(lines[1], "1,0.100000,,");
        assert!(lines[2530].ends_with(",1"), "{}", lines[2530]);
    }

    #[test]
    fn input_that_ends_in_grace_is_an_error_that_says_what_to_do() {
        let mut e = engine(500, Arc::default());
        let mut src = Values::new((0..100).map(|i| (normal(i), 2)).collect());
        let err = e.run(&mut src, &mut Collect::default()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("during grace") && msg.contains("--grace"),
            "{msg}"
        );
        let stop = Arc::new(AtomicBool::new(true));
        let mut e = engine(500, stop);
        let s = e.run(&mut src, &mut Collect::default()).unwrap();
        assert!(
            s.stopped && s.sides.iter().all(|s| s.threshold.is_infinite()),
            "{s:?}"
        );
    }

    /// Sleeps on every record: a scorer slower than its input.
    struct Slow;

    impl StreamScorer for Slow {
        fn learn(&mut self, _: &[f64]) -> Result<()> {
            Ok(())
        }
        fn fit(&mut self) -> Result<()> {
            Ok(())
        }
        fn ready(&self) -> bool {
            true
        }
        fn score(&mut self, _: &[f64]) -> Result<f64> {
            std::thread::sleep(Duration::from_millis(2));
            Ok(0.0)
        }
        fn explain(&mut self, _: &[f64], _: &mut [f64]) -> Result<()> {
            Ok(())
        }
        fn detector(&self) -> Option<Detector> {
            None
        }
    }

    fn slow(width: usize) -> Vec<SideSpec> {
        vec![SideSpec {
            side: Side::Destination,
            range: 0..width,
            scorer: Box::new(Slow),
            threshold: Some(1.0),
            calibration: None,
        }]
    }

    #[test]
    fn hidden_widths_shrink_with_the_input() {
        assert_eq!(hidden_for(40), [30, 13, 13, 30]);
        assert_eq!(hidden_for(1), [2, 1, 1, 2]);
    }

    #[test]
    fn a_stop_request_ends_the_run_and_flushes() {
        let stop = Arc::new(AtomicBool::new(true));
        let mut e = Engine::new(params(None), slow(2), Arc::default(), stop).unwrap();
        let mut src = Values::new(vec![(0.5, 2); 10]);
        let s = e.run(&mut src, &mut Collect::default()).unwrap();
        assert!(s.stopped);
        assert_eq!(s.records, 0);
        assert!(Engine::new(
            params(None),
            vec![ae_side()],
            Arc::default(),
            Arc::default()
        )
        .is_err());
    }

    #[test]
    fn input_outrunning_scoring_is_dropped_and_counted() {
        use crate::features::victim::{Victim, N_FEATURES};
        use crate::ingest::packets::{Network, PacketMeta, Transport};
        use crate::ingest::queue::{bounded, Overflow};
        use source::{PacketRecords, QueueFeed};
        use std::sync::atomic::AtomicU64;

        let dropped = Arc::new(AtomicU64::new(0));
        let (tx, rx) = bounded(4, Overflow::Drop, Arc::clone(&dropped));
        let producer = std::thread::spawn(move || {
            for i in 1..=500u64 {
                let p = PacketMeta {
                    index: i,
                    timestamp: i as f64 * 1e-3,
                    wire_len: 60,
                    src_mac: [0; 6],
                    dst_mac: [0; 6],
                    network: Network::None,
                    transport: Transport::None,
                    fragment: None,
                };
                tx.push((p, Instant::now()));
            }
        });
        let metrics = Arc::new(Metrics::default());
        let p = EngineParams {
            tracker: TrackerParams::new(),
            top_features: 0,
            ..params(None)
        };
        let mut e = Engine::new(p, slow(N_FEATURES), Arc::clone(&metrics), Arc::default()).unwrap();
        let mut src = PacketRecords::new(QueueFeed::new(rx, dropped), Victim::new(4).unwrap());
        let s = e.run(&mut src, &mut Collect::default()).unwrap();
        producer.join().unwrap();
        assert!(s.dropped > 0, "{s:?}");
        assert_eq!(s.records + s.dropped, 500, "every packet scored or counted");
        assert_eq!(metrics.dropped.load(Relaxed), s.dropped);
    }

    #[test]
    fn saves_the_model_when_grace_ends_and_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let mut e = engine(2000, Arc::default());
        e.params.save_model = Some(path.clone());
        let mut src = Values::new((0..2100).map(|i| (normal(i), 2)).collect());
        let s = e.run(&mut src, &mut Collect::default()).unwrap();
        assert_eq!(s.saved_model.as_deref(), Some(path.as_path()));
        let m = SavedModel::load(&path).unwrap();
        assert_eq!(m.features(), ["a", "b"]);
        assert_eq!(m.sides.len(), 1);
        assert!(m.sides[0].calibration.is_some());
    }
}
