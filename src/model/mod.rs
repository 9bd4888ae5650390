//! Detectors: `fit` on normal data, `score` (higher = more anomalous),
//! thresholds and the saved bundle.

pub mod autoencoder;
pub(crate) mod classic;
pub mod dense;
pub mod detector;
pub mod iforest;
mod kernel;
pub mod kitnet;
pub mod lof;
pub mod logistic;
pub mod ocsvm;
pub mod threshold;

pub use autoencoder::{Autoencoder, AutoencoderParams};
pub mod bundle;
pub mod file;
