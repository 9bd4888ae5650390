//! The announcers: [`GoBgp`] drives a local `gobgpd` through its `gobgp`
//! CLI; [`DryRun`] only logs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{Action, Announcer, Kind, Match, Rule, BLACKHOLE};

/// Default next hop of IPv4 blackhole routes: 192.0.2.1 (TEST-NET-1, RFC
/// 5737), which routers taking remotely triggered blackholes route to a
/// discard interface.
pub const NEXT_HOP_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Default next hop of IPv6 blackhole routes: 100::1, in the discard prefix
/// of RFC 6666.
pub const NEXT_HOP_V6: Ipv6Addr = Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 1);

/// Announces through `gobgp [-p PORT] global rib -a AFI add|del ...`:
///
/// - blackhole: `-a ipv4 add 10.0.0.5/32 nexthop 192.0.2.1 community
///   65535:666` (`-a ipv6`, a /128 and 100::1 for IPv6);
/// - FlowSpec: `-a ipv4-flowspec add match destination 10.0.0.5/32
///   protocol 17 then discard` (`ipv6-flowspec` for IPv6), narrowed by the
///   fingerprint to `... protocol 17 source-port ==53 packet-length >=38
///   &<=1514 then discard`.
///
/// The CLI gives up after 1 s when the daemon does not answer.
#[derive(Debug, Clone)]
pub struct GoBgp {
    program: PathBuf,
    api_port: Option<u16>,
    next_hop_v4: Ipv4Addr,
    next_hop_v6: Ipv6Addr,
}

impl GoBgp {
    /// The CLI at `program`, talking to the daemon's gRPC port `api_port`
    /// (the CLI's default, 50051, when `None`).
    pub fn new(program: impl Into<PathBuf>, api_port: Option<u16>) -> Self {
        GoBgp {
            program: program.into(),
            api_port,
            next_hop_v4: NEXT_HOP_V4,
            next_hop_v6: NEXT_HOP_V6,
        }
    }

    /// The next hop of blackhole routes of `ip`'s family.
    pub fn next_hop(mut self, ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => self.next_hop_v4 = v4,
            IpAddr::V6(v6) => self.next_hop_v6 = v6,
        }
        self
    }

    /// The CLI's arguments to add (or delete) `rule`.
    pub fn args(&self, rule: &Rule, add: bool) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if let Some(p) = self.api_port {
            a.extend(["-p".into(), p.to_string()]);
        }
        let v4 = rule.target.is_ipv4();
        let verb = if add { "add" } else { "del" };
        let family = match (rule.kind, v4) {
            (Kind::Blackhole, true) => "ipv4",
            (Kind::Blackhole, false) => "ipv6",
            (Kind::Flowspec, true) => "ipv4-flowspec",
            (Kind::Flowspec, false) => "ipv6-flowspec",
        };
        a.extend(["global", "rib", "-a", family, verb].map(String::from));
        match rule.kind {
            Kind::Blackhole => {
                a.push(rule.prefix());
                if add {
                    let hop = if v4 {
                        self.next_hop_v4.to_string()
                    } else {
                        self.next_hop_v6.to_string()
                    };
                    a.extend(["nexthop".into(), hop, "community".into(), BLACKHOLE.into()]);
                }
            }
            Kind::Flowspec => {
                a.extend(["match".into(), "destination".into(), rule.prefix()]);
                flowspec_match(&rule.matches, &mut a);
                if add {
                    a.push("then".into());
                    match rule.action {
                        Action::Discard => a.push("discard".into()),
                        Action::RateLimit(n) => a.extend(["rate-limit".into(), n.to_string()]),
                    }
                }
            }
        }
        a
    }

    fn run(&self, rule: &Rule, add: bool) -> Result<(), String> {
        let out = Command::new(&self.program)
            .args(self.args(rule, add))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "cannot run {} ({e}): install gobgpd or give --gobgp PATH",
                    self.program.display()
                )
            })?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.trim();
        let said = if said.is_empty() {
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        } else {
            said.to_owned()
        };
        Err(format!("{} {}: {said}", self.program.display(), out.status))
    }
}

/// The CLI's words for a FlowSpec match beyond the destination:
/// `protocol 17 destination-port ==53 source-port ==53 packet-length >=38
/// &<=1514`.
fn flowspec_match(m: &Match, a: &mut Vec<String>) {
    if let Some(p) = m.proto {
        a.extend(["protocol".into(), p.to_string()]);
    }
    if let Some(p) = m.dest_port {
        a.extend(["destination-port".into(), format!("=={p}")]);
    }
    if let Some(p) = m.src_port {
        a.extend(["source-port".into(), format!("=={p}")]);
    }
    if let Some((lo, hi)) = m.length {
        a.extend([
            "packet-length".into(),
            format!(">={lo}"),
            format!("&<={hi}"),
        ]);
    }
}

impl Announcer for GoBgp {
    fn announce(&mut self, rule: &Rule) -> Result<(), String> {
        self.run(rule, true)
    }

    fn withdraw(&mut self, rule: &Rule) -> Result<(), String> {
        self.run(rule, false)
    }
}

/// `--mitigate-dry-run`: announces nothing; the log says what would be.
#[derive(Debug, Clone, Copy, Default)]
pub struct DryRun;

impl Announcer for DryRun {
    fn announce(&mut self, _: &Rule) -> Result<(), String> {
        Ok(())
    }

    fn withdraw(&mut self, _: &Rule) -> Result<(), String> {
        Ok(())
    }

    fn dry_run(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: Kind, target: &str, proto: Option<u8>) -> Rule {
        Rule {
            kind,
            target: target.parse().unwrap(),
            matches: Match::protocol(proto),
            action: Action::Discard,
        }
    }

    #[test]
    fn blackhole_arguments_of_both_families() {
        let g = GoBgp::new("gobgp", Some(50052));
        let v4 = rule(Kind::Blackhole, "10.0.0.5", Some(17));
        assert_eq!(
            g.args(&v4, true).join(" "),
            "-p 50052 global rib -a ipv4 add 10.0.0.5/32 nexthop 192.0.2.1 community 65535:666"
        );
        assert_eq!(
            g.args(&v4, false).join(" "),
            "-p 50052 global rib -a ipv4 del 10.0.0.5/32"
        );
        let g = GoBgp::new("gobgp", None).next_hop("2001:db8::1".parse().unwrap());
        let v6 = rule(Kind::Blackhole, "2001:db8::5", None);
        assert_eq!(
            g.args(&v6, true).join(" "),
            "global rib -a ipv6 add 2001:db8::5/128 nexthop 2001:db8::1 community 65535:666"
        );
    }

    #[test]
    fn flowspec_arguments_match_the_protocol_when_known() {
        let g = GoBgp::new("gobgp", None);
        let udp = rule(Kind::Flowspec, "10.0.0.5", Some(17));
        assert_eq!(
            g.args(&udp, true).join(" "),
            "global rib -a ipv4-flowspec add match destination 10.0.0.5/32 protocol 17 then discard"
        );
        assert_eq!(
            g.args(&udp, false).join(" "),
            "global rib -a ipv4-flowspec del match destination 10.0.0.5/32 protocol 17"
        );
        let any = rule(Kind::Flowspec, "2001:db8::5", None);
        assert_eq!(
            g.args(&any, true).join(" "),
            "global rib -a ipv6-flowspec add match destination 2001:db8::5/128 then discard"
        );
    }

    #[test]
    fn flowspec_arguments_carry_the_fingerprint() {
        let mut r = rule(Kind::Flowspec, "10.0.0.5", Some(17));
        r.matches.dest_port = Some(80);
        r.matches.src_port = Some(53);
        r.matches.length = Some((38, 1514));
        assert_eq!(
            GoBgp::new("gobgp", None).args(&r, true).join(" "),
            "global rib -a ipv4-flowspec add match destination 10.0.0.5/32 protocol 17 \
             destination-port ==80 source-port ==53 packet-length >=38 &<=1514 then discard"
        );
    }

    #[test]
    fn a_rate_limit_replaces_discard() {
        let mut r = rule(Kind::Flowspec, "10.0.0.5", Some(6));
        r.action = Action::RateLimit(125_000);
        let g = GoBgp::new("gobgp", None);
        assert_eq!(
            g.args(&r, true).join(" "),
            "global rib -a ipv4-flowspec add match destination 10.0.0.5/32 protocol 6 \
             then rate-limit 125000"
        );
        assert!(!g.args(&r, false).contains(&"rate-limit".to_string()));
    }

    #[test]
    fn failures_say_what_ran_and_what_it_said() {
        let r = rule(Kind::Blackhole, "10.0.0.5", None);
        let e = GoBgp::new("/nonexistent/gobgp", None)
            .announce(&r)
            .unwrap_err();
        assert!(
            e.contains("/nonexistent/gobgp") && e.contains("--gobgp PATH"),
            "{e}"
        );
        // `sh ARGS` fails on the missing script "global" and says so.
        let e = GoBgp::new("sh", None).withdraw(&r).unwrap_err();
        assert!(
            e.starts_with("sh exit status: ") && e.contains("global"),
            "{e}"
        );
    }
}
