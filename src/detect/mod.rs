//! Batch and streaming detection.

pub mod alert;
pub mod batch;
pub mod episode;
pub mod metrics;
pub mod queue;
pub mod sink;
pub mod stream;
pub mod vote;
