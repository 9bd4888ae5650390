//! Which fragment of an IPv4 datagram carries its transport header in the
//! faithful `kitsune` layout. Kitsune-py reads packets through tshark, whose
//! reassembly dissects a fragmented datagram once, on the fragment that
//! completes it (the last to arrive, in whatever order they came): that
//! fragment gets the UDP/TCP ports, the others none. Measured on a capture
//! of fragmented UDP answers, some sent last fragment first, with Kitsune-py
//! at the golden files' commit and tshark 4.0.17 (`tests/data/README.md`).
//!
//! A datagram is complete when its fragments' payload bytes reach its length
//! (known from the last fragment); a repeated fragment counts twice, as
//! nothing here keeps the byte ranges. At most as many datagrams as the
//! layout's table capacity are awaited; beyond, the oldest is forgotten and
//! counted as an eviction of the `IP.fragments` table.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::ingest::packets::{Network, PacketMeta, Transport};

use super::stream_table::TableStats;

/// Source, destination, identification, protocol.
type Key = (IpAddr, IpAddr, u16, u8);

/// A datagram whose fragments are not all in.
#[derive(Debug)]
struct Pending {
    /// The first fragment's transport header, once seen.
    transport: Option<Transport>,
    /// Payload bytes received.
    received: u32,
    /// The datagram's payload length, once its last fragment is seen.
    total: Option<u32>,
}

/// The datagrams awaiting fragments, oldest first.
#[derive(Debug)]
pub struct Reassembly {
    pending: HashMap<Key, Pending>,
    /// Keys in arrival order; completed ones are skipped when met.
    order: VecDeque<Key>,
    capacity: usize,
    forgotten: u64,
}

impl Reassembly {
    /// Awaits at most `capacity` datagrams (at least 1).
    pub fn new(capacity: usize) -> Self {
        Reassembly {
            pending: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            forgotten: 0,
        }
    }

    /// The transport tshark's reassembly shows for fragment `p`: the first
    /// fragment's header when `p` completes its datagram, none otherwise.
    /// `None` for packets that are not IPv4 fragments.
    pub fn transport(&mut self, p: &PacketMeta) -> Option<Transport> {
        let (Some(f), Network::Ip { src, dst }) = (p.fragment, p.network) else {
            return None;
        };
        let key = (src, dst, f.id, f.protocol);
        let entry = match self.pending.get_mut(&key) {
            Some(e) => e,
            None => self.insert(key),
        };
        entry.received = entry.received.saturating_add(f.len);
        if f.offset == 0 {
            entry.transport = Some(p.transport);
        }
        if !f.more {
            entry.total = Some(f.offset.saturating_add(f.len));
        }
        let complete = entry.total.is_some_and(|t| entry.received >= t);
        let first = match complete {
            true => self.pending.remove(&key).and_then(|e| e.transport),
            false => None,
        };
        Some(first.unwrap_or(Transport::Other(f.protocol)))
    }

    /// Its table's figures: datagrams awaited, and forgotten ones as evictions.
    pub fn stats(&self) -> TableStats {
        TableStats {
            name: "IP.fragments".into(),
            len: self.pending.len(),
            capacity: self.capacity,
            evicted: self.forgotten,
            reclaimed: 0,
        }
    }

    fn insert(&mut self, key: Key) -> &mut Pending {
        while self.pending.len() >= self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if self.pending.remove(&old).is_some() {
                self.forgotten += 1;
            }
        }
        if self.order.len() >= 2 * self.capacity {
            let pending = &self.pending;
            self.order.retain(|k| pending.contains_key(k));
        }
        self.order.push_back(key);
        self.pending.entry(key).or_insert(Pending {
            transport: None,
            received: 0,
            total: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::packet::tests::meta;
    use crate::ingest::packets::Fragment;

    const UDP: Transport = Transport::Udp {
        src_port: 53,
        dst_port: 40000,
    };

    /// Fragment `at` (bytes) of `len` of datagram `id` from 10.0.0.2.
    fn frag(id: u16, at: u32, len: u32, more: bool) -> PacketMeta {
        let ip = Network::Ip {
            src: "10.0.0.2".parse().unwrap(),
            dst: "10.0.0.1".parse().unwrap(),
        };
        let transport = if at == 0 { UDP } else { Transport::Other(17) };
        let mut p = meta(ip, transport);
        p.fragment = Some(Fragment {
            id,
            protocol: 17,
            offset: at,
            len,
            more,
        });
        p
    }

    #[test]
    fn the_completing_fragment_gets_the_ports() {
        let mut r = Reassembly::new(16);
        let seen = |r: &mut Reassembly, p| r.transport(&p).unwrap();
        // In order: the last fragment completes.
        assert_eq!(seen(&mut r, frag(1, 0, 1480, true)), Transport::Other(17));
        assert_eq!(
            seen(&mut r, frag(1, 1480, 1480, true)),
            Transport::Other(17)
        );
        assert_eq!(seen(&mut r, frag(1, 2960, 16, false)), UDP);
        // Last fragment first, two datagrams interleaved: whichever
        // arrives last completes its own.
        assert_eq!(seen(&mut r, frag(2, 2960, 16, false)), Transport::Other(17));
        assert_eq!(seen(&mut r, frag(3, 8, 8, false)), Transport::Other(17));
        assert_eq!(seen(&mut r, frag(2, 0, 1480, true)), Transport::Other(17));
        assert_eq!(seen(&mut r, frag(3, 0, 8, true)), UDP);
        assert_eq!(seen(&mut r, frag(2, 1480, 1480, true)), UDP);
        assert_eq!(r.stats().len, 0);
        // Whole datagrams pass unchanged.
        assert_eq!(r.transport(&meta(Network::None, UDP)), None);
    }

    #[test]
    fn pending_datagrams_are_bounded() {
        let mut r = Reassembly::new(100);
        for id in 0..110 {
            r.transport(&frag(id, 0, 8, true));
        }
        let s = r.stats();
        assert_eq!((s.len, s.capacity, s.evicted), (100, 100, 10));
        // The forgotten first datagram's tail no longer completes it.
        assert_eq!(
            r.transport(&frag(0, 8, 8, false)),
            Some(Transport::Other(17))
        );
        // Completed datagrams leave the arrival order bounded too.
        for id in 200..2000 {
            r.transport(&frag(id, 0, 8, true));
            r.transport(&frag(id, 8, 8, false));
        }
        assert!(r.order.len() <= 2 * 100 + 1, "{}", r.order.len());
    }
}
