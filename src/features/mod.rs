//! Records to numeric vectors.
//!
//! Tables: a schema learned at train time ([`tabular`]) encodes CSV rows and
//! a [`scale`]r fitted on normal rows maps them to [0, 1].
//!
//! Packet features: a [`packet::FeatureExtractor`] turns each decoded frame
//! into damped-window statistics ([`incstat`]) kept in bounded tables
//! ([`stream_table`], `pair_table`, `channel_table`); the layouts are
//! [`kitsune`] (faithful and corrected, 100 features) and [`nbaiot`] (115),
//! chosen with [`combined::Layout`].
//!
//! Flow records (NetFlow, IPFIX, sFlow) feed the `victim` layout with
//! weights; [`flow`] says how a flow counts.

pub mod capture_table;
pub(crate) mod channel_table;
pub mod combined;
pub mod flow;
pub mod incstat;
pub mod kitsune;
pub mod nbaiot;
pub mod npy;
pub mod packet;
pub(crate) mod pair_table;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod pow2;
pub mod reassembly;
pub mod scale;
pub mod stream_table;
pub mod tabular;
pub mod victim;
