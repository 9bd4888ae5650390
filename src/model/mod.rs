//! Detectors: `fit` on normal data, `score` (higher = more anomalous),
//! thresholds and the saved bundle.

pub mod autoencoder;
pub mod dense;
mod kernel;
pub mod kitnet;
pub mod logistic;
pub mod threshold;

pub use autoencoder::{Autoencoder, AutoencoderParams};
