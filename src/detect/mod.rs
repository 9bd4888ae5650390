//! Batch and streaming detection.

pub mod alert;
pub mod dump;
pub mod episode;
pub mod fingerprint;
pub mod homenet;
#[cfg(feature = "kafka")]
pub mod kafka_sink;
#[cfg(feature = "kafka")]
pub mod kafka_source;
pub mod metrics;
pub mod microbatch;
pub mod mitigate;
pub mod saved;
pub mod sink;
pub mod stream;
pub mod vote;
