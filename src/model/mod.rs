//! Detectors: `fit` on normal data, `score` (higher = more anomalous),
//! thresholds, the detector interface and the model file.

pub mod autoencoder;
pub(crate) mod classic;
pub(crate) mod dense;
pub mod detector;
pub mod iforest;
mod kernel;
pub mod kitnet;
pub mod lof;
pub mod logistic;
pub mod neighbours;
pub mod ocsvm;
pub mod threshold;

pub use autoencoder::{Autoencoder, AutoencoderParams};
pub mod bundle;
pub mod file;

/// Every detector `eval` fits beside the autoencoder, by name, in report
/// order: a new detector's file plus one line here.
pub const DETECTORS: [(&str, detector::Fit); 4] = [
    ("kitnet", kitnet::fit),
    ("isolation_forest", iforest::fit),
    ("lof", lof::fit),
    ("ocsvm", ocsvm::fit),
];
