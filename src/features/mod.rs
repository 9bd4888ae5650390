//! Records to numeric vectors.

pub mod incstat;
pub mod kitsune;
pub mod nbaiot;
pub mod packet;
pub mod pair_table;
pub mod stream_table;
