//! N-BaIoT's 115 packet features (Meidan et al., IEEE Pervasive Computing
//! 2018), with the dataset's column names and order: 23 statistics for each
//! decay rate 5, 3, 1, 0.1, 0.01, grouped by family.
//!
//! | family | stream                                   | per rate |
//! |--------|------------------------------------------|----------|
//! | MI_dir | source MAC + source IP                   | weight, mean, variance |
//! | H      | source IP                                | weight, mean, variance |
//! | HH     | channel source IP -> destination IP, paired with its reverse | weight, mean, std, magnitude, radius, covariance, pcc |
//! | HH_jit | channel source IP -> destination IP (inter-arrival times) | weight, mean, variance |
//! | HpHp   | socket channel IP:port -> IP:port, paired with its reverse | as HH |
//!
//! Read from the dataset itself (`../shared/data/nbaiot`): HH and HpHp are
//! per channel (their weights differ from H's), `std` is a true standard
//! deviation (the square root of the variance the same row's radius shows),
//! and radius is `sqrt(var_a^2 + var_b^2)` of the channel and its reverse.
//! Frames are read as in Kitsune ([`Endpoints`]); keys are structured (no
//! collisions), and each packet updates its channel pair's covariance once.
//! A channel, its reverse and their jitter share one table entry
//! (`ChannelTable`): a new channel, which a spoofed flood makes every
//! packet, costs one insert instead of four.
//!
//! One documented difference: the published dataset's first jitter value of
//! a channel is the packet's absolute timestamp (its extractor started the
//! channel clock at 0); here it is 0, as in Kitsune-py.

use crate::error::Result;
use crate::features::channel_table::{Channel, ChannelTable};
use crate::features::incstat::{DecayCache, Stats1D, LAMBDAS, NL};
use crate::features::packet::{
    push_all, put_host, put_service, Endpoints, FeatureExtractor, Host, Service, HOST_LEN,
    SERVICE_LEN,
};
use crate::features::stream_table::{Key, Table, TableConfig, TableStats};
use crate::ingest::packets::PacketMeta;

/// Number of N-BaIoT features.
pub const N_FEATURES: usize = 115;

const MI_KEY: usize = 6 + HOST_LEN;
const CHANNEL_KEY: usize = 2 * HOST_LEN;
const SOCKET_KEY: usize = 2 * (HOST_LEN + SERVICE_LEN);

/// N-BaIoT's column names, in the dataset's order.
pub fn nbaiot_names() -> Vec<String> {
    const ONE: &[&str] = &["weight", "mean", "variance"];
    const TWO: &[&str] = &[
        "weight",
        "mean",
        "std",
        "magnitude",
        "radius",
        "covariance",
        "pcc",
    ];
    let mut v = Vec::with_capacity(N_FEATURES);
    for (fam, stats) in [
        ("MI_dir", ONE),
        ("H", ONE),
        ("HH", TWO),
        ("HH_jit", ONE),
        ("HpHp", TWO),
    ] {
        for l in LAMBDAS {
            v.extend(stats.iter().map(|s| format!("{fam}_L{l}_{s}")));
        }
    }
    v
}

/// Layout `nbaiot` (see the module docs).
#[derive(Debug)]
pub struct Nbaiot {
    mi: Table<Key<MI_KEY>, Stats1D>,
    h: Table<Key<HOST_LEN>, Stats1D>,
    /// HH channels, with each direction's jitter (HH_jit has the same key).
    hh: ChannelTable<CHANNEL_KEY, Option<Stats1D>>,
    hp: ChannelTable<SOCKET_KEY, ()>,
    cache: DecayCache,
    names: Vec<String>,
}

impl Nbaiot {
    /// An extractor whose tables are bounded by `config`.
    pub fn new(config: TableConfig) -> Result<Self> {
        config.validate()?;
        Ok(Nbaiot {
            mi: Table::new(config),
            h: Table::new(config),
            hh: ChannelTable::new(config),
            hp: ChannelTable::new(config),
            cache: DecayCache::new(false),
            names: nbaiot_names(),
        })
    }
}

fn channel(a: &Host, b: &Host) -> Key<CHANNEL_KEY> {
    let mut k = Key::new();
    put_host(&mut k, a);
    put_host(&mut k, b);
    k
}

/// A socket channel; ARP sockets are keyed on the MACs, as in Kitsune.
fn socket(from: (&[u8; 6], &Host, &Service), to: (&[u8; 6], &Host, &Service)) -> Key<SOCKET_KEY> {
    let mut k = Key::new();
    for (mac, host, service) in [from, to] {
        let host = if *service == Service::Arp {
            Host::Mac(*mac)
        } else {
            *host
        };
        put_host(&mut k, &host);
        put_service(&mut k, service);
    }
    k
}

/// Per rate: weight, mean, std of the packet's direction, then magnitude,
/// radius, covariance, pcc of the channel and its reverse.
fn write_2d<X>(ch: &Channel<X>, side: usize, out: &mut [f64]) {
    for (lane, chunk) in out.chunks_exact_mut(7).enumerate() {
        let l = &ch.dirs[side].lanes[lane];
        let [radius, magnitude, cov, pcc] = ch.pair_stats(lane);
        chunk.copy_from_slice(&[l.w, l.mean, l.var.sqrt(), magnitude, radius, cov, pcc]);
    }
}

impl FeatureExtractor for Nbaiot {
    fn names(&self) -> &[String] {
        &self.names
    }

    fn update(&mut self, p: &PacketMeta, out: &mut [f64]) {
        assert_eq!(out.len(), N_FEATURES, "output slice length");
        let (mi_out, rest) = out.split_at_mut(3 * NL);
        let (h_out, rest) = rest.split_at_mut(3 * NL);
        let (hh_out, rest) = rest.split_at_mut(7 * NL);
        let (jit_out, hp_out) = rest.split_at_mut(3 * NL);
        self.mi.prefetch_victim();
        self.h.prefetch_victim();
        self.hh.prefetch_victim();
        self.hp.prefetch_victim();
        let e = Endpoints::of(p);
        let (v, t) = (f64::from(p.wire_len), p.timestamp);
        let mut mi_key = Key::new();
        push_all(&mut mi_key, &e.src_mac);
        put_host(&mut mi_key, &e.src);
        let mut h_key = Key::new();
        put_host(&mut h_key, &e.src);
        let from = (&e.src_mac, &e.src, &e.src_service);
        let to = (&e.dst_mac, &e.dst, &e.dst_service);
        // Every key hashed (and its bucket fetched) before any is used.
        let mi_key = self.mi.hashed(mi_key);
        let h_key = self.h.hashed(h_key);
        let hh_key = self
            .hh
            .hashed(channel(&e.src, &e.dst), channel(&e.dst, &e.src));
        let hp_key = self.hp.hashed(socket(from, to), socket(to, from));
        let cache = &mut self.cache;

        let i = self.mi.get_or_insert(mi_key, t, || Stats1D::new(t));
        let mi = self.mi.get_mut(i);
        mi.insert(v, t, cache);
        mi.write_1d(mi_out);

        let i = self.h.get_or_insert(h_key, t, || Stats1D::new(t));
        let h = self.h.get_mut(i);
        h.insert(v, t, cache);
        h.write_1d(h_out);

        let (ch, side) = self.hh.update(hh_key, v, t, cache);
        write_2d(ch, side, hh_out);
        let jit = ch.extra[side].get_or_insert_with(|| Stats1D::new(t));
        jit.insert_gap(t, cache);
        jit.write_1d(jit_out);

        let (ch, side) = self.hp.update(hp_key, v, t, cache);
        write_2d(ch, side, hp_out);
    }

    fn table_stats(&self) -> Vec<TableStats> {
        let mut v = vec![self.mi.stats("MI"), self.h.stats("H")];
        v.push(self.hh.stats("HH"));
        v.push(self.hp.stats("HpHp"));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::packet::tests::{meta, v4};
    use crate::ingest::packets::{Network, Transport};
    use std::path::Path;

    #[test]
    fn names_match_the_dataset_header() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nbaiot/benign_traffic.csv");
        let Ok(text) = std::fs::read_to_string(&path) else {
            assert!(
                std::env::var_os("FLOODWATCH_REQUIRE_DATA").is_none(),
                "FLOODWATCH_REQUIRE_DATA is set but ../shared/data/nbaiot/benign_traffic.csv not found"
            );
            eprintln!("skipping: ../shared/data/nbaiot/benign_traffic.csv not found");
            return;
        };
        let header: Vec<String> = text
            .lines()
            .next()
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        assert_eq!(header, nbaiot_names());
    }

    fn conversation() -> Vec<PacketMeta> {
        // A client sends 100-byte requests; the server answers with 1000 bytes.
        (0..40u32)
            .map(|k| {
                let reply = k % 2 == 1;
                let (s, d) = if reply {
                    ([10, 0, 0, 1], [10, 0, 0, 2])
                } else {
                    ([10, 0, 0, 2], [10, 0, 0, 1])
                };
                let (sp, dp) = if reply { (80, 5000) } else { (5000, 80) };
                let mut p = meta(
                    Network::Ip {
                        src: v4(s),
                        dst: v4(d),
                    },
                    Transport::Tcp {
                        src_port: sp,
                        dst_port: dp,
                        flags: 0x18,
                    },
                );
                p.timestamp = 1000.0 + f64::from(k / 2) * 0.5 + if reply { 0.01 } else { 0.0 };
                p.wire_len = if reply { 1000 } else { 100 + k % 4 };
                p
            })
            .collect()
    }

    #[test]
    fn values_are_sane_on_a_conversation() {
        let mut x = Nbaiot::new(TableConfig::default()).expect("config");
        let mut out = vec![0.0; N_FEATURES];
        let names = nbaiot_names();
        let col = |name: &str| names.iter().position(|n| n == name).expect("column");
        let packets = conversation();
        for (k, p) in packets.iter().enumerate() {
            x.update(p, &mut out);
            assert!(out.iter().all(|v| v.is_finite()), "packet {k}");
            // Weights count packets (with decay), never exceed them.
            assert!(out[col("H_L0.01_weight")] <= (k / 2 + 1) as f64 + 1e-9);
            for l in LAMBDAS {
                let pcc = out[col(&format!("HH_L{l}_pcc"))];
                assert!(pcc.abs() <= 1.0 + 1e-9, "pcc {pcc}");
                let var = out[col(&format!("HH_L{l}_std"))];
                assert!(var >= 0.0);
            }
        }
        // Last packet: a server reply of 1000 bytes, on a channel whose reverse carries ~100.
        assert!((out[col("HH_L5_mean")] - 1000.0).abs() < 1e-6);
        assert!(
            out[col("HH_L0.01_std")] < 1e-3,
            "replies are constant: {}",
            out[col("HH_L0.01_std")]
        );
        let magnitude = out[col("HH_L0.01_magnitude")];
        assert!(magnitude > 1000.0 && magnitude < 1010.0, "{magnitude}");
        assert!(
            (out[col("HH_jit_L0.01_mean")] - 0.5).abs() < 0.05,
            "one reply every 0.5 s"
        );
        assert!(out[col("HpHp_L0.01_weight")] > 15.0);
        let tables = x.table_stats();
        assert_eq!(tables.len(), 4);
        assert!(
            tables.iter().all(|t| t.evicted == 0 && t.len <= 2),
            "{tables:?}"
        );
    }

    #[test]
    fn std_is_the_square_root_of_the_variance() {
        let mut x = Nbaiot::new(TableConfig::default()).expect("config");
        let mut out = vec![0.0; N_FEATURES];
        for p in conversation().iter().filter(|p| p.wire_len != 1000) {
            x.update(p, &mut out);
        }
        let names = nbaiot_names();
        let col = |name: &str| names.iter().position(|n| n == name).expect("column");
        // A lone direction: H and HH see the same packets, radius = variance.
        let var = out[col("H_L1_variance")];
        assert!(var > 0.1);
        assert!((out[col("HH_L1_std")] - var.sqrt()).abs() < 1e-9);
        assert!((out[col("HH_L1_radius")] - var).abs() < 1e-9);
    }

    #[test]
    #[should_panic(expected = "output slice length")]
    fn wrong_output_length_is_a_caller_bug() {
        let mut x = Nbaiot::new(TableConfig::default()).expect("config");
        x.update(&conversation()[0], &mut [0.0; 100]);
    }
}
