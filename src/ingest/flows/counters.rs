//! What each exporter sent and what of it was rejected, in a bounded table.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;

use lru::LruCache;

/// Why (part of) a datagram was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Shorter than its headers or its declared lengths.
    Truncated,
    /// Not NetFlow v5/v7/v9, IPFIX or sFlow v5.
    UnknownVersion,
    /// A template or options template refused (too many fields, a zero or
    /// absurd length, a reserved id).
    BadTemplate,
    /// Data records whose template has not arrived (from this exporter and
    /// domain): dropped.
    NoTemplate,
    /// An sFlow datagram declaring more samples than allowed or than it
    /// holds, or a sample whose records do not parse.
    BadSample,
    /// A structure that does not parse (other than the above).
    Malformed,
    /// A record or sample without IP addresses (nothing to key it on).
    NoAddress,
    /// From an exporter outside `--exporter`.
    NotAllowed,
}

impl Rejection {
    /// Every reason, in report order.
    pub const ALL: [Rejection; 8] = [
        Rejection::Truncated,
        Rejection::UnknownVersion,
        Rejection::BadTemplate,
        Rejection::NoTemplate,
        Rejection::BadSample,
        Rejection::Malformed,
        Rejection::NoAddress,
        Rejection::NotAllowed,
    ];

    /// The reason's name in reports and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Rejection::Truncated => "truncated",
            Rejection::UnknownVersion => "unknown_version",
            Rejection::BadTemplate => "bad_template",
            Rejection::NoTemplate => "no_template",
            Rejection::BadSample => "bad_sample",
            Rejection::Malformed => "malformed",
            Rejection::NoAddress => "no_address",
            Rejection::NotAllowed => "not_allowed",
        }
    }

    fn slot(self) -> usize {
        Self::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

/// Counts of one exporter (or of all of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExporterStats {
    /// Datagrams received.
    pub datagrams: u64,
    /// Flow records and samples decoded.
    pub records: u64,
    /// sFlow counter samples (interface counters: read, not scored).
    pub counter_samples: u64,
    rejected: [u64; Rejection::ALL.len()],
}

impl ExporterStats {
    /// Counts one rejection.
    pub(crate) fn reject(&mut self, why: Rejection) {
        self.rejected[why.slot()] += 1;
    }

    /// Rejections for `why`.
    pub fn rejected(&self, why: Rejection) -> u64 {
        self.rejected[why.slot()]
    }

    /// Rejections of every kind.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    fn add(&mut self, o: &ExporterStats) {
        self.datagrams += o.datagrams;
        self.records += o.records;
        self.counter_samples += o.counter_samples;
        for (a, b) in self.rejected.iter_mut().zip(o.rejected) {
            *a += b;
        }
    }
}

impl fmt::Display for ExporterStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} datagrams, {} records", self.datagrams, self.records)?;
        if self.counter_samples > 0 {
            write!(f, ", {} counter samples", self.counter_samples)?;
        }
        for r in Rejection::ALL {
            let n = self.rejected(r);
            if n > 0 {
                write!(f, ", {n} {}", r.name())?;
            }
        }
        Ok(())
    }
}

/// Per-exporter counts, at most `capacity` exporters (the least recently
/// heard is folded into [`forgotten`](Self::forgotten)), and their totals.
#[derive(Debug)]
pub struct FlowCounters {
    per: LruCache<IpAddr, ExporterStats>,
    forgotten: ExporterStats,
    current: Option<IpAddr>,
}

impl FlowCounters {
    pub(crate) fn new(capacity: usize) -> Self {
        FlowCounters {
            per: LruCache::new(NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN)),
            forgotten: ExporterStats::default(),
            current: None,
        }
    }

    /// Counts a datagram of `exporter` and returns its counts.
    pub(crate) fn datagram(&mut self, exporter: IpAddr) -> &mut ExporterStats {
        if !self.per.contains(&exporter) {
            if let Some((_, old)) = self.per.push(exporter, ExporterStats::default()) {
                self.forgotten.add(&old);
            }
        }
        self.current = Some(exporter);
        let s = self.per.get_mut(&exporter).expect("just inserted");
        s.datagrams += 1;
        s
    }

    /// Adds decoded records to the exporter of the last datagram.
    pub(crate) fn add_records(&mut self, n: u64) {
        if let Some(s) = self.current.and_then(|e| self.per.peek_mut(&e)) {
            s.records += n;
        }
    }

    /// The counts of `exporter`, if it is still tracked.
    pub fn exporter(&self, exporter: IpAddr) -> Option<&ExporterStats> {
        self.per.peek(&exporter)
    }

    /// Every tracked exporter with its counts, most recently heard first.
    pub fn exporters(&self) -> impl Iterator<Item = (&IpAddr, &ExporterStats)> {
        self.per.iter()
    }

    /// Counts of exporters no longer tracked (the table was full).
    pub fn forgotten(&self) -> &ExporterStats {
        &self.forgotten
    }

    /// Counts of every exporter together.
    pub fn total(&self) -> ExporterStats {
        let mut t = self.forgotten;
        self.per.iter().for_each(|(_, s)| t.add(s));
        t
    }
}
