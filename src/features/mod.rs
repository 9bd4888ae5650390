//! Records to numeric vectors.
pub mod scale;
pub mod tabular;
