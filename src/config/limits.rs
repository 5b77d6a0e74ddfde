//! Limits on what clients may store and the defaults of settings: the numbers the rest of the
//! node is configured with. Constants only; never reads flags, files or the environment.

/// Size limits on what clients may store, in bytes of UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 4 * 1024,
            max_value_bytes: 1024 * 1024,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Port used when neither `--port`, `KVSTORE_PORT` nor `PORT` is set.
pub const DEFAULT_PORT: u16 = 8080;

/// Largest `--max-value-bytes` accepted.
pub const MAX_VALUE_BYTES_LIMIT: usize = crate::store::command::MAX_VALUE_BYTES;

/// Largest `--max-key-bytes` accepted.
pub const MAX_KEY_BYTES_LIMIT: usize = crate::store::command::MAX_KEY_BYTES;

/// Longest node id: it travels in every vote request and AppendEntries, whose size bounds
/// count on it.
pub const MAX_NODE_ID_BYTES: usize = crate::raft::rpc::MAX_ID_BYTES;

/// Default `RAFT_HEARTBEAT_MS`.
pub const DEFAULT_HEARTBEAT_MS: u64 = 50;
/// Default `RAFT_ELECTION_TIMEOUT_MS`.
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 150;
