//! Layouts side by side: one packet updates each part, whose features are
//! written next to each other. The `floodwatch` layout is the host-centric
//! [`victim`](super::victim) family (destination side, then source side)
//! followed by Kitsune's corrected source-keyed features, which join the
//! source side: floods from spoofed sources show at their target, and a
//! device's own traffic in Kitsune's detail.

use std::fmt;
use std::str::FromStr;

use crate::features::kitsune::{Kitsune, KitsuneCorrected};
use crate::features::nbaiot::Nbaiot;
use serde_json::value::RawValue;

use crate::features::packet::{FeatureExtractor, FeatureGroup, Side, TableState};
use crate::features::stream_table::{TableConfig, TableStats};
use crate::features::victim::Victim;
use crate::ingest::packets::PacketMeta;
use crate::{Error, Result};

/// The available feature layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Kitsune-py's 100 features, quirks included.
    Kitsune,
    /// The same 100 features with the reference's bugs fixed.
    KitsuneCorrected,
    /// N-BaIoT's 115 features.
    Nbaiot,
}

impl Layout {
    /// Every layout, in the order of `--help`.
    pub const ALL: [Layout; 3] = [Layout::Kitsune, Layout::KitsuneCorrected, Layout::Nbaiot];

    /// A fresh extractor of this layout with tables bounded by `config`.
    pub fn extractor(self, config: TableConfig) -> Result<Box<dyn FeatureExtractor>> {
        Ok(match self {
            Layout::Kitsune => Box::new(Kitsune::new(config)?),
            Layout::KitsuneCorrected => Box::new(KitsuneCorrected::new(config)?),
            Layout::Nbaiot => Box::new(Nbaiot::new(config)?),
        })
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Kitsune => "kitsune",
            Layout::KitsuneCorrected => "kitsune-corrected",
            Layout::Nbaiot => "nbaiot",
        })
    }
}

impl FromStr for Layout {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Layout::ALL
            .into_iter()
            .find(|l| l.to_string() == s)
            .ok_or_else(|| {
                Error::Data(format!(
                    "unknown layout '{s}' (expected kitsune, kitsune-corrected or nbaiot)"
                ))
            })
    }
}

/// Several layouts, their features concatenated in order.
pub struct Combined {
    parts: Vec<Box<dyn FeatureExtractor>>,
    names: Vec<String>,
}

impl std::fmt::Debug for Combined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combined")
            .field("features", &self.names.len())
            .finish_non_exhaustive()
    }
}

impl Combined {
    /// The parts, in output order.
    pub fn new(parts: Vec<Box<dyn FeatureExtractor>>) -> Self {
        let names = parts.iter().flat_map(|p| p.names().to_vec()).collect();
        Combined { parts, names }
    }
}

impl FeatureExtractor for Combined {
    fn names(&self) -> &[String] {
        &self.names
    }

    fn update(&mut self, p: &PacketMeta, out: &mut [f64]) {
        assert_eq!(out.len(), self.names.len(), "output slice length");
        let mut rest = out;
        for part in &mut self.parts {
            let (head, tail) = rest.split_at_mut(part.names().len());
            part.update(p, head);
            rest = tail;
        }
    }

    fn table_stats(&self) -> Vec<TableStats> {
        self.parts.iter().flat_map(|p| p.table_stats()).collect()
    }

    /// The parts' groups, in place, neighbours about the same side merged.
    fn groups(&self) -> Vec<FeatureGroup> {
        let mut out: Vec<FeatureGroup> = Vec::new();
        let mut at = 0;
        for part in &self.parts {
            for g in part.groups() {
                let range = at + g.range.start..at + g.range.end;
                match out.last_mut() {
                    Some(last) if last.side == g.side && last.range.end == range.start => {
                        last.range.end = range.end;
                    }
                    _ => out.push(FeatureGroup {
                        side: g.side,
                        range,
                    }),
                }
            }
            at += part.names().len();
        }
        out
    }

    fn state(&self) -> Option<TableState> {
        let parts: Option<Vec<_>> = self.parts.iter().map(|p| p.state()).collect();
        TableState::of(&parts?)
    }

    fn restore(&mut self, state: &str) -> Result<()> {
        let parts: Vec<&RawValue> = serde_json::from_str(state)
            .ok()
            .filter(|a: &Vec<&RawValue>| a.len() == self.parts.len())
            .ok_or_else(|| Error::Data("the saved tables do not match the layout".into()))?;
        for (p, s) in self.parts.iter_mut().zip(parts) {
            p.restore(s.get())?;
        }
        Ok(())
    }
}

impl<T: FeatureExtractor + ?Sized> FeatureExtractor for Box<T> {
    fn names(&self) -> &[String] {
        (**self).names()
    }

    fn update(&mut self, p: &PacketMeta, out: &mut [f64]) {
        (**self).update(p, out)
    }

    fn table_stats(&self) -> Vec<TableStats> {
        (**self).table_stats()
    }

    fn groups(&self) -> Vec<FeatureGroup> {
        (**self).groups()
    }

    fn state(&self) -> Option<TableState> {
        (**self).state()
    }

    fn restore(&mut self, state: &str) -> Result<()> {
        (**self).restore(state)
    }
}

/// A layout whose features are all about one end of the packet: Kitsune's
/// are keyed on the source (host, channel, socket).
struct OnSide {
    inner: Box<dyn FeatureExtractor>,
    side: Side,
}

impl FeatureExtractor for OnSide {
    fn names(&self) -> &[String] {
        self.inner.names()
    }

    fn update(&mut self, p: &PacketMeta, out: &mut [f64]) {
        self.inner.update(p, out)
    }

    fn table_stats(&self) -> Vec<TableStats> {
        self.inner.table_stats()
    }

    fn groups(&self) -> Vec<FeatureGroup> {
        vec![FeatureGroup {
            side: self.side,
            range: 0..self.names().len(),
        }]
    }
}

/// Every packet feature layout, by its `--layout` name: one vocabulary for
/// `extract`, `train --pcap` and `watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketLayout {
    /// `victim` followed by `kitsune-corrected`, whose source-keyed
    /// features join the source side.
    Floodwatch,
    /// Only the destination-keyed family.
    Victim,
    /// One of the feature extractor's layouts.
    Packet(Layout),
}

impl PacketLayout {
    /// The default of every command: host statistics per destination and
    /// source.
    pub const DEFAULT: &'static str = "victim";
}

impl fmt::Display for PacketLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketLayout::Floodwatch => f.write_str("floodwatch"),
            PacketLayout::Victim => f.write_str("victim"),
            PacketLayout::Packet(l) => l.fmt(f),
        }
    }
}

impl FromStr for PacketLayout {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "floodwatch" => Ok(PacketLayout::Floodwatch),
            "victim" => Ok(PacketLayout::Victim),
            _ => s.parse().map(PacketLayout::Packet).map_err(|_| {
                Error::Data(format!(
                    "unknown layout '{s}' (expected floodwatch, victim, kitsune, \
                     kitsune-corrected or nbaiot)"
                ))
            }),
        }
    }
}

impl PacketLayout {
    /// A fresh extractor whose tables are bounded by `config`.
    pub fn extractor(self, config: TableConfig) -> Result<Box<dyn FeatureExtractor>> {
        config.validate()?;
        Ok(match self {
            PacketLayout::Floodwatch => Box::new(Combined::new(vec![
                Box::new(Victim::new(config.capacity)?),
                Box::new(OnSide {
                    inner: Layout::KitsuneCorrected.extractor(config)?,
                    side: Side::Source,
                }),
            ])),
            PacketLayout::Victim => Box::new(Victim::new(config.capacity)?),
            PacketLayout::Packet(l) => l.extractor(config)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::packets::{Network, Transport};
    use std::net::{IpAddr, Ipv4Addr};

    fn pkt(t: f64) -> PacketMeta {
        PacketMeta {
            index: 1,
            timestamp: t,
            wire_len: 60,
            src_mac: [1; 6],
            dst_mac: [2; 6],
            network: Network::Ip {
                src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            },
            transport: Transport::Tcp {
                src_port: 1000,
                dst_port: 80,
                flags: 0x02,
            },
            fragment: None,
        }
    }

    #[test]
    fn floodwatch_is_victim_then_kitsune_corrected() {
        let config = TableConfig::default();
        let mut fw = PacketLayout::Floodwatch.extractor(config).unwrap();
        let mut kc = Layout::KitsuneCorrected.extractor(config).unwrap();
        let mut v = Victim::new(16).unwrap();
        assert_eq!(fw.names().len(), kc.names().len() + v.names().len());
        let (mut a, mut b, mut c) = (
            vec![0.0; fw.names().len()],
            vec![0.0; kc.names().len()],
            vec![0.0; v.names().len()],
        );
        for t in 0..5 {
            fw.update(&pkt(t as f64 * 0.1), &mut a);
            kc.update(&pkt(t as f64 * 0.1), &mut b);
            v.update(&pkt(t as f64 * 0.1), &mut c);
        }
        assert_eq!(a[..c.len()], c[..]);
        assert_eq!(a[c.len()..], b[..]);
        assert!(fw.table_stats().iter().any(|s| s.name == "hosts"));
        let groups = fw.groups();
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0], v.groups()[0]);
        assert_eq!(groups[1].side, Side::Source);
        assert_eq!(groups[1].range, v.groups()[1].range.start..fw.names().len());
    }

    #[test]
    fn layouts_parse_by_name() {
        assert_eq!(
            "floodwatch".parse::<PacketLayout>().unwrap(),
            PacketLayout::Floodwatch
        );
        assert_eq!(
            "victim".parse::<PacketLayout>().unwrap(),
            PacketLayout::Victim
        );
        assert_eq!(
            "nbaiot".parse::<PacketLayout>().unwrap(),
            PacketLayout::Packet(Layout::Nbaiot)
        );
        let e = "nope".parse::<PacketLayout>().unwrap_err().to_string();
        assert!(e.contains("floodwatch"), "{e}");
        let bad = TableConfig {
            capacity: 0,
            ..TableConfig::default()
        };
        assert!(PacketLayout::Victim.extractor(bad).is_err());
    }

    #[test]
    fn layout_names_round_trip() {
        for l in Layout::ALL {
            assert_eq!(l.to_string().parse::<Layout>().ok(), Some(l));
            let x = l.extractor(TableConfig::default()).expect("valid config");
            assert!(x.names().len() >= 100);
        }
        assert!("kitnet".parse::<Layout>().is_err());
        let bad = TableConfig {
            capacity: 0,
            ..TableConfig::default()
        };
        assert!(Layout::Kitsune.extractor(bad).is_err());
    }
}
