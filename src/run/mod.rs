//! Runs over whole inputs, above detection and reporting: `train` and `test`
//! on tables and captures (`batch`), `test` of a stream model replaying
//! captures through the engine (`offline`), and `eval`, which compares every
//! detector on the same rows.

pub mod batch;
pub mod eval;
pub mod offline;
