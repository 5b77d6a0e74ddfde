//! The key-value state machine and the actor that owns it.
//!
//! - [`command`]: the replicated payload ([`Command`]) and what applying it produced.
//! - [`state`]: [`KvState`], the map plus the index of the last applied command. Pure: no I/O,
//!   no clock, no actors.
//! - [`idempotency`]: [`IdempotencyTable`](idempotency::IdempotencyTable), the first outcomes
//!   of writes with an `Idempotency-Key`, expired by time carried in the log. Pure.
//! - [`actor`]: [`StoreActor`](actor::StoreActor), the one owner of a `KvState` at run time;
//!   every read and write of the map is a message to it. Writes arrive only as
//!   [`Committed`](actor::Committed) values (the caller turns its committed log entries into
//!   them), or as a whole snapshot installed from the leader; it hands out O(1) snapshot views
//!   (encoded and written by the caller, off its thread) and never writes files.
//!
//! This module must never know about HTTP or Raft: it applies commands in the order it is given
//! them and answers reads.

pub mod actor;
pub mod command;
pub mod idempotency;
pub mod state;

// Not the actor's items: this module is pure (README's module table), so they are imported
// from `store::actor`, which is a shell.
pub use command::{Command, CommandOutcome, Effect, Stamp};

/// Position of a committed command in the order the store applies them (the same numbers as
/// the Raft log's indexes, which the store does not need to know).
pub type LogIndex = u64;

/// The term a committed command was made in (only reported back, never interpreted here).
pub type Term = u64;
pub use state::{KvState, StateError};
