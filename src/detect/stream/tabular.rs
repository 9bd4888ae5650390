//! Tabular records for the streaming engine: lines of CSV (with a header) or
//! JSON objects, in a trained bundle's schema, as flow exporters emit them;
//! and the bundle as a [`StreamScorer`].
//!
//! The format is told by the first line: `{` starts JSON lines, anything
//! else is a CSV header. JSON objects are matched to the schema's columns by
//! key. Addresses, ports and protocol for the alerts come from the first
//! column named like `dst_ip`/`Dst IP`/`daddr` (and so on) when there is one;
//! the record time from `timestamp`/`ts`/`stime` (Unix seconds), otherwise
//! the arrival time.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use csv::ByteRecord;

use super::scorer::StreamScorer;
use super::source::{Next, RecordInfo, RecordSource, IDLE_WAIT};
use super::Detector;
use crate::detect::alert::{FlowContext, Proto};
use crate::features::scale::Scaler;
use crate::features::tabular::{Encoder, Schema};
use crate::ingest::columns::{DST_IP, DST_PORT, PROTO, SRC_IP, SRC_PORT, TIME};
use crate::ingest::csv::{looks_like_data, Row};
use crate::ingest::lines::Lines;
use crate::model::bundle::{Bundle, Classifier};
use crate::model::dense::Workspace;
use crate::model::logistic::argmax;
use crate::model::Autoencoder;
use crate::Matrix;
use crate::{Error, Result};

fn normalise(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

/// Where the alert context sits in a header.
#[derive(Debug, Clone, Default)]
struct ContextColumns {
    dst_ip: Option<usize>,
    src_ip: Option<usize>,
    dst_port: Option<usize>,
    src_port: Option<usize>,
    proto: Option<usize>,
    time: Option<usize>,
}

impl ContextColumns {
    fn find(header: &[String]) -> Self {
        let norm: Vec<String> = header.iter().map(|h| normalise(h)).collect();
        let pos = |names: &[&str]| norm.iter().position(|h| names.contains(&h.as_str()));
        ContextColumns {
            dst_ip: pos(&DST_IP),
            src_ip: pos(&SRC_IP),
            dst_port: pos(&DST_PORT),
            src_port: pos(&SRC_PORT),
            proto: pos(&PROTO),
            time: pos(&TIME),
        }
    }

    fn read(&self, rec: &ByteRecord, arrived_unix: f64) -> (f64, FlowContext) {
        let text = |c: Option<usize>| {
            c.and_then(|c| rec.get(c))
                .and_then(|f| std::str::from_utf8(f).ok())
                .map(str::trim)
        };
        let ip = |c| text(c).and_then(|t| IpAddr::from_str(t).ok());
        let port = |c| text(c).and_then(|t| t.parse::<u16>().ok()).unwrap_or(0);
        let proto = match text(self.proto).map(str::to_ascii_lowercase).as_deref() {
            Some("6" | "tcp") => Proto::Tcp,
            Some("17" | "udp") => Proto::Udp,
            Some("1" | "icmp") => Proto::Icmp,
            Some(other) => other.parse::<u8>().map_or(Proto::None, Proto::Other),
            None => Proto::None,
        };
        let time = text(self.time)
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| t.is_finite())
            .unwrap_or(arrived_unix);
        let none = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let flow = FlowContext {
            src_ip: ip(self.src_ip).unwrap_or(none),
            src_port: port(self.src_port),
            dest_ip: ip(self.dst_ip).unwrap_or(none),
            dest_port: port(self.dst_port),
            proto,
            bytes: 0,
            tcp_flags: 0,
            packets: 1,
            exporter: None,
        };
        (time, flow)
    }
}

/// The format of the stream, told by its first line.
#[derive(Debug)]
enum Format {
    /// CSV: the header read from the first line, the encoder bound to it.
    Csv {
        header: Vec<String>,
        encoder: Box<Encoder>,
    },
    /// JSON lines: the schema's columns, looked up by key.
    Json {
        header: Vec<String>,
        encoder: Box<Encoder>,
    },
}

/// Lines from standard input (or any line queue) encoded with a schema.
#[derive(Debug)]
pub struct LineRecords {
    rx: Receiver<Lines>,
    /// The chunk being read, its next line, and the wall-clock time it was
    /// taken (the time of records without a time column).
    chunk: Option<Lines>,
    at: usize,
    chunk_unix: f64,
    dropped: Arc<AtomicU64>,
    schema: Schema,
    names: Vec<String>,
    format: Option<Format>,
    context: ContextColumns,
    file: PathBuf,
    line: u64,
    record: ByteRecord,
    splitter: LineSplitter,
    row: Vec<f32>,
}

/// Splits one CSV line into fields as `csv::Reader` does, with one parser
/// for the whole stream (building a reader per line cost more than the
/// scoring).
#[derive(Debug)]
struct LineSplitter {
    parser: csv_core::Reader,
    fields: Vec<u8>,
    ends: Vec<usize>,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter {
            // `new`, not `default`: only a built reader has its state machine.
            parser: csv_core::Reader::new(),
            fields: Vec::new(),
            ends: Vec::new(),
        }
    }
}

impl LineSplitter {
    /// Fills `record` with the fields of `line`; `false` for no record.
    fn split(&mut self, line: &[u8], record: &mut ByteRecord) -> bool {
        // Without quotes, carriage returns or a byte-order mark a line's
        // fields are what lies between its commas: no CSV state machine.
        let plain = !line.is_empty()
            && !line.starts_with(b"\xef\xbb\xbf")
            && !line.iter().any(|&b| b == b'"' || b == b'\r');
        if plain {
            record.clear();
            for field in line.split(|&b| b == b',') {
                record.push_field(field);
            }
            return true;
        }
        self.split_csv(line, record)
    }

    fn split_csv(&mut self, line: &[u8], record: &mut ByteRecord) -> bool {
        use csv_core::ReadRecordResult as R;
        self.parser.reset();
        // A field is never longer than its text, nor are there more fields
        // than bytes: the buffers rarely grow.
        let room = line.len() + 1;
        if self.fields.len() < room {
            self.fields.resize(room, 0);
        }
        if self.ends.len() < room {
            self.ends.resize(room, 0);
        }
        let (mut input, mut out, mut ends) = (line, 0, 0);
        loop {
            let (res, n_in, n_out, n_ends) =
                self.parser
                    .read_record(input, &mut self.fields[out..], &mut self.ends[ends..]);
            input = &input[n_in..];
            out += n_out;
            ends += n_ends;
            match res {
                // Empty input next time is the end of the line.
                R::InputEmpty => {}
                R::OutputFull => self.fields.resize(2 * self.fields.len(), 0),
                R::OutputEndsFull => self.ends.resize(2 * self.ends.len(), 0),
                R::Record => break,
                R::End => return false,
            }
        }
        record.clear();
        let mut start = 0;
        for &end in &self.ends[..ends] {
            record.push_field(&self.fields[start..end]);
            start = end;
        }
        true
    }
}

impl LineRecords {
    /// Reads lines from `rx` (whose producer counts drops in `dropped`),
    /// named `file` in errors (`-` for standard input).
    pub fn new(
        rx: Receiver<Lines>,
        dropped: Arc<AtomicU64>,
        schema: Schema,
        file: impl Into<PathBuf>,
    ) -> Self {
        let names = schema.feature_names();
        let width = schema.width();
        LineRecords {
            rx,
            chunk: None,
            at: 0,
            chunk_unix: 0.0,
            dropped,
            schema,
            names,
            format: None,
            context: ContextColumns::default(),
            file: file.into(),
            line: 0,
            record: ByteRecord::new(),
            splitter: LineSplitter::default(),
            row: vec![0.0; width],
        }
    }

    fn input_error(&self, msg: String) -> Error {
        Error::Input {
            file: self.file.clone(),
            line: self.line,
            msg,
        }
    }

    /// Reads the header (CSV) or sets up JSON from the first line; a JSON
    /// first line is also a record.
    fn start(&mut self, line: &str) -> Result<bool> {
        let columns: Vec<String> = self.schema.columns.iter().map(|c| c.name.clone()).collect();
        if line.trim_start().starts_with('{') {
            let encoder = self.schema.bind(&columns, &self.file)?;
            self.context = ContextColumns::find(&columns);
            self.format = Some(Format::Json {
                header: columns,
                encoder: Box::new(encoder),
            });
            return Ok(true);
        }
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let mut rec = ByteRecord::new();
        let ok = rdr
            .read_byte_record(&mut rec)
            .map_err(|e| self.input_error(format!("bad CSV header: {e}")))?;
        if !ok {
            return Err(self.input_error("empty CSV header".into()));
        }
        let header: Vec<String> = rec
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_owned())
            .collect();
        if let Some(data) = looks_like_data(&header) {
            return Err(self.input_error(format!(
                "{data}: send the header line first, then the records (or JSON objects, one a line)"
            )));
        }
        let encoder = self.schema.bind(&header, &self.file)?;
        self.context = ContextColumns::find(&header);
        self.format = Some(Format::Csv {
            header,
            encoder: Box::new(encoder),
        });
        Ok(false)
    }

    /// Fills `self.record` with the fields of a JSON object, in schema order.
    fn json_fields(&mut self, line: &str) -> Result<()> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| self.input_error(format!("bad JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| self.input_error("a JSON line should be an object".into()))?;
        self.record.clear();
        for c in &self.schema.columns {
            let field = match obj.get(&c.name) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => {
                    return Err(self.input_error(format!("field '{}' is missing", c.name)))
                }
                Some(other) => other.to_string(),
            };
            self.record.push_field(field.as_bytes());
        }
        Ok(())
    }

    /// Encodes one data line into `out`; returns the record's context.
    fn encode(&mut self, line: &str, arrived: Instant, out: &mut [f64]) -> Result<RecordInfo> {
        let is_json = matches!(self.format, Some(Format::Json { .. }));
        if is_json {
            self.json_fields(line)?;
        } else if !self.splitter.split(line.as_bytes(), &mut self.record) {
            return Err(self.input_error("empty line".into()));
        }
        let (header, encoder) = match &mut self.format {
            Some(Format::Csv { header, encoder } | Format::Json { header, encoder }) => {
                (&header[..], encoder)
            }
            None => return Err(Error::Data("stream format not known yet".into())),
        };
        if self.record.len() != header.len() {
            return Err(Error::Input {
                file: self.file.clone(),
                line: self.line,
                msg: format!(
                    "{} fields, the header has {}",
                    self.record.len(),
                    header.len()
                ),
            });
        }
        let row = Row::new(&self.file, self.line, &self.record, header);
        encoder.encode(&row, &mut self.row).map_err(|b| b.error)?;
        for (o, v) in out.iter_mut().zip(&self.row) {
            *o = f64::from(*v);
        }
        let (timestamp, flow) = self.context.read(&self.record, self.chunk_unix);
        Ok(RecordInfo {
            index: self.line,
            timestamp,
            flow,
            arrived,
        })
    }
}

impl RecordSource for LineRecords {
    fn names(&self) -> &[String] {
        &self.names
    }

    fn next(&mut self, out: &mut [f64]) -> Next {
        if !self.has_line() {
            match self.rx.recv_timeout(IDLE_WAIT) {
                Ok(chunk) => self.start_chunk(chunk),
                Err(RecvTimeoutError::Timeout) => return Next::Idle,
                Err(RecvTimeoutError::Disconnected) => return Next::End,
            }
        }
        self.next_line(out)
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

impl LineRecords {
    /// [`RecordSource::next`] without waiting: `None` when no line is
    /// queued.
    pub fn next_ready(&mut self, out: &mut [f64]) -> Option<Next> {
        if !self.has_line() {
            match self.rx.try_recv() {
                Ok(chunk) => self.start_chunk(chunk),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => return Some(Next::End),
            }
        }
        Some(self.next_line(out))
    }

    fn start_chunk(&mut self, chunk: Lines) {
        (self.chunk, self.at) = (Some(chunk), 0);
        self.chunk_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
    }

    fn has_line(&self) -> bool {
        self.chunk.as_ref().is_some_and(|c| self.at < c.len())
    }

    /// The next line of the current chunk (there is one).
    fn next_line(&mut self, out: &mut [f64]) -> Next {
        let Some(chunk) = self.chunk.take() else {
            return Next::Idle;
        };
        let line = chunk.get(self.at).unwrap_or_default();
        self.at += 1;
        let next = self.take(line, chunk.arrived(), out);
        self.chunk = Some(chunk);
        next
    }

    /// One line from the queue.
    fn take(&mut self, line: &str, arrived: Instant, out: &mut [f64]) -> Next {
        self.line += 1;
        if line.trim().is_empty() {
            return Next::Idle;
        }
        if self.format.is_none() {
            match self.start(line) {
                Ok(false) => return Next::Idle,
                Ok(true) => {}
                // Every later line would fail the same way.
                Err(e) => return Next::Failed(e),
            }
        }
        match self.encode(line, arrived, out) {
            Ok(info) => Next::Record(info),
            Err(e) => Next::Rejected(e),
        }
    }
}

/// A bundle from `train`, scoring from the first record.
#[derive(Debug)]
pub struct BundleScorer {
    scaler: Scaler,
    ae: Autoencoder,
    classifier: Option<Classifier>,
    proba: Vec<f32>,
    row: Vec<f32>,
    errors: Vec<f32>,
    ws: Workspace,
}

impl BundleScorer {
    /// Scores with the scaler, autoencoder and threshold of `bundle`.
    pub fn new(bundle: &Bundle) -> Self {
        let d = bundle.autoencoder.input_dim();
        BundleScorer {
            scaler: bundle.scaler.clone(),
            ae: bundle.autoencoder.clone(),
            classifier: bundle.classifier.clone(),
            proba: Vec::new(),
            row: vec![0.0; d],
            errors: vec![0.0; d],
            ws: Workspace::default(),
        }
    }

    fn prepare(&mut self, x: &[f64]) -> Result<()> {
        if x.len() != self.row.len() {
            return Err(Error::Data(format!(
                "record has {} features, the bundle reads {}",
                x.len(),
                self.row.len()
            )));
        }
        for (r, v) in self.row.iter_mut().zip(x) {
            *r = *v as f32;
        }
        self.scaler.transform_row(&mut self.row);
        Ok(())
    }
}

impl StreamScorer for BundleScorer {
    fn learn(&mut self, _x: &[f64]) -> Result<()> {
        Err(Error::Model(
            "a bundle from `train` does not learn online".into(),
        ))
    }

    fn fit(&mut self) -> Result<()> {
        Ok(())
    }

    fn ready(&self) -> bool {
        true
    }

    fn score(&mut self, x: &[f64]) -> Result<f64> {
        self.prepare(x)?;
        Ok(f64::from(self.ae.score_with(&self.row, &mut self.ws)))
    }

    fn explain(&mut self, x: &[f64], shares: &mut [f64]) -> Result<()> {
        self.prepare(x)?;
        self.ae
            .feature_errors_with(&self.row, &mut self.ws, &mut self.errors);
        super::scorer::error_shares(&self.errors, shares);
        Ok(())
    }

    fn family(&mut self, x: &[f64]) -> Option<&str> {
        self.prepare(x).ok()?;
        let c = self.classifier.as_ref()?;
        let row = Matrix::from_vec(1, self.row.len(), self.row.clone())?;
        let latent = self.ae.encode_batch(&row);
        self.proba.resize(c.model.n_classes(), 0.0);
        c.model.predict_proba(latent.row(0), &mut self.proba);
        let class = argmax(&self.proba);
        (class != c.normal_class)
            .then(|| c.class_names.get(class).map(String::as_str))
            .flatten()
    }

    fn detector(&self) -> Option<Detector> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_columns_are_found_by_common_names() {
        let header: Vec<String> = [
            "uid",
            "sourceIp",
            "Dst IP",
            "destPort",
            "protocol",
            "timestamp",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = ContextColumns::find(&header);
        assert_eq!(
            (c.src_ip, c.dst_ip, c.dst_port),
            (Some(1), Some(2), Some(3))
        );
        let rec = ByteRecord::from(vec!["7", "10.0.0.1", "10.0.0.2", "80", "TCP", "12.5"]);
        let (t, flow) = c.read(&rec, 99.0);
        assert_eq!(t, 12.5);
        assert_eq!(flow.dest_ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!((flow.dest_port, flow.proto), (80, Proto::Tcp));
        // Malformed context falls back: unspecified address, arrival time.
        let rec = ByteRecord::from(vec!["7", "x", "y", "port", "", "never"]);
        let (t, flow) = c.read(&rec, 99.0);
        assert_eq!((t, flow.dest_port), (99.0, 0));
        assert_eq!(flow.dest_ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn lines_split_as_the_csv_reader_splits_them() {
        let mut splitter = LineSplitter::default();
        let mut got = ByteRecord::new();
        for line in [
            "a,b,c",
            "1,\"x, y\",\"say \"\"hi\"\"\"",
            ",,",
            "only",
            " spaced , \"q\"tail",
            "\"unterminated,1",
            "\u{feff}bom,é",
            "a\rb,c",
            "7,,x,",
        ] {
            let mut want = ByteRecord::new();
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(line.as_bytes());
            assert!(rdr.read_byte_record(&mut want).unwrap());
            assert!(splitter.split(line.as_bytes(), &mut got), "{line}");
            assert_eq!(got, want, "{line}");
        }
        assert!(!splitter.split(b"", &mut got));
    }
}
