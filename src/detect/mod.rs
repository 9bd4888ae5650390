//! Batch and streaming detection.

pub mod metrics;
pub mod queue;
