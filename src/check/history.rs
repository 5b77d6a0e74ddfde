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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum OpInput {
    Set { key: String, value: String },
    Get { key: String },
    Delete { key: String },
}

impl OpInput {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            OpInput::Set { key, .. } | OpInput::Get { key } | OpInput::Delete { key } => key,
        }
    }
}

/// What the client saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl OpOutput {
    /// An unknown outcome.
    pub fn unknown() -> Self {
        OpOutput {
            unknown: true,
            failed: false,
            value: None,
            deleted: None,
        }
    }

    /// A set that was acknowledged.
    pub fn stored() -> Self {
        OpOutput {
            unknown: false,
            failed: false,
            value: None,
            deleted: None,
        }
    }

    /// A get that read `value` (`None`: not found).
    pub fn read(value: Option<String>) -> Self {
        OpOutput {
            unknown: false,
            failed: false,
            value,
            deleted: None,
        }
    }

    /// An operation that failed for certain and took no effect.
    pub fn failed() -> Self {
        OpOutput {
            unknown: false,
            failed: true,
            value: None,
            deleted: None,
        }
    }

    /// A delete that found (`true`) or did not find the key.
    pub fn deleted(found: bool) -> Self {
        OpOutput {
            unknown: false,
            failed: false,
            value: None,
            deleted: Some(found),
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
                input: OpInput::Set {
                    key: "k".into(),
                    value: "v".into(),
                },
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
}
