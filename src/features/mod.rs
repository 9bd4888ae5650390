//! Records to numeric vectors.
