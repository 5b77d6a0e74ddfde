//! Durable storage of a node: the write-ahead log of Raft hard state and entries ([`wal`]) and
//! snapshot files of the key-value map ([`snapshot`]); who owns the data directory
//! ([`identity`]: the recorded cluster and node ids, the lock).
//!
//! This module reads and writes files; it never decides what to persist or when: the Raft
//! actor does, following the core's outputs (persist before send). [`writer`] runs the log on
//! its own thread; snapshot files are written off the actors' threads by the Raft actor.

pub mod dirs;
pub mod failpoint;
pub mod identity;
pub mod snapshot;
pub mod wal;
pub mod writer;

pub use wal::{Record, Recovered, Scan, SegmentReport, Wal, WalError, WalHandoff};
pub use writer::{DiskLog, LogStore, MemoryLog, WriteFailed};
