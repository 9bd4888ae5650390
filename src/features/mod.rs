//! Records to numeric vectors.
pub mod victim;
