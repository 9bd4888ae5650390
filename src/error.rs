//! The library's error type: every variant says where (file, line, column or
//! byte offset) and what, so the CLI can print it as is.

use std::path::PathBuf;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in floodwatch's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record of an input file is malformed.
    #[error("{}:{line}: {msg}", file.display())]
    Input {
        /// The file (or `-` for standard input).
        file: PathBuf,
        /// 1-based line (CSV) or record number (captures).
        line: u64,
        /// What is wrong, naming the column or field.
        msg: String,
    },
    /// A dataset cannot be used as asked (no normal rows, missing column, ...).
    #[error("{0}")]
    Data(String),
    /// A model or its parameters are invalid.
    #[error("{0}")]
    Model(String),
    /// A picture cannot be drawn (bad plot data, backend failure).
    #[error("picture: {0}")]
    Plot(String),
    /// A model bundle cannot be loaded.
    #[error("{}: {msg}", path.display())]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A Kafka broker, topic or record failed (the message names the topic,
    /// partition and offset when there is one).
    #[error("kafka: {0}")]
    Kafka(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
