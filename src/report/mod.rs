//! Metrics, classification reports and pictures.

pub mod classification;
pub mod metrics;
