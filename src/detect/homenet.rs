//! The protected network (`--home-net`, Suricata's `HOME_NET`): the
//! prefixes that tell an incoming episode from an outgoing one.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// A list of IPv4 and IPv6 prefixes. Empty means "not configured": then
/// every address is outside, and callers fall back to the detection family
/// to name a direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HomeNet(Vec<IpNet>);

/// A `--home-net` entry that is neither a prefix nor an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {entry:?} is not an address or a CIDR prefix (write e.g. 10.0.0.0/8, 2001:db8::/32 or 192.0.2.7)")]
pub struct HomeNetError {
    /// The flag the entry came from.
    pub flag: &'static str,
    /// The entry as written.
    pub entry: String,
}

impl HomeNet {
    /// Parses the values of `flag`: each a comma-separated list of prefixes
    /// (`10.0.0.0/8`) or lone addresses (a /32 or /128). Blank entries are
    /// skipped; host bits of a prefix are cleared (`10.1.2.3/8` is
    /// `10.0.0.0/8`).
    pub fn parse<S: AsRef<str>>(flag: &'static str, values: &[S]) -> Result<Self, HomeNetError> {
        let mut nets = Vec::new();
        for entry in values.iter().flat_map(|v| v.as_ref().split(',')) {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let net = entry
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| HomeNetError {
                    flag,
                    entry: entry.into(),
                })?;
            nets.push(net);
        }
        Ok(HomeNet(nets))
    }

    /// Whether no prefix is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is inside one of the prefixes. An IPv4-mapped IPv6
    /// address (`::ffff:10.0.0.1`) is matched as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }
}

impl fmt::Display for HomeNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_repeated_and_comma_separated_prefixes_of_both_families() {
        let h = HomeNet::parse("--home-net", &["10.0.0.0/8, 192.0.2.7", "2001:db8::/32"]).unwrap();
        assert_eq!(h.to_string(), "10.0.0.0/8,192.0.2.7/32,2001:db8::/32");
        assert!(h.contains(ip("10.200.0.1")) && h.contains(ip("192.0.2.7")));
        assert!(!h.contains(ip("192.0.2.8")) && !h.contains(ip("11.0.0.1")));
        assert!(h.contains(ip("2001:db8:1::5")) && !h.contains(ip("2001:db9::1")));
        assert!(h.contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn host_bits_are_cleared_and_blanks_skipped() {
        let h = HomeNet::parse("--home-net", &["10.1.2.3/8,,", " "]).unwrap();
        assert_eq!(h.to_string(), "10.0.0.0/8");
        assert!(HomeNet::parse::<&str>("--home-net", &[])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bad_entries_name_the_flag_and_the_entry() {
        for bad in ["10.0.0.0/33", "10.0.0", "eth0", "::1/129", "10.0.0.0/"] {
            let e = HomeNet::parse("--home-net", &[bad]).unwrap_err();
            assert_eq!(e.entry, bad);
            let msg = e.to_string();
            assert!(
                msg.starts_with("--home-net: ") && msg.contains("CIDR"),
                "{msg}"
            );
        }
    }
}
