//! One client operation as observed, and its JSON-lines form.
//!
//! The JSON shape is porcupine's `Operation`: `{"clientId", "input", "call", "output",
//! "return"}` with times in nanoseconds. An operation whose outcome is unknown (timeout, lost
//! connection, "may or may not have been applied") has `"output": {"unknown": true}` and a
//! return time of `i64::MAX`: it may have taken effect at any time after its call. One that
//! failed for certain (refused connection, an error that says the write was not applied) has
//! `"output": {"failed": true}` and is left out of the check.

use serde::{Deserialize, Serialize};

/// What the client asked.
///
/// A set may carry preconditions (compare-and-set): `ifModIndex` (the key's modIndex must be
/// it; 0: the key must not exist) and/or `ifValue` (the current value must equal it); a delete
/// may carry `ifModIndex`. Without them the JSON shape is the one of plain operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum OpInput {
    Set {
        key: String,
        value: String,
        #[serde(
            rename = "ifModIndex",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        if_mod_index: Option<u64>,
        #[serde(rename = "ifValue", default, skip_serializing_if = "Option::is_none")]
        if_value: Option<String>,
    },
    Get {
        key: String,
    },
    Delete {
        key: String,
        #[serde(
            rename = "ifModIndex",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        if_mod_index: Option<u64>,
    },
}

impl OpInput {
    /// A plain set (no precondition).
    pub fn set(key: impl Into<String>, value: impl Into<String>) -> Self {
        OpInput::Set {
            key: key.into(),
            value: value.into(),
            if_mod_index: None,
            if_value: None,
        }
    }

    /// A plain delete (no precondition).
    pub fn delete(key: impl Into<String>) -> Self {
        OpInput::Delete {
            key: key.into(),
            if_mod_index: None,
        }
    }

    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            OpInput::Set { key, .. } | OpInput::Get { key } | OpInput::Delete { key, .. } => key,
        }
    }

    /// A set or a delete.
    pub fn is_write(&self) -> bool {
        !matches!(self, OpInput::Get { .. })
    }
}

/// What the client saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpOutput {
    /// The outcome is unknown: the operation may or may not have taken effect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
    /// The operation failed for certain: it took no effect (the connection was refused, or the
    /// node answered an error that says so). The checker leaves it out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// For a get: the value read (`None`: key not found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// For a delete: whether a key was deleted (`false`: not found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// For a write that succeeded: the log index it was applied at (the key's new modIndex);
    /// for a get that found the key: its `modIndex`. `None` when the server did not say (a
    /// server without revisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// A compare-and-set whose precondition failed (409): the key's modIndex the server
    /// reported (0: the key did not exist). Nothing changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precondition_failed: Option<u64>,
    /// How many times the write was sent again (same `Idempotency-Key`) after an attempt whose
    /// outcome was unknown. It is still one operation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl OpOutput {
    /// An unknown outcome.
    pub fn unknown() -> Self {
        OpOutput {
            unknown: true,
            ..OpOutput::default()
        }
    }

    /// A set that was acknowledged.
    pub fn stored() -> Self {
        OpOutput::default()
    }

    /// A write acknowledged as applied at log `index`.
    pub fn stored_at(index: u64) -> Self {
        OpOutput {
            index: Some(index),
            ..OpOutput::default()
        }
    }

    /// A get that read `value` (`None`: not found).
    pub fn read(value: Option<String>) -> Self {
        OpOutput {
            value,
            ..OpOutput::default()
        }
    }

    /// A get that read `value` with its `modIndex`.
    pub fn read_at(value: &str, mod_index: u64) -> Self {
        OpOutput {
            value: Some(value.to_owned()),
            index: Some(mod_index),
            ..OpOutput::default()
        }
    }

    /// An operation that failed for certain and took no effect.
    pub fn failed() -> Self {
        OpOutput {
            failed: true,
            ..OpOutput::default()
        }
    }

    /// A delete that found (`true`) or did not find the key.
    pub fn deleted(found: bool) -> Self {
        OpOutput {
            deleted: Some(found),
            ..OpOutput::default()
        }
    }

    /// A compare-and-set refused (409) while the key's modIndex was `mod_index`.
    pub fn conflict(mod_index: u64) -> Self {
        OpOutput {
            precondition_failed: Some(mod_index),
            ..OpOutput::default()
        }
    }
}

/// One operation of one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Op {
    pub client_id: u64,
    pub input: OpInput,
    /// Nanoseconds since the start of the run.
    pub call: i64,
    pub output: OpOutput,
    /// Nanoseconds since the start of the run; `i64::MAX` when the outcome is unknown.
    #[serde(rename = "return")]
    pub ret: i64,
}

impl Op {
    /// The operation succeeded: its outcome is known and it did not fail.
    pub fn succeeded(&self) -> bool {
        !self.output.unknown && !self.output.failed
    }
}

/// Serialize ops as JSON lines.
pub fn to_json_lines(ops: &[Op]) -> String {
    let mut out = String::new();
    for op in ops {
        // Plain data: serializing cannot fail.
        out.push_str(&serde_json::to_string(op).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Parse JSON lines (blank lines are skipped); the error names the line.
pub fn from_json_lines(text: &str) -> Result<Vec<Op>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_round_trip_in_porcupine_shape() {
        let ops = vec![
            Op {
                client_id: 1,
                input: OpInput::set("k", "v"),
                call: 5,
                output: OpOutput::stored(),
                ret: 9,
            },
            Op {
                client_id: 2,
                input: OpInput::Get { key: "k".into() },
                call: 6,
                output: OpOutput::unknown(),
                ret: i64::MAX,
            },
        ];
        let text = to_json_lines(&ops);
        assert!(text.starts_with(
            r#"{"clientId":1,"input":{"op":"set","key":"k","value":"v"},"call":5,"output":{},"return":9}"#
        ));
        assert_eq!(from_json_lines(&text).unwrap(), ops);
        assert!(from_json_lines("{\n").unwrap_err().starts_with("line 1"));
    }

    #[test]
    fn compare_and_set_ops_round_trip_with_their_preconditions_and_outcomes() {
        let ops = vec![
            Op {
                client_id: 3,
                input: OpInput::Set {
                    key: "c".into(),
                    value: "2".into(),
                    if_mod_index: Some(7),
                    if_value: Some("1".into()),
                },
                call: 1,
                output: OpOutput {
                    retries: 2,
                    ..OpOutput::stored_at(9)
                },
                ret: 4,
            },
            Op {
                client_id: 3,
                input: OpInput::Delete {
                    key: "c".into(),
                    if_mod_index: Some(3),
                },
                call: 5,
                output: OpOutput::conflict(9),
                ret: 6,
            },
        ];
        let text = to_json_lines(&ops);
        assert!(text.starts_with(
            r#"{"clientId":3,"input":{"op":"set","key":"c","value":"2","ifModIndex":7,"ifValue":"1"},"call":1,"output":{"index":9,"retries":2},"return":4}"#
        ), "{text}");
        assert!(
            text.contains(r#""output":{"preconditionFailed":9}"#),
            "{text}"
        );
        assert_eq!(from_json_lines(&text).unwrap(), ops);
    }
}
