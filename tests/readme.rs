//! Issue 17: every `floodwatch` command in the README's `sh` blocks runs, in
//! order, on the shared data, so the README cannot drift from the tool.
//! Commands that need a network interface, a Kafka broker or a BGP speaker
//! are left to the tests that start those, and say so.

use std::path::Path;
use std::process::Command;

mod util;

/// README file names and the shared files that stand for them.
const SHARED: [(&str, &str); 6] = [
    (
        "KDDTrain+_20Percent.txt",
        "data/nsl-kdd/KDDTrain+_20Percent.txt",
    ),
    ("columns.txt", "data/nsl-kdd/columns.txt"),
    ("BENIGN.csv", "data/cicids2017/BENIGN_5000.csv"),
    ("DDoS.csv", "data/cicids2017/DDoS_5000.csv"),
    ("benign.pcap", "data/benign/iot-smartplug-68min.pcap"),
    ("synflood.pcap", "data/pcap/CIC-DDoS-2019-SynFlood.pcap"),
];

/// README file names that an earlier README command wrote under another name.
const SAME_AS: [(&str, &str); 5] = [
    ("valid.csv", "test.csv"),
    ("day1.pcap", "day.pcap"),
    ("day2.pcap", "day.pcap"),
    ("attack.pcap", "s.pcap"),
    ("attack.csv", "s.csv"),
];

/// Edits that keep the run short and local: (README text, text run).
const EDITS: [(&str, &str); 4] = [
    ("--duration 6h", "--duration 30m"),
    ("--attack-at 2h", "--attack-at 20m"),
    ("127.0.0.1:9100", "127.0.0.1:0"),
    ("mail -s flood ops", "cat"),
];

/// Why a command is not run here, if it is not.
fn not_here(cmd: &str) -> Option<&'static str> {
    [
        (
            "--interface",
            "a live interface (tests/live.rs, feature live)",
        ),
        ("--kafka", "a Kafka broker (tests/kafka.rs, feature kafka)"),
        ("produce ", "a Kafka broker (tests/kafka.rs, feature kafka)"),
        ("--mitigate", "a BGP speaker (tests/bgp.rs)"),
        ("--netflow", "a flow exporter (tests/flows.rs)"),
        ("--flows", "a capture of flow exports (tests/flows.rs)"),
        ("watch ...", "a placeholder for other flags"),
        ("flow-exporter", "a placeholder program"),
    ]
    .into_iter()
    .find(|(mark, _)| cmd.contains(mark))
    .map(|(_, why)| why)
}

/// The commands of the README's `sh` blocks, continuation lines joined.
fn commands(readme: &str) -> Vec<String> {
    let (mut out, mut in_sh, mut line) = (Vec::new(), false, String::new());
    for l in readme.lines() {
        if l.starts_with("```") {
            in_sh = l == "```sh";
            continue;
        }
        if !in_sh || l.trim_start().starts_with('#') {
            continue;
        }
        line.push_str(l.trim_end_matches('\\').trim());
        line.push(' ');
        if !l.ends_with('\\') {
            if line.contains("floodwatch ") {
                out.push(line.trim().to_owned());
            }
            line.clear();
        }
    }
    out
}

/// Splits a command line as `sh` would for these commands: spaces, with
/// single or double quotes grouping words.
fn words(cmd: &str) -> Vec<String> {
    let (mut out, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in cmd.chars() {
        match (quote, c) {
            (None, '\'' | '"') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (_, c) => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// Links each input the command names that is not in `dir` yet to the
/// shared file or earlier output standing for it.
fn provide(dir: &Path, args: &[String], shared: &Path) {
    for a in args {
        let target = dir.join(a);
        if target.exists() {
            continue;
        }
        let from = SHARED
            .iter()
            .find(|(name, _)| name == a)
            .map(|(_, rel)| shared.join(rel))
            .or_else(|| {
                SAME_AS
                    .iter()
                    .find(|(name, _)| name == a)
                    .map(|(_, other)| dir.join(other))
            });
        if let Some(from) = from {
            std::os::unix::fs::symlink(&from, &target).unwrap();
        }
    }
}

#[test]
fn every_readme_command_runs() {
    let Some(shared) = util::shared("data") else {
        return;
    };
    let shared = shared.parent().unwrap().to_owned();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let d = tempfile::tempdir().unwrap();
    let (mut ran, mut skipped) = (0, Vec::new());
    for cmd in commands(&readme) {
        if let Some(why) = not_here(&cmd) {
            skipped.push(format!("{cmd}: needs {why}"));
            continue;
        }
        let edited = EDITS.iter().fold(cmd.clone(), |c, (a, b)| c.replace(a, b));
        let args = words(&edited);
        assert_eq!(args[0], "floodwatch", "{cmd}");
        provide(d.path(), &args[1..], &shared);
        let out = Command::new(env!("CARGO_BIN_EXE_floodwatch"))
            .arg("-q")
            .args(&args[1..])
            .current_dir(d.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "README command failed: {cmd}\n{err}");
        ran += 1;
    }
    eprintln!(
        "ran {ran} README commands; not here:\n{}",
        skipped.join("\n")
    );
    // A parser that lost the blocks would pass vacuously.
    assert!(ran >= 20, "only {ran} README commands ran");
    // Live interfaces, brokers, exporters: each kind tested on its own.
    assert!(skipped.len() <= 10, "{skipped:#?}");
}

#[test]
fn words_and_commands_parse_as_sh_would() {
    assert_eq!(
        words(r#"floodwatch train --drop "Flow ID" --on-alert 'mail -s x' """#),
        [
            "floodwatch",
            "train",
            "--drop",
            "Flow ID",
            "--on-alert",
            "mail -s x",
            ""
        ]
    );
    let readme = "text\n```sh\n# note\nfloodwatch a \\\n    --b c\ncargo x\n```\n```json\nfloodwatch no\n```\n";
    assert_eq!(commands(readme), ["floodwatch a --b c"]);
}
