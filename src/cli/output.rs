//! What the client prints and the exit status it ends with: [`CliError`] (one variant per exit
//! status), the mapping of an HTTP status to it, and `--output text|json`.
//!
//! Errors go to stderr as `error: <message>`; answers to stdout. This module decides nothing
//! about what is an error: the commands do.

use serde_json::Value;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Lines and tables for people.
    Text,
    /// One line of JSON per answer (the server's, or the client's own for `status`).
    Json,
}

/// Why a command failed; each variant is one exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// Not found, a failed precondition (409), refused (401/403), a bad download, a server
    /// error: exit 1.
    Failed(String),
    /// The command or its input is wrong (bad arguments, 400, 413): exit 2.
    Usage(String),
    /// No endpoint answered, no leader, timeouts: exit 3.
    Unavailable(String),
}

impl CliError {
    /// The exit status: 1 failed, 2 usage, 3 unavailable.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unavailable(_) => 3,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CliError::Failed(m) | CliError::Usage(m) | CliError::Unavailable(m) => m,
        }
    }

    /// What an answer with `status` (not a success) and the server's `message` means to a
    /// script. 503 and the other 5xx that say "try later" are unavailable only once every
    /// endpoint said so (the client moves on before that).
    pub fn from_status(status: u16, message: &str) -> CliError {
        match status {
            400 | 405 | 413 | 414 => CliError::Usage(message.to_owned()),
            401 | 403 => CliError::Failed(format!(
                "refused ({status}): {message} (give a token with --token or KVSTORE_TOKEN)"
            )),
            502..=504 => CliError::Unavailable(message.to_owned()),
            _ => CliError::Failed(message.to_owned()),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CliError {}

/// `error: <message>` on stderr.
pub fn print_error(e: &CliError, _output: Output) {
    eprintln!("error: {}", e.message());
}

/// `value` as one line of JSON on stdout.
pub fn print_json(value: &Value) {
    println!("{value}");
}

/// The `message` of an error body `{"ok":false,"message":..}`, or the body itself (cut short)
/// when it is not one, or the status's reason when it is empty.
pub fn server_message(status: u16, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            return m.to_owned();
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}

/// Rows as a table: a header line and columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(&mut header.iter().copied());
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_exit_codes() {
        for (status, code) in [
            (400, 2),
            (413, 2),
            (401, 1),
            (403, 1),
            (404, 1),
            (409, 1),
            (500, 1),
            (503, 3),
        ] {
            assert_eq!(CliError::from_status(status, "m").code(), code, "{status}");
        }
        assert!(CliError::from_status(401, "authentication required")
            .message()
            .contains("--token"));
    }

    #[test]
    fn server_messages_come_from_the_error_body_or_the_raw_text() {
        assert_eq!(
            server_message(404, br#"{"ok":false,"message":"key not found"}"#),
            "key not found"
        );
        assert_eq!(server_message(502, b"bad gateway"), "HTTP 502: bad gateway");
        assert_eq!(server_message(500, b""), "HTTP 500");
    }

    #[test]
    fn tables_pad_columns_to_the_widest_cell() {
        let t = table(
            &["ID", "STATE", "TERM"],
            &[
                vec!["n1".into(), "leader".into(), "3".into()],
                vec!["node-22".into(), "down".into(), "-".into()],
            ],
        );
        assert_eq!(
            t,
            "ID       STATE   TERM\nn1       leader  3\nnode-22  down    -\n"
        );
    }
}
