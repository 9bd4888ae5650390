//! `floodwatch extract`: per-packet features of a capture, as CSV, as a
//! NumPy `.npy` matrix or as a Parquet table (feature `parquet`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args as ClapArgs;

use floodwatch::features::capture_table::{write_header, write_row};
use floodwatch::features::combined::PacketLayout;
use floodwatch::features::npy::NpyWriter;
use floodwatch::features::packet::FeatureExtractor;
use floodwatch::features::stream_table::{TableConfig, TableStats};
use floodwatch::ingest::packets::capture::PacketSource;

/// Flags of `extract`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The capture to read (pcap or pcapng, told apart by magic number).
    #[arg(long, value_name = "FILE")]
    pub pcap: PathBuf,
    /// The file to write: `packet_index`, `timestamp`, then the features.
    #[arg(long, value_name = "FEATURES.csv")]
    pub out: PathBuf,
    /// csv, npy (a float64 matrix numpy.load reads as it is, its column
    /// names in OUT.columns) or parquet (the CSV's columns: packet_index as
    /// int64, timestamp as float64, the features as float32, what models
    /// compute in; needs the `parquet` feature); by default from OUT's
    /// extension (.npy, .parquet), else csv.
    #[arg(long, value_name = "FORMAT", value_parser = ["csv", "npy", "parquet"])]
    pub format: Option<String>,
    /// Parquet pages: none (the default) or snappy (a quarter smaller, a
    /// third more CPU).
    #[arg(long, value_name = "CODEC", value_parser = ["none", "snappy"])]
    pub compression: Option<String>,
    /// Parquet feature columns as float64, every bit of the CSV's values
    /// (twice the size).
    #[arg(long)]
    pub float64: bool,
    /// Feature layout: victim, floodwatch, kitsune, kitsune-corrected or
    /// nbaiot (the same names and default as `train --pcap` and `watch`).
    #[arg(long, default_value = PacketLayout::DEFAULT, value_parser = parse_layout)]
    pub layout: PacketLayout,
    /// Most entries per stream table (memory stays bounded by it).
    #[arg(long, value_name = "N", default_value_t = TableConfig::default().capacity)]
    pub table_capacity: usize,
}

fn parse_layout(s: &str) -> Result<PacketLayout, String> {
    s.parse().map_err(|e: floodwatch::Error| e.to_string())
}

/// Extracts, writes the CSV and reports table evictions and capture damage.
/// Exit code 4 when records were skipped or the capture is damaged (the CSV
/// then holds every packet before the damage).
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let config = TableConfig {
        capacity: args.table_capacity,
        ..TableConfig::default()
    };
    let format = Format::of(&args)?;
    let parquet_flags = [
        ("--compression", args.compression.is_some()),
        ("--float64", args.float64),
    ];
    if let Some((flag, _)) = parquet_flags.iter().find(|(_, given)| *given) {
        if !format.is_parquet() {
            anyhow::bail!(
                "{}: {flag} applies to Parquet output only (give --format parquet or a .parquet file)",
                args.out.display()
            );
        }
    }
    let mut extractor = args.layout.extractor(config)?;
    let mut source = PacketSource::open(&args.pcap)?;
    // Temporary file renamed into place once complete.
    let mut w = floodwatch::util::AtomicFile::create(&args.out)?;
    let written = match format {
        Format::Csv => write_features(&mut *extractor, &mut source, &mut w),
        Format::Npy => {
            write_columns(&args.out, extractor.names())?;
            write_npy(&mut *extractor, &mut source, &mut w)
        }
        #[cfg(feature = "parquet")]
        Format::Parquet => {
            let codec = match args.compression.as_deref() {
                Some("snappy") => floodwatch::features::parquet::Codec::Snappy,
                _ => floodwatch::features::parquet::Codec::None,
            };
            write_parquet(&mut *extractor, &mut source, &mut w, codec, args.float64)
        }
    };
    let packets = written
        .and_then(|n| w.flush().map(|()| n))
        .with_context(|| format!("{}: write failed", args.out.display()))?;
    w.commit()?;

    // Damage is reported even with --quiet: the output is incomplete.
    for problem in source.problems() {
        eprintln!("floodwatch: warning: skipped: {problem}");
    }
    if let Some(damage) = source.damage() {
        eprintln!("floodwatch: warning: capture ends early: {damage}");
    }
    if !quiet {
        eprintln!(
            "wrote {packets} packets x {} features ({}) to {}",
            extractor.names().len(),
            args.layout,
            args.out.display()
        );
        eprintln!("{}", table_report(&extractor.table_stats()));
    }
    let damaged = source.damage().is_some() || source.skipped() > 0;
    Ok(if damaged {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    })
}

/// What `extract` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Npy,
    #[cfg(feature = "parquet")]
    Parquet,
}

impl Format {
    fn is_parquet(self) -> bool {
        #[cfg(feature = "parquet")]
        return self == Format::Parquet;
        #[cfg(not(feature = "parquet"))]
        false
    }

    /// `--format`, else by the extension of `--out`; Parquet needs the feature.
    fn of(args: &Args) -> anyhow::Result<Self> {
        let ext = args.out.extension().and_then(|e| e.to_str());
        match args.format.as_deref().or(ext) {
            Some("npy") => Ok(Format::Npy),
            #[cfg(feature = "parquet")]
            Some("parquet") => Ok(Format::Parquet),
            #[cfg(not(feature = "parquet"))]
            Some("parquet") => anyhow::bail!(
                "{}: Parquet output, but {}",
                args.out.display(),
                floodwatch::ingest::parquet::NO_PARQUET
            ),
            _ => Ok(Format::Csv),
        }
    }
}

/// Writes the header and one row per packet; returns the number of packets.
fn write_features<R: std::io::Read>(
    x: &mut dyn FeatureExtractor,
    source: &mut PacketSource<R>,
    w: &mut impl Write,
) -> std::io::Result<u64> {
    write_header(w, x.names(), false)?;
    let mut out = vec![0.0; x.names().len()];
    let mut fmt = ryu::Buffer::new();
    let mut n = 0;
    while let Some(p) = source.next_packet() {
        x.update(&p, &mut out);
        write_row(w, &mut fmt, p.index, p.timestamp, &out)?;
        w.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

/// Rows of `packet_index`, `timestamp` and the features as a float64
/// `.npy` matrix; returns the number of packets.
fn write_npy<R: std::io::Read, W: Write + std::io::Seek>(
    x: &mut dyn FeatureExtractor,
    source: &mut PacketSource<R>,
    w: &mut W,
) -> std::io::Result<u64> {
    let d = x.names().len();
    let mut npy = NpyWriter::new(w, d + 2)?;
    let mut row = vec![0.0; d + 2];
    while let Some(p) = source.next_packet() {
        x.update(&p, &mut row[2..]);
        row[0] = p.index as f64;
        row[1] = p.timestamp;
        npy.write_row(&row)?;
    }
    let rows = npy.rows();
    npy.finish()?;
    Ok(rows)
}

/// The CSV's columns as a Parquet table: `packet_index` as `INT64`,
/// `timestamp` as `DOUBLE`, the features as `FLOAT` (`DOUBLE` with
/// `float64`); returns the number of packets.
#[cfg(feature = "parquet")]
fn write_parquet<R: std::io::Read, W: Write + Send>(
    x: &mut dyn FeatureExtractor,
    source: &mut PacketSource<R>,
    w: W,
    codec: floodwatch::features::parquet::Codec,
    float64: bool,
) -> std::io::Result<u64> {
    use floodwatch::features::capture_table::ID_COLUMNS;
    let [index, timestamp] = ID_COLUMNS;
    let mut doubles = vec![timestamp.to_owned()];
    let mut floats = x.names().to_vec();
    if float64 {
        doubles.append(&mut floats);
    }
    let mut out =
        floodwatch::features::parquet::ParquetWriter::new(w, index, &doubles, &floats, codec)?;
    let mut row = vec![0.0; doubles.len() + floats.len()];
    while let Some(p) = source.next_packet() {
        x.update(&p, &mut row[1..]);
        row[0] = p.timestamp;
        out.write_row(p.index as i64, &row)?;
    }
    let rows = out.rows();
    out.finish()?;
    Ok(rows)
}

/// `OUT.columns`: the `.npy` matrix's column names, one a line.
fn write_columns(out: &std::path::Path, names: &[String]) -> anyhow::Result<()> {
    let mut path = out.as_os_str().to_owned();
    path.push(".columns");
    let text: String = ["packet_index", "timestamp"]
        .into_iter()
        .chain(names.iter().map(String::as_str))
        .map(|n| format!("{n}\n"))
        .collect();
    std::fs::write(&path, text).with_context(|| format!("{}: write failed", path.to_string_lossy()))
}

/// One line per table: occupancy and removals.
fn table_report(tables: &[TableStats]) -> String {
    let evicted: u64 = tables.iter().map(|t| t.evicted).sum();
    let reclaimed: u64 = tables.iter().map(|t| t.reclaimed).sum();
    let mut s = format!(
        "stream tables: {evicted} entries evicted (tables full), {reclaimed} reclaimed (faded)"
    );
    for t in tables {
        s.push_str(&format!(
            "\n  {:<14} {:>9} / {:<9} evicted {:>10} reclaimed {:>10}",
            t.name, t.len, t.capacity, t.evicted, t.reclaimed
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use floodwatch::features::combined::Layout;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cli =
            Cli::try_parse_from(["x", "--pcap", "a.pcap", "--out", "f.csv"]).expect("valid flags");
        assert_eq!(cli.args.layout, PacketLayout::Victim);
        assert_eq!(cli.args.table_capacity, 100_000);
        let cli = Cli::try_parse_from([
            "x",
            "--pcap",
            "a",
            "--out",
            "b",
            "--layout",
            "nbaiot",
            "--table-capacity",
            "50",
        ])
        .expect("valid flags");
        assert_eq!(
            (cli.args.layout, cli.args.table_capacity),
            (PacketLayout::Packet(Layout::Nbaiot), 50)
        );
        assert!(
            Cli::try_parse_from(["x", "--pcap", "a", "--out", "b", "--layout", "kitnet"]).is_err()
        );
    }

    #[test]
    fn missing_capture_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = Args {
            pcap: dir.path().join("absent.pcap"),
            out: dir.path().join("f.csv"),
            format: None,
            compression: None,
            float64: false,
            layout: PacketLayout::Packet(Layout::Kitsune),
            table_capacity: 1000,
        };
        let err = run(args, true).expect_err("no such file");
        assert!(format!("{err:#}").contains("absent.pcap"));
    }

    #[test]
    fn bad_capacity_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = Args {
            pcap: dir.path().join("absent.pcap"),
            out: dir.path().join("f.csv"),
            format: None,
            compression: None,
            float64: false,
            layout: PacketLayout::Packet(Layout::Kitsune),
            table_capacity: 1,
        };
        let err = run(args, true).expect_err("capacity 1");
        assert!(format!("{err:#}").contains("capacity"));
    }

    #[test]
    fn report_lists_every_table() {
        let stats = [TableStats {
            name: "MI".into(),
            len: 3,
            capacity: 10,
            evicted: 7,
            reclaimed: 1,
        }];
        let r = table_report(&stats);
        assert!(r.contains("7 entries evicted") && r.contains("MI"));
    }
}
