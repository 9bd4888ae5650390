//! Events on top of the chatter: bulk transfers, software updates, the
//! camera's stream.

use std::net::Ipv4Addr;

use rand::Rng;

use super::hosts::{Kind, CAMERA, NAS};
use super::{Event, Sim, NS};
use crate::ingest::packets::synth::{tcp_frame, udp_frame, CLOUD, GATEWAY_MAC};

/// Mean time between bulk transfers, seconds (2.5 an hour).
const BULK_EVERY: f64 = 1440.0;
/// Mean time between waves of software updates, seconds.
const UPDATE_EVERY: f64 = 7200.0;
/// TCP payload of a full-size frame.
const MSS: usize = 1448;
/// Where the camera streams to.
const RTP_SINK: Ipv4Addr = Ipv4Addr::new(34, 120, 55, 8);
/// Where the PCs and the NAS back up to and download from.
const STORAGE: Ipv4Addr = Ipv4Addr::new(142, 250, 74, 110);

/// One side of a transfer: the MAC on the LAN (the gateway's for an
/// outside address), the address and the port.
#[derive(Debug, Clone, Copy)]
struct End {
    mac: [u8; 6],
    ip: Ipv4Addr,
    port: u16,
}

/// A running bulk transfer: full-size frames one way, ACKs the other.
#[derive(Debug, Clone)]
pub(super) struct Transfer {
    id: u64,
    from: End,
    to: End,
    seq: u32,
    ack: u32,
    /// Mean seconds between data frames.
    gap: f64,
    end_ns: i64,
    sent: u64,
}

/// The camera's RTP stream.
#[derive(Debug, Clone, Default)]
pub(super) struct Rtp {
    seq: u16,
    ts: u32,
    /// Mean seconds between frames.
    gap: f64,
}

impl Sim {
    /// Schedules the chatter, the monitor, and the first of each event.
    pub(super) fn schedule_traffic(&mut self) {
        self.at(self.start_ns, Event::Chatter);
        self.poll_start = self.start_ns + (self.rng.random_range(0.0..60.0) * NS) as i64;
        self.at(self.poll_start, Event::Poll(0));
        let t = self.start_ns + self.exp_ns(BULK_EVERY);
        self.at(t, Event::Bulk);
        let t = self.part(0.05, 0.35);
        self.at(t, Event::UpdateWave);
        self.rtp.gap = 1.0 / self.rng.random_range(30.0..60.0);
        let t = self.part(0.3, 0.4);
        self.at(t, Event::Rtp);
    }

    /// Starts a bulk transfer of a PC or the NAS, and schedules the next.
    pub(super) fn bulk(&mut self, t: i64, f: &mut Vec<u8>) -> bool {
        let next = t + self.exp_ns(BULK_EVERY);
        self.at(next, Event::Bulk);
        let Some(h) = self.pick_active(t, &[Kind::Pc, Kind::Nas]) else {
            return false;
        };
        let d = &self.hosts[h];
        let local = End {
            mac: d.mac,
            ip: d.ip,
            port: self.rng.random_range(49_152..65_000),
        };
        let nas = self.by_octet[usize::from(NAS)].map(|n| &self.hosts[n]);
        // 0, 2: downloads and restores; 1, 3: uploads and backups.
        let k = self.rng.random_range(0..4);
        let peer = match (d.kind, nas) {
            (Kind::Pc, Some(n)) if k >= 2 => End {
                mac: n.mac,
                ip: n.ip,
                port: 445,
            },
            _ => End {
                mac: GATEWAY_MAC,
                ip: STORAGE,
                port: 443,
            },
        };
        let (from, to) = if k % 2 == 0 {
            (peer, local)
        } else {
            (local, peer)
        };
        let pps = self.rng.random_range(400.0..2000.0);
        let secs = self.rng.random_range(20.0..90.0);
        let slot = self.start_transfer(t, from, to, pps, secs);
        self.data(t, slot.0, slot.1, f)
    }

    /// Keeps a new transfer in a free slot: returns the slot and its id.
    fn start_transfer(&mut self, t: i64, from: End, to: End, pps: f64, secs: f64) -> (usize, u64) {
        self.next_transfer_id += 1;
        let tr = Transfer {
            id: self.next_transfer_id,
            from,
            to,
            seq: self.rng.random(),
            ack: self.rng.random(),
            gap: 1.0 / pps,
            end_ns: t + (secs * NS) as i64,
            sent: 0,
        };
        let slot = match self.transfers.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.transfers.push(None);
                self.transfers.len() - 1
            }
        };
        self.transfers[slot] = Some(tr);
        (slot, self.next_transfer_id)
    }

    /// A full-size data frame of the transfer in `slot`, if it still runs.
    pub(super) fn data(&mut self, t: i64, slot: usize, id: u64, f: &mut Vec<u8>) -> bool {
        let at = self.rng.random_range(0..self.noise.len() - MSS);
        let Some(tr) = self.transfers[slot].as_mut().filter(|tr| tr.id == id) else {
            return false;
        };
        let (a, b) = (tr.from, tr.to);
        let ttl = if a.mac == GATEWAY_MAC { 52 } else { 64 };
        let payload = &self.noise[at..at + MSS];
        tcp_frame(
            f,
            a.mac,
            b.mac,
            a.ip,
            b.ip,
            ttl,
            (a.port, b.port),
            tr.seq,
            0x10,
            payload,
        );
        tr.seq = tr.seq.wrapping_add(MSS as u32);
        tr.sent += 1;
        let (gap, end, acked) = (tr.gap, tr.end_ns, tr.sent % 2 == 0);
        if acked {
            self.after(t, (0.0001, 0.0005), Event::Ack(slot, id));
        }
        let next = t + (gap * self.rng.random_range(0.8..1.2) * NS) as i64;
        if next < end {
            self.at(next, Event::Data(slot, id));
        } else {
            self.transfers[slot] = None;
        }
        true
    }

    /// The receiver's ACK for the transfer in `slot`.
    pub(super) fn ack(&mut self, slot: usize, id: u64, f: &mut Vec<u8>) -> bool {
        let Some(tr) = self.transfers[slot].as_mut().filter(|tr| tr.id == id) else {
            return false;
        };
        let (a, b) = (tr.to, tr.from);
        let ttl = if a.mac == GATEWAY_MAC { 52 } else { 64 };
        tcp_frame(
            f,
            a.mac,
            b.mac,
            a.ip,
            b.ip,
            ttl,
            (a.port, b.port),
            tr.ack,
            0x10,
            &[],
        );
        true
    }

    /// A wave of updates: 3-6 IoT devices within a minute; schedules the
    /// next wave. Writes no frame itself.
    pub(super) fn update_wave(&mut self, t: i64) -> bool {
        let next = t + self.exp_ns(UPDATE_EVERY);
        self.at(next, Event::UpdateWave);
        for _ in 0..self.rng.random_range(3..=6) {
            if let Some(h) = self.pick_active(t, &[Kind::Iot]) {
                self.after(t, (0.0, 60.0), Event::Update(h, 0));
            }
        }
        false
    }

    /// Host `h` looks up the update server (step 0), then fetches firmware
    /// over HTTP: 1-6 MB at 150-500 frames a second.
    pub(super) fn update(&mut self, t: i64, h: usize, step: u8, f: &mut Vec<u8>) -> bool {
        if step == 0 {
            self.lookup(t, h, 3, f);
            self.after(t, (0.03, 0.08), Event::Update(h, 1));
            return true;
        }
        let port = self.rng.random_range(32_768..61_000);
        let req = b"GET /firmware/latest.bin HTTP/1.1\r\nHost: update.iot-vendor.example\r\n\r\n";
        self.tcp_out(h, CLOUD, (port, 80), req, f);
        let d = &self.hosts[h];
        let server = End {
            mac: GATEWAY_MAC,
            ip: CLOUD,
            port: 80,
        };
        let local = End {
            mac: d.mac,
            ip: d.ip,
            port,
        };
        let pps = self.rng.random_range(150.0..500.0);
        let frames = self.rng.random_range(1e6..6e6) / MSS as f64;
        let (slot, id) = self.start_transfer(t, server, local, pps, frames / pps);
        self.after(t, (0.03, 0.08), Event::Data(slot, id));
        true
    }

    /// A frame of the camera's RTP stream to the cloud; schedules the next.
    pub(super) fn rtp(&mut self, t: i64, f: &mut Vec<u8>) -> bool {
        let next = t + (self.rtp.gap * self.rng.random_range(0.8..1.2) * NS) as i64;
        self.at(next, Event::Rtp);
        let Some(cam) = self.by_octet[usize::from(CAMERA)] else {
            return false;
        };
        let d = &self.hosts[cam];
        let len = self.rng.random_range(900..1200);
        let at = self.rng.random_range(0..self.noise.len() - len);
        self.rtp.seq = self.rtp.seq.wrapping_add(1);
        self.rtp.ts = self.rtp.ts.wrapping_add(3000);
        let (seq, ts, noise) = (self.rtp.seq, self.rtp.ts, &self.noise[at..at + len]);
        udp_frame(
            f,
            d.mac,
            GATEWAY_MAC,
            d.ip,
            RTP_SINK,
            64,
            50_000,
            5004,
            |p| {
                p.extend_from_slice(&[0x80, 96]);
                p.extend_from_slice(&seq.to_be_bytes());
                p.extend_from_slice(&ts.to_be_bytes());
                p.extend_from_slice(&[0x1c, 0xa3, 0x9e, 0x01]);
                p.extend_from_slice(noise);
            },
        );
        true
    }
}
