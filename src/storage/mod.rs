//! Durable storage of a node: the write-ahead log of Raft hard state and entries ([`wal`]).
//!
//! This module reads and writes files; it never decides what to persist or when: the Raft
//! actor does, following the core's outputs (persist before send).

pub mod wal;

pub use wal::{Record, Recovered, Wal, WalError};
