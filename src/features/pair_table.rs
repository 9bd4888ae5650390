//! Pairs of streams: a bounded table of streams plus a bounded table of the
//! links (covariances) between them.
//!
//! Pairs are found by the (unordered) serial numbers of their two streams:
//! a stream gets a new serial whenever it enters its table, so a pair of a
//! stream that has left can never be found again, and simply ages out of
//! the pair table.
//!
//! In [`CovUpdates::Kitsune`] mode a stream also keeps its links on an
//! intrusive doubly linked list threaded through the pairs (one node per
//! end), in creation order, so that its links can be walked in Kitsune-py's
//! order and a pair unlinked in O(1) when it is evicted; a stream leaving
//! takes its pairs with it. [`CovUpdates::Once`] mode needs no lists, which
//! spares a flood the cold list entries that every eviction would edit.

use crate::features::incstat::{pair_stats, Cov2D, DecayCache, Lane, Stats1D, NL};
use crate::features::stream_table::{
    Decaying, Hashed, Removal, Table, TableConfig, TableStats, NIL,
};
use std::hash::Hash;

/// How a packet updates the covariances of its source stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CovUpdates {
    /// Kitsune-py: inserting into the source updates every link of the
    /// source, then the (source, destination) link is updated once more (so
    /// an existing pair is updated twice). A pair whose two keys are equal
    /// borrows the source's first link, as Kitsune-py's lookup does.
    Kitsune,
    /// Corrected: only the (source, destination) link, once per packet.
    Once,
}

/// A stream of a pair table: its statistics, its serial number and the
/// head/tail of its links (Kitsune mode).
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    /// The stream's statistics.
    pub stats: Stats1D,
    serial: u32,
    head: u32,
    tail: u32,
}

impl Decaying for Stream {
    fn weight_at(&self, t: f64) -> f64 {
        self.stats.weight_at(t)
    }

    fn clock(&self) -> f64 {
        self.stats.last_t
    }
}

/// A link between two streams (`ends[0]` created it as source).
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    ends: [u32; 2],
    prev: [u32; 2],
    next: [u32; 2],
    /// The covariance sums.
    pub cov: Cov2D,
}

impl Decaying for Pair {
    fn weight_at(&self, t: f64) -> f64 {
        self.cov.weight_at(t)
    }

    fn clock(&self) -> f64 {
        self.cov.last_t
    }
}

/// A list node: pair slot and which end's list it belongs to.
fn node(pair: u32, side: usize) -> u32 {
    (pair << 1) | side as u32
}

/// The streams and pairs that one packet touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Touched {
    /// Slot of the source stream.
    pub src: u32,
    /// Slot of the pair reported for the packet.
    pub pair: u32,
}

/// Streams keyed by `K` and the links between them, both bounded.
#[derive(Debug)]
pub(crate) struct Table2D<K> {
    streams: Table<K, Stream>,
    pairs: Table<u64, Pair>,
    mode: CovUpdates,
    fanout_limit: usize,
    /// Serial number of the next stream to enter.
    next_serial: u32,
}

impl<K: Hash + Eq> Table2D<K> {
    /// Empty tables, each bounded by `config` (assumed validated).
    pub(crate) fn new(config: TableConfig, mode: CovUpdates) -> Self {
        Table2D {
            streams: Table::new(config),
            pairs: Table::new(config),
            mode,
            fanout_limit: config.fanout_limit,
            next_serial: 0,
        }
    }

    /// Stream and pair table statistics, named `<name>.streams` and `<name>.pairs`.
    pub(crate) fn stats(&self, name: &str) -> [TableStats; 2] {
        [
            self.streams.stats(&format!("{name}.streams")),
            self.pairs.stats(&format!("{name}.pairs")),
        ]
    }

    /// See [`Table::prefetch_victim`].
    pub(crate) fn prefetch_victims(&self) {
        self.streams.prefetch_victim();
        self.pairs.prefetch_victim();
    }

    /// The statistics of stream slot `i`.
    pub(crate) fn stream(&self, i: u32) -> &Stats1D {
        &self.streams.get(i).stats
    }

    /// `[radius, magnitude, covariance, pcc]` of pair slot `p` for lane `lane`.
    pub(crate) fn pair_stats(&self, p: u32, lane: usize) -> [f64; 4] {
        let pair = self.pairs.get(p);
        let a: &Lane = &self.streams.get(pair.ends[0]).stats.lanes[lane];
        let b: &Lane = &self.streams.get(pair.ends[1]).stats.lanes[lane];
        pair_stats(
            a,
            b,
            &pair.cov.lanes[lane],
            self.mode == CovUpdates::Kitsune,
        )
    }

    /// Value `v` at time `t` from stream `src` to stream `dst`: inserts it in
    /// the source, updates the covariances per the table's mode, and returns
    /// the slots to read the statistics from.
    #[cfg(test)]
    pub(crate) fn update(
        &mut self,
        src: K,
        dst: K,
        v: f64,
        t: f64,
        cache: &mut DecayCache,
    ) -> Touched {
        let (src, dst) = (self.hashed(src), self.hashed(dst));
        self.update_hashed(src, dst, v, t, cache)
    }

    /// `key` hashed for this table's streams (see [`Table::hashed`]).
    #[inline]
    pub(crate) fn hashed(&self, key: K) -> Hashed<K> {
        self.streams.hashed(key)
    }

    /// [`Table2D::update`] with keys hashed up front.
    pub(crate) fn update_hashed(
        &mut self,
        src: Hashed<K>,
        dst: Hashed<K>,
        v: f64,
        t: f64,
        cache: &mut DecayCache,
    ) -> Touched {
        let s = self.register(src, t);
        let stats = &mut self.streams.get_mut(s).stats;
        stats.insert(v, t, cache);
        let means = stats.lanes.map(|l| l.mean);
        if self.mode == CovUpdates::Kitsune {
            // Newest links first, at most `fanout_limit`; the updates are
            // independent (each link has its own other end), so the order
            // does not change the results.
            let mut n = self.streams.get(s).tail;
            for _ in 0..self.fanout_limit {
                if n == NIL {
                    break;
                }
                let p = n >> 1;
                let prev = self.pairs.get(p).prev[(n & 1) as usize];
                self.update_link(p, s, v, t, &means, cache);
                n = prev;
            }
        }
        let d = self.register(dst, t);
        let p = self.link(s, d, t);
        self.update_link(p, s, v, t, &means, cache);
        Touched { src: s, pair: p }
    }

    /// Kitsune-py's `update_cov` of pair `p` for a value of stream `s`.
    fn update_link(
        &mut self,
        p: u32,
        s: u32,
        v: f64,
        t: f64,
        means: &[f64; NL],
        cache: &mut DecayCache,
    ) {
        let ends = self.pairs.get(p).ends;
        let side = usize::from(ends[0] != s);
        let other = &mut self.streams.get_mut(ends[1 - side]).stats;
        let cov = &mut self.pairs.get_mut(p).cov;
        cov.update_pair(side, v, t, means, Some(other), cache);
    }

    /// The slot of stream `key`, marked seen, created at `t` if absent.
    fn register(&mut self, key: Hashed<K>, t: f64) -> u32 {
        if let Some(i) = self.streams.lookup(&key) {
            self.streams.touch(i);
            return i;
        }
        for _ in 0..2 {
            match self.streams.victim(t) {
                Some((i, why)) => {
                    self.drop_stream(i, why);
                    if why == Removal::Evicted {
                        break;
                    }
                }
                None => break,
            }
        }
        // Serials wrap after 2^32 new streams, which make at least 2^31 new
        // pairs (each has at most two new ends): more than a table holds, so
        // every pair older than that has left it.
        let serial = self.next_serial;
        self.next_serial = serial.wrapping_add(1);
        let stream = Stream {
            stats: Stats1D::new(t),
            serial,
            head: NIL,
            tail: NIL,
        };
        self.streams.insert_new(key, stream)
    }

    /// The pair of streams `s` and `d`, marked seen, created at `t` if absent.
    fn link(&mut self, s: u32, d: u32, t: f64) -> u32 {
        if s == d && self.mode == CovUpdates::Kitsune {
            let head = self.streams.get(s).head;
            if head != NIL {
                self.pairs.touch(head >> 1);
                return head >> 1;
            }
        }
        let (a, b) = (self.streams.get(s).serial, self.streams.get(d).serial);
        let key = self
            .pairs
            .hashed((u64::from(a.min(b)) << 32) | u64::from(a.max(b)));
        if let Some(p) = self.pairs.lookup(&key) {
            self.pairs.touch(p);
            return p;
        }
        for _ in 0..2 {
            match self.pairs.victim(t) {
                Some((p, why)) => {
                    self.drop_pair(p, why);
                    if why == Removal::Evicted {
                        break;
                    }
                }
                None => break,
            }
        }
        let pair = Pair {
            ends: [s, d],
            prev: [NIL; 2],
            next: [NIL; 2],
            cov: Cov2D::new(t),
        };
        let p = self.pairs.insert_new(key, pair);
        if self.mode == CovUpdates::Kitsune {
            self.append(s, p, 0);
            if d != s {
                self.append(d, p, 1);
            }
        }
        p
    }

    /// Removes stream `i` and every pair on its list.
    fn drop_stream(&mut self, i: u32, why: Removal) {
        let mut n = self.streams.get(i).head;
        while n != NIL {
            let (p, side) = (n >> 1, (n & 1) as usize);
            let pair = self.pairs.get(p);
            let (next, other) = (pair.next[side], pair.ends[1 - side]);
            if other != i {
                self.unlink(other, p, 1 - side);
            }
            self.pairs.remove(p, why);
            n = next;
        }
        self.streams.remove(i, why);
    }

    /// Removes pair `p` from both its streams' lists and from the table.
    fn drop_pair(&mut self, p: u32, why: Removal) {
        if self.mode == CovUpdates::Kitsune {
            let ends = self.pairs.get(p).ends;
            self.unlink(ends[0], p, 0);
            if ends[1] != ends[0] {
                self.unlink(ends[1], p, 1);
            }
        }
        self.pairs.remove(p, why);
    }

    /// Appends pair `p` (as end `side`) to stream `s`'s list.
    fn append(&mut self, s: u32, p: u32, side: usize) {
        let tail = self.streams.get(s).tail;
        {
            let pair = self.pairs.get_mut(p);
            pair.prev[side] = tail;
            pair.next[side] = NIL;
        }
        if tail == NIL {
            self.streams.get_mut(s).head = node(p, side);
        } else {
            self.pairs.get_mut(tail >> 1).next[(tail & 1) as usize] = node(p, side);
        }
        self.streams.get_mut(s).tail = node(p, side);
    }

    /// Unlinks pair `p` (as end `side`) from stream `s`'s list.
    fn unlink(&mut self, s: u32, p: u32, side: usize) {
        let (prev, next) = {
            let pair = self.pairs.get(p);
            (pair.prev[side], pair.next[side])
        };
        if prev == NIL {
            self.streams.get_mut(s).head = next;
        } else {
            self.pairs.get_mut(prev >> 1).next[(prev & 1) as usize] = next;
        }
        if next == NIL {
            self.streams.get_mut(s).tail = prev;
        } else {
            self.pairs.get_mut(next >> 1).prev[(next & 1) as usize] = prev;
        }
    }

    /// The pair slots on stream `s`'s list, in order.
    #[cfg(test)]
    fn links(&self, s: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut n = self.streams.get(s).head;
        while n != NIL {
            out.push(n >> 1);
            n = self.pairs.get(n >> 1).next[(n & 1) as usize];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::stream_table::Key;

    fn key(n: u32) -> Key<4> {
        let mut k = Key::new();
        k.push(&n.to_be_bytes());
        k
    }

    fn cfg(capacity: usize) -> TableConfig {
        TableConfig {
            capacity,
            ..TableConfig::default()
        }
    }

    #[test]
    fn kitsune_mode_updates_existing_pair_twice() {
        let mut cache = DecayCache::default();
        let mut twice = Table2D::new(cfg(10), CovUpdates::Kitsune);
        let mut once = Table2D::new(cfg(10), CovUpdates::Once);
        let mut w3 = [0.0; 2];
        for (k, table) in [&mut twice, &mut once].into_iter().enumerate() {
            for i in 0..3 {
                let t = table.update(key(1), key(2), 100.0 + i as f64, i as f64 * 0.1, &mut cache);
                w3[k] = table.pairs.get(t.pair).cov.lanes[4].w3;
            }
        }
        // First packet creates the pair (one update), then 2 per packet vs 1.
        assert!((w3[0] - 5.0).abs() < 0.01, "{w3:?}");
        assert!((w3[1] - 3.0).abs() < 0.01, "{w3:?}");
    }

    #[test]
    fn fanout_is_limited_to_the_newest_links() {
        let mut cache = DecayCache::default();
        let config = TableConfig {
            fanout_limit: 2,
            ..cfg(10)
        };
        let mut t = Table2D::new(config, CovUpdates::Kitsune);
        let pairs: Vec<u32> = (1..=4)
            .map(|d| t.update(key(0), key(d), 60.0, 0.0, &mut cache).pair)
            .collect();
        let w3 = |t: &Table2D<Key<4>>| {
            pairs
                .iter()
                .map(|&p| t.pairs.get(p).cov.lanes[4].w3)
                .collect::<Vec<_>>()
        };
        let before = w3(&t);
        // A packet to a fifth peer updates only the two newest links first.
        t.update(key(0), key(5), 60.0, 1.0, &mut cache);
        let after = w3(&t);
        let grew: Vec<bool> = before.iter().zip(&after).map(|(b, a)| a > b).collect();
        assert_eq!(grew, [false, false, true, true]);
    }

    #[test]
    fn reverse_direction_finds_the_same_pair() {
        let mut cache = DecayCache::default();
        let mut t = Table2D::new(cfg(10), CovUpdates::Once);
        let ab = t.update(key(1), key(2), 60.0, 0.0, &mut cache);
        let ba = t.update(key(2), key(1), 90.0, 0.1, &mut cache);
        assert_eq!(ab.pair, ba.pair);
        let [radius, magnitude, cov, pcc] = t.pair_stats(ba.pair, 0);
        assert!((magnitude - (60f64.powi(2) + 90f64.powi(2)).sqrt()).abs() < 1e-6);
        assert_eq!((radius, cov, pcc), (0.0, 0.0, 0.0));
    }

    #[test]
    fn self_pair_borrows_first_link_in_kitsune_mode_only() {
        let mut cache = DecayCache::default();
        for (mode, borrows) in [(CovUpdates::Kitsune, true), (CovUpdates::Once, false)] {
            let mut t = Table2D::new(cfg(10), mode);
            let first = t.update(key(1), key(2), 60.0, 0.0, &mut cache);
            t.update(key(1), key(3), 60.0, 0.1, &mut cache);
            let own = t.update(key(1), key(1), 60.0, 0.2, &mut cache);
            assert_eq!(own.pair == first.pair, borrows, "{mode:?}");
        }
        // With no link yet, a self pair is made and linked once.
        let mut t = Table2D::new(cfg(10), CovUpdates::Kitsune);
        let own = t.update(key(7), key(7), 60.0, 0.0, &mut cache);
        assert_eq!(t.links(own.src), vec![own.pair]);
        let again = t.update(key(7), key(7), 80.0, 0.5, &mut cache);
        assert_eq!(again.pair, own.pair);
        assert_eq!(t.pair_stats(own.pair, 0)[2], 0.0, "self covariance stays 0");
    }

    #[test]
    fn evicting_a_stream_drops_its_pairs() {
        let mut cache = DecayCache::default();
        let mut t = Table2D::new(cfg(4), CovUpdates::Kitsune);
        // Hub 0 receives from 1, 2, 3: four streams, three pairs.
        for src in 1..=3 {
            t.update(key(src), key(0), 60.0, src as f64 * 0.01, &mut cache);
        }
        let hub = t.streams.find(&key(0)).expect("hub");
        assert_eq!(t.links(hub).len(), 3);
        // A fifth stream evicts stream 1 (least recently seen) and its pair.
        t.update(key(4), key(0), 60.0, 0.05, &mut cache);
        assert!(t.streams.find(&key(1)).is_none());
        assert_eq!(t.links(hub).len(), 3);
        let [streams, pairs] = t.stats("HH");
        assert_eq!((streams.len, streams.evicted), (4, 1));
        assert_eq!((pairs.len, pairs.evicted), (3, 1));
    }

    #[test]
    fn evicting_a_pair_keeps_lists_consistent() {
        let mut cache = DecayCache::default();
        let mut t = Table2D::new(cfg(3), CovUpdates::Kitsune);
        let mut k = 0.0;
        for (a, b) in [(0, 1), (0, 2), (1, 2), (2, 0), (1, 0), (0, 2)] {
            k += 0.01;
            t.update(key(a), key(b), 60.0 + k, k, &mut cache);
            let total: usize = (0..3)
                .filter_map(|s| t.streams.find(&key(s)))
                .map(|s| t.links(s).len())
                .sum();
            // Each non-self pair sits on two lists.
            assert_eq!(total, 2 * t.pairs.len(), "after {a}->{b}");
        }
        assert!(t.pairs.len() <= 3);
    }

    #[test]
    fn new_streams_in_old_slots_never_find_the_old_pair() {
        let mut cache = DecayCache::default();
        for mode in [CovUpdates::Kitsune, CovUpdates::Once] {
            let mut t = Table2D::new(cfg(2), mode);
            let old = t.update(key(1), key(2), 60.0, 0.0, &mut cache);
            t.update(key(1), key(2), 60.0, 0.05, &mut cache);
            // 3 and 4 evict 1 and 2 and take their slots.
            let new = t.update(key(3), key(4), 60.0, 0.1, &mut cache);
            assert_eq!(new.src, old.src, "{mode:?}: the slot is reused");
            let w3 = t.pairs.get(new.pair).cov.lanes[0].w3;
            assert_eq!(w3, 1.0, "{mode:?}: a fresh pair, one update");
        }
    }

    #[test]
    fn once_mode_keeps_no_lists() {
        let mut cache = DecayCache::default();
        let mut t = Table2D::new(cfg(5_000), CovUpdates::Once);
        for n in 1..=20_000u32 {
            let touched = t.update(key(n), key(0), 60.0, f64::from(n) * 1e-5, &mut cache);
            assert_eq!(t.pair_stats(touched.pair, 0)[2], 0.0);
        }
        let hub = t
            .streams
            .find(&key(0))
            .expect("the victim is seen every packet");
        assert!(t.links(hub).is_empty());
        let [streams, pairs] = t.stats("HH");
        assert_eq!((streams.len, pairs.len), (5_000, 5_000));
    }

    #[test]
    fn flood_of_spoofed_sources_stays_at_cap() {
        let mut cache = DecayCache::default();
        let cap = 5_000;
        let mut t = Table2D::new(cfg(cap), CovUpdates::Kitsune);
        for n in 1..=200_000u32 {
            t.update(key(n), key(0), 60.0, n as f64 * 1e-5, &mut cache);
            assert!(t.streams.len() <= cap && t.pairs.len() <= cap);
        }
        let [streams, pairs] = t.stats("HH");
        assert_eq!(streams.len, cap);
        assert!(streams.evicted >= 200_000 - cap as u64);
        let hub = t
            .streams
            .find(&key(0))
            .expect("the victim is seen every packet");
        assert_eq!(t.links(hub).len(), pairs.len);
    }
}
