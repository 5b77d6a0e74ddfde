//! `GET /keys?prefix=p&limit=100&after=k`: a page of keys in byte order, with their values and
//! modIndex, read linearizably by default (ReadIndex, then the store's listing at that index)
//! or with `consistency=stale` (and `minIndex`) from this node's map.
//!
//! It owns no state and never touches the map directly: the listing is the `StoreActor`'s
//! (`ListAt`), bounded in keys ([`KEYS_MAX_LIMIT`]) and bytes ([`KEYS_MAX_BYTES`]); routing to
//! the leader and the waits are `kv`'s.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::errors::ApiError;
use super::forward::Forwarder;
use super::kv::{index_header, linearizable, parse_index, stale, stale_read, Answer, Routed};
use super::AppState;
use crate::store::actor::{list_at, ListQuery, ListRead};

/// A `GET /keys` page stops once its keys and values reach this many bytes (after at least one
/// key).
pub const KEYS_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The largest `limit` of `GET /keys`.
pub const KEYS_MAX_LIMIT: usize = 1000;

/// The `limit` of `GET /keys` when none is given.
const KEYS_DEFAULT_LIMIT: usize = 100;

/// Query of `GET /keys`.
#[derive(Debug, Deserialize)]
pub struct KeysQuery {
    pub prefix: Option<String>,
    pub after: Option<String>,
    pub limit: Option<String>,
    pub consistency: Option<String>,
    #[serde(rename = "minIndex")]
    pub min_index: Option<String>,
}

/// One key of a `GET /keys` page.
#[derive(Debug, Serialize)]
struct KeyItem<'a> {
    key: &'a str,
    value: &'a str,
    #[serde(rename = "modIndex")]
    mod_index: u64,
}

/// `{"ok":true,"keys":[...],"more":true,"next":"k"}`.
#[derive(Debug, Serialize)]
struct KeysReply<'a> {
    ok: bool,
    keys: Vec<KeyItem<'a>>,
    more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<&'a str>,
}

/// `GET /keys?prefix=p&limit=100&after=k[&consistency=stale][&minIndex=N]`.
pub async fn keys(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    query: web::Query<KeysQuery>,
) -> Result<HttpResponse, ApiError> {
    let stale = stale(query.consistency.as_deref())?;
    let min_index = parse_index("minIndex", query.min_index.as_deref())?;
    let limit = match query.limit.as_deref() {
        None => KEYS_DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=KEYS_MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::InvalidQuery(format!(
                    "limit must be an integer from 1 to {KEYS_MAX_LIMIT}, not {l:?}"
                )))
            }
        },
    };
    let prefix = query.prefix.clone().unwrap_or_default();
    for k in [Some(&prefix), query.after.as_ref()].into_iter().flatten() {
        if k.len() > state.limits.max_key_bytes {
            return Err(ApiError::KeyTooLarge {
                len: k.len(),
                limit: state.limits.max_key_bytes,
            });
        }
    }
    let list = ListQuery {
        prefix,
        after: query.after.clone(),
        limit,
        max_bytes: KEYS_MAX_BYTES,
    };
    let read: ListRead = if stale {
        let n = min_index.unwrap_or(0);
        stale_read(&state, n, list_at(&state.store, list, n)).await?
    } else {
        let (l, m) = (limit.to_string(), min_index.map(|m| m.to_string()));
        let mut q = vec![("prefix", list.prefix.as_str()), ("limit", l.as_str())];
        if let Some(a) = &list.after {
            q.push(("after", a.as_str()));
        }
        if let Some(m) = &m {
            q.push(("minIndex", m.as_str()));
        }
        let at = Routed::new(&state, &fwd, &req, Method::GET, "/keys")
            .query(&q)
            .idempotent();
        let store = &state.store;
        match linearizable(&at, min_index.unwrap_or(0), |index| {
            list_at(store, list.clone(), index)
        })
        .await?
        {
            Answer::Here(v) => v,
            Answer::Forwarded(res) => return Ok(res),
        }
    };
    let ListRead { listing, applied } = read;
    let next = listing
        .more
        .then(|| listing.keys.last().map(|(k, _, _)| &**k))
        .flatten();
    let mut res = HttpResponse::Ok().json(KeysReply {
        ok: true,
        keys: listing
            .keys
            .iter()
            .map(|(k, v, m)| KeyItem {
                key: k,
                value: v,
                mod_index: *m,
            })
            .collect(),
        more: listing.more,
        next,
    });
    index_header(&mut res, applied);
    Ok(res)
}
