//! Small file helpers shared by the stages.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Writes `path` crash-safely: `write` fills a temporary file in the same
/// directory, which is synced and then renamed over `path`, so readers see
/// the old file or the complete new one, never a partial one. A `path` that
/// is not a regular file (`/dev/null`, a FIFO, `/dev/stdout`) is written
/// directly: a rename would replace the device with a file.
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
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    /// The temporary file until it is renamed; `None` when writing to
    /// `path` directly.
    tmp: Option<PathBuf>,
    writer: Option<io::BufWriter<File>>,
}

impl AtomicFile {
    /// Creates the temporary file next to `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let (tmp, file) = if is_special(path) {
            (None, File::options().write(true).open(path))
        } else {
            let tmp = temp_path(path);
            let file = File::create(&tmp);
            (Some(tmp), file)
        };
        let file = file.map_err(|e| Error::io(path, e))?;
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
        if let Some(tmp) = &self.tmp {
            file.sync_all()
                .and_then(|()| rename_durably(tmp, &self.path))
                .map_err(|e| Error::io(&self.path, e))?;
            self.tmp = None;
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

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            // Best effort: nothing useful to do if removal fails.
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Renames `tmp` over `path`, then syncs the directory so that the rename
/// itself survives a power cut (on Unix; elsewhere the rename is enough).
fn rename_durably(tmp: &Path, path: &Path) -> io::Result<()> {
    std::fs::rename(tmp, path)?;
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// An existing path that is not a regular file (a device, a FIFO, a socket).
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
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
        assert!(AtomicFile::create(&d.path().join("no/dir/x")).is_err());
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
