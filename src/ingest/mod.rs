//! Records in: CSV tables and packet captures.

pub mod csv;
pub mod packets;
pub mod synth;
