//! The commands that change the store, and what applying one produced.
//!
//! A [`Command`] is the payload that later travels through the Raft log, so it is plain data with
//! a stable serde shape. It never holds anything that cannot be sent over the wire or written to
//! disk. The fields added by issue #15 (preconditions, the idempotency [`Stamp`]) are left out
//! of the JSON when absent, so an old command's bytes are unchanged (peers and the WAL).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The largest key any node accepts (`--max-key-bytes` is at most this), in bytes of UTF-8.
/// Decoders of stored and received data use it: a longer key was never written by a node.
pub const MAX_KEY_BYTES: usize = 1024 * 1024;

/// The largest value any node accepts (`--max-value-bytes` is at most this), in bytes.
pub const MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;

/// The longest `Idempotency-Key` (printable ASCII, 1 to this many bytes).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

/// A change to the key-value map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Command {
    /// Store `value` under `key`, replacing any previous value, if the preconditions hold.
    /// The value is shared, not copied, by the log entry, the WAL and peer encoders and the
    /// map (`Arc<str>`: its JSON is the same string).
    Set {
        key: String,
        value: Arc<str>,
        /// The key's modIndex must be this (0: the key must not exist).
        #[serde(
            default,
            rename = "ifModIndex",
            skip_serializing_if = "Option::is_none"
        )]
        if_mod_index: Option<u64>,
        /// The key's value must be this (a missing key never matches).
        #[serde(default, rename = "ifValue", skip_serializing_if = "Option::is_none")]
        if_value: Option<String>,
        /// Exactly-once: the client's idempotency key and the leader's clock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stamp: Option<Stamp>,
    },
    /// Remove `key` if the precondition holds. Removing a missing key is not an error of the
    /// log: the outcome says so.
    Delete {
        key: String,
        #[serde(
            default,
            rename = "ifModIndex",
            skip_serializing_if = "Option::is_none"
        )]
        if_mod_index: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stamp: Option<Stamp>,
    },
}

/// The idempotency key a write carries, stamped by the leader's handler with its wall-clock
/// time and the end of the window the key is remembered for (both ms since the Unix epoch).
/// The state machine's clock is the largest `now_ms` it has seen, so every replica expires the
/// same keys whatever its own settings or clock; a key's window (`expires_ms - now_ms`) counts
/// from that clock (a leader whose clock lags behind an earlier one's still gets its window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub id: String,
    #[serde(rename = "nowMs")]
    pub now_ms: u64,
    #[serde(rename = "expiresMs")]
    pub expires_ms: u64,
}

impl Command {
    /// A plain set (no precondition, no idempotency key): the original command.
    pub fn set(key: impl Into<String>, value: impl Into<Arc<str>>) -> Self {
        Command::Set {
            key: key.into(),
            value: value.into(),
            if_mod_index: None,
            if_value: None,
            stamp: None,
        }
    }

    /// A plain delete: the original command.
    pub fn delete(key: impl Into<String>) -> Self {
        Command::Delete {
            key: key.into(),
            if_mod_index: None,
            stamp: None,
        }
    }

    /// The key it changes.
    pub fn key(&self) -> &str {
        match self {
            Command::Set { key, .. } | Command::Delete { key, .. } => key,
        }
    }

    /// Its idempotency stamp, if any.
    pub fn stamp(&self) -> Option<&Stamp> {
        match self {
            Command::Set { stamp, .. } | Command::Delete { stamp, .. } => stamp.as_ref(),
        }
    }

    /// Bytes of strings it carries (key, value, ifValue, idempotency key), for size bounds.
    pub fn payload_bytes(&self) -> usize {
        let stamp = self.stamp().map_or(0, |s| s.id.len() + 16);
        stamp
            + match self {
                Command::Set {
                    key,
                    value,
                    if_value,
                    ..
                } => key.len() + value.len() + if_value.as_ref().map_or(0, String::len),
                Command::Delete { key, .. } => key.len(),
            }
    }

    /// A fingerprint of the request (operation, key, value, preconditions; not the stamp):
    /// the same idempotency key with a different fingerprint is a different request.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut put = |tag: u8, bytes: &[u8]| {
            ctx.update(&[tag]);
            ctx.update(&(bytes.len() as u64).to_le_bytes());
            ctx.update(bytes);
        };
        match self {
            Command::Set {
                key,
                value,
                if_mod_index,
                if_value,
                ..
            } => {
                put(b's', key.as_bytes());
                put(b'v', value.as_bytes());
                if let Some(m) = if_mod_index {
                    put(b'm', &m.to_le_bytes());
                }
                if let Some(v) = if_value {
                    put(b'i', v.as_bytes());
                }
            }
            Command::Delete {
                key, if_mod_index, ..
            } => {
                put(b'd', key.as_bytes());
                if let Some(m) = if_mod_index {
                    put(b'm', &m.to_le_bytes());
                }
            }
        }
        let d = ctx.finish();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d.as_ref()[..16]);
        Fingerprint(out)
    }
}

/// The first 128 bits of a SHA-256 over a request's fields (see [`Command::fingerprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 16]);

/// What a write did to the map (what an idempotency key records and a retry answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A `Set` stored its value.
    Stored,
    /// A `Delete` removed an existing key.
    Deleted,
    /// A `Delete` found no such key; the map is unchanged.
    NotFound,
    /// A precondition did not hold; the map is unchanged. `mod_index`: the key's current
    /// modIndex (0 if it does not exist).
    PreconditionFailed { mod_index: u64 },
    /// The idempotency key was recorded with a different request: nothing applied, nothing
    /// recorded (never stored in the table).
    KeyReused,
}

/// What applying a [`Command`] did. Deterministic: every replica that applies the same command
/// at the same index gets the same outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The log index the write was applied at (for a replay: the first one's).
    pub index: u64,
    pub effect: Effect,
    /// A retry under an idempotency key already recorded: nothing was applied now; `index`
    /// and `effect` are the first write's.
    pub replayed: bool,
}

impl CommandOutcome {
    /// A write applied (or refused) at `index` now, not a replay.
    pub fn new(index: u64, effect: Effect) -> Self {
        CommandOutcome {
            index,
            effect,
            replayed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_serde_shape_is_stable() {
        let set = Command::set("k", "v");
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"{"op":"set","key":"k","value":"v"}"#
        );
        let del = Command::delete("k");
        assert_eq!(
            serde_json::to_string(&del).unwrap(),
            r#"{"op":"delete","key":"k"}"#
        );
        let back: Command = serde_json::from_str(r#"{"op":"delete","key":"k"}"#).unwrap();
        assert_eq!(back, del);
        let back: Command = serde_json::from_str(r#"{"op":"set","key":"k","value":"v"}"#).unwrap();
        assert_eq!(back, set);
    }

    #[test]
    fn new_fields_round_trip() {
        let set = Command::Set {
            key: "k".into(),
            value: "v".into(),
            if_mod_index: Some(0),
            if_value: Some("old".into()),
            stamp: Some(Stamp {
                id: "abc".into(),
                now_ms: 5,
                expires_ms: 10,
            }),
        };
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(
            json,
            r#"{"op":"set","key":"k","value":"v","ifModIndex":0,"ifValue":"old","stamp":{"id":"abc","nowMs":5,"expiresMs":10}}"#
        );
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), set);
    }

    #[test]
    fn fingerprints_tell_requests_apart_but_not_stamps() {
        let a = Command::set("k", "v");
        let mut b = a.clone();
        if let Command::Set { stamp, .. } = &mut b {
            *stamp = Some(Stamp {
                id: "x".into(),
                now_ms: 1,
                expires_ms: 2,
            });
        }
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), Command::set("k", "w").fingerprint());
        assert_ne!(a.fingerprint(), Command::set("kv", "").fingerprint());
        assert_ne!(
            Command::delete("k").fingerprint(),
            Command::Delete {
                key: "k".into(),
                if_mod_index: Some(0),
                stamp: None
            }
            .fingerprint()
        );
        assert_ne!(
            Command::delete("k").fingerprint(),
            Command::set("k", "").fingerprint()
        );
    }
}
