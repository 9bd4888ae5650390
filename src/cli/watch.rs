//! `floodwatch watch`: streaming detection from a capture file, a live
//! interface, standard input or a Kafka topic (cargo feature `kafka`), with
//! alerts, per-record scores and metrics.

use floodwatch::util::{is_stdout, stream_output};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, ValueEnum};

use floodwatch::detect::dump::{DumpParams, Dumps};
use floodwatch::detect::episode::TrackerParams;
use floodwatch::detect::homenet::HomeNet;
use floodwatch::detect::metrics::{Metrics, MetricsServer};
use floodwatch::detect::mitigate::{
    Action, Bans, DryRun, GoBgp, Guard, Kind, Mitigator, StatsHandle,
};
use floodwatch::detect::saved::{self, Saved};
use floodwatch::detect::sink::{AlertSink, CommandHook, HomeNetSink, HookStats, JsonLines};
use floodwatch::detect::stream::calibrate::{parse_budget, MAX_FACTOR};
use floodwatch::detect::stream::drift::Period;
use floodwatch::detect::stream::grace::SLOWEST_HALF_LIFE;
use floodwatch::detect::stream::source::{Paced, PacketRecords};
use floodwatch::detect::stream::tabular::{BundleScorer, LineRecords};
use floodwatch::detect::stream::{
    learning_sides, Calibrate, Engine, EngineParams, Grace, GraceReport, OnlineDetector,
    RecordSource, SavedModel, SideSpec, SideSummary, Summary,
};
use floodwatch::detect::vote::VoteParams;
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::packet::{FeatureExtractor, Side};
use floodwatch::features::stream_table::TableConfig;
use floodwatch::features::tabular::Schema;
use floodwatch::ingest::packets::capture::{FrameTap, PacketSource};
use floodwatch::ingest::packets::synth::parse_duration;
use floodwatch::ingest::queue::Overflow;
use floodwatch::model::bundle::Bundle;
use floodwatch::model::threshold::ThresholdRule;

/// The online detector learned during grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Detector {
    /// Dense autoencoder fitted on the grace records.
    Ae,
    /// KitNET ensemble of small autoencoders (Kitsune).
    Kitnet,
}

/// `--when-full`: what a full queue does with the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WhenFull {
    /// Wait for room.
    Block,
    /// Drop the record and count it.
    Drop,
}

/// Exit code of a run that dropped records under `--fail-on-drop`.
const DROPPED: u8 = 5;

/// Flags of `watch`.
#[derive(Debug, ClapArgs)]
#[cfg_attr(
    not(feature = "kafka"),
    command(group(clap::ArgGroup::new("source").required(true).args(["pcap", "interface", "stdin", "netflow", "sflow"])))
)]
#[cfg_attr(
    feature = "kafka",
    command(group(clap::ArgGroup::new("source").required(true).args(["pcap", "interface", "stdin", "netflow", "sflow", "kafka_topic"])))
)]
#[command(group(clap::ArgGroup::new("learn").required(true).args(["model", "grace"])))]
pub struct Args {
    /// Read packets from a capture file (pcap or pcapng), as fast as possible.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// With --pcap: replay at the pace of the capture's timestamps.
    #[arg(long, requires = "pcap")]
    pub realtime: bool,
    /// Capture live from this interface (needs root and the `live` feature).
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// Read records from standard input: CSV with a header, or JSON lines, in
    /// the schema of the bundle given with --model (from `train`).
    #[arg(long, requires = "model", conflicts_with = "grace")]
    pub stdin: bool,
    /// Most records waiting between a live capture or standard input and
    /// scoring (see --when-full).
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub queue: usize,
    /// What a full queue does: wait for room (block: nothing lost; the
    /// default for standard input) or drop the record and count it (drop:
    /// capture never stalls; the default for --interface).
    #[arg(long, value_enum, value_name = "POLICY")]
    pub when_full: Option<WhenFull>,
    /// Exit with code 5 when records were dropped.
    #[arg(long)]
    pub fail_on_drop: bool,
    /// Score with a model saved by `--save-model`, or a bundle from `train`
    /// (trained on captures for packet sources, on tables for --stdin).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Learn normal traffic online first, then detect: a span of capture
    /// time (`10m`, `90s`, `1h`; the first 80 % learned from, the rest held
    /// back to calibrate the threshold) or a number of records (`5000`).
    #[arg(long, value_name = "DURATION|N")]
    pub grace: Option<Grace>,
    /// The detector learned during grace.
    #[arg(long, value_enum, default_value_t = Detector::Ae)]
    pub detector: Detector,
    /// False alert episodes a day the threshold is calibrated for (on the
    /// held-back fifth of grace; `N/day`, `N/hour`).
    #[arg(long, value_name = "N/day", default_value = "1/day", value_parser = parse_budget)]
    pub false_alarms: f64,
    /// Instead of --false-alarms: a per-record rule on the held-back
    /// scores, `quantile:Q` or `fpr:F`.
    #[arg(long, value_name = "RULE", conflicts_with = "false_alarms")]
    pub threshold: Option<ThresholdRule>,
    /// How often thresholds move with slow benign drift, learned from
    /// records judged normal only (`10m`, `1h`), or `off`.
    #[arg(long, value_name = "PERIOD|off", default_value = "10m")]
    pub drift: Period,
    /// Most grace records kept to learn from (a uniform sample).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub grace_sample: usize,
    /// Training epochs of the dense autoencoder.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub epochs: usize,
    /// Save the model learned during grace (as soon as grace ends), and
    /// again at exit or on SIGTERM with the feature tables, so that
    /// `--model PATH` restarts warm.
    #[arg(long, value_name = "PATH")]
    pub save_model: Option<PathBuf>,
    /// Packet feature layout: victim (destination-keyed: floods against a
    /// target, over 1M packets/s), floodwatch (kitsune-corrected + victim:
    /// also per-host anomalies such as scans, about 6x slower), kitsune,
    /// kitsune-corrected or nbaiot. Default: victim, or the layout of
    /// --model (a different --layout is then an error).
    #[arg(long)]
    pub layout: Option<String>,
    /// Most entries per state table of the layout.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub table_capacity: usize,
    /// Alerts as JSON lines to this file (default and `-`: standard output), or to a
    /// Kafka topic with `kafka://TOPIC` (needs --kafka-brokers).
    #[arg(long, value_name = "FILE")]
    pub alerts: Option<PathBuf>,
    /// Run this shell command for each alert, the alert on its stdin.
    #[arg(long, value_name = "CMD")]
    pub on_alert: Option<String>,
    /// Write the first packets of each episode's target to a pcap file in
    /// DIR (one file per episode; packet sources only).
    #[arg(long, value_name = "DIR")]
    pub dump_packets: Option<PathBuf>,
    /// Packets per --dump-packets file.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub dump_count: u64,
    /// Episodes dumped at once by --dump-packets; more are counted, not
    /// dumped.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_dumps: usize,
    /// The protected network (Suricata's HOME_NET): prefixes or addresses,
    /// repeatable and comma-separated. Episodes are then `incoming` or
    /// `outgoing` (alert.context.direction, the --on-alert direction);
    /// without it, victims are incoming and scanners outgoing.
    #[arg(long, value_name = "CIDR", value_parser = cidrs)]
    pub home_net: Vec<String>,
    /// Majority vote: alert when V of the last W records of a target are
    /// anomalous.
    #[arg(long, value_name = "W/V", default_value = "10/6", value_parser = parse_vote)]
    pub vote: VoteParams,
    /// Seconds without anomalous records before an episode ends.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub episode_timeout: f64,
    /// Features named in each alert, by share of the error.
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub top_features: usize,
    /// Send an episode's `details` alert (its fingerprint; the hook's
    /// attack_details, FlowSpec's narrowed rule) once it has N records; 0:
    /// never.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub details_after: u64,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9187).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Write `index,timestamp,score,is_anomaly` for every record (`-`:
    /// standard output, with --alerts to a file).
    #[arg(long, value_name = "FILE.csv")]
    pub scores: Option<PathBuf>,
    /// Flow telemetry input (boxed: the command enum stays small).
    #[command(flatten)]
    pub flow: Box<super::flow_flags::FlowFlags>,
    /// Kafka consumer-group input (boxed: the command enum stays small).
    #[cfg(feature = "kafka")]
    #[command(flatten)]
    pub kafka: Box<super::kafka_flags::KafkaFlags>,
    /// Mitigation through BGP (last: its flags have a help heading).
    #[command(flatten)]
    pub mitigation: Box<MitigateFlags>,
}

/// Flags of `watch --mitigate` (boxed in [`Args`]: they are many).
#[derive(Debug, ClapArgs)]
#[command(next_help_heading = "Mitigation")]
pub struct MitigateFlags {
    /// Announce each incoming flood against a --home-net address to a local
    /// gobgpd: its /32 or /128 with the BLACKHOLE community 65535:666
    /// (blackhole), or a FlowSpec rule discarding the flood's protocol
    /// toward it (flowspec).
    #[arg(long, value_name = "blackhole|flowspec", requires = "home_net")]
    pub mitigate: Option<Kind>,
    /// What FlowSpec rules do: discard, or rate-limit:BYTES_PER_SECOND.
    #[arg(
        long,
        value_name = "ACTION",
        default_value = "discard",
        requires = "mitigate"
    )]
    pub flowspec_action: Action,
    /// Withdraw an announcement this long after its episode ends (`5m`,
    /// `90s`); a new episode before then keeps it.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub ban_time: Duration,
    /// With --mitigate: log what would be announced, announce nothing.
    #[arg(long, requires = "mitigate")]
    pub mitigate_dry_run: bool,
    /// Addresses never announced, whatever their episodes (prefixes or
    /// addresses, repeatable and comma-separated).
    #[arg(long, value_name = "CIDR", value_parser = never_cidrs, requires = "mitigate")]
    pub never_mitigate: Vec<String>,
    /// Most announcements active at once; further victims are refused and
    /// counted.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_announcements: usize,
    /// The gobgp CLI that talks to gobgpd.
    #[arg(long, value_name = "PATH", default_value = "gobgp")]
    pub gobgp: PathBuf,
    /// gobgpd's gRPC port (gobgp's `-p`; its default is 50051).
    #[arg(long, value_name = "PORT")]
    pub gobgp_api: Option<u16>,
    /// Next hop of blackhole routes, one per address family (default
    /// 192.0.2.1 and 100::1, routed to a discard interface by routers
    /// taking remotely triggered blackholes).
    #[arg(long, value_name = "ADDR")]
    pub next_hop: Vec<IpAddr>,
}

/// Runs before a Kafka source commits offsets: flushes an output.
type Flush = Box<dyn FnMut() -> floodwatch::Result<()> + Send>;

/// The alert sinks, the flushes of those a Kafka source must wait for, and
/// the mitigation's counts.
type Sinks = (Vec<Box<dyn AlertSink>>, Vec<Flush>, Reports);

/// Counts of the alert actions, printed after the run.
#[derive(Default)]
struct Reports {
    mitigation: Option<StatsHandle>,
    hook: Option<Arc<Mutex<HookStats>>>,
    dumps: Option<Dumps>,
}

/// Checks a `--home-net` value when the flags are parsed, not after grace.
fn cidrs(s: &str) -> Result<String, String> {
    HomeNet::parse("--home-net", &[s]).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// Checks a `--never-mitigate` value when the flags are parsed.
fn never_cidrs(s: &str) -> Result<String, String> {
    HomeNet::parse("--never-mitigate", &[s]).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// A `--ban-time` such as `5m` or `90s`.
fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map(|ns| Duration::from_nanos(ns.unsigned_abs()))
}

fn parse_vote(s: &str) -> Result<VoteParams, String> {
    let (w, v) = s
        .split_once('/')
        .ok_or_else(|| format!("vote '{s}' should be W/V, e.g. 10/6"))?;
    let num = |x: &str| {
        x.trim()
            .parse::<u32>()
            .map_err(|_| format!("vote '{s}' should be W/V with whole numbers"))
    };
    VoteParams::new(num(w)?, num(v)?).map_err(|e| e.to_string())
}

/// A packet feature layout by name.
fn layout(name: &str, capacity: usize) -> anyhow::Result<Box<dyn FeatureExtractor>> {
    let config = TableConfig {
        capacity,
        ..TableConfig::default()
    };
    Ok(name.parse::<PacketLayout>()?.extractor(config)?)
}

/// The detectors of a packet source: loaded from `--model` (its tables
/// restored into `src` for a warm start), or one per feature group of the
/// layout, to learn during grace.
fn sides(
    args: &Args,
    src: &mut dyn RecordSource,
    model: Option<SavedModel>,
) -> anyhow::Result<Vec<SideSpec>> {
    let names = src.names().to_vec();
    if let Some(model) = model {
        let path = args.model.clone().unwrap_or_default();
        if model.features() != names {
            bail!(
                "{}: the model reads {} features, but layout '{}' gives {} others: it was saved \
                 by a floodwatch whose layout had other features; relearn it with --grace",
                path.display(),
                model.features().len(),
                args.layout(),
                names.len()
            );
        }
        if let Some(state) = &model.state {
            if let Err(e) = src.restore(state.json()) {
                eprintln!(
                    "floodwatch: warning: {}: feature tables not restored ({e}): starting cold",
                    path.display()
                );
            }
        }
        return Ok(model.into_sides());
    }
    let detector = match args.detector {
        Detector::Ae => OnlineDetector::Autoencoder {
            epochs: args.epochs,
        },
        Detector::Kitnet => OnlineDetector::Kitnet,
    };
    let groups = layout(args.layout(), 2)?.groups();
    Ok(learning_sides(groups, detector, args.grace_sample))
}

/// One destination-side detector over every feature: a bundle from `train`.
fn bundle_side(bundle: &Bundle) -> Vec<SideSpec> {
    vec![SideSpec {
        side: Side::Destination,
        range: 0..bundle.schema.feature_names().len(),
        scorer: Box::new(BundleScorer::new(bundle)),
        threshold: Some(f64::from(bundle.threshold)),
        calibration: None,
    }]
}

/// The alert sinks, and the flushes a Kafka source runs before committing.
fn sinks(args: &Args, dumps: Option<&Dumps>) -> anyhow::Result<Sinks> {
    let mut sinks: Vec<Box<dyn AlertSink>> = Vec::new();
    let mut flushes: Vec<Flush> = Vec::new();
    match &args.alerts {
        Some(path) if path.to_string_lossy().starts_with(KAFKA_SCHEME) => {
            let topic = path.to_string_lossy()[KAFKA_SCHEME.len()..].to_owned();
            let sink = kafka_alerts(args, &topic)?;
            flushes.push(sink.1);
            sinks.push(sink.0);
        }
        Some(path) => {
            let f = Named(stream_output(path)?, path.clone());
            sinks.push(Box::new(JsonLines::new(BufWriter::new(f))));
        }
        None => sinks.push(Box::new(JsonLines::new(std::io::stdout()))),
    }
    let mut reports = Reports::default();
    if let Some(cmd) = &args.on_alert {
        let hook = CommandHook::new(cmd);
        reports.hook = Some(hook.final_stats());
        sinks.push(Box::new(hook));
    }
    if let Some(d) = dumps {
        reports.dumps = Some(d.clone());
        sinks.push(Box::new(d.sink()));
    }
    let home = HomeNet::parse("--home-net", &args.home_net)?;
    if let Some(kind) = args.mitigation.mitigate {
        let m = mitigator(&args.mitigation, kind, home.clone())?;
        reports.mitigation = Some(m.stats_handle());
        sinks.push(Box::new(m));
    }
    if !home.is_empty() {
        sinks = vec![Box::new(HomeNetSink::new(home, sinks))];
    }
    Ok((sinks, flushes, reports))
}

/// `--mitigate`: the mitigation sink, through gobgp or a dry run.
fn mitigator(args: &MitigateFlags, kind: Kind, home: HomeNet) -> anyhow::Result<Mitigator> {
    if home.is_empty() {
        bail!("--mitigate needs --home-net: only addresses inside it are announced");
    }
    let guard = Guard::new(
        home,
        HomeNet::parse("--never-mitigate", &args.never_mitigate)?,
    );
    let cap = args.max_announcements;
    let started = if args.mitigate_dry_run {
        let bans = Bans::new(DryRun, kind, args.ban_time, cap).action(args.flowspec_action);
        Mitigator::start(guard, bans, 1024)
    } else {
        let gobgp = (args.next_hop.iter())
            .fold(GoBgp::new(&args.gobgp, args.gobgp_api), |g, &ip| {
                g.next_hop(ip)
            });
        let bans = Bans::new(gobgp, kind, args.ban_time, cap).action(args.flowspec_action);
        Mitigator::start(guard, bans, 1024)
    };
    started.context("starting the mitigation thread")
}

/// `--alerts kafka://TOPIC`.
const KAFKA_SCHEME: &str = "kafka://";

#[cfg(feature = "kafka")]
fn kafka_alerts(args: &Args, topic: &str) -> anyhow::Result<(Box<dyn AlertSink>, Flush)> {
    use floodwatch::detect::kafka_sink::KafkaAlerts;
    let Some(brokers) = &args.kafka.kafka_brokers else {
        bail!("--alerts {KAFKA_SCHEME}{topic} needs --kafka-brokers");
    };
    if topic.is_empty() {
        bail!("--alerts {KAFKA_SCHEME}: no topic named");
    }
    let opts = &args.kafka.kafka_options;
    // Brokers need not create topics on first use (tansu does not).
    let partitions = floodwatch::detect::kafka_sink::ALERT_PARTITIONS;
    if let Err(e) = floodwatch::ingest::kafka::create_topic(brokers, topic, partitions, opts) {
        eprintln!("floodwatch: cannot create the alert topic ({e}); using it as it is");
    }
    let sink = KafkaAlerts::new(brokers, topic, opts)?;
    let flush = Box::new(sink.flusher());
    Ok((Box::new(sink), flush))
}

#[cfg(not(feature = "kafka"))]
fn kafka_alerts(_: &Args, topic: &str) -> anyhow::Result<(Box<dyn AlertSink>, Flush)> {
    bail!("--alerts {KAFKA_SCHEME}{topic}: this floodwatch was built without Kafka (cargo feature `kafka`)")
}

fn source(args: &Args, io: &Io) -> anyhow::Result<Box<dyn RecordSource>> {
    if args.flow.active() {
        let pcap = args.pcap.as_deref();
        return args
            .flow
            .source(pcap, args.layout(), args.table_capacity, io.quiet);
    }
    packet_source(args, layout(args.layout(), args.table_capacity)?, io)
}

/// Packets from the capture file or interface, featured by `features`.
fn packet_source(
    args: &Args,
    features: Box<dyn FeatureExtractor>,
    io: &Io,
) -> anyhow::Result<Box<dyn RecordSource>> {
    let tap = io
        .dumps
        .as_ref()
        .map(|d| Box::new(d.tap()) as Box<dyn FrameTap>);
    if let Some(path) = &args.pcap {
        let mut packets = PacketSource::open(path)?;
        if let Some(tap) = tap {
            packets = packets.tap(tap);
        }
        return Ok(if args.realtime {
            Box::new(PacketRecords::new(Paced::new(packets), features))
        } else {
            Box::new(PacketRecords::new(packets, features))
        });
    }
    if let Some(iface) = &args.interface {
        return live(iface, args.queue, overflow(args), features, &io.stop, tap);
    }
    bail!("no packet source given (--pcap or --interface)")
}

#[cfg(feature = "live")]
fn live(
    iface: &str,
    queue: usize,
    overflow: Overflow,
    features: Box<dyn FeatureExtractor>,
    stop: &Arc<AtomicBool>,
    tap: Option<Box<dyn FrameTap>>,
) -> anyhow::Result<Box<dyn RecordSource>> {
    use floodwatch::detect::stream::source::QueueFeed;
    use floodwatch::ingest::packets::live::LiveCapture;
    let feed = LiveCapture::open(iface)?.spawn(queue, overflow, Arc::clone(stop), tap)?;
    // The thread ends with the process; its error, if any, ends the feed.
    drop(feed.thread);
    let packets = QueueFeed::new(feed.packets, feed.dropped);
    Ok(Box::new(PacketRecords::new(packets, features)))
}

#[cfg(not(feature = "live"))]
fn live(
    iface: &str,
    _queue: usize,
    _overflow: Overflow,
    _features: Box<dyn FeatureExtractor>,
    _stop: &Arc<AtomicBool>,
    _tap: Option<Box<dyn FrameTap>>,
) -> anyhow::Result<Box<dyn RecordSource>> {
    bail!("--interface {iface}: this floodwatch was built without live capture (cargo feature `live`)")
}

impl Args {
    /// The packet layout (after [`resolve_layout`]).
    fn layout(&self) -> &str {
        self.layout.as_deref().unwrap_or(PacketLayout::DEFAULT)
    }
}

/// The layout of `model` when it has one (a `--layout` that differs is an
/// error), else `--layout`, else the default.
fn resolve_layout(args: &Args, model: Option<&Saved>) -> anyhow::Result<String> {
    let saved = match model {
        Some(Saved::Stream(m)) => m.layout.clone(),
        Some(Saved::Table(b)) => b.capture.as_ref().map(|c| c.layout.clone()),
        None => None,
    };
    match (saved, &args.layout) {
        (Some(m), Some(flag)) if &m != flag => bail!(
            "--layout {flag} contradicts --model {}, which reads layout '{m}': drop --layout",
            args.model.clone().unwrap_or_default().display()
        ),
        (Some(m), _) => Ok(m),
        (None, flag) => Ok(flag.clone().unwrap_or_else(|| PacketLayout::DEFAULT.into())),
    }
}

/// The stream model of `model`, if it is one (a table model is used before
/// this is asked).
fn stream_model(model: Option<Saved>) -> Option<SavedModel> {
    match model {
        Some(Saved::Stream(m)) => Some(m),
        _ => None,
    }
}

/// A bundle trained on captures (`train --pcap`): packets are featured with
/// its layout and table capacity, then scored by its autoencoder.
fn packet_bundle(
    args: &Args,
    bundle: &Bundle,
    io: &Io,
) -> anyhow::Result<(Box<dyn RecordSource>, Vec<SideSpec>)> {
    let path = args.model.clone().unwrap_or_default();
    let Some(capture) = &bundle.capture else {
        bail!(
            "{}: this bundle was trained on CSV tables: use --stdin",
            path.display()
        );
    };
    let features = capture.extractor()?;
    if features.names() != bundle.schema.feature_names() {
        bail!(
            "{}: the bundle's columns are not layout '{}''s features",
            path.display(),
            capture.layout
        );
    }
    if args.flow.active() != capture.flows {
        let (trained, given) = match capture.flows {
            true => (
                "flow records",
                "give --netflow, --sflow or --pcap FILE --flows",
            ),
            false => ("packets", "give a capture or an interface"),
        };
        bail!(
            "{}: this bundle was trained on {trained}: {given}",
            path.display()
        );
    }
    let src = if args.flow.active() {
        let pcap = args.pcap.as_deref();
        (args.flow).source(pcap, &capture.layout, capture.table_capacity, io.quiet)?
    } else {
        packet_source(args, features, io)?
    };
    Ok((src, bundle_side(bundle)))
}

/// A file whose write errors name it (the engine knows it only as
/// "scores" or "alerts").
struct Named(File, PathBuf);

impl Write for Named {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(|e| self.name(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(|e| self.name(e))
    }
}

impl Named {
    fn name(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("{}: {e}", self.1.display()))
    }
}

/// The policy of the queue behind the source: `--when-full`, else drop for
/// a live interface (it cannot wait) and block for everything else.
fn overflow(args: &Args) -> Overflow {
    match (args.when_full, &args.interface) {
        (Some(WhenFull::Block), _) => Overflow::Block,
        (Some(WhenFull::Drop), _) | (None, Some(_)) => Overflow::Drop,
        (None, None) => Overflow::Block,
    }
}

/// Lines of standard input through a queue of `queue` lines.
fn stdin_source(schema: Schema, args: &Args) -> LineRecords {
    let feed = floodwatch::ingest::lines::spawn(std::io::stdin(), "-", args.queue, overflow(args));
    LineRecords::new(feed.lines, feed.dropped, schema, "-")
}

/// Watches until the input ends or SIGINT/SIGTERM, then prints the summary.
pub fn run(mut args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let metrics = Arc::new(Metrics::default());
    let server = match &args.metrics {
        Some(addr) => {
            let s = MetricsServer::start(addr, Arc::clone(&metrics))?;
            if !quiet {
                eprintln!("metrics on http://{}/metrics", s.addr());
            }
            Some(s)
        }
        None => None,
    };
    let dumps = dumps(&args)?;
    let model = args.model.as_deref().map(saved::load).transpose()?;
    args.layout = Some(resolve_layout(&args, model.as_ref())?);
    let io = Io { stop, dumps, quiet };
    let chosen = choose(&args, model, &metrics, &io)?;
    execute(&args, chosen, metrics, io, server, quiet)
}

/// What the source and the sinks share: the stop flag and the packet dumps.
struct Io {
    stop: Arc<AtomicBool>,
    dumps: Option<Dumps>,
    quiet: bool,
}

/// `--dump-packets`: packet sources only.
fn dumps(args: &Args) -> anyhow::Result<Option<Dumps>> {
    let Some(dir) = &args.dump_packets else {
        return Ok(None);
    };
    if (args.pcap.is_none() && args.interface.is_none()) || args.flow.active() {
        bail!("--dump-packets writes captured packets: use it with --pcap or --interface");
    }
    let params = DumpParams {
        dir: dir.clone(),
        packets: args.dump_count.max(1),
        max_open: args.max_dumps.max(1),
    };
    Ok(Some(Dumps::new(params)?))
}

/// What a run reads and scores with, chosen up front; `group` is there for
/// a Kafka consumer group, which commits offsets.
struct Chosen {
    source: Box<dyn RecordSource>,
    sides: Vec<SideSpec>,
    group: Option<Box<dyn Group>>,
}

/// What only a consumer group needs of a run: flushes before each commit,
/// the last commit at the end, and a line of its own in the summary.
trait Group {
    fn before_commit(&self, flush: Flush);
    /// The scores writer, flushed before each commit.
    fn scores(&self, out: Box<dyn Write + Send>) -> Box<dyn Write>;
    fn close(&self) -> anyhow::Result<()>;
    fn render(&self) -> String;
}

/// The source and detectors of `args`: Kafka, standard input, or packets.
fn choose(
    args: &Args,
    model: Option<Saved>,
    metrics: &Arc<Metrics>,
    io: &Io,
) -> anyhow::Result<Chosen> {
    #[cfg(feature = "kafka")]
    if let Some(params) = args.kafka.params()? {
        return kafka::choose(args, model, params, metrics);
    }
    let _ = metrics;
    let (source, sides) = if args.stdin {
        let Some(Saved::Table(bundle)) = model else {
            bail!(
                "--stdin scores table rows: give --model a table model from `train` \
                 (`floodwatch inspect MODEL` says which kind a file is)"
            );
        };
        let lines = stdin_source(bundle.schema.clone(), args);
        let (src, scorer) = floodwatch::detect::microbatch::batched(lines, &bundle);
        let src: Box<dyn RecordSource> = Box::new(src);
        let mut sides = bundle_side(&bundle);
        sides[0].scorer = Box::new(scorer);
        (src, sides)
    } else if let Some(Saved::Table(bundle)) = &model {
        packet_bundle(args, bundle, io)?
    } else {
        let mut src = source(args, io)?;
        let sides = sides(args, src.as_mut(), stream_model(model))?;
        (src, sides)
    };
    Ok(Chosen {
        source,
        sides,
        group: None,
    })
}

/// The one run sequence: engine, scores, sinks, run, summary.
fn execute(
    args: &Args,
    chosen: Chosen,
    metrics: Arc<Metrics>,
    io: Io,
    server: Option<MetricsServer>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let Chosen {
        mut source,
        sides,
        group,
    } = chosen;
    let (mut sinks, flushes, reports) = sinks(args, io.dumps.as_ref())?;
    let stop = io.stop;
    if let Some(m) = &reports.mitigation {
        let _ = metrics.mitigation.set(m.clone());
    }
    let mut engine = Engine::new(engine_params(args), sides, Arc::clone(&metrics), stop)?;
    if !quiet {
        engine = engine.on_grace_end(Box::new(report_grace));
    }
    if let Some(path) = &args.scores {
        if is_stdout(path) && args.alerts.as_deref().is_none_or(is_stdout) {
            bail!("--scores - and the alerts would share standard output: give --alerts FILE");
        }
        let f = stream_output(path)?;
        let out = Box::new(BufWriter::with_capacity(1 << 16, Named(f, path.clone())));
        engine = engine.scores_to(match &group {
            Some(g) => g.scores(out),
            None => out,
        });
    }
    if let Some(g) = &group {
        flushes.into_iter().for_each(|f| g.before_commit(f));
    }
    let summary = engine.run(source.as_mut(), &mut sinks)?;
    if let Some(g) = &group {
        g.close()?;
    }
    drop(server);
    for r in &summary.rejections {
        eprintln!("floodwatch: rejected: {r}");
    }
    if !quiet {
        source
            .notes()
            .iter()
            .for_each(|n| eprintln!("floodwatch: {n}"));
    }
    if !quiet {
        eprint!("{}", render(&summary));
        if let Some(g) = &group {
            eprint!("{}", g.render());
        }
        if let Some(m) = &reports.mitigation {
            eprintln!("{}", m.stats());
        }
        if let Some(d) = &reports.dumps {
            eprintln!("floodwatch: {}", d.stats());
        }
    }
    if let Some(Ok(h)) = reports.hook.as_ref().map(|h| h.lock()) {
        // Even with -q when alerts were not handed over: nothing is lost silently.
        if !quiet || h.dropped + h.failed > 0 {
            eprintln!("floodwatch: {h}");
        }
    }
    Ok(drop_outcome(
        &summary,
        args.fail_on_drop,
        args.flow.active(),
    ))
}

/// Says how much a run dropped (even with -q: records were lost), and
/// fails with [`DROPPED`] under `--fail-on-drop`.
fn drop_outcome(s: &Summary, fail_on_drop: bool, flows: bool) -> ExitCode {
    if s.dropped == 0 {
        return ExitCode::SUCCESS;
    }
    if flows {
        eprintln!(
            "floodwatch: the kernel dropped {} flow datagrams on full socket buffers: \
             they came faster than they were scored ({} records scored)",
            s.dropped, s.records
        );
    } else {
        let offered = s.records + s.rejected + s.dropped;
        eprintln!(
            "floodwatch: dropped {} of {offered} records ({:.2} %): a full queue under \
             --when-full drop, or lines too long",
            s.dropped,
            100.0 * s.dropped as f64 / offered as f64,
        );
    }
    if fail_on_drop {
        ExitCode::from(DROPPED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints what grace learned and how each threshold was set, with a
/// warning when grace was shorter than the slowest window.
fn report_grace(r: &GraceReport) {
    eprintln!(
        "grace: learned from {} records over {:.1} s",
        r.records, r.seconds
    );
    if r.seconds < SLOWEST_HALF_LIFE {
        eprintln!(
            "floodwatch: warning: grace spanned {:.0} s, less than the slowest window's \
             half-life ({SLOWEST_HALF_LIFE:.0} s): those windows were learned young (their \
             rates are corrected for age, but slow changes are seen less well); --grace 10m \
             is recommended for live traffic",
            r.seconds
        );
    }
    for (side, c) in &r.sides {
        let pct = |a: u64, n: u64| 100.0 * a as f64 / (n as f64).max(1.0);
        eprintln!(
            "grace: {side:?} side: threshold {:.6} (largest voted score {:.6}, for {} false \
             episodes a day); held back {:.1} s: {} of {} records above ({:.3} %), {} of {} \
             host-seconds voted above",
            c.threshold,
            c.max_voted,
            c.budget_per_day,
            c.seconds,
            c.records_above,
            c.records,
            pct(c.records_above, c.records),
            c.events_above,
            c.events
        );
        if c.unfitted() {
            eprintln!(
                "grace: {side:?} side: {} host-seconds are too few to fit a tail to; the \
                 threshold is {MAX_FACTOR} times the largest voted score",
                c.events
            );
        }
        if c.seconds < 60.0 && c.budget_per_day > 0.0 {
            eprintln!(
                "floodwatch: warning: the {side:?} threshold extrapolates {:.0} s of held-back \
                 traffic to a budget per day; a longer grace gives a firmer one",
                c.seconds
            );
        }
    }
}

fn engine_params(args: &Args) -> EngineParams {
    let calibrate = match args.threshold {
        Some(ThresholdRule::Quantile(q)) => Calibrate::Quantile(q),
        Some(ThresholdRule::TargetFpr(f)) => Calibrate::Quantile(1.0 - f),
        _ => Calibrate::Budget(args.false_alarms),
    };
    EngineParams {
        tracker: TrackerParams::new()
            .vote(args.vote)
            .episode_timeout(args.episode_timeout)
            .top_features(args.top_features)
            .details_after(args.details_after),
        top_features: args.top_features,
        save_model: args.save_model.clone(),
        grace: if args.model.is_some() {
            None
        } else {
            args.grace
        },
        calibrate,
        drift: args.drift.0,
        layout: Some(args.layout().to_owned()),
    }
}

/// How a side's threshold followed drift, for the summary.
fn drift_note(side: &SideSummary) -> String {
    match side.drift {
        Some(d) if d.updates + d.skipped > 0 => format!(
            " ({:.3}x calibrated after {} drift periods, {} too quiet to count)",
            d.factor, d.updates, d.skipped
        ),
        _ => String::new(),
    }
}

fn render(s: &Summary) -> String {
    let p99 = match s.p99_latency {
        Some(b) => format!("<= {:.0} us", b * 1e6),
        None => "> 100 ms".into(),
    };
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let mut out = format!(
        "watch {}: {} records ({} in grace) in {:.2} s ({:.0}/s), {} rejected, {} dropped, \
         {} anomalies, {} alert events ({} episodes), table {} entries, {} evictions, \
         p99 latency {p99}\n",
        if s.stopped { "stopped" } else { "done" },
        s.records,
        s.grace,
        secs,
        s.records as f64 / secs,
        s.rejected,
        s.dropped,
        s.anomalies,
        s.alerts,
        s.episodes,
        s.table_entries,
        s.evictions,
    );
    if s.stopped && s.sides.iter().any(|side| side.threshold.is_infinite()) {
        out.push_str("stopped during grace: nothing was learned, scored or saved\n");
    }
    if s.sides.len() > 1 {
        for side in &s.sides {
            out.push_str(&format!(
                "  {:?} side: {} anomalies, {} episodes, threshold {:.6}{}\n",
                side.side,
                side.anomalies,
                side.episodes,
                side.threshold,
                drift_note(side)
            ));
        }
    }
    if let Some(p) = &s.saved_model {
        out.push_str(&format!("model saved to {}\n", p.display()));
    }
    out
}

/// `watch --kafka-topic`: one member of a consumer group.
#[cfg(feature = "kafka")]
mod kafka {
    use super::super::kafka_flags::SharedWriter;
    use super::*;
    use floodwatch::detect::kafka_source::{
        GroupCloser, GroupParams, GroupSource, LayoutFactory, Payload,
    };

    /// What the topic holds and how it is scored, from --model or --layout.
    fn payload(
        args: &Args,
        model: &Option<Saved>,
    ) -> anyhow::Result<(Payload, Option<Vec<SideSpec>>)> {
        if let Some(Saved::Table(bundle)) = model {
            let scorer = bundle_side(bundle);
            let payload = match bundle.capture.clone() {
                Some(capture) => {
                    let factory: LayoutFactory = Box::new(move || capture.extractor());
                    Payload::Packets(factory)
                }
                None => Payload::Rows(bundle.schema.clone()),
            };
            return Ok((payload, Some(scorer)));
        }
        let (name, capacity) = (args.layout().to_owned(), args.table_capacity);
        let factory: LayoutFactory = Box::new(move || {
            layout(&name, capacity).map_err(|e| floodwatch::Error::Data(e.to_string()))
        });
        Ok((Payload::Packets(factory), None))
    }

    /// The consumer group as the run's source.
    pub(super) fn choose(
        args: &Args,
        model: Option<Saved>,
        params: GroupParams,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<Chosen> {
        let (payload, scorer) = payload(args, &model)?;
        let mut source = GroupSource::new(params, payload, Arc::clone(metrics))?;
        let sides = match scorer {
            Some(s) => s,
            None => super::sides(args, &mut source, super::stream_model(model))?,
        };
        let group = KafkaGroup {
            closer: source.closer(),
            metrics: Arc::clone(metrics),
        };
        Ok(Chosen {
            source: Box::new(source),
            sides,
            group: Some(Box::new(group)),
        })
    }

    struct KafkaGroup {
        closer: GroupCloser,
        metrics: Arc<Metrics>,
    }

    impl Group for KafkaGroup {
        fn before_commit(&self, flush: Flush) {
            self.closer.before_commit(flush);
        }

        fn scores(&self, out: Box<dyn Write + Send>) -> Box<dyn Write> {
            let shared = SharedWriter(Arc::new(std::sync::Mutex::new(out)));
            let mut hook = shared.clone();
            self.closer.before_commit(Box::new(move || {
                hook.flush().map_err(|e| floodwatch::Error::io("scores", e))
            }));
            Box::new(shared)
        }

        fn close(&self) -> anyhow::Result<()> {
            Ok(self.closer.close()?)
        }

        fn render(&self) -> String {
            super::super::kafka_flags::render(&self.metrics.group)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_parse_and_bad_ones_explain() {
        let v = parse_vote("10/6").unwrap();
        assert_eq!((v.window(), v.votes()), (10, 6));
        assert!(parse_vote("10").unwrap_err().contains("W/V"));
        assert!(parse_vote("a/b").is_err());
        assert!(parse_vote("3/5").is_err());
    }

    #[test]
    fn unknown_layouts_are_errors() {
        assert!(layout("victim", 10).is_ok());
        assert!(layout("nope", 10).is_err());
    }
}
