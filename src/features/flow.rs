//! How a flow record counts in the `victim` layout, so that the same flood
//! gives comparable features from packets or from flows.
//!
//! A record stands for `packets × sampling_rate` packets and as many
//! times its bytes (sFlow: one sampled packet, times the sampling rate).
//! Its packets are spread evenly over its interval `[start, end]` and it is
//! counted at `end`: a window of decay λ then holds
//! `(1 - 2^(-λd)) / (λd ln 2)` of them (`d = end - start`), exactly what
//! the window would hold at `end` had it seen the packets one by one.
//! Events that happen at a flow's first packet (a new destination port or
//! source for the receiver, a new peer for the sender) count
//! `sampling_rate` times (a sampled record stands for that many flows),
//! faded from `start` to `end`.
//!
//! TCP flags in a flow are OR-ed over its packets, so SYNs are read thus:
//!
//! - SYN without ACK: every packet was a SYN (floods, probes, retries);
//!   nothing answered it yet, so for its sender it is an unanswered probe
//!   until an answer flow (RST, SYN-ACK) comes back;
//! - SYN with ACK: one handshake. The end with the lower port is the
//!   server, whose flow answers; the client's flow counts one SYN, already
//!   answered (its ACKs show the handshake completed);
//! - RST without SYN, and ICMP errors (NetFlow carries ICMP type × 256 +
//!   code in the destination port): answers.
//!
//! Bytes are as the exporter counts them: IP bytes for NetFlow and IPFIX,
//! frame lengths for sFlow raw headers; packet captures count frames, so a
//! mean size from NetFlow is about 14 bytes (an Ethernet header) smaller.

use crate::ingest::flows::FlowRecord;

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// What a flow record adds, read by [`Victim::update_flow`](super::victim::Victim::update_flow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Counts {
    /// Packets it stands for.
    pub packets: f64,
    /// Bytes it stands for.
    pub bytes: f64,
    /// SYN segments (without ACK) among them.
    pub syns: f64,
    /// Flows it stands for (its sampling rate).
    pub flows: f64,
    /// Whether it answers its destination's connection attempts.
    pub answer: bool,
    /// Whether it is a SYN nothing has answered yet.
    pub probe: bool,
    /// Whether its protocol has ports.
    pub ports: bool,
}

impl Counts {
    pub(crate) fn of(r: &FlowRecord) -> Self {
        let rate = r.rate() as f64;
        let packets = r.scaled_packets() as f64;
        let mut c = Counts {
            packets,
            bytes: r.scaled_bytes() as f64,
            syns: 0.0,
            flows: rate,
            answer: false,
            probe: false,
            ports: matches!(r.protocol, TCP | UDP | SCTP),
        };
        match r.protocol {
            TCP => {
                let f = r.tcp_flags;
                let (syn, ack) = (f & SYN != 0, f & ACK != 0);
                if syn && !ack {
                    (c.syns, c.probe) = (packets, true);
                } else if syn && r.src_port < r.dst_port {
                    c.answer = true;
                } else if syn {
                    c.syns = rate;
                } else {
                    c.answer = f & RST != 0;
                }
            }
            ICMP => c.answer = matches!(r.dst_port >> 8, 3 | 4 | 5 | 11 | 12),
            ICMPV6 => c.answer = matches!(r.dst_port >> 8, 1..=4),
            _ => {}
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn rec(protocol: u8, flags: u8, ports: (u16, u16), packets: u64, rate: u32) -> FlowRecord {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        FlowRecord {
            exporter: ip,
            domain: 0,
            src: ip,
            dst: ip,
            src_port: ports.0,
            dst_port: ports.1,
            protocol,
            tcp_flags: flags,
            packets,
            bytes: packets * 40,
            start: 1.0,
            end: 2.0,
            sampling_rate: rate,
        }
    }

    #[test]
    fn syn_floods_and_probes_count_every_packet_and_wait_for_an_answer() {
        let c = Counts::of(&rec(TCP, SYN, (40_000, 80), 3, 10));
        assert_eq!(
            (c.packets, c.bytes, c.syns, c.flows),
            (30.0, 1_200.0, 30.0, 10.0)
        );
        assert!(c.probe && !c.answer && c.ports);
    }

    #[test]
    fn a_handshake_counts_one_syn_for_the_client_and_answers_from_the_server() {
        let client = Counts::of(&rec(TCP, SYN | ACK | 0x08, (40_000, 443), 12, 1));
        assert_eq!(
            (client.syns, client.probe, client.answer),
            (1.0, false, false)
        );
        let server = Counts::of(&rec(TCP, SYN | ACK, (443, 40_000), 10, 1));
        assert_eq!(
            (server.syns, server.probe, server.answer),
            (0.0, false, true)
        );
    }

    #[test]
    fn resets_and_icmp_errors_answer_and_other_flows_do_not() {
        assert!(Counts::of(&rec(TCP, RST | ACK, (80, 40_000), 1, 1)).answer);
        assert!(!Counts::of(&rec(TCP, ACK, (80, 40_000), 1, 1)).answer);
        assert!(Counts::of(&rec(ICMP, 0, (0, 3 << 8 | 3), 1, 1)).answer);
        assert!(!Counts::of(&rec(ICMP, 0, (0, 8 << 8), 1, 1)).answer);
        assert!(Counts::of(&rec(ICMPV6, 0, (0, 1 << 8 | 4), 1, 1)).answer);
        let udp = Counts::of(&rec(UDP, 0, (53, 40_000), 4, 1));
        assert_eq!((udp.syns, udp.answer, udp.probe), (0.0, false, false));
        assert!(!Counts::of(&rec(ICMP, 0, (0, 0), 1, 1)).ports);
    }

    #[test]
    fn a_record_without_packets_counts_one() {
        assert_eq!(Counts::of(&rec(UDP, 0, (1, 2), 0, 0)).packets, 1.0);
    }
}
