//! floodwatch: detect DDoS floods and other network anomalies with autoencoders
//! trained on normal traffic only.
//!
//! The modules follow the pipeline, one folder a stage:
//!
//! - [`ingest`]: records in (CSV tables, packet captures, live interfaces);
//! - [`features`]: records to numeric vectors (categorical encoding, scaling,
//!   Kitsune / N-BaIoT damped-window statistics);
//! - [`model`]: detectors that `fit` on normal data and `score` (higher = more
//!   anomalous), thresholds, the model file;
//! - [`detect`]: streaming detection, alert episodes, alerts and their sinks;
//! - [`report`]: metrics, classification reports, pictures, model inspection;
//! - [`run`]: whole runs over files (`train`, `test`, `eval`), above both.
#![deny(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

pub mod detect;
pub mod error;
pub mod features;
pub mod ingest;
mod matrix;
pub mod model;
pub mod report;
pub mod run;
pub(crate) mod simd;
pub mod util;

pub use error::{Error, Result};
pub use matrix::Matrix;
