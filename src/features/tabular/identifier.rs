//! Identifier-like columns: addresses, timestamps, ids, and strings with
//! nearly one value a row. A model that learns them learns who and when, not
//! how traffic behaves, so training leaves them out unless kept by name.

use std::fmt;
use std::net::IpAddr;

/// How training picks identifier-like columns.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentifierRule {
    /// A text column with more distinct values than this share of its
    /// non-missing values is an identifier.
    pub max_distinct_share: f64,
    /// Columns kept even when they look like identifiers.
    pub keep: Vec<String>,
}

impl Default for IdentifierRule {
    fn default() -> Self {
        IdentifierRule {
            max_distinct_share: 0.5,
            keep: Vec::new(),
        }
    }
}

/// Share of a text column's distinct values that must be addresses or
/// timestamps for the column to count as such.
const MOSTLY: f64 = 0.9;
/// Fewest non-missing values before the distinct-share rule applies.
const MIN_VALUES: u64 = 20;
/// Column names (lower case, letters and digits only) that name an
/// identifier or a time whatever their values.
const NAMES: [&str; 9] = [
    "id",
    "uid",
    "flowid",
    "rowid",
    "ts",
    "timestamp",
    "stime",
    "ltime",
    "datetime",
];

/// Why a column was taken for an identifier.
#[derive(Clone, Debug, PartialEq)]
pub enum Why {
    /// Its values are IP or MAC addresses.
    Addresses,
    /// Its values are dates or times.
    Timestamps,
    /// Its name says it is an id or a time.
    Name,
    /// Nearly a distinct value a row.
    Distinct {
        /// Distinct values counted (counting stops at a cap).
        distinct: usize,
        /// Non-missing values.
        values: u64,
    },
}

/// A column left out of training, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Identifier {
    /// The column's name.
    pub column: String,
    /// The reason.
    pub why: Why,
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.why {
            Why::Addresses => write!(f, "{} (addresses)", self.column),
            Why::Timestamps => write!(f, "{} (timestamps)", self.column),
            Why::Name => write!(f, "{} (an id or time by its name)", self.column),
            Why::Distinct { distinct, values } => write!(
                f,
                "{} ({distinct} distinct values in {values})",
                self.column
            ),
        }
    }
}

/// What a column's distinct text values looked like.
#[derive(Debug, Default)]
pub(super) struct Tally {
    text: u32,
    addresses: u32,
    times: u32,
}

impl Tally {
    /// Counts a text value seen for the first time.
    pub(super) fn first_seen(&mut self, value: &[u8]) {
        self.text += 1;
        if is_address(value) {
            self.addresses += 1;
        } else if is_timestamp(value) {
            self.times += 1;
        }
    }

    fn mostly(&self, n: u32) -> bool {
        self.text > 0 && f64::from(n) >= MOSTLY * f64::from(self.text)
    }
}

impl IdentifierRule {
    /// Whether column `name` is an identifier: `tally` of its distinct text
    /// values, `distinct` values counted, `values` non-missing ones.
    pub(super) fn judge(
        &self,
        name: &str,
        tally: &Tally,
        distinct: usize,
        values: u64,
        capped: bool,
    ) -> Option<Identifier> {
        if self.keep.iter().any(|k| k == name) {
            return None;
        }
        let why = if tally.mostly(tally.addresses) {
            Why::Addresses
        } else if tally.mostly(tally.times) {
            Why::Timestamps
        } else if by_name(name) {
            Why::Name
        } else if tally.text > 0
            && values >= MIN_VALUES
            && (capped || distinct as f64 > self.max_distinct_share * values as f64)
        {
            Why::Distinct { distinct, values }
        } else {
            return None;
        };
        Some(Identifier {
            column: name.to_owned(),
            why,
        })
    }
}

fn by_name(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    let squeezed: String = lower.chars().filter(char::is_ascii_alphanumeric).collect();
    NAMES.contains(&squeezed.as_str())
        || [" id", "_id", ".id", "-id"]
            .iter()
            .any(|s| lower.ends_with(s))
}

/// An IPv4, IPv6 or MAC address.
fn is_address(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    s.parse::<IpAddr>().is_ok() || is_mac(s)
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A date or time of day, and nothing else: a `7/7/2017` or `2017-07-07`
/// date or a `15:30` time, in date and time characters only
/// (`7/7/2017 3:30`, `2017-07-07T15:30:01Z`).
fn is_timestamp(v: &[u8]) -> bool {
    let allowed = v
        .iter()
        .all(|b| b.is_ascii_digit() || b" -/:.+TZAPMapm".contains(b));
    let time = v
        .windows(4)
        .any(|w| w[0].is_ascii_digit() && w[1] == b':' && w[2..].iter().all(u8::is_ascii_digit));
    let date = v
        .split(|b| !(b.is_ascii_digit() || *b == b'-' || *b == b'/'))
        .any(is_date);
    allowed && (time || date)
}

/// `d-d-d` or `d/d/d` with at most 4, 2 and 4 digits.
fn is_date(token: &[u8]) -> bool {
    let Some(&sep) = token.iter().find(|b| !b.is_ascii_digit()) else {
        return false;
    };
    let groups: Vec<&[u8]> = token.split(|&b| b == sep).collect();
    groups.len() == 3
        && groups
            .iter()
            .zip([4, 2, 4])
            .all(|(g, max)| (1..=max).contains(&g.len()) && g.iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(values: &[&str]) -> Tally {
        let mut t = Tally::default();
        for v in values {
            t.first_seen(v.as_bytes());
        }
        t
    }

    fn why(name: &str, values: &[&str], rows: u64) -> Option<Why> {
        let t = tally(values);
        let rule = IdentifierRule::default();
        rule.judge(name, &t, values.len(), rows, false)
            .map(|i| i.why)
    }

    #[test]
    fn addresses_timestamps_names_and_distinct_strings() {
        let ips = ["10.0.0.1", "192.168.1.20", "fe80::1", "aa:bb:cc:dd:ee:0f"];
        assert_eq!(why("Src IP", &ips, 4000), Some(Why::Addresses));
        let times = [
            "7/7/2017 3:30",
            "2017-07-07T15:30:01Z",
            "2017-07-07 15:30:01.5",
        ];
        assert_eq!(why("When", &times, 4000), Some(Why::Timestamps));
        assert_eq!(why("Flow ID", &["a"], 4000), Some(Why::Name));
        assert_eq!(why("conn_id", &[], 4000), Some(Why::Name));
        assert_eq!(why("TS", &[], 4000), Some(Why::Name));
        let many: Vec<String> = (0..60).map(|i| format!("C{i}x")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            why("uidx", &many, 100),
            Some(Why::Distinct {
                distinct: 60,
                values: 100
            })
        );
    }

    #[test]
    fn features_stay() {
        assert_eq!(why("proto", &["tcp", "udp", "icmp"], 4000), None);
        assert_eq!(why("service", &["http", "ftp_data", "private"], 4000), None);
        // Few rows: the distinct rule waits for enough values.
        assert_eq!(why("flag", &["SF", "S0", "REJ"], 3), None);
        // Numbers are not timestamps, a bare number has no separator.
        assert!(!is_timestamp(b"12345"));
        assert!(!is_timestamp(b"-1234"));
        assert!(!is_timestamp(b"S0-REJ"));
        assert!(!is_timestamp(b"192.168.10.5-104.16.207.165-54865-443-6"));
        assert!(!is_timestamp(b"12-5"));
        assert!(!is_address(b"10.0.0"));
        assert!(!is_address(b"ab:cd"));
        assert!(!by_name("Idle Mean"));
        assert!(!by_name("Fwd PSH Flags"));
        assert!(!by_name("paid"));
    }

    #[test]
    fn kept_columns_stay() {
        let rule = IdentifierRule {
            keep: vec!["Src IP".into()],
            ..IdentifierRule::default()
        };
        let t = tally(&["10.0.0.1"]);
        assert_eq!(rule.judge("Src IP", &t, 1, 100, false), None);
        assert!(rule.judge("Dst IP", &t, 1, 100, false).is_some());
        assert!(rule.judge("blob", &tally(&["x"]), 1, 100, true).is_some());
    }
}
