//! Detectors: `fit` on normal data, `score` (higher = more anomalous),
//! thresholds and the saved bundle.

pub(crate) mod classic;
pub mod iforest;
pub mod lof;
pub mod ocsvm;
