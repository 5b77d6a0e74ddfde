//! `GET /admin/snapshot`: a backup of the whole map, as of a committed index, in the snapshot
//! file format (`codec::snapshot`, v2: the bytes `kvstore verify` and `kvstore restore` read),
//! and `GET /admin/read-index`, the ReadIndex round a follower asks its leader for.
//!
//! The snapshot is linearizable: a ReadIndex round first (on the leader; a follower asks the
//! leader's `/admin/read-index`, forwarded like any client request), then this node waits
//! until its store has applied that index and takes a frozen view of the map (an O(1) clone,
//! `TakeSnapshot`), which is at or after it. The configuration in force at the view's index
//! comes from the `RaftActor` (`ConfigurationAt`). Encoding and the CRC run on a blocking
//! thread; the answer carries `x-kvstore-snapshot-index`, `-term`, `-crc32` (CRC-32 of the
//! body but its last 4 bytes, 8 lowercase hex digits: see [`X_SNAPSHOT_CRC32`]) and `content-length`, and the body goes out in
//! [`CHUNK_BYTES`] chunks.
//!
//! Limit: the encoded snapshot is held in memory while it is sent (about the size of the map's
//! keys and values, on top of the map itself); the whole map is in memory anyway. So at most
//! [`MAX_CONCURRENT_BACKUPS`] are under way on a node at once ([`BackupSlots`]: from the
//! request until its body is sent or dropped); one more is refused with a 503 (a client that
//! opens many and never reads would otherwise hold a copy of the map for each).
//!
//! Handlers only ask actors and map answers to HTTP; they own no state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::Method;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tokio::time::timeout_at;

use super::errors::ApiError;
use super::forward::Forwarder;
use super::kv::{actor_gone, Answer, Routed};
use super::AppState;
use crate::raft::actor::{ClientReadIndex, ConfigurationAt};
use crate::raft::LogIndex;
use crate::store::actor::{read_at, TakeSnapshot};

/// The snapshot's log index.
pub const X_SNAPSHOT_INDEX: &str = "x-kvstore-snapshot-index";
/// The term of the entry at that index.
pub const X_SNAPSHOT_TERM: &str = "x-kvstore-snapshot-term";
/// CRC-32 (crc32fast) of the body without its last 4 bytes (which hold the file's own CRC-32 of
/// what follows its magic: the CRC of a whole file would depend on its length alone), 8
/// lowercase hex digits.
pub const X_SNAPSHOT_CRC32: &str = "x-kvstore-snapshot-crc32";

/// The body is sent in chunks of this size.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Most backups under way on one node at once (each holds an encoded copy of the map).
pub const MAX_CONCURRENT_BACKUPS: usize = 2;

/// How many backups are under way on a node (shared by its workers: clones count together).
#[derive(Debug, Clone, Default)]
pub struct BackupSlots(Arc<AtomicUsize>);

/// One backup under way; its slot is free again when this is dropped.
#[derive(Debug)]
pub struct BackupSlot(Arc<AtomicUsize>);

impl BackupSlots {
    /// A slot, or `None` when [`MAX_CONCURRENT_BACKUPS`] are under way.
    pub fn try_take(&self) -> Option<BackupSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONCURRENT_BACKUPS).then_some(n + 1)
            })
            .ok()
            .map(|_| BackupSlot(Arc::clone(&self.0)))
    }

    /// Backups under way now.
    pub fn in_use(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for BackupSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `{"ok":true,"readIndex":N}`: the answer of `GET /admin/read-index`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadIndexReply {
    pub ok: bool,
    pub read_index: LogIndex,
}

fn read_timeout(secs: f64) -> ApiError {
    ApiError::Unavailable(format!(
        "no quorum: leadership could not be confirmed within {secs} s"
    ))
}

/// A ReadIndex round on the leader: here, or by asking the leader's `/admin/read-index`.
async fn read_index(at: &Routed<'_>) -> Result<Answer<LogIndex>, ApiError> {
    let secs = at.timeout_secs();
    at.run(|| async {
        match timeout_at(at.deadline, at.state.raft.send(ClientReadIndex)).await {
            Err(_) => Err(read_timeout(secs)),
            Ok(Err(e)) => Err(actor_gone("raft", e)),
            Ok(Ok(r)) => Ok(r),
        }
    })
    .await
}

/// `GET /admin/read-index`: a committed index every later linearizable read may be served at
/// (a ReadIndex round on the leader; forwarded there from a follower).
pub async fn show_read_index(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let at = Routed::new(&state, &fwd, &req, Method::GET, "/admin/read-index").idempotent();
    match read_index(&at).await? {
        Answer::Here(index) => Ok(HttpResponse::Ok().json(ReadIndexReply {
            ok: true,
            read_index: index,
        })),
        Answer::Forwarded(res) => Ok(res),
    }
}

/// `GET /admin/snapshot`: see the module header.
pub async fn snapshot(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let slot = state.backups.try_take().ok_or_else(|| {
        ApiError::Unavailable(format!(
            "busy: {MAX_CONCURRENT_BACKUPS} backups are under way on this node; try again \
             later or ask another node"
        ))
    })?;
    let at = Routed::new(&state, &fwd, &req, Method::GET, "/admin/read-index").idempotent();
    let secs = at.timeout_secs();
    let index = match read_index(&at).await? {
        Answer::Here(index) => index,
        Answer::Forwarded(res) if res.status().is_success() => {
            let body = actix_web::body::to_bytes(res.into_body())
                .await
                .map_err(|_| ApiError::Internal("cannot read the leader's answer".into()))?;
            serde_json::from_slice::<ReadIndexReply>(&body)
                .map_err(|e| {
                    ApiError::Unavailable(format!(
                        "no leader: the leader's read index did not parse ({e})"
                    ))
                })?
                .read_index
        }
        // The leader's refusal (no quorum, a token without the admin role ...), as it is.
        Answer::Forwarded(res) => return Ok(res),
    };
    // Wait until this node's store has applied the read index (an empty key is never
    // stored: the read only waits), then take the view: at or after the read index.
    let store = &state.store;
    match timeout_at(at.deadline, read_at(store, String::new(), index)).await {
        Err(_) => {
            return Err(ApiError::Unavailable(format!(
                "not ready: this node did not apply up to index {index} within {secs} s"
            )))
        }
        Ok(Err(e)) => return Err(actor_gone("store", e)),
        Ok(Ok(Err(_))) => return Err(ApiError::Internal("store stopped".into())),
        Ok(Ok(Ok(_))) => {}
    }
    let view = store
        .send(TakeSnapshot)
        .await
        .map_err(|e| actor_gone("store", e))?;
    let configuration = state
        .raft
        .send(ConfigurationAt(view.meta.index))
        .await
        .map_err(|e| actor_gone("raft", e))?;
    let meta = view.meta;
    let encoded = web::block(move || {
        let bytes = crate::codec::snapshot::encode_state(meta, Some(&configuration), &view.state);
        drop(view);
        // The file ends with its own CRC-32 of what follows the magic; the CRC-32 of a whole
        // file would then depend on its length alone, so the header covers all but that.
        let crc = crc32fast::hash(&bytes[..bytes.len().saturating_sub(4)]);
        (Bytes::from(bytes), crc)
    })
    .await;
    let (bytes, crc) = encoded.map_err(|e| ApiError::Internal(format!("encoding failed: {e}")))?;
    let len = bytes.len() as u64;
    tracing::info!(
        index = meta.index,
        term = meta.term,
        bytes = len,
        read_index = index,
        "backup snapshot encoded; sending it"
    );
    // The slot goes with the body: free once it is sent, or dropped with its connection.
    let chunks = (0..bytes.len()).step_by(CHUNK_BYTES).map(move |at| {
        let _held = &slot;
        Ok::<_, std::io::Error>(bytes.slice(at..(at + CHUNK_BYTES).min(bytes.len())))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((X_SNAPSHOT_INDEX, meta.index.to_string()))
        .insert_header((X_SNAPSHOT_TERM, meta.term.to_string()))
        .insert_header((X_SNAPSHOT_CRC32, format!("{crc:08x}")))
        .body(SizedStream::new(len, futures_util::stream::iter(chunks))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_two_backups_at_once_and_a_slot_is_freed_when_dropped() {
        let slots = BackupSlots::default();
        let other_worker = slots.clone();
        let a = slots.try_take().expect("first");
        let b = other_worker.try_take().expect("second");
        assert_eq!(slots.in_use(), MAX_CONCURRENT_BACKUPS);
        assert!(slots.try_take().is_none(), "a third is refused");
        drop(a);
        let c = other_worker
            .try_take()
            .expect("a freed slot is taken again");
        drop((b, c));
        assert_eq!(slots.in_use(), 0);
    }
}
