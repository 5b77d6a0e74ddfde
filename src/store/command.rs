//! The commands that change the store, and what applying one produced.
//!
//! A [`Command`] is the payload that later travels through the Raft log, so it is plain data with
//! a stable serde shape. It never holds anything that cannot be sent over the wire or written to
//! disk.

use serde::{Deserialize, Serialize};

/// The largest key any node accepts (`--max-key-bytes` is at most this), in bytes of UTF-8.
/// Decoders of stored and received data use it: a longer key was never written by a node.
pub const MAX_KEY_BYTES: usize = 1024 * 1024;

/// The largest value any node accepts (`--max-value-bytes` is at most this), in bytes.
pub const MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;

/// A change to the key-value map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Command {
    /// Store `value` under `key`, replacing any previous value.
    Set { key: String, value: String },
    /// Remove `key`. Removing a missing key is not an error of the log: the outcome says so.
    Delete { key: String },
}

/// What applying a [`Command`] did. Deterministic: every replica that applies the same command
/// at the same index gets the same outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandOutcome {
    /// A `Set` stored its value.
    Stored,
    /// A `Delete` removed an existing key.
    Deleted,
    /// A `Delete` found no such key; the map is unchanged.
    NotFound,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_serde_shape_is_stable() {
        let set = Command::Set {
            key: "k".into(),
            value: "v".into(),
        };
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"{"op":"set","key":"k","value":"v"}"#
        );
        let del = Command::Delete { key: "k".into() };
        assert_eq!(
            serde_json::to_string(&del).unwrap(),
            r#"{"op":"delete","key":"k"}"#
        );
        let back: Command = serde_json::from_str(r#"{"op":"delete","key":"k"}"#).unwrap();
        assert_eq!(back, del);
    }
}
