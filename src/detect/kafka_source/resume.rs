//! Where a partition gained resumes, with the workaround for brokers that
//! answer a fetch from inside a record batch with the next batch.

use super::*;

/// First look-back on a partition gained whose first record lies past the
/// offset owed (records); doubled at each retry.
pub(super) const LOOK_BACK: i64 = 4096;

/// Quiet time after which a partition gained that delivered nothing owed
/// is read again from further back.
pub(super) const STUCK_AFTER: Duration = Duration::from_secs(1);

/// Where a partition gained must resume: the group's committed offset,
/// checked on its first records. Apache Kafka answers a fetch from inside a
/// record batch with that whole batch (the client skips its head); some
/// brokers (tansu 0.6) answer with the next batch only, or with nothing
/// when it is the last one, skipping records nobody processed. Reading
/// again from further back gets that batch; the records before the offset
/// owed, done by the previous owner, are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Resume {
    /// The first offset owed (committed by the group).
    pub(super) owed: i64,
    /// The partition's first offset (its low watermark).
    pub(super) low: i64,
    /// Where the current read started.
    pub(super) from: i64,
    /// A record before `owed` arrived since `from`: the batch holding
    /// `owed` comes next, so a later first offset is a real gap
    /// (compaction, transaction markers).
    pub(super) below: bool,
}

/// What to do with a record of a partition being resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The first record owed (or past a real gap): process it, resumed.
    Take,
    /// Done by the previous owner: drop it.
    Drop,
    /// The broker skipped records owed: read again from this offset.
    Seek(i64),
}

impl Resume {
    pub(super) fn new(owed: i64, low: i64) -> Self {
        Resume {
            owed,
            low,
            from: owed,
            below: false,
        }
    }

    /// Reading from further back cannot bring anything more.
    pub(super) fn settled(&self) -> bool {
        self.below || self.from <= self.low
    }

    /// Where to read from next, twice as far back as before; `None` once
    /// settled.
    pub(super) fn look_back(&mut self) -> Option<i64> {
        if self.settled() {
            return None;
        }
        let back = (2 * (self.owed - self.from)).max(LOOK_BACK);
        self.from = self.owed.saturating_sub(back).max(self.low);
        Some(self.from)
    }

    pub(super) fn on_record(&mut self, offset: i64) -> Verdict {
        if offset < self.owed {
            self.below = true;
            return Verdict::Drop;
        }
        if offset == self.owed {
            return Verdict::Take;
        }
        self.look_back().map_or(Verdict::Take, Verdict::Seek)
    }
}
