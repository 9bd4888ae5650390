//! Bounded stream tables: a keyed slab with least-recently-seen eviction.
//!
//! Kitsune-py keeps every stream it ever saw, so a flood of spoofed sources
//! grows its memory without limit. A [`Table`] holds at most
//! [`TableConfig::capacity`] entries:
//!
//! - when the table is full, the least recently seen entry is *evicted*;
//! - otherwise an entry whose weight, faded at the slowest decay rate, is
//!   below [`TableConfig::weight_cutoff`] is *reclaimed* when it reaches the
//!   least recently seen end and an entry is inserted (at most two per
//!   insert, so the work stays O(1)).
//!
//! Layout: entries live in a `Vec` slab (grown to the capacity at most, never
//! beyond) threaded on an intrusive doubly linked recency list; a
//! linear-probing index of slab numbers (one cache line an operation,
//! backward-shift removal, load at most 1/2) finds them by key, so a key is
//! stored once. Hashing uses foldhash's `RandomState`, seeded randomly per
//! table: spoofed traffic is chosen by an adversary, who must not be able to
//! aim keys at one probe run.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::fast::RandomState;

use crate::error::{Error, Result};

/// "No slot" in the intrusive lists.
pub(crate) const NIL: u32 = u32::MAX;

/// Capacity and reclamation settings of one table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableConfig {
    /// Most entries the table holds (at least 2).
    pub capacity: usize,
    /// Entries whose weight, faded at the slowest rate, is below this are
    /// reclaimed (in `[0, 1)`; 0 turns reclamation off).
    pub weight_cutoff: f64,
    /// In the `kitsune` layout, the most links of its source a packet
    /// updates (Kitsune-py: all of them, so a host linked to a flood's
    /// spoofed sources costs O(capacity) per packet it sends). The most
    /// recently created links are updated; at least 1.
    pub fanout_limit: usize,
}

impl Default for TableConfig {
    /// 100,000 entries, cutoff 1e-6 (a one-packet stream of the 0.01 window
    /// reaches it after about 33 minutes of silence), fan-out of 1,024 links
    /// (the shared reference captures need at most 140).
    fn default() -> Self {
        TableConfig {
            capacity: 100_000,
            weight_cutoff: 1e-6,
            fanout_limit: 1024,
        }
    }
}

impl TableConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.capacity < 2 || self.capacity >= NIL as usize / 2 {
            return Err(Error::Data(format!(
                "table capacity should be in [2, {}], but is {}",
                NIL / 2 - 1,
                self.capacity
            )));
        }
        if self.fanout_limit == 0 {
            return Err(Error::Data(
                "fan-out limit should be at least 1, but is 0".to_string(),
            ));
        }
        if !(0.0..1.0).contains(&self.weight_cutoff) {
            return Err(Error::Data(format!(
                "weight cutoff should be in [0, 1), but is {}",
                self.weight_cutoff
            )));
        }
        Ok(())
    }
}

/// Occupancy and removals of one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    /// Table name (e.g. `HH.pairs`).
    pub name: String,
    /// Entries held now.
    pub len: usize,
    /// Most entries allowed.
    pub capacity: usize,
    /// Entries removed because the table was full.
    pub evicted: u64,
    /// Entries removed, the table not being full, because their weight had
    /// faded below the cutoff.
    pub reclaimed: u64,
}

/// Why an entry leaves a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The table was full and the entry was the least recently seen.
    Evicted,
    /// Its weight had faded below the cutoff.
    Reclaimed,
}

/// A value whose importance fades with time.
pub trait Decaying {
    /// The weight (at the slowest rate) the value would have at time `t`,
    /// at least `2^(-LAMBDAS[SLOWEST] * (t - clock()))`.
    fn weight_at(&self, t: f64) -> f64;

    /// Time of the value's last decay.
    fn clock(&self) -> f64;
}

/// A fixed-size key (up to `N` bytes, no heap): addresses and ports laid
/// out as bytes, or text for Kitsune's concatenated keys.
#[derive(Clone, Copy)]
pub struct Key<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> Key<N> {
    /// The empty key.
    pub const fn new() -> Self {
        Key {
            len: 0,
            bytes: [0; N],
        }
    }

    /// Appends `part`; returns false (and appends nothing) if it does not fit.
    pub fn push(&mut self, part: &[u8]) -> bool {
        let start = self.len as usize;
        let end = start + part.len();
        match self.bytes.get_mut(start..end) {
            Some(dst) if end <= u8::MAX as usize => {
                dst.copy_from_slice(part);
                self.len = end as u8;
                true
            }
            _ => false,
        }
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when no byte was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for Key<N> {
    fn default() -> Self {
        Key::new()
    }
}

impl<const N: usize> PartialEq for Key<N> {
    /// The bytes past `len` are always zero (only [`Key::push`] writes), so
    /// whole arrays compare: a fixed-size compare, inlined, not `memcmp`.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.bytes == other.bytes
    }
}

impl<const N: usize> Eq for Key<N> {}

impl<const N: usize> Hash for Key<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

impl<const N: usize> fmt::Debug for Key<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl<const N: usize> fmt::Write for Key<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.push(s.as_bytes()) {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

impl Decaying for crate::features::incstat::Stats1D {
    fn weight_at(&self, t: f64) -> f64 {
        crate::features::incstat::Stats1D::weight_at(self, t)
    }

    fn clock(&self) -> f64 {
        self.last_t
    }
}

/// A key and its hash in one [`Table`] (from [`Table::hashed`]; each
/// table has its own hasher).
#[derive(Debug, Clone, Copy)]
pub struct Hashed<K> {
    key: K,
    hash: u64,
}

/// One entry. `repr(C)` keeps the recency links, the hash and the start of
/// the value (a stream's clock) in the first cache line: evicting an entry
/// reads them and never the key (its hash is kept), which matters when a
/// flood evicts on every packet and every slab line is cold.
#[derive(Debug)]
#[repr(C)]
struct Slot<K, V> {
    prev: u32,
    next: u32,
    hash: u64,
    value: V,
    key: K,
}

/// A bounded table of `V` by key `K` with least-recently-seen eviction.
#[derive(Debug)]
pub struct Table<K, V> {
    map: Index,
    hasher: RandomState,
    slots: Vec<Slot<K, V>>,
    free: Vec<u32>,
    /// Most recently seen.
    head: u32,
    /// Least recently seen.
    tail: u32,
    /// The hash of the tail's key, kept here so that its index bucket can
    /// be fetched before the tail's own (cold) entry arrives.
    tail_hash: u64,
    len: usize,
    config: TableConfig,
    /// Below this age (time since its clock) no entry can have faded to
    /// the cutoff, so its weight need not be computed.
    min_fade_age: f64,
    evicted: u64,
    reclaimed: u64,
}

impl<K: Hash + Eq, V> Table<K, V> {
    /// An empty table (the configuration is assumed validated).
    pub fn new(config: TableConfig) -> Self {
        Table {
            map: Index::new(),
            hasher: RandomState::default(),
            slots: reserved(config.capacity),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            tail_hash: 0,
            len: 0,
            config,
            min_fade_age: min_fade_age(config.weight_cutoff),
            evicted: 0,
            reclaimed: 0,
        }
    }

    /// An empty table of at most `capacity` entries that only evicts the
    /// least recently seen (for values that do not fade; see
    /// [`get_or_insert_evicting`](Self::get_or_insert_evicting)).
    pub fn evicting(capacity: usize) -> Result<Self> {
        let config = TableConfig {
            capacity,
            weight_cutoff: 0.0,
            ..TableConfig::default()
        };
        config.validate()?;
        Ok(Self::new(config))
    }

    /// Most entries held.
    pub fn capacity(&self) -> usize {
        self.config.capacity
    }

    /// Entries evicted so far (the table full).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Carries on the eviction count of a saved table.
    pub fn set_evicted(&mut self, n: u64) {
        self.evicted = n;
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Occupancy and removal counts, under `name`.
    pub fn stats(&self, name: &str) -> TableStats {
        TableStats {
            name: name.to_string(),
            len: self.len,
            capacity: self.config.capacity,
            evicted: self.evicted,
            reclaimed: self.reclaimed,
        }
    }

    /// `key` with its hash in this table, and a hint to the CPU to fetch
    /// the index bucket a lookup of it reads. Under a flood every key is
    /// new and every bucket cold: hashed up front for all of a packet's
    /// tables, the fetches overlap instead of stalling one after another.
    #[inline]
    pub fn hashed(&self, key: K) -> Hashed<K> {
        let hash = self.hasher.hash_one(&key);
        self.map.prefetch(hash);
        Hashed { key, hash }
    }

    /// The slot of `key`, if present (does not mark it seen).
    #[inline]
    pub fn find(&self, key: &K) -> Option<u32> {
        self.find_with(key, self.hasher.hash_one(key))
    }

    /// The slot of a hashed key, if present (does not mark it seen).
    #[inline]
    pub fn lookup(&self, key: &Hashed<K>) -> Option<u32> {
        self.find_with(&key.key, key.hash)
    }

    #[inline]
    fn find_with(&self, key: &K, hash: u64) -> Option<u32> {
        let slots = &self.slots;
        self.map.find(hash, |i| {
            let s = &slots[i as usize];
            s.hash == hash && s.key == *key
        })
    }
    /// The value in slot `i`.
    #[inline]
    pub fn get(&self, i: u32) -> &V {
        &self.slots[i as usize].value
    }

    /// The value in slot `i`, mutably.
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut V {
        &mut self.slots[i as usize].value
    }

    /// Starts loading the entry a full table evicts next, whose slot the
    /// next insert reuses, and its index bucket, which the eviction edits.
    /// Under a flood every packet evicts from every table; issued up front
    /// for all of them, these cold loads overlap instead of stalling one
    /// after another.
    #[inline]
    pub fn prefetch_victim(&self) {
        if self.len >= self.config.capacity {
            if let Some(s) = self.slots.get(self.tail as usize) {
                prefetch(s);
                self.map.prefetch(self.tail_hash);
            }
        }
    }

    /// The entries, least recently seen first.
    pub fn oldest_first(&self) -> impl Iterator<Item = (&K, &V)> {
        let mut at = self.tail;
        std::iter::from_fn(move || {
            let s = self.slots.get(at as usize)?;
            at = s.prev;
            Some((&s.key, &s.value))
        })
    }

    /// Marks slot `i` as the most recently seen.
    #[inline]
    pub fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    /// Removes slot `i`, counting it under `why`.
    pub fn remove(&mut self, i: u32, why: Removal) {
        let hash = self.slots[i as usize].hash;
        self.map.remove(hash, i);
        self.unlink(i);
        self.free.push(i);
        self.len -= 1;
        match why {
            Removal::Evicted => self.evicted += 1,
            Removal::Reclaimed => self.reclaimed += 1,
        }
    }

    /// Inserts a key known to be absent as the most recently seen; the
    /// caller has made room (see [`Table::victim`]). Returns its slot.
    pub fn insert_new(&mut self, key: Hashed<K>, value: V) -> u32 {
        let Hashed { key, hash } = key;
        let slot = Slot {
            prev: NIL,
            next: NIL,
            hash,
            value,
            key,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.grow_slab();
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(hash, i);
        self.len += 1;
        self.push_front(i);
        i
    }

    /// Grows the slab geometrically but never past the capacity, so a full
    /// table holds exactly `capacity` slots (only if [`reserved`] could not
    /// reserve them all up front).
    fn grow_slab(&mut self) {
        if self.slots.len() == self.slots.capacity() {
            let room = self.config.capacity.saturating_sub(self.slots.len());
            let step = self.slots.len().max(64).min(room).max(1);
            self.slots.reserve_exact(step);
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
            if prev != NIL {
                // The line `prev.next` was just written to.
                self.tail_hash = self.slots[prev as usize].hash;
            }
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[i as usize];
            s.prev = NIL;
            s.next = old;
        }
        if old == NIL {
            self.tail = i;
            self.tail_hash = self.slots[i as usize].hash;
        } else {
            self.slots[old as usize].prev = i;
        }
        self.head = i;
    }

    /// The slot of `key`, marked seen; a new entry made by `make` if
    /// absent, evicting the least recently seen entry when the table is
    /// full (never reclaiming: for values that do not fade).
    #[inline]
    pub fn get_or_insert_evicting(&mut self, key: Hashed<K>, make: impl FnOnce() -> V) -> u32 {
        if let Some(i) = self.lookup(&key) {
            self.touch(i);
            return i;
        }
        if self.len >= self.config.capacity {
            self.remove(self.tail, Removal::Evicted);
        }
        self.insert_new(key, make())
    }
}

impl<K: Hash + Eq, V: Decaying> Table<K, V> {
    /// The entry that must go before a new one is inserted at time `now`:
    /// the least recently seen, evicted if the table is full, else
    /// reclaimed if its weight has faded below the cutoff. A full table
    /// evicts without computing the entry's weight (it goes either way, and
    /// a flood evicts on every insert). Callers ask again after a reclaim,
    /// at most twice an insert (so faded entries drain faster than they
    /// come, in O(1)), but not after an eviction (the room is made).
    pub fn victim(&self, now: f64) -> Option<(u32, Removal)> {
        if self.len >= self.config.capacity {
            return Some((self.tail, Removal::Evicted));
        }
        let slot = self.slots.get(self.tail as usize)?;
        if now - slot.value.clock() < self.min_fade_age {
            return None;
        }
        if slot.value.weight_at(now) < self.config.weight_cutoff {
            Some((self.tail, Removal::Reclaimed))
        } else {
            None
        }
    }

    /// The slot of `key`, marked seen; a new entry made by `make` if absent,
    /// after evicting or reclaiming what must go. For tables whose entries
    /// nothing else refers to.
    #[inline]
    pub fn get_or_insert(&mut self, key: Hashed<K>, now: f64, make: impl FnOnce() -> V) -> u32 {
        if let Some(i) = self.lookup(&key) {
            self.touch(i);
            return i;
        }
        self.make_room(now);
        self.insert_new(key, make())
    }

    /// Before an insert at `now`: removes the least recently seen entry if
    /// it has faded or the table is full (see [`Table::victim`]).
    #[inline]
    fn make_room(&mut self, now: f64) {
        for _ in 0..2 {
            match self.victim(now) {
                Some((i, why)) => {
                    self.remove(i, why);
                    if why == Removal::Evicted {
                        break;
                    }
                }
                None => break,
            }
        }
    }
}

/// Hints the CPU to load every cache line of `v`.
#[inline]
fn prefetch<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (v as *const T).cast::<i8>();
        let lines = (0..size_of::<T>()).step_by(64).chain([size_of::<T>() - 1]);
        for off in lines {
            // SAFETY: a prefetch is a hint that never faults, and the
            // address lies within `v`.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off))
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// The age below which a weight of at least 1, fading at the slowest rate,
/// stays above `cutoff` (a hair less, for rounding); infinite without a cutoff.
fn min_fade_age(cutoff: f64) -> f64 {
    use crate::features::incstat::{LAMBDAS, SLOWEST};
    if cutoff > 0.0 {
        (1.0 / cutoff).log2() / LAMBDAS[SLOWEST] * (1.0 - 1e-9)
    } else {
        f64::INFINITY
    }
}

/// An empty slab with room for `capacity` slots if the allocator grants it
/// (address space only: pages are touched as slots fill), so that filling
/// the table never copies it; otherwise empty, to grow on demand.
fn reserved<T>(capacity: usize) -> Vec<T> {
    let mut v = Vec::new();
    // On failure `v` stays empty, and the table grows on demand.
    let _ = v.try_reserve_exact(capacity);
    v
}

/// The key index of a [`Table`]: open addressing with linear probing over
/// `u64` buckets, each holding the low 32 bits of the key's hash and the
/// slot number plus one (0: empty). Removal shifts the following entries
/// back (no tombstones, so a table churning at its cap never degrades or
/// rehashes), and the load stays at most 1/2, so a lookup, an insert or a
/// removal reads about one cache line: a flood evicts on every insert, and
/// every one of those lines is cold. (`hashbrown` reads two per operation,
/// control bytes and bucket, and rehashes in place as tombstones pile up.)
/// Grows by doubling; at most twice the table's capacity in buckets, 8 bytes
/// each.
#[derive(Debug)]
struct Index {
    buckets: Vec<u64>,
    len: usize,
}

impl Index {
    fn new() -> Self {
        Index {
            buckets: vec![0; 16],
            len: 0,
        }
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    fn entry(hash: u64, slot: u32) -> u64 {
        (hash << 32) | u64::from(slot + 1)
    }

    /// Hints the CPU to fetch the bucket where a lookup of `hash` starts.
    #[inline]
    fn prefetch(&self, hash: u64) {
        prefetch(&self.buckets[hash as usize & self.mask()]);
    }

    /// The slot whose entry matches `hash` and satisfies `eq`.
    #[inline]
    fn find(&self, hash: u64, eq: impl Fn(u32) -> bool) -> Option<u32> {
        let mask = self.mask();
        let tag = hash & 0xffff_ffff;
        let mut pos = hash as usize & mask;
        loop {
            let e = self.buckets[pos];
            if e == 0 {
                return None;
            }
            if e >> 32 == tag && eq(e as u32 - 1) {
                return Some(e as u32 - 1);
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Adds `slot` (absent) under `hash`.
    #[inline]
    fn insert(&mut self, hash: u64, slot: u32) {
        if 2 * (self.len + 1) > self.buckets.len() {
            self.grow();
        }
        self.place(Self::entry(hash, slot));
        self.len += 1;
    }

    fn place(&mut self, e: u64) {
        let mask = self.mask();
        let mut pos = (e >> 32) as usize & mask;
        while self.buckets[pos] != 0 {
            pos = (pos + 1) & mask;
        }
        self.buckets[pos] = e;
    }

    fn grow(&mut self) {
        let doubled = vec![0; 2 * self.buckets.len()];
        let old = std::mem::replace(&mut self.buckets, doubled);
        for e in old.into_iter().filter(|&e| e != 0) {
            self.place(e);
        }
    }

    /// Removes `slot`, stored under `hash` (no-op if absent).
    #[inline]
    fn remove(&mut self, hash: u64, slot: u32) {
        let mask = self.mask();
        let target = Self::entry(hash, slot);
        let mut j = hash as usize & mask;
        loop {
            match self.buckets[j] {
                0 => return,
                e if e == target => break,
                _ => j = (j + 1) & mask,
            }
        }
        // Backward shift: pull later entries of the run into the hole
        // unless their home lies cyclically in (hole, their position].
        let mut k = j;
        loop {
            k = (k + 1) & mask;
            let e = self.buckets[k];
            if e == 0 {
                break;
            }
            let home = (e >> 32) as usize & mask;
            let stays = if j <= k {
                j < home && home <= k
            } else {
                j < home || home <= k
            };
            if !stays {
                self.buckets[j] = e;
                j = k;
            }
        }
        self.buckets[j] = 0;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::incstat::{DecayCache, Stats1D};

    fn config(capacity: usize) -> TableConfig {
        TableConfig {
            capacity,
            ..TableConfig::default()
        }
    }

    fn key(n: u32) -> Key<4> {
        let mut k = Key::new();
        k.push(&n.to_be_bytes());
        k
    }

    #[test]
    fn key_push_and_equality() {
        let mut a: Key<6> = Key::new();
        assert!(a.is_empty());
        assert!(a.push(b"abc"));
        assert!(!a.push(b"defg"), "overflow must be refused");
        assert_eq!(a.as_bytes(), b"abc");
        let mut b: Key<6> = Key::new();
        b.push(b"ab");
        b.push(b"c");
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        let (mut z, mut y): (Key<6>, Key<6>) = (Key::new(), Key::new());
        z.push(b"abc\0");
        assert_ne!(a, z, "a trailing zero byte is a longer key");
        y.push(b"ab");
        assert_ne!(a, y);
        use std::fmt::Write;
        assert!(write!(b, "xyz").is_ok());
        assert!(write!(b, "!").is_err());
        assert_eq!(format!("{b:?}"), "Key(\"abcxyz\")");
    }

    #[test]
    fn config_validation() {
        assert!(TableConfig::default().validate().is_ok());
        assert!(config(1).validate().is_err());
        let bad = TableConfig {
            capacity: 10,
            weight_cutoff: 1.5,
            ..TableConfig::default()
        };
        assert!(bad.validate().is_err());
        let nan = TableConfig {
            capacity: 10,
            weight_cutoff: f64::NAN,
            ..TableConfig::default()
        };
        assert!(nan.validate().is_err());
        let no_fanout = TableConfig {
            fanout_limit: 0,
            ..TableConfig::default()
        };
        assert!(no_fanout.validate().is_err());
    }

    #[test]
    fn evicts_least_recently_seen_when_full() {
        let mut t: Table<Key<4>, Stats1D> = Table::new(config(3));
        let a = t.get_or_insert(t.hashed(key(1)), 0.0, || Stats1D::new(0.0));
        t.get_or_insert(t.hashed(key(2)), 0.0, || Stats1D::new(0.0));
        t.get_or_insert(t.hashed(key(3)), 0.0, || Stats1D::new(0.0));
        // Seeing 1 again makes 2 the least recently seen.
        assert_eq!(
            t.get_or_insert(t.hashed(key(1)), 0.0, || Stats1D::new(0.0)),
            a
        );
        t.get_or_insert(t.hashed(key(4)), 0.0, || Stats1D::new(0.0));
        assert_eq!(t.len(), 3);
        assert!(t.find(&key(2)).is_none());
        assert!(t.find(&key(1)).is_some() && t.find(&key(3)).is_some());
        let s = t.stats("x");
        assert_eq!((s.evicted, s.reclaimed, s.capacity), (1, 0, 3));
    }

    #[test]
    fn evicting_inserts_never_reclaim_and_list_oldest_first() {
        assert!(Table::<u32, Stats1D>::evicting(1).is_err());
        let mut t: Table<u32, Stats1D> = Table::evicting(3).unwrap();
        let put = |t: &mut Table<u32, Stats1D>, k: u32| {
            t.get_or_insert_evicting(t.hashed(k), || Stats1D::new(f64::from(k)))
        };
        for k in [1, 2, 3] {
            put(&mut t, k);
            assert_eq!(t.evicted(), 0);
        }
        // 1 seen again, then 4 evicts 2 (the least recently seen).
        assert_eq!(put(&mut t, 1), t.find(&1).unwrap());
        assert_eq!(t.evicted(), 0);
        put(&mut t, 4);
        assert_eq!(t.evicted(), 1);
        let order: Vec<u32> = t.oldest_first().map(|(k, _)| *k).collect();
        assert_eq!(order, [3, 1, 4]);
        assert_eq!(t.stats("x").evicted, 1);
    }

    #[test]
    fn reclaims_faded_entries() {
        let mut cache = DecayCache::default();
        let mut t: Table<Key<4>, Stats1D> = Table::new(config(100));
        let i = t.get_or_insert(t.hashed(key(1)), 0.0, || Stats1D::new(0.0));
        t.get_mut(i).insert(60.0, 0.0, &mut cache);
        // 1 packet at the 0.01 rate fades below 1e-6 after ~1993 s.
        t.get_or_insert(t.hashed(key(2)), 1000.0, || Stats1D::new(1000.0));
        assert!(
            t.find(&key(1)).is_some(),
            "still above the cutoff at 1000 s"
        );
        let j = t.get_or_insert(t.hashed(key(3)), 2100.0, || Stats1D::new(2100.0));
        t.get_mut(j).insert(60.0, 2100.0, &mut cache);
        assert!(t.find(&key(1)).is_none(), "faded entry reclaimed");
        // Key 2 never got a value but counts as seen once at 1000 s.
        assert!(t.find(&key(2)).is_some());
        let s = t.stats("x");
        assert_eq!((s.len, s.evicted, s.reclaimed), (2, 0, 1));
    }

    #[test]
    fn reused_slots_stay_consistent() {
        let mut t: Table<Key<4>, Stats1D> = Table::new(config(50));
        for n in 0..10_000u32 {
            let i = t.get_or_insert(t.hashed(key(n)), n as f64, || Stats1D::new(n as f64));
            t.get_mut(i).lanes[0].cf1 = n as f64;
            assert!(t.len() <= 50);
        }
        for n in 9_950..10_000u32 {
            let i = t.find(&key(n)).expect("recent keys kept");
            assert_eq!(t.get(i).lanes[0].cf1, n as f64);
        }
        assert_eq!(t.stats("x").evicted, 10_000 - 50);
        assert!(t.slots.capacity() == 50, "slab never grows past the cap");
    }

    #[test]
    fn index_matches_a_model_under_churn() {
        // Random inserts and removals with colliding homes (hashes share
        // their low bits) and runs that wrap around the end of the buckets.
        let mut index = Index::new();
        let mut model = std::collections::HashMap::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..200_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let slot = (state % 3_000) as u32;
            let hash = (state >> 20) % 97 * 0x1_0000_0001 + u64::from(slot % 5) * 0xffff;
            match model.get(&slot) {
                Some(&h) if step % 3 != 0 => {
                    index.remove(h, slot);
                    model.remove(&slot);
                }
                Some(_) => {}
                None => {
                    index.insert(hash, slot);
                    model.insert(slot, hash);
                }
            }
        }
        assert_eq!(index.len, model.len());
        for (&slot, &hash) in &model {
            assert_eq!(index.find(hash, |s| s == slot), Some(slot));
        }
        assert_eq!(index.find(12_345, |_| true), None);
        assert!(index.buckets.len() >= 2 * index.len);
        index.remove(1, 99_999); // absent: no-op
        assert_eq!(index.len, model.len());
    }

    #[test]
    fn no_entry_fades_before_the_min_age() {
        let age = min_fade_age(1e-6);
        assert!((age - 1993.157).abs() < 0.01, "{age}");
        assert!(2f64.powf(-0.01 * age) >= 1e-6);
        assert!(2f64.powf(-0.01 * age * 1.001) < 1e-6);
        assert_eq!(min_fade_age(0.0), f64::INFINITY);
        // A one-packet entry just under the age stays; just over, it goes.
        let mut cache = DecayCache::default();
        for (gap, kept) in [(age - 1.0, true), (age + 5.0, false)] {
            let mut t: Table<Key<4>, Stats1D> = Table::new(config(10));
            let i = t.get_or_insert(t.hashed(key(1)), 0.0, || Stats1D::new(0.0));
            t.get_mut(i).insert(60.0, 0.0, &mut cache);
            t.get_or_insert(t.hashed(key(2)), gap, || Stats1D::new(gap));
            assert_eq!(t.find(&key(1)).is_some(), kept, "gap {gap}");
        }
    }

    #[test]
    fn spoofed_flood_keeps_table_at_cap() {
        // One million distinct spoofed sources into a 10,000-entry table.
        let cap = 10_000;
        let mut t: Table<Key<4>, Stats1D> = Table::new(config(cap));
        let mut cache = DecayCache::default();
        for n in 0..1_000_000u32 {
            let now = n as f64 * 1e-6;
            let i = t.get_or_insert(t.hashed(key(n.wrapping_mul(2_654_435_761))), now, || {
                Stats1D::new(now)
            });
            t.get_mut(i).insert(60.0, now, &mut cache);
            assert!(t.len() <= cap);
        }
        let s = t.stats("MI");
        assert_eq!(s.len, cap);
        assert_eq!(s.evicted + s.reclaimed, 1_000_000 - cap as u64);
        assert!(t.slots.capacity() <= cap);
        assert!(t.free.capacity() <= cap);
    }
}
