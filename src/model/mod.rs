//! Detectors: `fit` on normal data, `score` (higher = more anomalous),
//! thresholds and the saved bundle.
pub mod kitnet;
