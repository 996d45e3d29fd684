//! The undo model: what a write is about to change and how to put it back. Pure: no Redis
//! types, unit-tested without a server.
//!
//! - `recipe`: for each write command, the reads that match it ("construct the read that
//!   matches the write": `HMGET` of the fields an `HSET` sets, `SMISMEMBER` of the members an
//!   `SADD` adds...) and how their replies become undo entries; anything without a recipe
//!   (streams, HyperLogLog, other modules' types) falls back to a whole-key copy.
//! - `entry`: one undo step and the compensating command that performs it.
//! - `keymap`: a map from key names for the few keys of a typical transaction (no hashing
//!   up to 16 keys).
//! - `log`: a transaction's entries, checkpoint compaction (one entry per touched element,
//!   holding the earliest pre-image) and the versioned encoding.
//! - `model` (tests only): an in-memory keyspace that answers the recipes' reads and runs
//!   the compensations, so that `tests` can check that rollback restores a keyspace exactly;
//!   it holds small collections in compact encodings whose order counts, as the server does,
//!   so that exactness includes the representation of compact keys.

pub mod entry;
pub mod keymap;
pub mod log;
pub mod recipe;

#[cfg(test)]
pub(crate) mod model;
#[cfg(test)]
mod tests;
