//! `floodwatch produce`: publishes a capture (one raw packet record a frame)
//! or a CSV table (one JSON object a row) to a Kafka topic, keyed as `watch`
//! expects, creating the topic when it is missing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args as ClapArgs;

use floodwatch::ingest::kafka::publish::{publish_capture, publish_table, Published};
use floodwatch::ingest::kafka::{create_topic, parse_option, KeyBy, Publisher};
use floodwatch::ingest::packets::capture::CaptureReader;

/// Flags of `produce`.
#[derive(Debug, ClapArgs)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["pcap", "data"])))]
pub struct Args {
    /// A capture file (pcap or pcapng): one raw packet record a frame.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// A CSV table with a header: one JSON object a row.
    #[arg(long, value_name = "FILE.csv")]
    pub data: Option<PathBuf>,
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka_brokers: String,
    /// The topic to write.
    #[arg(long, value_name = "TOPIC")]
    pub kafka_topic: String,
    /// Key records by destination (victim layouts, the default of watch) or
    /// source address (per-host layouts: kitsune, nbaiot).
    #[arg(long, default_value = "dst", value_parser = parse_key)]
    pub key: KeyBy,
    /// Partitions of the topic when it has to be created.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub partitions: i32,
    /// A librdkafka setting, KEY=VALUE (repeatable): security, timeouts.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub kafka_options: Vec<(String, String)>,
}

fn parse_key(s: &str) -> Result<KeyBy, String> {
    s.parse().map_err(|e: floodwatch::Error| e.to_string())
}

/// Publishes the input and prints what was sent.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let (brokers, topic, opts) = (&args.kafka_brokers, &args.kafka_topic, &args.kafka_options);
    let created = create_topic(brokers, topic, args.partitions, opts)?;
    if created && !quiet {
        eprintln!("created topic {topic} with {} partitions", args.partitions);
    }
    let publisher = Publisher::new(brokers, topic, opts)?;
    let started = Instant::now();
    let mut warned = 0u64;
    let mut warn = |msg: String| {
        warned += 1;
        // The first few name the damage; the total is in the summary.
        if warned <= 5 {
            eprintln!("floodwatch: rejected: {msg}");
        }
    };
    let sent: Published = match (&args.pcap, &args.data) {
        (Some(pcap), _) => {
            publish_capture(CaptureReader::open(pcap)?, args.key, &publisher, &mut warn)?
        }
        (None, Some(data)) => publish_table(data, args.key, &publisher, &mut warn)?,
        (None, None) => anyhow::bail!("give --pcap or --data"),
    };
    if !quiet {
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "produce: {} records to {topic} (key {}; {} without key) in {secs:.2} s ({:.0}/s), {} rejected",
            sent.records,
            args.key,
            sent.unkeyed,
            sent.records as f64 / secs,
            sent.rejected
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_parse_and_need_one_input() {
        use clap::Parser;
        let ok = Cli::try_parse_from([
            "p",
            "--pcap",
            "x.pcap",
            "--kafka-brokers",
            "h:1",
            "--kafka-topic",
            "t",
            "--key",
            "src",
            "--kafka-option",
            "acks=1",
        ])
        .unwrap();
        assert_eq!(ok.args.key, KeyBy::Src);
        assert_eq!(
            ok.args.kafka_options,
            vec![("acks".to_owned(), "1".to_owned())]
        );
        assert_eq!(ok.args.partitions, 4);
        let none = Cli::try_parse_from(["p", "--kafka-brokers", "h:1", "--kafka-topic", "t"]);
        assert!(none.is_err());
        let bad = Cli::try_parse_from([
            "p",
            "--data",
            "x.csv",
            "--kafka-brokers",
            "h:1",
            "--kafka-topic",
            "t",
            "--key",
            "both",
        ]);
        assert!(bad.is_err());
    }
}
