//! Byte formats: what a node stores, WAL records ([`wal`]) and snapshot files ([`snapshot`]),
//! and what it sends its peers ([`peer`]: the Raft RPC bodies, JSON or binary). Pure: they
//! turn values into bytes and back and check every byte; opening, writing and syncing files is
//! [`crate::storage`]'s job, sending bytes [`crate::transport`]'s.

pub mod peer;
pub mod snapshot;
pub mod wal;
