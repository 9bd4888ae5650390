//! Batch and streaming detection.
pub mod batch;
