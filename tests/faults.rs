//! Fault injection: every writing command against a full device, a file
//! size limit, a full filesystem (when one can be mounted), SIGKILL, a
//! closed standard output, a missing output folder and unreadable input.
//! Each run is a child process killed after a bound: a hang fails the test
//! instead of blocking it. Asserted: the exit status, the cause printed once
//! with the file's name, no partial output, no temporary file left.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_floodwatch");
/// Longest any one run may take.
const BOUND: Duration = Duration::from_secs(20);
const NO_SPACE: &str = "No space left on device";
const TOO_LARGE: &str = "File too large";

/// Inputs shared by every case, made once.
struct Fixture {
    dir: PathBuf,
    /// Training table (2,000 rows) and its bundle.
    train: PathBuf,
    model: PathBuf,
    /// 60,000 rows: about 9 MB, more blocks than `test` keeps in flight.
    big: PathBuf,
    capture: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = |n: &str| dir.join(n);
        let f = Fixture {
            train: p("train.csv"),
            model: p("m.fw"),
            big: p("big.csv"),
            capture: p("c.pcap"),
            dir: dir.clone(),
        };
        ok(&[
            "synth",
            "--out",
            s(&f.train),
            "--rows",
            "2000",
            "--seed",
            "1",
        ]);
        ok(&["synth", "--out", s(&f.big), "--rows", "60000"]);
        let labels = p("c-labels.csv");
        ok(&[
            "synth",
            "--pcap",
            s(&f.capture),
            "--labels",
            s(&labels),
            "--packets",
            "20000",
        ]);
        ok(&train_args(&f.train, &f.model));
        f
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn train_args<'a>(data: &'a Path, model: &'a Path) -> Vec<&'a str> {
    let mut a = vec!["train", "--data", s(data), "--model", s(model)];
    a.extend(["--epochs", "2"]);
    for c in ["uid", "sourceMac", "sourceIp", "destIp", "destMac", "host"] {
        a.extend(["--drop", c]);
    }
    a.extend(["--drop", "timestamp"]);
    a
}

/// What a bounded run gave.
struct Run {
    status: ExitStatus,
    stderr: String,
}

/// Waits for `child` at most [`BOUND`]; kills it and fails past that.
fn finish(mut child: Child, what: &str, err_file: &Path) -> Run {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = std::fs::read_to_string(err_file).unwrap_or_default();
            return Run { status, stderr };
        }
        if t0.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {BOUND:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A command line: `floodwatch -q ARGS`, optionally under a file size limit.
fn command(args: &[&str], size_limit_kb: Option<u32>) -> Command {
    let mut c = match size_limit_kb {
        // SIGXFSZ ignored: writes past the limit fail with EFBIG instead
        // of killing the process; an ignored signal stays so across exec.
        Some(kb) => {
            let mut c = Command::new("sh");
            let script = format!("trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"", kb * 2);
            c.args(["-c", &script, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    c.arg("-q").args(args);
    c
}

/// Runs `floodwatch -q ARGS` with no input, bounded.
fn run(args: &[&str], size_limit_kb: Option<u32>) -> Run {
    let err = stderr_file();
    let child = command(args, size_limit_kb)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    finish(child, &format!("{args:?}"), &err)
}

fn stderr_file() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    fixture()
        .dir
        .join(format!("stderr-{}-{n}", std::process::id()))
}

fn ok(args: &[&str]) {
    let out = Command::new(BIN).arg("-q").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Exit 1, one line (besides notes on the data) naming `file` (not a
/// temporary file) and saying `cause` once.
fn failed_once(r: &Run, what: &str, file: &str, cause: &str) {
    assert!(!r.stderr.contains(".floodwatch-"), "{what}: {}", r.stderr);
    assert_eq!(r.status.code(), Some(1), "{what}: {}", r.stderr);
    assert_eq!(r.stderr.matches(cause).count(), 1, "{what}: {}", r.stderr);
    assert!(r.stderr.contains(file), "{what}: {}", r.stderr);
    let notes = r.stderr.matches("floodwatch: note: ").count();
    assert_eq!(
        r.stderr.trim_end().lines().count() - notes,
        1,
        "{what}: {}",
        r.stderr
    );
}

/// Files in `dir` that are temporary files of a write.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".floodwatch-") && n.ends_with(".tmp"))
        .collect()
}

/// Every writing command, writing `out` (a file or device).
fn writers(f: &Fixture, out: &str) -> Vec<Vec<String>> {
    let own = |v: Vec<&str>| v.into_iter().map(String::from).collect();
    let (data, model, big, cap) = (s(&f.train), s(&f.model), s(&f.big), s(&f.capture));
    vec![
        own(vec!["synth", "--out", out, "--rows", "20000"]),
        own(train_args(&f.train, Path::new(out))),
        own(vec!["test", "--data", big, "--model", model, "--out", out]),
        own(vec!["extract", "--pcap", cap, "--out", out]),
        own(vec![
            "splice", "--base", cap, "--insert", cap, "--at", "1", "--out", out, "--labels", out,
        ]),
        own(vec![
            "report",
            "--model",
            model,
            "--data",
            data,
            "--out",
            out,
            "--tsne-points",
            "20",
        ]),
    ]
}

#[test]
fn a_full_device_fails_each_writer_once_and_fast() {
    let f = fixture();
    for args in writers(f, "/dev/full") {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args, None);
        failed_once(&r, &format!("{args:?}"), "/dev/full", NO_SPACE);
    }
}

#[test]
fn a_file_size_limit_fails_each_writer_cleanly() {
    let f = fixture();
    let dir = tempfile::tempdir_in(&f.dir).unwrap();
    let out = dir.path().join("out");
    // A previous output, which a failed write must leave as it was.
    std::fs::write(&out, "previous").unwrap();
    for args in writers(f, s(&out)) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args, Some(64));
        failed_once(&r, &format!("{args:?}"), "out", TOO_LARGE);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous");
        assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "{args:?}");
    }
    // threshold --write rewrites the bundle it reads.
    let model = dir.path().join("m.fw");
    std::fs::copy(&f.model, &model).unwrap();
    let before = std::fs::read(&model).unwrap();
    let args = [
        "threshold",
        "--model",
        s(&model),
        "--data",
        s(&f.train),
        "--write",
        "quantile:0.99",
        "--in-place",
    ];
    let r = run(&args, Some(64));
    failed_once(&r, "threshold --write", "m.fw", TOO_LARGE);
    assert_eq!(std::fs::read(&model).unwrap(), before);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn a_full_filesystem_ends_test_with_its_cause() {
    let f = fixture();
    let dir = tempfile::tempdir_in(&f.dir).unwrap();
    let mnt = dir.path();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs", s(mnt)])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        eprintln!("skipping: cannot mount a tmpfs (needs root and mount rights)");
        return;
    }
    let out = mnt.join("p.csv");
    let r = run(
        &[
            "test",
            "--data",
            s(&f.big),
            "--model",
            s(&f.model),
            "--out",
            s(&out),
        ],
        None,
    );
    let left = leftovers(mnt);
    let _ = Command::new("umount").arg(mnt).status();
    failed_once(&r, "test on a full tmpfs", "p.csv", NO_SPACE);
    assert!(!out.exists() && left.is_empty(), "{left:?}");
}

/// Feeds `input` to `watch --stdin ARGS` from a thread (a closed pipe ends
/// the feeding), bounded.
fn watch_stdin(args: &[&str], input: &'static [u8]) -> Run {
    let f = fixture();
    let err = stderr_file();
    let mut all = vec!["watch", "--stdin", "--model", s(&f.model)];
    all.extend(args);
    let mut child = command(&all, None)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(input);
    });
    finish(child, &format!("watch {args:?}"), &err)
}

fn big_input() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| std::fs::read(&fixture().big).unwrap())
}

#[test]
fn watch_ends_when_an_output_fails_mid_stream() {
    for flag in ["--scores", "--alerts"] {
        let r = watch_stdin(&[flag, "/dev/full"], big_input());
        failed_once(&r, flag, "/dev/full", NO_SPACE);
    }
    let f = fixture();
    let args = [
        "watch",
        "--pcap",
        s(&f.capture),
        "--grace",
        "2000",
        "--epochs",
        "1",
        "--alerts",
        "/dev/null",
        "--save-model",
        "/dev/full",
    ];
    let r = run(&args, None);
    failed_once(&r, "--save-model", "/dev/full", NO_SPACE);
}

#[test]
fn watch_stdin_waits_instead_of_dropping_and_scores_as_test_does() {
    let f = fixture();
    let dir = tempfile::tempdir_in(&f.dir).unwrap();
    let (scores, preds) = (dir.path().join("s.csv"), dir.path().join("p.csv"));
    let args = [
        "--queue",
        "1024",
        "--scores",
        s(&scores),
        "--alerts",
        "/dev/null",
    ];
    let r = watch_stdin(&args, big_input());
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    ok(&[
        "test",
        "--data",
        s(&f.big),
        "--model",
        s(&f.model),
        "--out",
        s(&preds),
    ]);
    let col = |path: &Path, name: &str| -> Vec<f32> {
        let mut rdr = csv::Reader::from_path(path).unwrap();
        let i = rdr
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == name)
            .unwrap();
        rdr.records()
            .map(|r| r.unwrap()[i].parse::<f64>().unwrap() as f32)
            .collect()
    };
    let (watched, tested) = (col(&scores, "score"), col(&preds, "score"));
    assert_eq!(watched.len(), 60_000, "every row scored, none dropped");
    assert!(watched
        .iter()
        .zip(&tested)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    // Asked to drop, with a queue of one: drops are told, and fail the run.
    let r = watch_stdin(
        &[
            "--queue",
            "1",
            "--when-full",
            "drop",
            "--fail-on-drop",
            "--alerts",
            "/dev/null",
        ],
        big_input(),
    );
    assert_eq!(r.status.code(), Some(5), "{}", r.stderr);
    assert!(r.stderr.contains("floodwatch: dropped "), "{}", r.stderr);
}

#[test]
fn sigkill_leaves_the_previous_output_and_the_next_write_cleans_up() {
    let f = fixture();
    let dir = tempfile::tempdir_in(&f.dir).unwrap();
    let out = dir.path().join("p.csv");
    let model = dir.path().join("m.fw");
    std::fs::write(&out, "previous").unwrap();
    std::fs::copy(&f.model, &model).unwrap();
    let old_model = std::fs::read(&model).unwrap();
    for delay in [20, 150, 400] {
        let runs = [
            vec![
                "test",
                "--data",
                s(&f.big),
                "--model",
                s(&model),
                "--out",
                s(&out),
            ],
            train_args(&f.big, &model),
        ];
        for args in runs {
            let mut child = command(&args, None)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay));
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            text == "previous" || text.lines().count() == 60_001,
            "partial predictions after SIGKILL at {delay} ms"
        );
        let now = std::fs::read(&model).unwrap();
        if now != old_model {
            // Replaced whole: the new bundle loads.
            ok(&["test", "--data", s(&f.train), "--model", s(&model)]);
        }
    }
    // Killed surely mid-write (ten million rows take seconds): its
    // temporary file stays, the final name never appears.
    let x = dir.path().join("x.csv");
    let mut child = command(&["synth", "--out", s(&x), "--rows", "10000000"], None)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!x.exists());
    assert!(!leftovers(dir.path()).is_empty(), "no temporary file seen");
    // The next write into the folder removes what the killed runs left.
    let y = dir.path().join("y.csv");
    ok(&["synth", "--out", s(&y), "--rows", "10"]);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn a_closed_stdout_ends_quietly_with_0() {
    let f = fixture();
    let model = s(&f.model);
    let cases: [&[&str]; 3] = [
        &["synth", "--out", "/dev/stdout", "--rows", "100000"],
        &["test", "--data", s(&f.big), "--model", model],
        &["watch", "--stdin", "--model", model, "--queue", "1024"],
    ];
    for args in cases {
        let err = stderr_file();
        let mut child = command(args, None)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = stdin.write_all(big_input());
        });
        let r = finish(child, &format!("{args:?}"), &err);
        assert_eq!(r.status.code(), Some(0), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr, "", "{args:?}");
    }
}

#[test]
fn a_missing_folder_or_unreadable_input_is_named() {
    let f = fixture();
    let gone = f.dir.join("no-such-folder").join("out");
    for args in writers(f, s(&gone)) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args, None);
        failed_once(
            &r,
            &format!("{args:?}"),
            "no-such-folder",
            "No such file or directory",
        );
    }
    // A folder where a file is expected, and a missing file.
    for input in [f.dir.clone(), f.dir.join("missing.csv")] {
        let r = run(&["test", "--data", s(&input), "--model", s(&f.model)], None);
        assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
        assert!(r.stderr.contains(s(&input)), "{}", r.stderr);
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    }
}

/// `plot roc` of `model` on `data` into `out`.
fn plot_roc<'a>(model: &'a str, data: &'a str, out: &'a str) -> [&'a str; 8] {
    [
        "plot", "roc", "--model", model, "--data", data, "--out", out,
    ]
}

/// `eval` and `plot` against a full device, a file size limit and a missing
/// folder: the cause once with the file's name, the previous outputs intact,
/// no temporary file.
#[test]
fn eval_and_plot_fail_cleanly() {
    let f = fixture();
    let (data, model) = (s(&f.train), s(&f.model));
    let eval = |out: &str, extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "eval",
            "--train",
            data,
            "--test",
            data,
            "--out",
            out,
            "--epochs",
            "2",
            "--tsne-points",
            "20",
        ];
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect()
    };
    let r = run(
        &eval(s(&f.dir.join("eval-full")), &["--model", "/dev/full"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        None,
    );
    failed_once(&r, "eval --model /dev/full", "/dev/full", NO_SPACE);

    let dir = tempfile::tempdir_in(&f.dir).unwrap();
    let (png, summary) = (dir.path().join("out.png"), dir.path().join("eval.json"));
    std::fs::write(&png, "previous").unwrap();
    std::fs::write(&summary, "previous").unwrap();
    let r = run(&plot_roc(model, data, s(&png)), Some(64));
    failed_once(&r, "plot", "out.png", TOO_LARGE);
    let args = eval(s(dir.path()), &[]);
    let r = run(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(64),
    );
    failed_once(&r, "eval", ".png", TOO_LARGE);
    assert_eq!(std::fs::read_to_string(&png).unwrap(), "previous");
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), "previous");
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());

    let gone = f.dir.join("no-such-folder").join("out.png");
    let r = run(&plot_roc(model, data, s(&gone)), None);
    failed_once(&r, "plot", "no-such-folder", "No such file or directory");
}

/// Batch scoring: a worker that meets a malformed row halfway through a
/// file stops the reader and the writer: exit 1 at once, the row named, no
/// output and no temporary file.
#[test]
fn batch_scoring_stops_at_a_bad_row_mid_file() {
    let f = fixture();
    let dir = tempfile::tempdir_in(&f.dir).unwrap();
    let text = std::fs::read_to_string(&f.big).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let mid = lines.len() / 2;
    lines.insert(mid, "not,a,row");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("p.csv");
    let args = [
        "test",
        "--data",
        s(&bad),
        "--model",
        s(&f.model),
        "--out",
        s(&out),
    ];
    let r = run(&args, None);
    failed_once(&r, "test", &format!("bad.csv:{}", mid + 1), "3 fields");
    assert!(!out.exists());
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

/// The command hook: commands that never end, or exit at once without
/// reading, never hold `watch`; a shell's children die with it; what the
/// commands did is reported, even with -q.
#[test]
fn the_command_hook_cannot_hold_watch() {
    let f = fixture();
    let dir = tempfile::tempdir_in(&f.dir).unwrap();
    let (pcap, labels) = (dir.path().join("udp.pcap"), dir.path().join("udp.csv"));
    ok(&[
        "synth",
        "--pcap",
        s(&pcap),
        "--labels",
        s(&labels),
        "--packets",
        "40000",
        "--rate",
        "1000",
        "--attack",
        "udp",
    ]);
    let mark = dir.path().join("still-running");
    let sleeper = format!("sleep 1000; touch {}", mark.display());
    for cmd in [sleeper.as_str(), "exit 3"] {
        let args = [
            "watch",
            "--pcap",
            s(&pcap),
            "--grace",
            "10s",
            "--alerts",
            "/dev/null",
            "--on-alert",
            cmd,
        ];
        let t0 = Instant::now();
        let r = run(&args, None);
        assert!(r.status.success(), "{cmd}: {}", r.stderr);
        // The last commands (start, details, end) get 5 s to finish, then
        // are killed.
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "{cmd}: {:?}",
            t0.elapsed()
        );
        let line = r
            .stderr
            .lines()
            .find(|l| l.contains("--on-alert:"))
            .unwrap_or_default();
        assert!(
            line.contains(" 3 commands run, 3 failed"),
            "{cmd}: {}",
            r.stderr
        );
    }
    // No `sleep` outlived its shell to run the rest of the command.
    let sleepers = Command::new("pgrep")
        .args(["-f", &sleeper])
        .output()
        .unwrap();
    assert!(sleepers.stdout.is_empty(), "orphaned hook commands");
}

/// The metrics server: clients that connect and never finish a request
/// do not keep `watch` from ending when its input does.
#[test]
fn the_metrics_server_cannot_hold_watch() {
    use std::io::{BufRead, BufReader};
    let f = fixture();
    let mut child = Command::new(BIN)
        .args([
            "watch",
            "--stdin",
            "--model",
            s(&f.model),
            "--metrics",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("metrics on http://")
        .and_then(|a| a.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address: {first}"))
        .to_owned();
    let stalled: Vec<std::net::TcpStream> = (0..20)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            c.write_all(b"GET /metr").unwrap();
            c
        })
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&big_input()[..200_000]).unwrap();
    drop(stdin);
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let r = finish(
        child,
        "watch --metrics with stalled clients",
        Path::new("/dev/null"),
    );
    assert!(r.status.success());
    drop(stalled);
}
