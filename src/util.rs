//! Small file helpers shared by the stages.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The path that names standard output in every `--out`-like flag.
pub const STDOUT: &str = "-";

/// Whether `path` is [`STDOUT`].
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == STDOUT
}

/// Writes `path` crash-safely: `write` fills a temporary file in the same
/// directory, which is synced and then renamed over `path`, so readers see
/// the old file or the complete new one, never a partial one. A `path` that
/// is not a regular file (`/dev/null`, a FIFO, `/dev/stdout`) is written
/// directly: a rename would replace the device with a file. `-` is
/// standard output.
pub fn write_atomically(path: &Path, write: impl FnOnce(&File) -> io::Result<()>) -> Result<()> {
    let file = AtomicFile::create(path)?;
    if let Some(w) = &file.writer {
        // Written past the (empty) buffer; dropped on error, the temporary
        // file is removed.
        write(w.get_ref()).map_err(|e| Error::io(path, e))?;
    }
    file.commit()
}

/// A file written under a temporary name and renamed into place by
/// [`AtomicFile::commit`]; dropped uncommitted, the temporary file is removed.
/// A `path` that is not a regular file is written directly (see
/// [`write_atomically`]).
///
/// The temporary file, created exclusively with an unpredictable name, is
/// `.NAME.floodwatch-PID-XXXXXX.tmp` next to `NAME`. A run killed outright
/// (SIGKILL, power cut) leaves it behind; the next [`AtomicFile::create`] in
/// the same folder removes such files when their process is gone (on Linux)
/// or when they are older than [`STALE_AFTER`].
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    /// The temporary file until it is renamed; `None` when writing to
    /// `path` directly. Dropped, it removes the file.
    tmp: Option<tempfile::TempPath>,
    writer: Option<io::BufWriter<File>>,
}

/// Age past which a leftover temporary file is removed even if its process
/// number is in use again.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What every temporary file's name holds after its target's name.
const TEMP_TAG: &str = ".floodwatch-";

impl AtomicFile {
    /// Creates the temporary file next to `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let (tmp, file) = if is_stdout(path) {
            (None, stdout_file().map_err(|e| Error::io(path, e))?)
        } else if is_special(path) {
            let file = File::options().write(true).open(path);
            (None, file.map_err(|e| Error::io(path, e))?)
        } else {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            remove_stale(dir);
            let name = path
                .file_name()
                .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
            let prefix = format!(".{name}{TEMP_TAG}{}-", std::process::id());
            let mut b = tempfile::Builder::new();
            b.prefix(&prefix).suffix(".tmp");
            #[cfg(unix)]
            {
                // As `File::create` would: the umask decides.
                use std::os::unix::fs::PermissionsExt;
                b.permissions(std::fs::Permissions::from_mode(0o666));
            }
            let (file, tmp) = b
                .tempfile_in(dir)
                .map_err(|e| Error::io(path, without_temp_name(e)))?
                .into_parts();
            (Some(tmp), file)
        };
        Ok(AtomicFile {
            path: path.to_owned(),
            tmp,
            writer: Some(io::BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the file into place; on failure the
    /// temporary file is removed.
    pub fn commit(mut self) -> Result<()> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        if let Some(tmp) = self.tmp.take() {
            file.sync_all().map_err(|e| Error::io(&self.path, e))?;
            drop(file);
            tmp.persist(&self.path)
                .map_err(|e| Error::io(&self.path, e.error))?;
            sync_dir(&self.path).map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}

impl io::Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.writer.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().map_or(Ok(()), io::Write::flush)
    }
}

impl io::Seek for AtomicFile {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        match self.writer.as_mut() {
            Some(w) => w.seek(pos),
            None => Err(io::Error::other("file already committed")),
        }
    }
}

/// A stream output (written as it goes, not atomically): `path` created,
/// or standard output for `-`.
pub fn stream_output(path: &Path) -> Result<File> {
    let file = if is_stdout(path) {
        stdout_file()
    } else {
        File::create(path)
    };
    file.map_err(|e| Error::io(path, e))
}

/// Standard output as a file (its descriptor duplicated), so an output to
/// `-` is written as any other file is.
#[cfg(unix)]
fn stdout_file() -> io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

#[cfg(not(unix))]
fn stdout_file() -> io::Result<File> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "writing to standard output (-) needs a Unix system: name a file",
    ))
}

/// The cause alone: `tempfile` appends the temporary file's name, but the
/// error is the output's.
fn without_temp_name(e: io::Error) -> io::Error {
    let text = e.to_string();
    match text.split_once(" at path ") {
        Some((cause, _)) => io::Error::new(e.kind(), cause.to_owned()),
        None => e,
    }
}

/// Syncs the folder of `path` so that a rename into it survives a power cut
/// (on Unix; elsewhere the rename is enough).
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Removes the temporary files of dead runs from `dir` (best effort: a
/// file that cannot be removed is left).
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        let old = entry
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .map(|age| age > STALE_AFTER);
        match old {
            Some(old) if old || !process_alive(pid) => {
                let _ = std::fs::remove_file(entry.path());
            }
            _ => {}
        }
    }
}

/// The process number in a temporary file's name
/// (`.NAME.floodwatch-PID-XXXXXX.tmp`).
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, tail) = rest.rsplit_once(TEMP_TAG)?;
    let (pid, random) = tail.split_once('-')?;
    if random.is_empty() || random.contains('.') {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` exists; where that cannot be known, it is assumed
/// to, and only age removes its files.
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// An existing path that is not a regular file (a device, a FIFO, a socket).
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn replaces_whole_file_or_leaves_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.txt");
        write_atomically(&p, |mut f| f.write_all(b"one")).unwrap();
        write_atomically(&p, |mut f| f.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let err = write_atomically(&p, |_| Err(io::Error::other("boom"))).unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        assert!(write_atomically(&d.path().join("no/such/dir"), |_| Ok(())).is_err());
    }

    #[test]
    fn atomic_file_commits_or_vanishes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.csv");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"whole").unwrap();
        assert!(!p.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "whole");
        let err = AtomicFile::create(&d.path().join("no/dir/x")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.ends_with("no/dir/x: No such file or directory (os error 2)"),
            "{text}"
        );
    }

    #[test]
    fn temporary_names_are_recognised() {
        assert_eq!(temp_owner(".m.fw.floodwatch-123-aB3xYz.tmp"), Some(123));
        assert_eq!(temp_owner(".a-b.floodwatch-7-q.tmp"), Some(7));
        for other in [
            "m.fw.floodwatch-1-x.tmp",
            ".m.fw.floodwatch-x-y.tmp",
            ".m.1.tmp",
        ] {
            assert_eq!(temp_owner(other), None, "{other}");
        }
    }

    #[test]
    fn leftovers_of_dead_runs_are_removed_by_the_next_write() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.csv");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"half").unwrap();
        // Dead: a process number above the kernel's limit (4,194,304).
        let dead = d.path().join(".out.csv.floodwatch-999999999-abcdef.tmp");
        std::fs::write(&dead, "killed").unwrap();
        // Alive: this very process, or another live one.
        let mine = d
            .path()
            .join(format!(".x.floodwatch-{}-abcdef.tmp", std::process::id()));
        std::fs::write(&mine, "running").unwrap();
        let unrelated = d.path().join(".out.csv.999999999.tmp");
        std::fs::write(&unrelated, "not ours").unwrap();
        write_atomically(&d.path().join("other.csv"), |mut f| f.write_all(b"x")).unwrap();
        let exists = |p: &Path| p.exists();
        assert_eq!(exists(&dead), !cfg!(target_os = "linux"));
        assert!(exists(&mine) && exists(&unrelated));
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "half");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_written_in_place_never_replaced() {
        use std::io::Read;
        use std::os::unix::fs::FileTypeExt;
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipping: mkfifo is not available");
            return;
        }
        // One reader per writer, so that each sees its writer's EOF.
        let read = |fifo: &Path| {
            let fifo = fifo.to_owned();
            std::thread::spawn(move || {
                let mut got = String::new();
                File::open(&fifo).unwrap().read_to_string(&mut got).unwrap();
                got
            })
        };
        let reader = read(&fifo);
        let mut f = AtomicFile::create(&fifo).unwrap();
        f.write_all(b"one").unwrap();
        f.commit().unwrap();
        assert_eq!(reader.join().unwrap(), "one");
        let reader = read(&fifo);
        write_atomically(&fifo, |mut f| f.write_all(b"two")).unwrap();
        assert_eq!(reader.join().unwrap(), "two");
        let kind = std::fs::metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "the FIFO was replaced: {kind:?}");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
