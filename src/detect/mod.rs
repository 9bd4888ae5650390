//! Batch and streaming detection.
