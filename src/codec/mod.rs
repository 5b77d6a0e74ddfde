//! Byte formats of what a node stores: WAL records ([`wal`]) and snapshot files
//! ([`snapshot`]). Pure: they turn values into bytes and back and check every byte; opening,
//! writing and syncing files is [`crate::storage`]'s job.

pub mod snapshot;
pub mod wal;
