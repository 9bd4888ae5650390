//! A capture seen as a CSV table of per-packet features, computed on the fly:
//! `train --pcap` and `test --pcap` read it exactly like a CSV file.
//!
//! A thread decodes the capture, extracts the features and writes the rows
//! into a pipe that the CSV reader consumes, so a capture of any length is
//! streamed in bounded memory. Columns: `packet_index`, `timestamp`, the
//! layout's features, then `label` when labels are known (a `--labels` file
//! from `synth --pcap` or `splice`, or one label for every packet).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::combined::PacketLayout;
use super::packet::FeatureExtractor;
use super::stream_table::{TableConfig, TableStats};
use super::victim::Victim;
use crate::ingest::csv::GeneratedTable;
use crate::ingest::flows::capture::ExportCapture;
use crate::ingest::flows::{Accept, FlowConfig, FlowDecoder};
use crate::ingest::packets::capture::PacketSource;
use crate::{Error, Result};

/// Columns of the table that are not features.
pub const ID_COLUMNS: [&str; 2] = ["packet_index", "timestamp"];

/// How packets become feature rows; saved in a bundle so that `test` and
/// `watch` extract exactly as `train` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureFeatures {
    /// Layout name (see [`PacketLayout`]).
    pub layout: String,
    /// Most entries per stream table.
    pub table_capacity: usize,
    /// The captures hold flow export datagrams (NetFlow, IPFIX, sFlow): one
    /// row per flow record, in the `victim` layout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flows: bool,
}

impl CaptureFeatures {
    /// A fresh extractor.
    pub fn extractor(&self) -> Result<Box<dyn FeatureExtractor>> {
        let layout: PacketLayout = self.layout.parse()?;
        layout.extractor(TableConfig {
            capacity: self.table_capacity,
            ..TableConfig::default()
        })
    }
}

/// One capture to read as a table.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureTable {
    /// The capture file.
    pub path: PathBuf,
    /// A `packet_index,label` file with one row per packet, in order.
    pub labels: Option<PathBuf>,
    /// Without a labels file: the label of every packet (`None`: no label
    /// column).
    pub label_all: Option<String>,
    /// The features.
    pub features: CaptureFeatures,
}

/// What the extraction thread saw.
#[derive(Debug, Clone, Default)]
pub struct CaptureSummary {
    /// Packets written as rows.
    pub packets: u64,
    /// Records skipped as unusable, and why (the first few).
    pub skipped: Vec<String>,
    /// Damage that ended the capture early.
    pub damage: Option<String>,
    /// Stream tables at the end.
    pub tables: Vec<TableStats>,
}

/// The reading end of a capture table and the thread that fills it.
pub type Opened = (std::io::PipeReader, JoinHandle<Result<CaptureSummary>>);

impl GeneratedTable for CaptureTable {
    fn path(&self) -> &Path {
        &self.path
    }

    fn start(&self) -> Result<(std::io::PipeReader, JoinHandle<Result<Vec<String>>>)> {
        self.spawn_then(|summary| {
            let skipped = summary.skipped.iter().map(|p| format!("skipped: {p}"));
            let damage = summary
                .damage
                .iter()
                .map(|d| format!("capture ends early: {d}"));
            skipped.chain(damage).collect()
        })
    }
}

impl CaptureTable {
    /// Starts extracting; the table's CSV text comes out of the reader.
    pub fn spawn(&self) -> Result<Opened> {
        self.spawn_then(|summary| summary)
    }

    /// [`spawn`](Self::spawn), the thread ending with `then` of its summary.
    fn spawn_then<T: Send + 'static>(
        &self,
        then: fn(CaptureSummary) -> T,
    ) -> Result<(std::io::PipeReader, JoinHandle<Result<T>>)> {
        let (reader, writer) = std::io::pipe().map_err(|e| Error::io(&self.path, e))?;
        if self.features.flows {
            return self.spawn_flows(reader, writer, then);
        }
        let mut extractor = self.features.extractor()?;
        let source = PacketSource::open(&self.path)?;
        let labels = self.labels.as_deref().map(LabelFile::open).transpose()?;
        let table = self.clone();
        let handle = std::thread::spawn(move || {
            let mut w = BufWriter::with_capacity(1 << 16, writer);
            table
                .write(&mut *extractor, source, labels, &mut w)
                .map(then)
        });
        Ok((reader, handle))
    }

    /// [`spawn_then`](Self::spawn_then) for a capture of flow exports.
    fn spawn_flows<T: Send + 'static>(
        &self,
        reader: std::io::PipeReader,
        writer: std::io::PipeWriter,
        then: fn(CaptureSummary) -> T,
    ) -> Result<(std::io::PipeReader, JoinHandle<Result<T>>)> {
        if self.features.layout != PacketLayout::DEFAULT || self.labels.is_some() {
            return Err(Error::Data(format!(
                "{}: flow records are read in the `{}` layout, without a labels file",
                self.path.display(),
                PacketLayout::DEFAULT
            )));
        }
        let victim = Victim::new(self.features.table_capacity)?;
        let capture = ExportCapture::open(&self.path)?;
        let table = self.clone();
        let handle = std::thread::spawn(move || {
            let mut w = BufWriter::with_capacity(1 << 16, writer);
            table.write_flows(victim, capture, &mut w).map(then)
        });
        Ok((reader, handle))
    }

    /// One row per flow record of `capture`.
    fn write_flows(
        &self,
        mut x: Victim,
        mut capture: ExportCapture,
        w: &mut impl Write,
    ) -> Result<CaptureSummary> {
        let io = |e| Error::io(&self.path, e);
        write_header(w, x.names(), self.label_all.is_some()).map_err(io)?;
        let mut decoder = FlowDecoder::new(Accept::Any, FlowConfig::default())?;
        let (mut out, mut records) = (vec![0.0; x.names().len()], Vec::new());
        let mut fmt = ryu::Buffer::new();
        let mut n = 0;
        while let Some(d) = capture.next_datagram() {
            records.clear();
            decoder.decode(d.payload, d.exporter, d.at, &mut records);
            for r in &records {
                n += 1;
                x.update_flow(r, &mut out);
                write_row(w, &mut fmt, n, r.end, &out).map_err(io)?;
                if let Some(label) = &self.label_all {
                    write!(w, ",{label}").map_err(io)?;
                }
                w.write_all(b"\n").map_err(io)?;
            }
        }
        w.flush().map_err(io)?;
        let mut skipped: Vec<String> = (decoder.counters().exporters())
            .filter(|(_, s)| s.rejected_total() > 0)
            .map(|(ip, s)| format!("exporter {ip}: {s}"))
            .collect();
        if capture.skipped() > 0 {
            skipped.push(format!("{} frames held no UDP datagram", capture.skipped()));
        }
        Ok(CaptureSummary {
            packets: n,
            skipped,
            damage: capture.damage().map(|d| d.to_string()),
            tables: x.table_stats(),
        })
    }

    fn write(
        &self,
        x: &mut dyn FeatureExtractor,
        mut source: PacketSource,
        mut labels: Option<LabelFile>,
        w: &mut impl Write,
    ) -> Result<CaptureSummary> {
        let io = |e| Error::io(&self.path, e);
        let labelled = labels.is_some() || self.label_all.is_some();
        write_header(w, x.names(), labelled).map_err(io)?;
        let mut out = vec![0.0; x.names().len()];
        let mut fmt = ryu::Buffer::new();
        let mut packets = 0;
        while let Some(p) = source.next_packet() {
            x.update(&p, &mut out);
            write_row(w, &mut fmt, p.index, p.timestamp, &out).map_err(io)?;
            match (&mut labels, &self.label_all) {
                (Some(file), _) => write!(w, ",{}", file.label_of(p.index)?),
                (None, Some(label)) => write!(w, ",{label}"),
                (None, None) => Ok(()),
            }
            .map_err(io)?;
            w.write_all(b"\n").map_err(io)?;
            packets += 1;
        }
        w.flush().map_err(io)?;
        Ok(CaptureSummary {
            packets,
            skipped: source.problems().iter().map(|p| p.to_string()).collect(),
            damage: source.damage().map(|d| d.to_string()),
            tables: x.table_stats(),
        })
    }
}

/// Writes the header line of a feature table.
pub fn write_header(w: &mut impl Write, names: &[String], labelled: bool) -> std::io::Result<()> {
    w.write_all(ID_COLUMNS.join(",").as_bytes())?;
    for name in names {
        write!(w, ",{name}")?;
    }
    if labelled {
        w.write_all(b",label")?;
    }
    w.write_all(b"\n")
}

/// Writes the identifiers and features of one packet, without the line end
/// (a label may follow). Shortest round-trip decimals.
pub fn write_row(
    w: &mut impl Write,
    fmt: &mut ryu::Buffer,
    index: u64,
    timestamp: f64,
    features: &[f64],
) -> std::io::Result<()> {
    write!(w, "{index},{}", fmt.format(timestamp))?;
    for v in features {
        w.write_all(b",")?;
        w.write_all(fmt.format(*v).as_bytes())?;
    }
    Ok(())
}

/// A `packet_index,label` file read in step with the capture.
pub(crate) struct LabelFile {
    path: PathBuf,
    reader: csv::Reader<File>,
    record: csv::StringRecord,
}

impl LabelFile {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let reader = csv::Reader::from_path(path).map_err(|e| Error::Input {
            file: path.to_owned(),
            line: 1,
            msg: format!("cannot read the labels file: {e}"),
        })?;
        Ok(LabelFile {
            path: path.to_owned(),
            reader,
            record: csv::StringRecord::new(),
        })
    }

    /// The label of packet `index`, past the rows of packets that were
    /// not records (unreadable frames); an error if the file has no row
    /// for it.
    pub(crate) fn label_at(&mut self, index: u64) -> Result<bool> {
        loop {
            let found = self
                .reader
                .read_record(&mut self.record)
                .map_err(|e| Error::Input {
                    file: self.path.clone(),
                    line: index + 1,
                    msg: format!("unreadable row: {e}"),
                })?;
            let at = self
                .record
                .get(0)
                .and_then(|i| i.trim().parse::<u64>().ok());
            match at {
                Some(i) if found && i < index => continue,
                Some(i) if found && i == index => return Ok(true),
                _ => return Ok(false),
            }
        }
    }

    /// The label of the row [`label_at`](Self::label_at) found.
    pub(crate) fn label(&self) -> &str {
        self.record.get(1).unwrap_or_default().trim()
    }

    /// The file's name, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The label of packet `index` (the next row of the file).
    fn label_of(&mut self, index: u64) -> Result<&str> {
        let bad = |line: u64, msg: String| Error::Input {
            file: self.path.clone(),
            line,
            msg,
        };
        let found = self
            .reader
            .read_record(&mut self.record)
            .map_err(|e| bad(index + 1, format!("unreadable row: {e}")))?;
        let line = self.record.position().map_or(index + 1, |p| p.line());
        if !found {
            return Err(bad(
                line,
                format!("no label for packet {index}: the file ends"),
            ));
        }
        let (Some(i), Some(label)) = (self.record.get(0), self.record.get(1)) else {
            return Err(bad(line, "expected `packet_index,label`".into()));
        };
        if i.trim().parse::<u64>().ok() != Some(index) {
            return Err(bad(
                line,
                format!("packet_index '{i}', but packet {index} comes next"),
            ));
        }
        Ok(label.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::packets::synth::{self, Attack, SynthConfig};
    use std::io::Read;

    fn synth_capture(dir: &Path, packets: u64) -> (PathBuf, PathBuf) {
        let (pcap, labels) = (dir.join("s.pcap"), dir.join("s.csv"));
        let cfg = SynthConfig {
            packets,
            rate: 200.0,
            seed: 1,
            attacks: vec!["syn".parse::<Attack>().unwrap()],
            start_ns: 1_700_000_000_000_000_000,
        };
        let create = |p: &Path| BufWriter::new(File::create(p).unwrap());
        synth::write(&cfg, create(&pcap), create(&labels)).unwrap();
        (pcap, labels)
    }

    fn table(pcap: PathBuf, labels: Option<PathBuf>, all: Option<&str>) -> CaptureTable {
        CaptureTable {
            path: pcap,
            labels,
            label_all: all.map(str::to_owned),
            features: CaptureFeatures {
                layout: "kitsune-corrected".into(),
                table_capacity: 1000,
                flows: false,
            },
        }
    }

    fn read_all(t: &CaptureTable) -> (String, Result<CaptureSummary>) {
        let (mut r, handle) = t.spawn().unwrap();
        let mut text = String::new();
        r.read_to_string(&mut text).unwrap();
        (text, handle.join().unwrap())
    }

    #[test]
    fn streams_every_packet_with_its_label() {
        let dir = tempfile::tempdir().unwrap();
        let (pcap, labels) = synth_capture(dir.path(), 300);
        let (text, summary) = read_all(&table(pcap, Some(labels.clone()), None));
        assert_eq!(summary.unwrap().packets, 300);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 301);
        assert!(lines[0].starts_with("packet_index,timestamp,") && lines[0].ends_with(",label"));
        let width = lines[0].split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == width));
        let want: Vec<String> = std::fs::read_to_string(labels)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().to_owned())
            .collect();
        let got: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.rsplit(',').next().unwrap())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn one_label_for_all_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let (pcap, _) = synth_capture(dir.path(), 20);
        let (text, _) = read_all(&table(pcap.clone(), None, Some("normal")));
        assert!(text.lines().skip(1).all(|l| l.ends_with(",normal")));
        let (text, _) = read_all(&table(pcap, None, None));
        assert!(!text.lines().next().unwrap().contains("label"));
    }

    #[test]
    fn labels_out_of_step_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (pcap, _) = synth_capture(dir.path(), 20);
        let short = dir.path().join("short.csv");
        std::fs::write(&short, "packet_index,label\n1,normal\n3,normal\n").unwrap();
        let (_, summary) = read_all(&table(pcap, Some(short), None));
        let err = summary.unwrap_err().to_string();
        assert!(
            err.contains("short.csv:3") && err.contains("packet 2"),
            "{err}"
        );
    }
}
