//! Records in: CSV tables and packet captures.

pub mod packets;
