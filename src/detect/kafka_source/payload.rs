//! Record values into features: raw packets through a layout, or JSON and
//! CSV table rows through the schema's line reader.

use super::*;
use crate::ingest::lines::Lines;

/// A line decoder fed one record at a time.
pub(super) struct LineFeed {
    tx: SyncSender<Lines>,
    records: LineRecords,
}

impl LineFeed {
    fn new(schema: &Schema, header: Option<String>) -> Self {
        let (tx, rx): (_, Receiver<Lines>) = sync_channel(1);
        let mut records =
            LineRecords::new(rx, Arc::new(AtomicU64::new(0)), schema.clone(), "kafka");
        if let Some(h) = header {
            // The header fixes the CSV column order; it yields no record.
            let mut scratch = vec![0.0; schema.width()];
            if tx.try_send(Lines::one(&h, Instant::now())).is_ok() {
                let _ = records.next(&mut scratch);
            }
        }
        LineFeed { tx, records }
    }

    pub(super) fn decode(
        &mut self,
        line: &str,
        arrived: Instant,
        out: &mut [f64],
    ) -> std::result::Result<RecordInfo, String> {
        if self.tx.try_send(Lines::one(line, arrived)).is_err() {
            return Err("record decoder unavailable".into());
        }
        match self.records.next(out) {
            Next::Record(info) => Ok(info),
            Next::Rejected(Error::Input { msg, .. }) => Err(msg),
            Next::Rejected(e) | Next::Failed(e) => Err(e.to_string()),
            Next::Idle | Next::End => Err("record not read".into()),
        }
    }
}

/// Turns a record's value into features.
pub(super) enum Decoder {
    Packets(LayoutFactory),
    Rows {
        json: Box<LineFeed>,
        csv: Box<LineFeed>,
    },
}

/// What became of one record.
#[derive(Debug)]
pub(super) enum Decoded {
    Record(RecordInfo),
    Warming,
    Bad(String),
}

impl Decoder {
    pub(super) fn new(payload: Payload) -> Self {
        match payload {
            Payload::Packets(layout) => Decoder::Packets(layout),
            Payload::Rows(schema) => {
                let mut w = csv::Writer::from_writer(Vec::new());
                let _ = w.write_record(schema.columns.iter().map(|c| c.name.as_str()));
                let header = w
                    .into_inner()
                    .map(|b| String::from_utf8_lossy(&b).trim_end().to_owned())
                    .unwrap_or_default();
                Decoder::Rows {
                    json: Box::new(LineFeed::new(&schema, None)),
                    csv: Box::new(LineFeed::new(&schema, Some(header))),
                }
            }
        }
    }

    pub(super) fn names(&self) -> Result<Vec<String>> {
        match self {
            Decoder::Packets(layout) => Ok(layout()?.names().to_vec()),
            Decoder::Rows { json, .. } => Ok(json.records.names().to_vec()),
        }
    }

    pub(super) fn fresh(&self, warmup: u64) -> Result<PartState> {
        Ok(match self {
            Decoder::Packets(layout) => PartState {
                features: Some(layout()?),
                warmup_left: warmup,
            },
            Decoder::Rows { .. } => PartState {
                features: None,
                warmup_left: 0,
            },
        })
    }

    pub(super) fn decode(
        &mut self,
        id: u64,
        value: Option<&[u8]>,
        state: &mut PartState,
        arrived: Instant,
        out: &mut [f64],
    ) -> Decoded {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Decoded::Bad("empty record".into());
        };
        match self {
            Decoder::Packets(_) => {
                let Some(features) = state.features.as_mut() else {
                    return Decoded::Bad("no feature state for this partition".into());
                };
                let frame = match decode_packet(value, id) {
                    Ok(f) => f,
                    Err(e) => return Decoded::Bad(e),
                };
                let meta = decode(&frame);
                features.update(&meta, out);
                if state.warmup_left > 0 {
                    state.warmup_left -= 1;
                    return Decoded::Warming;
                }
                Decoded::Record(RecordInfo {
                    index: id,
                    timestamp: meta.timestamp,
                    flow: FlowContext::from_packet(&meta),
                    arrived,
                })
            }
            Decoder::Rows { json, csv } => {
                let Ok(text) = std::str::from_utf8(value) else {
                    return Decoded::Bad("record is not UTF-8 text".into());
                };
                let text = text.trim();
                if text.is_empty() || text.contains('\n') {
                    return Decoded::Bad("a row record should be one non-empty line".into());
                }
                let is_json = text.starts_with('{');
                let feed = if is_json { json } else { csv };
                match feed.decode(text, arrived, out) {
                    Ok(mut info) => {
                        if is_json {
                            json_flow(text, &mut info.flow);
                        }
                        Decoded::Record(RecordInfo { index: id, ..info })
                    }
                    Err(e) => Decoded::Bad(e),
                }
            }
        }
    }
}

/// Fills the addresses and ports of a JSON row's alert context from its
/// keys (`dst_ip`, `src_ip`, ...) when they are not model columns.
pub(super) fn json_flow(text: &str, flow: &mut FlowContext) {
    use crate::ingest::columns::{DST_IP, SRC_IP};
    if !flow.dest_ip.is_unspecified() {
        return;
    }
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let field = |names: &[&str]| {
        obj.iter().find_map(|(k, v)| {
            let k = k.trim().to_ascii_lowercase().replace([' ', '-'], "_");
            if !names.contains(&k.as_str()) {
                return None;
            }
            match v {
                serde_json::Value::String(s) => Some(s.trim().to_owned()),
                other => Some(other.to_string()),
            }
        })
    };
    if let Some(ip) = field(&DST_IP).and_then(|t| t.parse().ok()) {
        flow.dest_ip = ip;
    }
    if let Some(ip) = field(&SRC_IP).and_then(|t| t.parse().ok()) {
        flow.src_ip = ip;
    }
    let port = |names: &[&str]| field(names).and_then(|t| t.parse::<u16>().ok());
    if let Some(p) = port(&["dst_port", "dport", "dest_port", "destination_port"]) {
        flow.dest_port = p;
    }
    if let Some(p) = port(&["src_port", "sport", "source_port"]) {
        flow.src_port = p;
    }
}
