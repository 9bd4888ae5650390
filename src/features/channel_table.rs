//! Channels kept together with their reverse (N-BaIoT's HH and HpHp).
//!
//! N-BaIoT pairs each channel (A -> B) with its reverse (B -> A) and with
//! nothing else, so both directions, their covariance and any per-direction
//! extra (the HH family's jitter) fit in one [`Channel`] entry, found by one
//! lookup of the channel's canonical key (the smaller of the two). Kept as
//! two streams and a pair ([`crate::features::pair_table`]), a new channel
//! costs three inserts, each evicting a cold entry under a spoofed flood,
//! and dropping a stream walks its pairs; here it costs one.
//!
//! The statistics are those of the pair table in
//! [`CovUpdates::Once`](crate::features::pair_table::CovUpdates) mode, bit
//! for bit: side 0 is the direction that created the channel, and a packet
//! inserts into its side, fades the other, and updates the covariance once.
//! A table holds `capacity / 2` channels, so that it holds as many
//! directions as a stream table of `capacity` would.

use crate::features::incstat::{pair_stats, Cov2D, DecayCache, Stats1D};
use crate::features::stream_table::{Decaying, Hashed, Key, Table, TableConfig, TableStats};

/// A channel and its reverse, with an extra value `X` per direction.
#[derive(Debug, Clone)]
pub(crate) struct Channel<X> {
    /// The covariance of the two directions (its clock leads the entry).
    pub cov: Cov2D,
    /// Side 0: the direction that created the channel; side 1: its reverse.
    pub dirs: [Stats1D; 2],
    /// Per-direction extra state, by side.
    pub extra: [X; 2],
    /// Which side the canonical key's direction is.
    key_side: u8,
    /// A channel from a host to itself: one direction, paired with itself.
    self_loop: bool,
}

impl<X> Decaying for Channel<X> {
    fn weight_at(&self, t: f64) -> f64 {
        self.dirs[0].weight_at(t).max(self.dirs[1].weight_at(t))
    }

    fn clock(&self) -> f64 {
        self.cov.last_t
    }
}

impl<X> Channel<X> {
    /// `[radius, magnitude, covariance, pcc]` of the two directions for lane
    /// `lane`, with plain squares (the corrected statistics').
    pub(crate) fn pair_stats(&self, lane: usize) -> [f64; 4] {
        let b = if self.self_loop { 0 } else { 1 };
        pair_stats(
            &self.dirs[0].lanes[lane],
            &self.dirs[b].lanes[lane],
            &self.cov.lanes[lane],
            false,
        )
    }
}

/// A packet's channel: its canonical key, and whether the packet runs the
/// way the key does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelKey<K> {
    key: Hashed<K>,
    forward: bool,
    self_loop: bool,
}

/// Channels keyed by the smaller of their two directions' keys, bounded.
#[derive(Debug)]
pub(crate) struct ChannelTable<const N: usize, X> {
    table: Table<Key<N>, Channel<X>>,
}

impl<const N: usize, X: Default> ChannelTable<N, X> {
    /// An empty table of `capacity / 2` channels (`config` assumed validated).
    pub(crate) fn new(config: TableConfig) -> Self {
        let config = TableConfig {
            capacity: (config.capacity / 2).max(1),
            ..config
        };
        ChannelTable {
            table: Table::new(config),
        }
    }

    /// Occupancy and removal counts, under `name`.
    pub(crate) fn stats(&self, name: &str) -> TableStats {
        self.table.stats(name)
    }

    /// See [`Table::prefetch_victim`].
    pub(crate) fn prefetch_victim(&self) {
        self.table.prefetch_victim();
    }

    /// The channel from `fwd` to `rev`'s reverse, hashed (see [`Table::hashed`]).
    pub(crate) fn hashed(&self, fwd: Key<N>, rev: Key<N>) -> ChannelKey<Key<N>> {
        let forward = fwd.as_bytes() <= rev.as_bytes();
        let key = if forward { fwd } else { rev };
        ChannelKey {
            key: self.table.hashed(key),
            forward,
            self_loop: fwd == rev,
        }
    }

    /// Value `v` at time `t` on the channel `key`: inserts it into the
    /// packet's direction, fades the reverse, updates their covariance, and
    /// returns the channel and the packet's side.
    pub(crate) fn update(
        &mut self,
        key: ChannelKey<Key<N>>,
        v: f64,
        t: f64,
        cache: &mut DecayCache,
    ) -> (&mut Channel<X>, usize) {
        let i = self.table.get_or_insert(key.key, t, || Channel {
            cov: Cov2D::new(t),
            dirs: [Stats1D::new(t); 2],
            extra: [X::default(), X::default()],
            key_side: u8::from(!key.forward),
            self_loop: key.self_loop,
        });
        let ch = self.table.get_mut(i);
        let side = usize::from(ch.key_side) ^ usize::from(!key.forward);
        let stats = &mut ch.dirs[side];
        stats.insert(v, t, cache);
        let means = stats.lanes.map(|l| l.mean);
        let other = (!ch.self_loop).then_some(&mut ch.dirs[1 - side]);
        ch.cov.update_pair(side, v, t, &means, other, cache);
        (ch, side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::incstat::NL;
    use crate::features::pair_table::{CovUpdates, Table2D};

    fn key(a: u8, b: u8) -> Key<2> {
        let mut k = Key::new();
        k.push(&[a, b]);
        k
    }

    fn cfg(capacity: usize) -> TableConfig {
        TableConfig {
            capacity,
            ..TableConfig::default()
        }
    }

    /// Packets among 6 hosts (self loops included) at irregular times.
    fn traffic() -> Vec<(u8, u8, f64, f64)> {
        let mut x = 0x2545_f491u32;
        let mut t = 50.0;
        (0..3_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                t += f64::from(x % 7) * 0.013;
                let (a, b) = ((x >> 8) as u8 % 6, (x >> 16) as u8 % 6);
                (a, b, f64::from(60 + (x >> 20) % 1400), t)
            })
            .collect()
    }

    #[test]
    fn matches_two_streams_and_a_pair_bit_for_bit() {
        let mut channels: ChannelTable<2, ()> = ChannelTable::new(cfg(100));
        let mut pairs = Table2D::new(cfg(100), CovUpdates::Once);
        let (mut c1, mut c2) = (DecayCache::new(false), DecayCache::new(false));
        for (a, b, v, t) in traffic() {
            let k = channels.hashed(key(a, b), key(b, a));
            let (ch, side) = channels.update(k, v, t, &mut c1);
            let touched = pairs.update(key(a, b), key(b, a), v, t, &mut c2);
            assert_eq!(ch.dirs[side], *pairs.stream(touched.src));
            for lane in 0..NL {
                let (x, y) = (ch.pair_stats(lane), pairs.pair_stats(touched.pair, lane));
                assert_eq!(x.map(f64::to_bits), y.map(f64::to_bits), "{a}->{b} at {t}");
            }
        }
    }

    #[test]
    fn both_directions_share_one_entry() {
        let mut t: ChannelTable<2, u32> = ChannelTable::new(cfg(10));
        let mut cache = DecayCache::new(false);
        let (ch, side) = t.update(t.hashed(key(9, 1), key(1, 9)), 100.0, 1.0, &mut cache);
        assert_eq!(side, 0, "the creator is side 0 whatever the key order");
        ch.extra[side] += 1;
        let (ch, side) = t.update(t.hashed(key(1, 9), key(9, 1)), 500.0, 2.0, &mut cache);
        assert_eq!((side, ch.extra), (1, [1, 0]));
        assert_eq!(ch.dirs[0].lanes[0].mean, 100.0);
        assert_eq!(ch.dirs[1].lanes[0].mean, 500.0);
        assert_eq!(t.stats("x").len, 1);
    }

    #[test]
    fn a_self_loop_is_paired_with_itself() {
        let mut t: ChannelTable<2, ()> = ChannelTable::new(cfg(10));
        let mut cache = DecayCache::new(false);
        for (v, time) in [(100.0, 1.0), (300.0, 1.5)] {
            let k = t.hashed(key(4, 4), key(4, 4));
            t.update(k, v, time, &mut cache);
        }
        let (ch, side) = t.update(t.hashed(key(4, 4), key(4, 4)), 200.0, 2.0, &mut cache);
        assert_eq!(side, 0);
        let var = ch.dirs[0].lanes[2].var;
        let [radius, _, cov, pcc] = ch.pair_stats(2);
        assert!(var > 0.0);
        assert_eq!(radius, (2.0 * var * var).sqrt());
        assert_eq!((cov, pcc), (0.0, 0.0));
    }

    #[test]
    fn a_flood_of_new_channels_stays_at_half_the_capacity() {
        let mut t: ChannelTable<2, ()> = ChannelTable::new(cfg(64));
        let mut cache = DecayCache::new(false);
        for i in 0..10_000u32 {
            let (a, b) = ((i % 251) as u8, (i / 251) as u8);
            let k = t.hashed(key(a, b), key(b, a));
            t.update(k, 60.0, 1.0 + f64::from(i) * 1e-6, &mut cache);
        }
        let s = t.stats("flood");
        assert_eq!((s.len, s.capacity), (32, 32));
        assert!(s.evicted > 9_000, "{s:?}");
    }
}
