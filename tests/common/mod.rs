//! The harness shared by every integration test.
//!
//! Integration tests never link the `txu` crate: they start real servers with the built module
//! loaded and talk to them over loopback, either with the `redis` crate (`Server::conn`) or byte
//! for byte with [`RawConn`].
//!
//! - [`resp`]: RESP encoding and parsing, and [`RawConn`] (std only: the benchmark uses it too).
//! - [`server`]: [`Server`], a redis-server process owned by a test, and waiting on conditions.
//! - [`tx`]: commands with text arguments, reply checks, and whole txu transactions.
//! - [`query`]: the same on a `redis` crate connection, and its replies as text or numbers.
//! - [`state`]: [`State`], what two servers holding the same data agree on.
//! - [`tasks`]: `TXU.TASKS` and `TXU.STATUS` replies, parsed and checked.
//! - [`mix`]: the transaction mix of tests/replication.rs and tests/persistence.rs.
#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod dump;
pub mod mix;
pub mod query;
pub mod resp;
pub mod server;
pub mod state;
pub mod tasks;
pub mod tx;

pub use query::{
    config_set, info_i64, int, lrange, query, query_line, text, txu_info, watch_tick_budget,
};
pub use resp::{
    array_items, bulk_body, encode_command, esc, fields, flat_array, parse_info, reply_len, show,
    RawConn,
};
pub use server::{
    read_file_bytes, rewrite_aof, wait_replica_synced, wait_until, Flavor, Server, ServerVersion,
};
pub use state::State;
pub use tx::*;
