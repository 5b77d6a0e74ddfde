//! `kvstore backup --out FILE`: `GET /admin/snapshot` from the first endpoint that serves it,
//! streamed to `FILE.part` (a progress bar on stderr when it is a terminal), checked, synced and
//! renamed to `FILE`; then one summary line.
//!
//! The checks: the length of the body against `content-length`, the CRC-32 of all but its
//! last 4 bytes (the file's own checksum) against `x-kvstore-snapshot-crc32`, and the file decoded as a snapshot (`codec::snapshot`, which
//! checks its own CRC) whose index and term are the headers'. Anything wrong is a bad download
//! (exit 1) and `FILE.part` is removed; `FILE` is never left half written. It only reads from
//! the cluster.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::http::Method;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::client::Client;
use super::output::{print_json, server_message, CliError, Output};

/// The headers `GET /admin/snapshot` describes its body with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeaders {
    pub index: u64,
    pub term: u64,
    pub crc32: u32,
    pub length: u64,
}

/// The headers of a snapshot answer, or what is missing or malformed.
pub fn parse_headers(get: impl Fn(&str) -> Option<String>) -> Result<SnapshotHeaders, String> {
    let num = |name: &str| -> Result<u64, String> {
        let raw = get(name).ok_or_else(|| format!("no {name} header"))?;
        raw.trim()
            .parse()
            .map_err(|_| format!("{name} is not a number: {raw:?}"))
    };
    let raw = get("x-kvstore-snapshot-crc32").ok_or("no x-kvstore-snapshot-crc32 header")?;
    let crc32 = u32::from_str_radix(raw.trim(), 16)
        .ok()
        .filter(|_| raw.trim().len() == 8)
        .ok_or_else(|| format!("x-kvstore-snapshot-crc32 is not 8 hex digits: {raw:?}"))?;
    Ok(SnapshotHeaders {
        index: num("x-kvstore-snapshot-index")?,
        term: num("x-kvstore-snapshot-term")?,
        crc32,
        length: num("content-length")?,
    })
}

/// `FILE.part`, next to `FILE`.
fn part_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

fn bad(what: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("bad download: {what}"))
}

/// `kvstore backup --out FILE`.
pub async fn run(client: &Client, out: Output, file: &Path) -> Result<(), CliError> {
    let mut reply = client.send(Method::GET, "/admin/snapshot", None).await?;
    let status = reply.status();
    if !(200..300).contains(&status) {
        let body = reply.bytes().await?;
        let message = server_message(status, &body);
        if status == 404 && message.starts_with("no such route") {
            return Err(CliError::Failed(format!(
                "{} does not serve GET /admin/snapshot (a node without backups): {message}",
                reply.endpoint
            )));
        }
        if out == Output::Json {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                print_json(&v);
            }
        }
        return Err(CliError::from_status(status, &message));
    }
    let headers = parse_headers(|name| {
        reply
            .res
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
    .map_err(|e| bad(format!("{}: {e}", reply.endpoint)))?;
    let part = part_path(file);
    let saved = save(reply, client.timeout(), &part, file, headers).await;
    if saved.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    saved?;
    let crc = format!("{:08x}", headers.crc32);
    match out {
        Output::Json => print_json(&json!({
            "ok": true,
            "file": file.display().to_string(),
            "index": headers.index,
            "term": headers.term,
            "bytes": headers.length,
            "crc32": crc,
        })),
        Output::Text => println!(
            "backup: {}, index {}, term {}, {} bytes, crc32 {crc}",
            file.display(),
            headers.index,
            headers.term,
            headers.length
        ),
    }
    Ok(())
}

/// The progress bar: drawn on stderr only when it is a terminal.
fn progress(length: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "backup {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Stream the body to `part`, check it, sync it and rename it to `file`.
async fn save(
    reply: super::client::Reply,
    idle: Duration,
    part: &Path,
    file: &Path,
    want: SnapshotHeaders,
) -> Result<(), CliError> {
    let cannot = |what: &str, e: std::io::Error| {
        CliError::Failed(format!("cannot {what} {}: {e}", part.display()))
    };
    let mut f = std::fs::File::create(part).map_err(|e| cannot("create", e))?;
    // The whole body may take longer than one --timeout: each chunk must come within it.
    let mut body = reply.res.timeout(Duration::from_secs(7 * 24 * 3600));
    let bar = progress(want.length);
    // The header's CRC-32 covers all but the last 4 bytes (the file's own checksum): hash each
    // chunk but hold its last 4 bytes back until the next one comes.
    let mut crc = crc32fast::Hasher::new();
    let mut tail: Vec<u8> = Vec::with_capacity(4);
    let mut got: u64 = 0;
    loop {
        let chunk = match actix_web::rt::time::timeout(idle, body.next()).await {
            Err(_) => return Err(bad(format!("no data for {} s", idle.as_secs_f64()))),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(bad(e)),
            Ok(Some(Ok(chunk))) => chunk,
        };
        got += chunk.len() as u64;
        if got > want.length {
            return Err(bad(format!(
                "more than the {} bytes announced",
                want.length
            )));
        }
        tail.extend_from_slice(&chunk);
        let keep = tail.len().saturating_sub(4);
        crc.update(&tail[..keep]);
        tail.drain(..keep);
        f.write_all(&chunk).map_err(|e| cannot("write", e))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if got != want.length {
        return Err(bad(format!("{got} bytes of the {} announced", want.length)));
    }
    let crc = crc.finalize();
    if crc != want.crc32 {
        return Err(bad(format!(
            "crc32 {crc:08x}, the server announced {:08x}",
            want.crc32
        )));
    }
    f.sync_all().map_err(|e| cannot("sync", e))?;
    drop(f);
    let bytes = std::fs::read(part).map_err(|e| cannot("read back", e))?;
    let snap =
        crate::codec::snapshot::decode(&bytes).map_err(|e| bad(format!("not a snapshot: {e}")))?;
    if (snap.meta.index, snap.meta.term) != (want.index, want.term) {
        return Err(bad(format!(
            "the snapshot is of index {} term {}, the headers say index {} term {}",
            snap.meta.index, snap.meta.term, want.index, want.term
        )));
    }
    std::fs::rename(part, file).map_err(|e| {
        CliError::Failed(format!(
            "cannot rename {} to {}: {e}",
            part.display(),
            file.display()
        ))
    })?;
    // The rename itself is durable once the directory is synced.
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn headers(pairs: &[(&str, &str)]) -> Result<SnapshotHeaders, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_headers(|name| map.get(name).cloned())
    }

    #[test]
    fn the_contract_headers_are_parsed_and_checked() {
        let ok = [
            ("x-kvstore-snapshot-index", "42"),
            ("x-kvstore-snapshot-term", "3"),
            ("x-kvstore-snapshot-crc32", "00ab12ef"),
            ("content-length", "1234"),
        ];
        assert_eq!(
            headers(&ok).unwrap(),
            SnapshotHeaders {
                index: 42,
                term: 3,
                crc32: 0x00ab12ef,
                length: 1234
            }
        );
        let mut short_crc = ok;
        short_crc[2].1 = "ab12ef";
        assert!(headers(&short_crc).unwrap_err().contains("8 hex digits"));
        assert!(headers(&ok[1..])
            .unwrap_err()
            .contains("x-kvstore-snapshot-index"));
    }

    #[test]
    fn the_part_file_sits_next_to_the_file() {
        assert_eq!(
            part_path(Path::new("/tmp/kv.snap")),
            PathBuf::from("/tmp/kv.snap.part")
        );
    }
}
