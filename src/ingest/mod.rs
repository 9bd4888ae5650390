//! Records in: CSV tables and packet captures.

pub mod columns;
pub mod csv;
pub mod flows;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod lines;
pub mod packets;
pub mod parquet;
pub mod queue;
pub mod synth;
