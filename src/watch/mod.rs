//! Watch: the stream of committed changes that `GET /watch` serves.
//!
//! - this file: [`Change`], one committed change of one key as the store applied it. Pure: plain
//!   data, no I/O, no clock, no actors.
//! - [`hub`]: the recent history of changes, the registry of watchers, fan-out, catch-up, the
//!   slow-watcher and 410 rules. Pure.
//! - [`actor`]: the `WatchActor`, which owns the hub and the channels to the HTTP streams, fed
//!   by the `StoreActor` after every applied batch.
//!
//! This module never changes the map and never talks to Raft: it only relays what the store
//! applied, in the order it was applied.

pub mod actor;
pub mod hub;

use std::sync::Arc;

/// One committed change of one key: a set (with its new value) or a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The log index the change was applied at (the key's new `modIndex`).
    pub index: u64,
    pub key: Arc<str>,
    /// The new value; `None` for a delete.
    pub value: Option<Arc<str>>,
    /// The index the key was created at (its `createIndex`); for a delete, the index the
    /// deleted key had been created at.
    pub create_index: u64,
}
