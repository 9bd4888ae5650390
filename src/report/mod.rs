//! Metrics, classification reports and pictures.

pub mod html;
#[cfg(feature = "plot")]
pub mod plot;
#[cfg(feature = "plot")]
pub mod tsne;
