//! Metrics, classification reports and pictures.

pub mod classification;
pub mod explain;
pub mod html;
pub mod inspect;
pub mod metrics;
#[cfg(feature = "plot")]
pub mod plot;
#[cfg(feature = "plot")]
pub mod tsne;
