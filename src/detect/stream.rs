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

pub mod scorer;
pub mod source;
pub mod tabular;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::alert::{Alert, FeatureShare, ScoredRecord};
use super::episode::{EpisodeTracker, TrackerParams};
use super::metrics::Metrics;
use super::sink::AlertSink;
use crate::{Error, Result};
pub use scorer::{OnlineAutoencoder, OnlineKitNet, SavedModel, StreamScorer};
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

/// What a run did, for the summary printed at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Records read and processed (learned from or scored).
    pub records: u64,
    /// Records learned from during grace (not scored).
    pub grace: u64,
    /// Malformed records rejected (including unreadable frames).
    pub rejected: u64,
    /// Records dropped because input outran scoring.
    pub dropped: u64,
    /// Scored records above the threshold.
    pub anomalies: u64,
    /// Alert events written (episode starts and ends).
    pub alerts: u64,
    /// Alert episodes started.
    pub episodes: u64,
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

/// Settings of an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineParams {
    /// Vote, episode timeout, target key; its threshold is set from the
    /// scorer once known.
    pub tracker: TrackerParams,
    /// Features named in each alert.
    pub top_features: usize,
    /// Where to save the model learned online, once out of grace.
    pub save_model: Option<PathBuf>,
}

/// The streaming engine; see the [module docs](self).
pub struct Engine {
    params: EngineParams,
    scorer: Box<dyn StreamScorer>,
    tracker: Option<EpisodeTracker>,
    threshold: f64,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    scores: Option<Box<dyn Write>>,
    x: Vec<f64>,
    shares: Vec<f64>,
    top: Vec<FeatureShare>,
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
    /// An engine scoring with `scorer`, counting into `metrics`, and
    /// stopping (after the current record) once `stop` is set.
    pub fn new(
        params: EngineParams,
        scorer: Box<dyn StreamScorer>,
        metrics: Arc<Metrics>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Engine {
            params,
            scorer,
            tracker: None,
            threshold: f64::INFINITY,
            metrics,
            stop,
            scores: None,
            x: Vec::new(),
            shares: Vec::new(),
            top: Vec::new(),
            summary: Summary {
                records: 0,
                grace: 0,
                rejected: 0,
                dropped: 0,
                anomalies: 0,
                alerts: 0,
                episodes: 0,
                table_entries: 0,
                evictions: 0,
                p99_latency: None,
                elapsed: Duration::ZERO,
                stopped: false,
                rejections: Vec::new(),
                saved_model: None,
            },
        }
    }

    /// Also writes `index,timestamp,score,is_anomaly` for every record to
    /// `out` (score and flag empty during grace).
    pub fn scores_to(mut self, out: Box<dyn Write>) -> Self {
        self.scores = Some(out);
        self
    }

    /// Runs until the source ends or a stop is requested, then flushes the
    /// open episodes to `sink`. Errors: writing alerts or scores, saving the
    /// model, a scorer failing to learn.
    pub fn run(
        &mut self,
        source: &mut dyn RecordSource,
        sink: &mut dyn AlertSink,
    ) -> Result<Summary> {
        let started = Instant::now();
        let width = source.names().len();
        self.x = vec![0.0; width];
        self.shares = vec![0.0; width];
        if let Some(out) = &mut self.scores {
            writeln!(out, "index,timestamp,score,is_anomaly").map_err(scores_err)?;
        }
        let metrics = Arc::clone(&self.metrics);
        let mut sink = Counted {
            sink,
            metrics: &metrics,
        };
        self.ready_tracker(source)?;
        loop {
            if self.stop.load(Relaxed) {
                self.summary.stopped = true;
                break;
            }
            let mut x = std::mem::take(&mut self.x);
            let next = source.next(&mut x);
            let result = match next {
                Next::Record(info) => self.record(&info, &x, &mut sink),
                Next::Rejected(e) => {
                    self.reject(e.to_string());
                    Ok(())
                }
                Next::Idle => {
                    self.refresh_usage(source);
                    Ok(())
                }
                Next::End => {
                    self.x = x;
                    break;
                }
            };
            self.x = x;
            result?;
            if self.summary.records.is_multiple_of(USAGE_EVERY) {
                self.refresh_usage(source);
            }
            if self.tracker.is_none() && self.scorer.threshold().is_some() {
                self.ready_tracker(source)?;
            }
        }
        if let Some(t) = &mut self.tracker {
            t.flush(&mut sink).map_err(alert_err)?;
        }
        sink.finish().map_err(alert_err)?;
        if let Some(out) = &mut self.scores {
            out.flush().map_err(scores_err)?;
        }
        self.refresh_usage(source);
        Ok(self.finish_summary(started))
    }

    /// Scores (or learns from) one record and passes it on.
    #[inline]
    fn record(&mut self, info: &RecordInfo, x: &[f64], sink: &mut dyn AlertSink) -> Result<()> {
        let score = match self.scorer.score(x) {
            Ok(s) => s,
            Err(e) => {
                self.reject(format!("record {}: {e}", info.index));
                return Ok(());
            }
        };
        self.summary.records += 1;
        self.metrics.records.fetch_add(1, Relaxed);
        let (Some(score), Some(tracker)) = (score, &mut self.tracker) else {
            self.summary.grace += 1;
            self.write_score(info, None)?;
            self.metrics.latency.observe(info.arrived.elapsed());
            return Ok(());
        };
        let is_anomaly = score > self.threshold;
        self.top.clear();
        let mut family = None;
        if is_anomaly {
            self.summary.anomalies += 1;
            self.metrics.anomalies.fetch_add(1, Relaxed);
            // Only a record that opens an episode or beats its peak is shown.
            if tracker.wants_explanation(&info.flow, score) {
                if self.params.top_features > 0 && self.scorer.explain(x, &mut self.shares).is_ok()
                {
                    FeatureShare::top_k(&self.shares, self.params.top_features, &mut self.top);
                }
                family = self.scorer.family(x);
            }
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
        self.write_score(info, Some((score, is_anomaly)))?;
        self.metrics.latency.observe(info.arrived.elapsed());
        Ok(())
    }

    #[inline]
    fn write_score(&mut self, info: &RecordInfo, s: Option<(f64, bool)>) -> Result<()> {
        let Some(out) = &mut self.scores else {
            return Ok(());
        };
        let r = match s {
            Some((score, anomalous)) => writeln!(
                out,
                "{},{:.6},{score},{}",
                info.index,
                info.timestamp,
                u8::from(anomalous)
            ),
            None => writeln!(out, "{},{:.6},,", info.index, info.timestamp),
        };
        r.map_err(scores_err)
    }

    fn reject(&mut self, msg: String) {
        self.summary.rejected += 1;
        self.metrics.rejected.fetch_add(1, Relaxed);
        if self.summary.rejections.len() < KEPT_REJECTIONS {
            self.summary.rejections.push(msg);
        }
    }

    /// Builds the tracker once the scorer has a threshold, and saves the
    /// learned model when asked to.
    fn ready_tracker(&mut self, source: &dyn RecordSource) -> Result<()> {
        let Some(threshold) = self.scorer.threshold() else {
            return Ok(());
        };
        let tracker = self
            .params
            .tracker
            .clone()
            .threshold(threshold)
            .feature_names(source.names().to_vec())
            .build()?;
        self.tracker = Some(tracker);
        self.threshold = threshold;
        if let Some(path) = &self.params.save_model {
            if self.summary.records > 0 {
                if let Some(model) = self.scorer.model() {
                    model.save(path)?;
                    self.summary.saved_model = Some(path.clone());
                }
            }
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
    }

    fn finish_summary(&mut self, started: Instant) -> Summary {
        let usage_entries = self.metrics.table_entries.load(Relaxed);
        let mut s = self.summary.clone();
        s.rejected = self.metrics.rejected.load(Relaxed);
        s.dropped = self.metrics.dropped.load(Relaxed);
        s.alerts = self.metrics.alerts.load(Relaxed);
        s.episodes = self.tracker.as_ref().map_or(0, |t| t.stats().started);
        s.table_entries = usage_entries;
        s.evictions = self.metrics.evictions.load(Relaxed);
        s.p99_latency = self.metrics.latency.quantile_bound(0.99);
        s.elapsed = started.elapsed();
        s
    }
}

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
    use crate::model::threshold::ThresholdRule;
    use crate::model::AutoencoderParams;
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
                timestamp: self.n as f64 * 0.01,
                flow: FlowContext {
                    src_ip: ip(1),
                    src_port: 1,
                    dest_ip: ip(dst),
                    dest_port: 80,
                    proto: Proto::Tcp,
                    bytes: 60,
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

    fn engine(grace: u64, stop: Arc<AtomicBool>) -> Engine {
        let names = vec!["a".into(), "b".into()];
        let ae = AutoencoderParams::new()
            .hidden([4, 2, 2, 4])
            .epochs(20)
            .batch_size(16)
            .learning_rate(1e-2);
        let scorer =
            OnlineAutoencoder::new(names, grace, ae, ThresholdRule::Quantile(0.99), false).unwrap();
        let params = EngineParams {
            tracker: TrackerParams::new().vote(VoteParams::new(5, 3).unwrap()),
            top_features: 2,
            save_model: None,
        };
        Engine::new(params, Box::new(scorer), Arc::default(), stop)
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
        let mut values: Vec<(f64, u8)> = (0..300).map(|i| (normal(i), 2)).collect();
        values.push((f64::NAN, 2));
        values.extend((0..50).map(|_| (30.0, 9)));
        values.extend((0..20).map(|i| (normal(i), 2)));
        let scores = Shared::default();
        let mut e = engine(200, Arc::default()).scores_to(Box::new(scores.clone()));
        let mut src = Values::new(values);
        let mut alerts = Collect::default();
        let s = e.run(&mut src, &mut alerts).unwrap();
        assert_eq!((s.records, s.grace, s.rejected), (370, 200, 1));
        assert!(s.rejections[0].contains("record 301"), "{:?}", s.rejections);
        assert!(s.anomalies >= 50, "{s:?}");
        let starts: Vec<_> = alerts
            .0
            .iter()
            .filter(|a| a.state() == State::Start)
            .collect();
        assert_eq!(starts.len(), 1, "{:?}", alerts.0);
        assert_eq!(starts[0].dest_ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)));
        assert!(!starts[0].alert.context.top_features.is_empty());
        assert_eq!(alerts.0.len(), 2, "start and (flush) end");
        assert_eq!(s.alerts, 2);
        assert!(s.p99_latency.is_some());
        let text = String::from_utf8(scores.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "index,timestamp,score,is_anomaly");
        assert_eq!(lines.len(), 371);
        assert_eq!(lines[1], "1,0.010000,,");
        assert!(lines[330].ends_with(",1"), "{}", lines[330]);
    }

    #[test]
    fn a_stop_request_ends_the_run_and_flushes() {
        let stop = Arc::new(AtomicBool::new(true));
        let mut e = engine(20, stop);
        let mut src = Values::new(vec![(0.5, 2); 10]);
        let s = e.run(&mut src, &mut Collect::default()).unwrap();
        assert!(s.stopped);
        assert_eq!(s.records, 0);
    }

    /// Sleeps on every record: a scorer slower than its input.
    struct Slow;

    impl StreamScorer for Slow {
        fn score(&mut self, _: &[f64]) -> Result<Option<f64>> {
            std::thread::sleep(Duration::from_millis(2));
            Ok(Some(0.0))
        }
        fn threshold(&self) -> Option<f64> {
            Some(1.0)
        }
        fn explain(&mut self, _: &[f64], _: &mut [f64]) -> Result<()> {
            Ok(())
        }
        fn grace_left(&self) -> u64 {
            0
        }
        fn model(&self) -> Option<SavedModel> {
            None
        }
    }

    #[test]
    fn input_outrunning_scoring_is_dropped_and_counted() {
        use crate::detect::queue::{bounded, Overflow};
        use crate::features::victim::Victim;
        use crate::ingest::packets::{Network, PacketMeta, Transport};
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
                };
                tx.push((p, Instant::now()));
            }
        });
        let params = EngineParams {
            tracker: TrackerParams::new(),
            top_features: 0,
            save_model: None,
        };
        let metrics = Arc::new(Metrics::default());
        let mut e = Engine::new(params, Box::new(Slow), Arc::clone(&metrics), Arc::default());
        let mut src = PacketRecords::new(QueueFeed::new(rx, dropped), Victim::new(4).unwrap());
        let s = e.run(&mut src, &mut Collect::default()).unwrap();
        producer.join().unwrap();
        assert!(s.dropped > 0, "{s:?}");
        assert_eq!(s.records + s.dropped, 500, "every packet scored or counted");
        assert_eq!(metrics.dropped.load(Relaxed), s.dropped);
    }

    #[test]
    fn saves_the_model_when_grace_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let mut e = engine(50, Arc::default());
        e.params.save_model = Some(path.clone());
        let mut src = Values::new((0..60).map(|i| (normal(i), 2)).collect());
        let s = e.run(&mut src, &mut Collect::default()).unwrap();
        assert_eq!(s.saved_model.as_deref(), Some(path.as_path()));
        let m = SavedModel::load(&path).unwrap();
        assert_eq!(m.features(), ["a", "b"]);
    }
}
