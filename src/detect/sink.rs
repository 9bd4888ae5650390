//! Where alerts go: the [`AlertSink`] trait and its implementations, a JSON
//! lines writer and a command hook (`--on-alert CMD`, like FastNetMon's
//! notify script); a `Vec` of sinks fans out to all of them.

use std::io::{self, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::alert::{Alert, State};
use super::homenet::HomeNet;

/// Receives alert events, in order.
pub trait AlertSink {
    /// One alert event.
    fn alert(&mut self, alert: &Alert) -> io::Result<()>;

    /// No more alerts: flush buffers, wait for children.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: AlertSink + ?Sized> AlertSink for Box<S> {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        (**self).alert(alert)
    }

    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
}

impl<S: AlertSink + ?Sized> AlertSink for &mut S {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        (**self).alert(alert)
    }

    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
}

/// Fan-out: every sink sees every alert, even when an earlier one fails;
/// the first error is returned.
impl<S: AlertSink> AlertSink for Vec<S> {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        let mut result = Ok(());
        for s in self.iter_mut() {
            result = result.and(s.alert(alert));
        }
        result
    }

    fn finish(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for s in self.iter_mut() {
            result = result.and(s.finish());
        }
        result
    }
}

/// Writes each alert as one JSON line (see [`Alert`](super::alert) for the
/// schema) to any writer; flushes after each alert, since alerts are rare
/// and someone may be tailing the file.
#[derive(Debug)]
pub struct JsonLines<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> JsonLines<W> {
    /// Alerts to `out`.
    pub fn new(out: W) -> Self {
        JsonLines { out, written: 0 }
    }

    /// Alerts written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> AlertSink for JsonLines<W> {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, alert)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        self.written += 1;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// What a [`CommandHook`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookStats {
    /// Commands started.
    pub spawned: u64,
    /// Commands that could not start, could not be fed, exited with a
    /// failure, or were killed at `finish` for running too long.
    pub failed: u64,
    /// Alerts not handed to the command because `max_running` were still
    /// running.
    pub dropped: u64,
}

impl std::fmt::Display for HookStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--on-alert: {} commands run, {} failed, {} alerts not handed over (commands still running)",
            self.spawned, self.failed, self.dropped
        )
    }
}

/// Tells each alert's direction against a home net
/// ([`Alert::apply_home_net`]) before passing it on.
#[derive(Debug)]
pub struct HomeNetSink<S> {
    home: HomeNet,
    inner: S,
}

impl<S: AlertSink> HomeNetSink<S> {
    /// Classifies against `home`, then writes to `inner`.
    pub fn new(home: HomeNet, inner: S) -> Self {
        HomeNetSink { home, inner }
    }
}

impl<S: AlertSink> AlertSink for HomeNetSink<S> {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        let mut alert = alert.clone();
        alert.apply_home_net(&self.home);
        self.inner.alert(&alert)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
}

/// Runs a command for each alert, with the alert's JSON line on its
/// standard input and FastNetMon's notify-script arguments:
/// `CMD <ip> <incoming|outgoing> <pps> <ban|unban>`.
///
/// - `ip`: the address the episode is about (`alert.target` or
///   `alert.source`); empty when the alert has none (table rows without
///   addresses), so a script must check it before blocking anything.
/// - the direction, [`Alert::direction`]: with `--home-net`, `incoming`
///   when the target is inside it (or a source-keyed episode's source is
///   outside), else `outgoing`; without, `incoming` for a
///   destination-keyed episode (a victim), `outgoing` for a source-keyed
///   one (a scanner or an infected host).
/// - `pps`: the episode's records per second, rounded
///   (`alert.context.episode.pps`; 1 on `start`, see [`Alert`]).
/// - `ban` when the episode starts, `unban` when it ends.
///
/// The same values are in the environment as `FLOODWATCH_IP`,
/// `FLOODWATCH_DIRECTION`, `FLOODWATCH_PPS` and `FLOODWATCH_ACTION`, with
/// `FLOODWATCH_SIGNATURE_ID`. A command that is one word without shell
/// syntax (a program path, as FastNetMon's `notify_script_path`) is run
/// directly with the four arguments; anything else runs as `sh -c CMD`
/// with the arguments as `$1` to `$4` (write `"$@"` to pass them on).
///
/// Never blocks the detector: at most `max_running` commands run at once
/// and further alerts are counted as dropped meanwhile. The command's
/// standard output is discarded so it cannot interleave with alerts written
/// to standard output; its standard error is inherited.
#[derive(Debug)]
pub struct CommandHook {
    command: String,
    max_running: usize,
    finish_timeout: Duration,
    /// Commands running, each with whether it already counted as failed
    /// (its alert could not be written).
    running: Vec<(Child, bool)>,
    stats: HookStats,
    /// The final counts, for whoever reports them after the run.
    done: Arc<Mutex<HookStats>>,
}

impl CommandHook {
    /// A hook running `command` with at most 4 commands at once and 5 s for
    /// the last ones to finish.
    pub fn new(command: impl Into<String>) -> Self {
        CommandHook {
            command: command.into(),
            max_running: 4,
            finish_timeout: Duration::from_secs(5),
            running: Vec::new(),
            stats: HookStats::default(),
            done: Arc::default(),
        }
    }

    /// Commands allowed to run at once (at least 1). Default 4.
    pub fn max_running(mut self, n: usize) -> Self {
        self.max_running = n.max(1);
        self
    }

    /// How long [`finish`](AlertSink::finish) waits for running commands
    /// before killing them. Default 5 s.
    pub fn finish_timeout(mut self, t: Duration) -> Self {
        self.finish_timeout = t;
        self
    }

    /// What the hook did so far.
    pub fn stats(&self) -> HookStats {
        self.stats
    }

    /// Where [`finish`](AlertSink::finish) leaves the final counts.
    pub fn final_stats(&self) -> Arc<Mutex<HookStats>> {
        Arc::clone(&self.done)
    }

    /// Forgets the commands that exited, counting failures.
    fn reap(&mut self) {
        let stats = &mut self.stats;
        // A command fails once, however many ways.
        self.running
            .retain_mut(|(child, failed)| match child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() && !*failed {
                        stats.failed += 1;
                    }
                    false
                }
                Ok(None) => true,
                Err(_) => {
                    stats.failed += u64::from(!*failed);
                    false
                }
            });
    }

    fn spawn(&self, alert: &Alert) -> io::Result<Child> {
        let args = hook_args(alert);
        let mut cmd = if is_program(&self.command) {
            Command::new(&self.command)
        } else {
            let mut sh = Command::new("sh");
            sh.arg("-c").arg(&self.command).arg("floodwatch");
            sh
        };
        cmd.args(&args)
            .env("FLOODWATCH_IP", &args[0])
            .env("FLOODWATCH_DIRECTION", &args[1])
            .env("FLOODWATCH_PPS", &args[2])
            .env("FLOODWATCH_ACTION", &args[3])
            .env(
                "FLOODWATCH_SIGNATURE_ID",
                alert.alert.signature_id.to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        #[cfg(unix)]
        {
            // Its own process group, so that a shell's children die with it.
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        cmd.spawn()
    }
}

/// Kills the process group a hook command leads (`sh -c` and whatever it
/// started), not only the command.
#[cfg(unix)]
fn kill_group(child: &Child) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers; -pgid names the group this
    // command leads (spawned with process_group(0)), which it has not
    // been reaped from yet, so the id cannot have been reused.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_: &Child) {}

/// FastNetMon's notify-script arguments: ip, direction, pps, and ban,
/// attack_details or unban.
fn hook_args(alert: &Alert) -> [String; 4] {
    let ip = alert.subject().map(|ip| ip.to_string()).unwrap_or_default();
    let direction = alert.direction().name();
    // Finite: counts divided by at least one second.
    let pps = alert.alert.context.episode.pps.round() as u64;
    let action = match alert.state() {
        State::Start => "ban",
        State::Details => "attack_details",
        State::End => "unban",
    };
    [ip, direction.into(), pps.to_string(), action.into()]
}

/// Whether a hook command is a lone program (no blanks, no shell syntax).
fn is_program(command: &str) -> bool {
    !command.is_empty()
        && !command
            .chars()
            .any(|c| c.is_whitespace() || "|&;<>()$`\\\"'*?[]#~={}%!".contains(c))
}

impl AlertSink for CommandHook {
    fn alert(&mut self, alert: &Alert) -> io::Result<()> {
        self.reap();
        if self.running.len() >= self.max_running {
            self.stats.dropped += 1;
            return Ok(());
        }
        let mut child = match self.spawn(alert) {
            Ok(c) => c,
            Err(_) => {
                self.stats.failed += 1;
                return Ok(());
            }
        };
        self.stats.spawned += 1;
        // An alert line is a few kB, well under a pipe's buffer, so this
        // write does not wait for the command to read it.
        let mut line = alert.to_json();
        line.push('\n');
        let fed = match child.stdin.take() {
            Some(mut stdin) => stdin.write_all(line.as_bytes()).is_ok(),
            None => false,
        };
        if !fed {
            self.stats.failed += 1;
        }
        self.running.push((child, !fed));
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + self.finish_timeout;
        loop {
            self.reap();
            if self.running.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for (mut child, failed) in self.running.drain(..) {
            self.stats.failed += u64::from(!failed);
            kill_group(&child);
            // Already gone if kill fails; wait reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(mut done) = self.done.lock() {
            *done = self.stats;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::alert::{
        AlertContext, EpisodeSummary, Family, FlowContext, Proto, State, Timestamp,
    };
    use std::net::{IpAddr, Ipv4Addr};

    fn alert() -> Alert {
        let flow = FlowContext {
            src_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
            src_port: 1,
            dest_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            dest_port: 2,
            proto: Proto::Udp,
            bytes: 60,
            tcp_flags: 0,
            packets: 1,
            exporter: None,
        };
        let context = AlertContext {
            state: State::Start,
            family: Family::FloodTarget,
            direction: None,
            score: 1.0,
            threshold: 0.5,
            top_features: vec![],
            exporter: None,
            episode: EpisodeSummary::new(1.0, 3.0, 1_000, 60_000, 1.0, 1, None),
        };
        Alert::new(Timestamp::from_secs(1.0), &flow, "s", "c".into(), context)
    }

    struct Failing;
    impl AlertSink for Failing {
        fn alert(&mut self, _: &Alert) -> io::Result<()> {
            Err(io::Error::other("full"))
        }
    }

    #[test]
    fn json_lines_one_line_per_alert() {
        let mut s = JsonLines::new(Vec::new());
        s.alert(&alert()).unwrap();
        s.alert(&alert()).unwrap();
        s.finish().unwrap();
        assert_eq!(s.written(), 2);
        let text = String::from_utf8(s.into_inner()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["alert"]["action"], "allowed");
        assert_eq!(v["alert"]["context"]["state"], "start");
        assert_eq!(v["proto"], "UDP");
    }

    #[test]
    fn fan_out_reaches_every_sink_despite_errors() {
        let mut sinks: Vec<Box<dyn AlertSink>> =
            vec![Box::new(Failing), Box::new(JsonLines::new(Vec::new()))];
        assert!(sinks.alert(&alert()).is_err());
        assert!(sinks.finish().is_ok());
        let mut ok = JsonLines::new(Vec::new());
        let mut pair = vec![&mut ok];
        pair.alert(&alert()).unwrap();
        assert_eq!(ok.written(), 1);
    }

    /// A command that exits without reading fails once, whether or not its
    /// alert could still be written when it was gone.
    #[test]
    fn a_command_fails_once_however_it_fails() {
        let mut h = CommandHook::new("exit 3").max_running(64);
        for _ in 0..20 {
            h.alert(&alert()).unwrap();
        }
        h.finish().unwrap();
        assert_eq!((h.stats().spawned, h.stats().failed), (20, 20));
    }

    #[test]
    fn hook_counts_failures_and_drops() {
        let mut h = CommandHook::new("cat >/dev/null; exit 3").max_running(8);
        h.alert(&alert()).unwrap();
        h.finish().unwrap();
        assert_eq!(
            h.stats(),
            HookStats {
                spawned: 1,
                failed: 1,
                dropped: 0
            }
        );

        let mut h = CommandHook::new("exec sleep 5")
            .max_running(1)
            .finish_timeout(Duration::from_millis(50));
        h.alert(&alert()).unwrap();
        h.alert(&alert()).unwrap();
        h.finish().unwrap();
        assert_eq!(
            h.stats(),
            HookStats {
                spawned: 1,
                failed: 1,
                dropped: 1
            }
        );
    }

    #[test]
    fn home_net_sets_the_direction_for_the_json_and_the_hook() {
        assert_eq!(hook_args(&alert())[1], "incoming");
        let mut s = HomeNetSink::new(
            HomeNet::parse("--home-net", &["192.0.2.0/24"]).unwrap(),
            JsonLines::new(Vec::new()),
        );
        s.alert(&alert()).unwrap();
        let text = String::from_utf8(s.inner.into_inner()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["alert"]["context"]["direction"], "outgoing");
        let mut a = alert();
        a.apply_home_net(&HomeNet::parse("--home-net", &["192.0.2.0/24"]).unwrap());
        assert_eq!(hook_args(&a), ["10.0.0.5", "outgoing", "500", "ban"]);
        a.apply_home_net(&HomeNet::parse("--home-net", &["10.0.0.0/8"]).unwrap());
        assert_eq!(hook_args(&a)[1], "incoming");
    }

    #[test]
    fn lone_programs_run_directly_and_the_rest_through_the_shell() {
        assert!(is_program("/usr/local/bin/notify_about_attack.sh"));
        assert!(is_program("notify"));
        for shell in ["", "cat >> f", "a|b", "x;y", "$HOME/x", "~/x", "a=b"] {
            assert!(!is_program(shell), "{shell}");
        }
        let a = alert();
        assert_eq!(hook_args(&a), ["10.0.0.5", "incoming", "500", "ban"]);
    }
}
