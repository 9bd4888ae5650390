//! Splicing an attack capture into a benign one: the attack's timestamps
//! are shifted so it starts a chosen number of seconds after the benign
//! capture's first packet, the two are merged in time order into one
//! classic pcap, and every packet's origin is written as its label.
//!
//! Both inputs are streamed: memory holds one packet of each, whatever
//! their size. Inputs are expected in time order, as captures are; the
//! merge keeps each input's own order.

use std::io::{self, Read, Write};
use std::path::Path;

use super::capture::{CaptureError, CaptureReader, LinkType};
use super::pcap::PcapWriter;
use crate::util::AtomicFile;

/// Snap length of the written file: large enough for any accepted record.
const SNAPLEN: u32 = super::capture::MAX_RECORD;

/// How to splice.
#[derive(Debug, Clone, PartialEq)]
pub struct SpliceConfig {
    /// Seconds after the base capture's first packet where the inserted
    /// capture's first packet goes.
    pub at_s: f64,
    /// Label of the base capture's packets.
    pub base_label: String,
    /// Label of the inserted capture's packets.
    pub insert_label: String,
}

impl Default for SpliceConfig {
    fn default() -> Self {
        SpliceConfig {
            at_s: 0.0,
            base_label: "normal".into(),
            insert_label: "attack".into(),
        }
    }
}

/// What a splice wrote and what it had to skip.
#[derive(Debug, Default)]
pub struct SpliceSummary {
    /// Packets written from the base capture.
    pub base_packets: u64,
    /// Packets written from the inserted capture.
    pub insert_packets: u64,
    /// Shift applied to the inserted capture's timestamps, nanoseconds.
    pub shift_ns: i64,
    /// Records skipped or damage that ended an input early (reported, not
    /// fatal: what came before the damage is kept).
    pub problems: Vec<CaptureError>,
}

/// Splices the capture files `insert` into `base`, writing `out` (pcap) and
/// `labels` (`packet_index,label` CSV).
pub fn splice_files(
    base: &Path,
    insert: &Path,
    out: &Path,
    labels: &Path,
    cfg: &SpliceConfig,
) -> crate::Result<SpliceSummary> {
    let base_reader = CaptureReader::open(base)?;
    let insert_reader = CaptureReader::open(insert)?;
    // Temporary files renamed into place once complete: a failed or killed
    // splice leaves no half-written capture or label file.
    let (mut pcap_out, mut label_out) = (AtomicFile::create(out)?, AtomicFile::create(labels)?);
    let summary = splice(
        base_reader,
        insert_reader,
        &mut pcap_out,
        &mut label_out,
        cfg,
    )
    .map_err(|e| match e {
        SpliceError::Lib(e) => e,
        SpliceError::Capture(e) => crate::Error::io(out, e),
        SpliceError::Labels(e) => crate::Error::io(labels, e),
    })?;
    pcap_out.commit()?;
    label_out.commit()?;
    Ok(summary)
}

/// Why a splice failed.
#[derive(Debug, thiserror::Error)]
pub enum SpliceError {
    /// The inputs cannot be spliced.
    #[error(transparent)]
    Lib(#[from] crate::Error),
    /// Writing the merged capture failed.
    #[error("writing the spliced capture: {0}")]
    Capture(io::Error),
    /// Writing the labels failed.
    #[error("writing the labels: {0}")]
    Labels(io::Error),
}

/// One input: its reader, label, current packet and counters.
struct Input<R> {
    reader: CaptureReader<R>,
    buf: Vec<u8>,
    /// The current packet: time (shifted), wire length, captured length.
    head: Option<(i64, u32, usize)>,
    shift_ns: i64,
    written: u64,
}

impl<R: Read> Input<R> {
    fn new(reader: CaptureReader<R>) -> Self {
        Input {
            reader,
            buf: Vec::new(),
            head: None,
            shift_ns: 0,
            written: 0,
        }
    }

    /// Moves to the next packet, checking its link type against `link`
    /// and setting `link` from the first packet when unset.
    fn advance(
        &mut self,
        link: &mut Option<LinkType>,
        problems: &mut Vec<CaptureError>,
    ) -> crate::Result<()> {
        loop {
            match self.reader.next_packet(&mut self.buf) {
                Ok(Some(raw)) => {
                    if *link.get_or_insert(raw.link_type) != raw.link_type {
                        return Err(crate::Error::Data(format!(
                            "cannot splice link type {} into link type {}: classic pcap holds one",
                            raw.link_type.0,
                            link.map_or(0, |l| l.0)
                        )));
                    }
                    let ts = raw.ts_ns.saturating_add(self.shift_ns);
                    self.head = Some((ts, raw.wire_len, raw.data.len()));
                    return Ok(());
                }
                Ok(None) => {
                    self.head = None;
                    return Ok(());
                }
                Err(e) => problems.push(e),
            }
        }
    }

    fn write<W: Write, L: Write>(
        &mut self,
        out: &mut PcapWriter<W>,
        labels: &mut L,
        index: u64,
        label: &str,
    ) -> Result<(), SpliceError> {
        if let Some((ts, wire_len, cap)) = self.head {
            out.write_packet(ts, wire_len, &self.buf[..cap])
                .map_err(SpliceError::Capture)?;
            writeln!(labels, "{index},{label}").map_err(SpliceError::Labels)?;
            self.written += 1;
        }
        Ok(())
    }
}

/// Splices `insert` into `base`, writing the merged pcap to `out` and the
/// labels to `labels`.
pub fn splice<B: Read, I: Read, W: Write, L: Write>(
    base: CaptureReader<B>,
    insert: CaptureReader<I>,
    out: W,
    mut labels: L,
    cfg: &SpliceConfig,
) -> Result<SpliceSummary, SpliceError> {
    if !cfg.at_s.is_finite() || cfg.at_s < 0.0 {
        return Err(crate::Error::Data(format!(
            "splice offset should be a non-negative number of seconds, but is {}",
            cfg.at_s
        ))
        .into());
    }
    let nanos = base.is_nanosecond() || insert.is_nanosecond();
    let mut summary = SpliceSummary::default();
    let (mut base, mut insert) = (Input::new(base), Input::new(insert));
    let mut link = None;
    base.advance(&mut link, &mut summary.problems)?;
    insert.advance(&mut link, &mut summary.problems)?;
    let link_type = link.unwrap_or(LinkType::ETHERNET);
    if let Some((insert_start, _, _)) = insert.head {
        let base_start = base.head.map_or(insert_start, |h| h.0);
        let at_ns = (cfg.at_s * 1e9).round() as i64;
        let shift = base_start
            .saturating_add(at_ns)
            .saturating_sub(insert_start);
        insert.shift_ns = shift;
        insert.head = insert.head.map(|(t, w, c)| (t.saturating_add(shift), w, c));
        summary.shift_ns = shift;
    }
    let mut out = PcapWriter::new(out, link_type, SNAPLEN, nanos).map_err(SpliceError::Capture)?;
    labels
        .write_all(b"packet_index,label\n")
        .map_err(SpliceError::Labels)?;
    let mut index = 0;
    loop {
        // Ties go to the base capture: its packets were there first.
        let take_base = match (base.head, insert.head) {
            (Some(b), Some(i)) => b.0 <= i.0,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        index += 1;
        let mut l = Some(link_type);
        if take_base {
            base.write(&mut out, &mut labels, index, &cfg.base_label)?;
            base.advance(&mut l, &mut summary.problems)?;
        } else {
            insert.write(&mut out, &mut labels, index, &cfg.insert_label)?;
            insert.advance(&mut l, &mut summary.problems)?;
        }
    }
    out.finish().map_err(SpliceError::Capture)?;
    labels.flush().map_err(SpliceError::Labels)?;
    summary.base_packets = base.written;
    summary.insert_packets = insert.written;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A microsecond pcap with one-byte packets at the given times (us).
    fn capture(times_us: &[i64], byte: u8, link: LinkType) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), link, 65535, false).unwrap();
        for &t in times_us {
            w.write_packet(t * 1_000, 60, &[byte]).unwrap();
        }
        w.finish().unwrap()
    }

    /// The written packets (time in us, first byte), labels and summary.
    type Spliced = (Vec<(i64, u8)>, String, SpliceSummary);

    fn run(base: &[u8], insert: &[u8], at_s: f64) -> Result<Spliced, SpliceError> {
        let b = CaptureReader::from_reader(base, "base").unwrap();
        let i = CaptureReader::from_reader(insert, "insert").unwrap();
        let (mut out, mut labels) = (Vec::new(), Vec::new());
        let cfg = SpliceConfig {
            at_s,
            ..SpliceConfig::default()
        };
        let summary = splice(b, i, &mut out, &mut labels, &cfg)?;
        let mut r = CaptureReader::from_reader(&out[..], "out").unwrap();
        let mut buf = Vec::new();
        let mut packets = Vec::new();
        while let Some(f) = r.next_packet(&mut buf).unwrap() {
            packets.push((f.ts_ns / 1_000, f.data[0]));
        }
        Ok((packets, String::from_utf8(labels).unwrap(), summary))
    }

    #[test]
    fn merges_in_time_order_with_labels() {
        let base = capture(
            &[1_000_000, 2_000_000, 3_000_000, 4_000_000],
            b'b',
            LinkType::ETHERNET,
        );
        let attack = capture(
            &[50_000_000, 50_500_000, 51_500_000],
            b'a',
            LinkType::ETHERNET,
        );
        let (packets, labels, summary) = run(&base, &attack, 1.25).unwrap();
        assert_eq!(
            packets,
            vec![
                (1_000_000, b'b'),
                (2_000_000, b'b'),
                (2_250_000, b'a'),
                (2_750_000, b'a'),
                (3_000_000, b'b'),
                (3_750_000, b'a'),
                (4_000_000, b'b'),
            ]
        );
        assert_eq!(
            labels,
            "packet_index,label\n1,normal\n2,normal\n3,attack\n4,attack\n5,normal\n6,attack\n7,normal\n"
        );
        assert_eq!((summary.base_packets, summary.insert_packets), (4, 3));
        assert_eq!(summary.shift_ns, (2_250_000 - 50_000_000) * 1_000);
        assert!(summary.problems.is_empty());
    }

    #[test]
    fn insert_after_the_end_and_ties() {
        let base = capture(&[10, 20], b'b', LinkType::ETHERNET);
        let attack = capture(&[0, 0], b'a', LinkType::ETHERNET);
        let (packets, _, _) = run(&base, &attack, 0.00001).unwrap();
        assert_eq!(
            packets,
            vec![(10, b'b'), (20, b'b'), (20, b'a'), (20, b'a')]
        );
        let (late, _, _) = run(&base, &attack, 100.0).unwrap();
        assert_eq!(late.last(), Some(&(100_000_010, b'a')));
    }

    #[test]
    fn empty_inputs() {
        let empty = capture(&[], 0, LinkType::ETHERNET);
        let base = capture(&[5, 6], b'b', LinkType::ETHERNET);
        let (p, labels, _) = run(&base, &empty, 1.0).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(labels.lines().count(), 3);
        let (p, _, _) = run(&empty, &base, 1.0).unwrap();
        assert_eq!(p, vec![(1_000_005, b'b'), (1_000_006, b'b')]);
        let (p, _, _) = run(&empty, &empty, 1.0).unwrap();
        assert!(p.is_empty());
    }

    #[test]
    fn rejects_mixed_link_types_and_bad_offsets() {
        let eth = capture(&[1], b'b', LinkType::ETHERNET);
        let raw = capture(&[1], b'a', LinkType::RAW);
        assert!(matches!(run(&eth, &raw, 0.0), Err(SpliceError::Lib(_))));
        assert!(run(&eth, &eth, -1.0).is_err());
        assert!(run(&eth, &eth, f64::NAN).is_err());
    }

    #[test]
    fn write_errors_name_the_output() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let base = capture(&[1], b'b', LinkType::ETHERNET);
        let cfg = SpliceConfig::default();
        let open = || CaptureReader::from_reader(&base[..], "b").unwrap();
        let err = splice(open(), open(), Full, Vec::new(), &cfg).unwrap_err();
        assert!(matches!(err, SpliceError::Capture(_)));
        let err = splice(open(), open(), Vec::new(), Full, &cfg).unwrap_err();
        assert!(matches!(err, SpliceError::Labels(_)));
        assert!(err.to_string().contains("labels"));
    }

    #[test]
    fn damaged_input_is_kept_up_to_the_damage() {
        let base = capture(&[1, 2, 3], b'b', LinkType::ETHERNET);
        let mut attack = capture(&[0, 1, 2], b'a', LinkType::ETHERNET);
        attack.truncate(attack.len() - 8);
        let (packets, _, summary) = run(&base, &attack, 0.0).unwrap();
        assert_eq!(summary.insert_packets, 2);
        assert_eq!(packets.len(), 5);
        assert_eq!(summary.problems.len(), 1);
        assert!(summary.problems[0].is_fatal());
    }
}
