//! Counters of a running detector, served in Prometheus' text format
//! (`--metrics 127.0.0.1:PORT`). Atomics, so the scoring thread never waits
//! for a scrape.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use super::mitigate::StatsHandle;
use crate::{Error, Result};

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 10e-3, 100e-3,
];

/// Per-record latency histogram (cumulative on output, as Prometheus wants).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; LATENCY_BUCKETS.len()],
    overflow: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        match LATENCY_BUCKETS.iter().position(|&b| s <= b) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.overflow.fetch_add(1, Relaxed),
        };
        self.sum_ns.fetch_add(d.as_nanos() as u64, Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum::<u64>() + self.overflow.load(Relaxed)
    }

    /// Smallest bucket bound below which at least `q` of the observations
    /// fall (`None` when empty or beyond the last bucket).
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let total = self.count();
        let mut seen = 0;
        for (c, b) in self.counts.iter().zip(LATENCY_BUCKETS) {
            seen += c.load(Relaxed);
            if total > 0 && seen as f64 >= q * total as f64 {
                return Some(b);
            }
        }
        None
    }

    fn render(&self, name: &str, out: &mut String) {
        let mut cumulative = 0;
        for (c, b) in self.counts.iter().zip(LATENCY_BUCKETS) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count());
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_ns.load(Relaxed) as f64 * 1e-9
        );
        let _ = writeln!(out, "{name}_count {}", self.count());
    }
}

/// What a detector counts while it runs.
#[derive(Debug)]
pub struct Metrics {
    /// Records scored (after grace).
    pub records: AtomicU64,
    /// Records learned from or calibrated on during grace.
    pub grace_records: AtomicU64,
    /// 1 while the model learns or calibrates (grace), else 0.
    pub in_grace: AtomicU64,
    /// Alert episodes open now.
    pub open_episodes: AtomicU64,
    /// The current threshold of each side (destination, source), as f64 bits.
    pub thresholds: [AtomicU64; 2],
    /// The mitigation's counts, once `--mitigate` runs.
    pub mitigation: OnceLock<StatsHandle>,
    /// Records above the threshold.
    pub anomalies: AtomicU64,
    /// Alert events emitted (episode starts and ends).
    pub alerts: AtomicU64,
    /// Records dropped because input outran scoring.
    pub dropped: AtomicU64,
    /// Records rejected as malformed.
    pub rejected: AtomicU64,
    /// Entries now held in the stream tables.
    pub table_entries: AtomicU64,
    /// Stream-table entries evicted to stay within capacity.
    pub evictions: AtomicU64,
    /// Per-record scoring latency.
    pub latency: Histogram,
    /// Consumer-group counters (Kafka); rendered once a group source runs.
    pub group: GroupMetrics,
}

/// What a consumer-group source counts: its partitions, the state it drops
/// and rebuilds on a rebalance, and its offset commits.
#[derive(Debug, Default)]
pub struct GroupMetrics {
    /// Set by the group source: the counters below are rendered.
    pub enabled: AtomicBool,
    /// Partitions assigned now.
    pub partitions: AtomicU64,
    /// Partitions received in assignments.
    pub assigned: AtomicU64,
    /// Partitions taken away by revocations.
    pub revoked: AtomicU64,
    /// Per-partition feature states dropped (partition lost).
    pub states_dropped: AtomicU64,
    /// Records featured but not scored while a fresh partition state warmed up.
    pub warming: AtomicU64,
    /// Offset commits sent.
    pub commits: AtomicU64,
    /// Offset commits the broker refused (records redelivered later).
    pub commit_failures: AtomicU64,
}

impl GroupMetrics {
    fn render(&self, out: &mut String) {
        if !self.enabled.load(Relaxed) {
            return;
        }
        let gauge = self.partitions.load(Relaxed) as f64;
        metric(
            out,
            "kafka_partitions",
            "Partitions assigned now.",
            "gauge",
            gauge,
        );
        let counters = [
            (
                "kafka_partitions_assigned_total",
                "Partitions received in assignments.",
                &self.assigned,
            ),
            (
                "kafka_partitions_revoked_total",
                "Partitions taken away by revocations.",
                &self.revoked,
            ),
            (
                "kafka_states_dropped_total",
                "Per-partition feature states dropped.",
                &self.states_dropped,
            ),
            (
                "kafka_warming_records_total",
                "Records featured, not scored, while a partition warmed up.",
                &self.warming,
            ),
            ("kafka_commits_total", "Offset commits sent.", &self.commits),
            (
                "kafka_commit_failures_total",
                "Offset commits refused.",
                &self.commit_failures,
            ),
        ];
        for (name, help, v) in counters {
            metric(out, name, help, "counter", v.load(Relaxed) as f64);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            records: AtomicU64::new(0),
            grace_records: AtomicU64::new(0),
            in_grace: AtomicU64::new(0),
            open_episodes: AtomicU64::new(0),
            thresholds: [AtomicU64::new(0), AtomicU64::new(0)],
            mitigation: OnceLock::new(),
            anomalies: AtomicU64::new(0),
            alerts: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            table_entries: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            latency: Histogram::default(),
            group: GroupMetrics::default(),
        }
    }
}

impl Metrics {
    /// The metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = [
            (
                "records_total",
                "Records scored (after grace).",
                &self.records,
            ),
            (
                "grace_records_total",
                "Records learned from or calibrated on during grace.",
                &self.grace_records,
            ),
            (
                "anomalies_total",
                "Records above the threshold.",
                &self.anomalies,
            ),
            ("alerts_total", "Alert events emitted.", &self.alerts),
            (
                "dropped_total",
                "Records dropped because input outran scoring.",
                &self.dropped,
            ),
            (
                "rejected_total",
                "Malformed records rejected.",
                &self.rejected,
            ),
            (
                "table_evictions_total",
                "Stream-table entries evicted.",
                &self.evictions,
            ),
        ];
        for (name, help, v) in counters {
            metric(&mut out, name, help, "counter", v.load(Relaxed) as f64);
        }
        let entries = self.table_entries.load(Relaxed) as f64;
        let gauges = [
            ("table_entries", "Entries in the stream tables.", entries),
            (
                "open_episodes",
                "Alert episodes open now.",
                self.open_episodes.load(Relaxed) as f64,
            ),
            (
                "grace",
                "1 while the model learns or calibrates (grace), else 0.",
                self.in_grace.load(Relaxed) as f64,
            ),
        ];
        for (name, help, v) in gauges {
            metric(&mut out, name, help, "gauge", v);
        }
        if let Some(m) = self.mitigation.get() {
            let help = "BGP announcements (blackhole routes, FlowSpec rules) in force.";
            metric(
                &mut out,
                "active_mitigations",
                help,
                "gauge",
                m.active() as f64,
            );
        }
        let _ = writeln!(
            out,
            "# HELP floodwatch_threshold The current score threshold of each side.\n\
             # TYPE floodwatch_threshold gauge"
        );
        for (side, t) in ["destination", "source"].iter().zip(&self.thresholds) {
            // A side without a model has no threshold (never 0 otherwise).
            let t = f64::from_bits(t.load(Relaxed));
            if t > 0.0 {
                let _ = writeln!(out, "floodwatch_threshold{{side=\"{side}\"}} {t}");
            }
        }
        // Rates are left to Prometheus (rate(floodwatch_records_total[1m])).
        let _ = writeln!(
            out,
            "# HELP floodwatch_build_info The running build; always 1.\n\
             # TYPE floodwatch_build_info gauge\n\
             floodwatch_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            out,
            "# HELP floodwatch_record_latency_seconds Per-record scoring latency."
        );
        let _ = writeln!(out, "# TYPE floodwatch_record_latency_seconds histogram");
        self.latency
            .render("floodwatch_record_latency_seconds", &mut out);
        self.group.render(&mut out);
        out
    }
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str, value: f64) {
    let _ = writeln!(out, "# HELP floodwatch_{name} {help}");
    let _ = writeln!(out, "# TYPE floodwatch_{name} {kind}");
    let _ = writeln!(out, "floodwatch_{name} {value}");
}

/// A background HTTP server answering `GET /metrics` (a query string is
/// ignored) with the metrics and anything else with 404. Stops when
/// dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves `metrics` on `addr` (port 0 picks a free port).
    pub fn start(addr: &str, metrics: Arc<Metrics>) -> Result<Self> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| Error::Data(format!("cannot serve metrics on {addr}: {e}")))?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::Data(format!("metrics address {addr} is not an IP socket")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Relaxed) {
                if let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(100)) {
                    if !is_metrics(&req) {
                        let _ = req.respond(tiny_http::Response::empty(404));
                        continue;
                    }
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"text/plain; version=0.0.4"[..],
                    );
                    let mut resp = tiny_http::Response::from_string(metrics.render());
                    if let Ok(h) = header {
                        resp.add_header(h);
                    }
                    let _ = req.respond(resp);
                }
            }
        });
        Ok(MetricsServer {
            addr: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn is_metrics(req: &tiny_http::Request) -> bool {
    let path = req.url().split('?').next().unwrap_or_default();
    *req.method() == tiny_http::Method::Get && path == "/metrics"
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric the shipped Grafana dashboard queries is one floodwatch
    /// exports (a histogram's `_bucket`, `_sum` and `_count` series by the
    /// histogram's name).
    #[test]
    fn the_grafana_dashboard_queries_only_real_metrics() {
        use crate::detect::mitigate;
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../contrib/grafana/floodwatch.json")).unwrap();
        let m = Metrics::default();
        m.thresholds[0].store(0.5f64.to_bits(), Relaxed);
        assert!(!m.render().contains("active_mitigations"));
        let home = crate::detect::homenet::HomeNet::parse("--home-net", &["10.0.0.0/8"]).unwrap();
        let bans = mitigate::Bans::new(
            mitigate::DryRun,
            mitigate::Kind::Blackhole,
            Duration::ZERO,
            1,
        );
        let guard = mitigate::Guard::new(home, Default::default());
        let mitigator = mitigate::Mitigator::start(guard, bans, 1).unwrap();
        let _ = m.mitigation.set(mitigator.stats_handle());
        let page = m.render();
        assert!(page.contains("floodwatch_active_mitigations 0"), "{page}");
        let mut queried = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for name in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    let Some(name) = name.strip_prefix("floodwatch_").map(|_| name) else {
                        continue;
                    };
                    let base = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(name);
                    assert!(page.contains(&format!("# TYPE {base} ")), "{expr}: {base}");
                    queried += 1;
                }
            }
        }
        assert!(queried >= 12, "{queried} metric references");
        for name in ["grace_records_total", "open_episodes", "grace", "threshold"] {
            assert!(
                dashboard
                    .to_string()
                    .contains(&format!("floodwatch_{name}")),
                "{name}"
            );
        }
    }
    use std::io::{Read, Write};

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_nanos(500));
        h.observe(Duration::from_micros(15));
        h.observe(Duration::from_secs(1));
        assert_eq!(h.count(), 3);
        assert_eq!(h.quantile_bound(0.5), Some(20e-6));
        let mut out = String::new();
        h.render("x", &mut out);
        assert!(out.contains("x_bucket{le=\"0.000001\"} 1"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.00002\"} 2"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3"));
    }

    #[test]
    fn scraped_over_http() {
        let m = Arc::new(Metrics::default());
        m.records.fetch_add(42, Relaxed);
        m.dropped.fetch_add(3, Relaxed);
        let server = MetricsServer::start("127.0.0.1:0", m.clone()).unwrap();
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1."), "{body}");
        assert!(body.contains("floodwatch_records_total 42"));
        assert!(body.contains("floodwatch_dropped_total 3"));
        assert!(body.contains("# TYPE floodwatch_record_latency_seconds histogram"));
        let info = format!(
            "floodwatch_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(body.contains(&info), "{body}");
        assert!(!body.contains("per_second"));
        for (request, status) in [
            ("GET /metrics?x=1", " 200 "),
            ("GET /", " 404 "),
            ("GET /metricsx", " 404 "),
            ("POST /metrics", " 404 "),
        ] {
            let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
            write!(s, "{request} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut reply = String::new();
            s.read_to_string(&mut reply).unwrap();
            assert!(
                reply.lines().next().unwrap().contains(status),
                "{request}: {reply}"
            );
        }
    }

    #[test]
    fn group_counters_appear_once_a_group_source_runs() {
        let m = Metrics::default();
        assert!(!m.render().contains("kafka"));
        m.group.enabled.store(true, Relaxed);
        m.group.partitions.store(2, Relaxed);
        m.group.warming.fetch_add(7, Relaxed);
        let out = m.render();
        assert!(out.contains("floodwatch_kafka_partitions 2"), "{out}");
        assert!(out.contains("floodwatch_kafka_warming_records_total 7"));
    }
}
