//! Batch and streaming detection.
pub mod alert;
pub mod episode;
pub mod sink;
pub mod vote;
