//! The web dashboard: `GET /dashboard`, one self-contained page (inline CSS and JS, nothing
//! fetched from elsewhere; `dashboard.html` beside this file), and `GET /dashboard/state`, the
//! one JSON document that page polls.
//!
//! A page served by one node cannot fetch the other nodes itself (browsers refuse cross-origin
//! requests, and member URLs may be peer listeners), so `/dashboard/state` gathers the cluster
//! on the server: this node's own status from its actors, and every other member's `/health`
//! and every member's `/metrics` over HTTP, all in parallel, each bounded in time
//! ([`FETCH_TIMEOUT`]) and size, plus the leader's view of each member's progress (its
//! `/cluster`). A member whose client URL cannot be reached (down, or only its peer URL is
//! known) is still described: `"down"` unless the leader heard from it lately.
//!
//! Read-only: it only reads status and sends GETs to the configuration's members (never to a
//! URL a request names), and it owns no state between requests (the page keeps the history).
//! With client tokens, `/dashboard` needs none (it holds no data) and `/dashboard/state` needs
//! the read role; the caller's `Authorization` header travels along to `/metrics` and `/cluster`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::Value;

use super::errors::ApiError;
use super::health::{Health, StoreHealth};
use super::kv::actor_gone;
use super::AppState;
use crate::raft::actor::{GetStatus, NodeStatus};
use crate::raft::MemberRole;
use crate::store::actor::Summary;

/// The page, as served.
pub const PAGE: &str = include_str!("dashboard.html");

/// Most members described (the configuration holds at most as many).
pub const MAX_MEMBERS: usize = crate::raft::core::MAX_MEMBERS;

/// How long one fetch of `/dashboard/state` may take for each member (connect and answer).
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(300);

/// Largest `/health` answer read from a member.
pub const MAX_HEALTH_BYTES: usize = 64 * 1024;
/// Largest `/metrics` answer read from a member.
pub const MAX_METRICS_BYTES: usize = 2 * 1024 * 1024;
/// Largest `/cluster` answer read from the leader.
pub const MAX_CLUSTER_BYTES: usize = 256 * 1024;

/// A member the leader heard from this recently (ms) counts as up even when its client URL
/// cannot be reached from here (e.g. only its peer listener is known).
pub const RECENT_CONTACT_MS: u64 = 1500;

/// Most distinct histogram bounds kept from one `/metrics` body.
const MAX_BUCKETS: usize = 64;

/// The routes that are not client traffic (probes, scrapes, this dashboard, Raft): left out of
/// the request rate and latency.
const NOT_CLIENT_ROUTES: &[&str] = &[
    "/health",
    "/metrics",
    "/livez",
    "/readyz",
    "/dashboard",
    "/dashboard/state",
];

/// Registers `/dashboard` and `/dashboard/state`; `tls` is what reaches `https://` members.
/// Called once per worker thread, so each thread has its own HTTP client.
pub fn routes(cfg: &mut web::ServiceConfig, tls: Option<&Arc<rustls::ClientConfig>>) {
    let fetcher = web::Data::new(Fetcher::new(tls));
    cfg.service(
        web::resource("/dashboard")
            .route(web::get().to(page))
            .route(web::head().to(page))
            .default_service(web::to(|| super::not_allowed("GET"))),
    )
    .service(
        web::resource("/dashboard/state")
            .wrap(from_fn(super::auth::read))
            .app_data(fetcher)
            .route(web::get().to(state))
            .default_service(web::to(|| super::not_allowed("GET"))),
    );
}

/// `GET /dashboard`: the page. It only talks to `/dashboard/state` of the node that served it.
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE)
}

/// The HTTP client of `/dashboard/state`, one per worker thread.
pub struct Fetcher {
    client: awc::Client,
}

impl Fetcher {
    /// A client with [`FETCH_TIMEOUT`] for connecting and answering (call on its thread).
    pub fn new(tls: Option<&Arc<rustls::ClientConfig>>) -> Self {
        Fetcher {
            client: crate::tls::awc_client(tls, FETCH_TIMEOUT, FETCH_TIMEOUT),
        }
    }

    /// GET `url`: its status and at most `limit` bytes of body; `Err` says why there is none.
    async fn get(
        &self,
        url: &str,
        auth: Option<&HeaderValue>,
        limit: usize,
    ) -> Result<(u16, web::Bytes), String> {
        let mut req = self.client.get(url).timeout(FETCH_TIMEOUT);
        if let Some(a) = auth {
            req = req.insert_header((header::AUTHORIZATION, a.clone()));
        }
        let mut res = req.send().await.map_err(|e| e.to_string())?;
        let body = res.body().limit(limit).await.map_err(|e| e.to_string())?;
        Ok((res.status().as_u16(), body))
    }
}

/// The body of `GET /dashboard/state`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardState {
    pub ok: bool,
    /// The node that gathered this.
    pub served_by: String,
    /// When (ms since the Unix epoch, the serving node's clock).
    pub at: u64,
    pub cluster_id: String,
    /// The leader: the one a reachable member in the highest term says it is.
    pub leader_id: Option<String>,
    pub leader_url: Option<String>,
    /// The highest term a reachable member is in.
    pub term: u64,
    pub members: Vec<MemberState>,
}

/// One member in [`DashboardState`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberState {
    pub id: String,
    /// Its URL in the configuration (the peer listener's, with `--peer-port`).
    pub url: String,
    /// Where its `/health` answered (its client URL), if it did.
    pub client_url: Option<String>,
    /// `voter` or `learner`.
    pub role: &'static str,
    /// This is the node that served the page.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// Its `/health` answered.
    pub reachable: bool,
    /// `up`, `down` (no answer, and the leader has not heard from it lately) or `removed`.
    pub state: &'static str,
    /// Why it could not be reached, if it could not.
    pub error: Option<String>,
    /// Its `/health` body, as it answered.
    pub health: Option<Value>,
    /// The leader's view of it, when the leader is known and answered.
    pub progress: Option<Progress>,
    /// From its `/metrics`; `null` when it has none (or did not answer).
    pub metrics: Option<MetricsSummary>,
}

/// What the leader knows of a member's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub match_index: Option<u64>,
    pub lag: Option<u64>,
    /// Ms since it last answered the leader (`null`: never).
    pub last_contact_ms: Option<u64>,
}

/// A member's client traffic, from its `/metrics` (every route but probes, scrapes, the
/// dashboard and Raft's).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSummary {
    /// `kvstore_http_requests_total` over client routes.
    pub requests_total: f64,
    /// The same for `route="/set"` answered 2xx (what the writes/s chart counts).
    pub set_total: f64,
    /// The same for `route="/get"` answered 2xx.
    pub get_total: f64,
    /// Median and 99th percentile of `kvstore_http_request_duration_seconds` over client
    /// routes since the node started, interpolated in its buckets; `null` without requests.
    pub p50_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
    /// The `kvstore_http_request_duration_seconds` buckets over client routes: `[le, count]`
    /// (cumulative, `le` = `Infinity` last is sent as `null`), for rates over a window.
    pub buckets: Vec<(Option<f64>, f64)>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `GET /dashboard/state`.
pub async fn state(
    state: web::Data<AppState>,
    fetcher: web::Data<Fetcher>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (status, summary) =
        futures_util::future::join(state.raft.send(GetStatus), state.store.send(Summary)).await;
    let status = status.map_err(|e| actor_gone("raft", e))?;
    let summary = summary.map_err(|e| actor_gone("store", e))?;
    let auth = req.headers().get(header::AUTHORIZATION);
    let own_health = serde_json::to_value(Health {
        ok: true,
        status: status.clone().into(),
        peer_url: state.peer_url.clone(),
        store: StoreHealth {
            applied_index: summary.applied_index,
            digest: format!("{:016x}", summary.digest),
            keys: summary.keys,
        },
    })
    .map_err(|e| ApiError::Internal(e.to_string()))?;

    let leading = status.state == "leader";
    let progress_fut = async {
        if leading {
            return leader_view_local(&status);
        }
        match &status.leader {
            Some(url) => fetch_leader_view(&fetcher, url, auth).await,
            None => Vec::new(),
        }
    };
    let members: Vec<_> = status
        .configuration
        .members()
        .take(MAX_MEMBERS)
        .map(|m| {
            let role = status
                .configuration
                .role_of(&m.id)
                .map_or("learner", MemberRole::as_str);
            (m.id.clone(), m.url.clone(), role)
        })
        .collect();
    let member_futs = members.into_iter().map(|(id, url, role)| {
        let is_self = id == status.id;
        // A leader announces its client URL; with `--peer-port` the member URL is a peer
        // listener's, which has no `/health`.
        let mut candidates = Vec::new();
        if is_self {
            candidates.push(status.url.clone());
        } else {
            if status.leader_id.as_deref() == Some(id.as_str()) {
                if let Some(l) = &status.leader {
                    candidates.push(l.clone());
                }
            }
            if !candidates.contains(&url) {
                candidates.push(url.clone());
            }
        }
        let own = is_self.then(|| own_health.clone());
        let fetcher = &fetcher;
        async move {
            let (health, client_url, error) = match own {
                Some(h) => (Some(h), Some(candidates[0].clone()), None),
                None => fetch_health(fetcher, &id, &candidates).await,
            };
            let metrics_base = client_url.as_deref().unwrap_or(&candidates[0]);
            let metrics = fetch_metrics(fetcher, metrics_base, auth).await;
            MemberState {
                id,
                url,
                client_url,
                role,
                is_self,
                reachable: health.is_some(),
                state: "down",
                error,
                health,
                progress: None,
                metrics,
            }
        }
    });
    let (mut members, view) = futures_util::future::join(join_all(member_futs), progress_fut).await;
    for m in &mut members {
        m.progress = view
            .iter()
            .find(|(id, _)| *id == m.id)
            .map(|(_, p)| p.clone());
        m.state = member_state(m.health.as_ref(), m.progress.as_ref());
    }
    let (leader_id, term) = leader_of(&members, &status);
    let leader_url = leader_id.as_ref().and_then(|l| {
        members
            .iter()
            .find(|m| &m.id == l)
            .and_then(|m| m.client_url.clone())
            .or_else(|| status.leader.clone())
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(DashboardState {
            ok: true,
            served_by: status.id.clone(),
            at: now_ms(),
            cluster_id: state.cluster_id.clone(),
            leader_id,
            leader_url,
            term,
            members,
        }))
}

/// `up`, `down` or `removed`, from its health (if it answered) and the leader's view of it.
fn member_state(health: Option<&Value>, progress: Option<&Progress>) -> &'static str {
    match health {
        Some(h) if h.get("state").and_then(Value::as_str) == Some("removed") => "removed",
        Some(_) => "up",
        None if progress
            .and_then(|p| p.last_contact_ms)
            .is_some_and(|ms| ms <= RECENT_CONTACT_MS) =>
        {
            "up"
        }
        None => "down",
    }
}

/// The leader: among reachable members in the highest term, one that says it leads, else the
/// one they name; falls back to what this node believes.
fn leader_of(members: &[MemberState], status: &NodeStatus) -> (Option<String>, u64) {
    let term_of = |h: &Value| h.get("term").and_then(Value::as_u64).unwrap_or(0);
    let term = members
        .iter()
        .filter_map(|m| m.health.as_ref().map(term_of))
        .max()
        .unwrap_or(status.term)
        .max(status.term);
    let in_term = || {
        members
            .iter()
            .filter_map(|m| m.health.as_ref())
            .filter(move |h| term_of(h) == term)
    };
    let leading = in_term()
        .find(|h| h.get("state").and_then(Value::as_str) == Some("leader"))
        .and_then(|h| h.get("id").and_then(Value::as_str));
    let named = in_term()
        .find_map(|h| h.get("leaderId").and_then(Value::as_str))
        .map(str::to_owned);
    let leader = leading.map(str::to_owned).or(named).or_else(|| {
        (status.term == term)
            .then(|| status.leader_id.clone())
            .flatten()
    });
    (leader, term)
}

/// The first of `candidates` whose `/health` answers as a health body of member `id`:
/// (health, where, why not).
async fn fetch_health(
    fetcher: &Fetcher,
    id: &str,
    candidates: &[String],
) -> (Option<Value>, Option<String>, Option<String>) {
    let mut why = String::from("no URL");
    for base in candidates {
        match fetcher
            .get(&format!("{base}/health"), None, MAX_HEALTH_BYTES)
            .await
        {
            Ok((200, body)) => match serde_json::from_slice::<Value>(&body) {
                Ok(h) if h.get("id").and_then(Value::as_str) == Some(id) => {
                    return (Some(h), Some(base.clone()), None)
                }
                Ok(h) => {
                    why = format!(
                        "{base} is node {:?}, not {id:?}",
                        h.get("id").and_then(Value::as_str).unwrap_or("?")
                    )
                }
                Err(e) => why = format!("{base}/health: not a health answer: {e}"),
            },
            // A peer listener (`--peer-port`) has no `/health`.
            Ok((404, _)) => why = format!("{base} is a peer listener; its client URL is unknown"),
            Ok((s, _)) => why = format!("{base}/health answered {s}"),
            Err(e) => why = format!("{base}: {e}"),
        }
    }
    (None, None, Some(why))
}

/// A member's `/metrics`, summarized; `None` when it has no such route or did not answer.
async fn fetch_metrics(
    fetcher: &Fetcher,
    base: &str,
    auth: Option<&HeaderValue>,
) -> Option<MetricsSummary> {
    match fetcher
        .get(&format!("{base}/metrics"), auth, MAX_METRICS_BYTES)
        .await
    {
        Ok((200, body)) => std::str::from_utf8(&body).ok().map(summarize_metrics),
        _ => None,
    }
}

/// The leader's view of each member when this node leads.
fn leader_view_local(status: &NodeStatus) -> Vec<(String, Progress)> {
    let cluster = super::cluster::ClusterJson::from_status("", status);
    cluster
        .members
        .into_iter()
        .map(|m| {
            let p = Progress {
                match_index: m.match_index,
                lag: m.lag,
                last_contact_ms: m.last_contact_ms.flatten(),
            };
            (m.id, p)
        })
        .collect()
}

/// The leader's view of each member, from its `GET /cluster` at `leader` (a client URL).
async fn fetch_leader_view(
    fetcher: &Fetcher,
    leader: &str,
    auth: Option<&HeaderValue>,
) -> Vec<(String, Progress)> {
    let body = match fetcher
        .get(&format!("{leader}/cluster"), auth, MAX_CLUSTER_BYTES)
        .await
    {
        Ok((200, body)) => body,
        _ => return Vec::new(),
    };
    parse_leader_view(&body)
}

/// Members with progress out of a `GET /cluster` body (only a leader's has progress).
fn parse_leader_view(body: &[u8]) -> Vec<(String, Progress)> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(members) = v.get("members").and_then(Value::as_array) else {
        return Vec::new();
    };
    members
        .iter()
        .take(MAX_MEMBERS)
        .filter(|m| m.get("matchIndex").is_some())
        .filter_map(|m| {
            let id = m.get("id")?.as_str()?.to_owned();
            let p = Progress {
                match_index: m.get("matchIndex").and_then(Value::as_u64),
                lag: m.get("lag").and_then(Value::as_u64),
                last_contact_ms: m.get("lastContactMs").and_then(Value::as_u64),
            };
            Some((id, p))
        })
        .collect()
}

/// One sample of Prometheus text: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl Sample<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One sample line of the Prometheus text format (`name{a="x",b="y"} value [timestamp]`);
/// `None` for comments, blank and malformed lines.
pub fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim();
            rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            };
            labels.push((key, value));
            rest = &rest[end + 1..];
        }
    }
    let value = match rest.split_ascii_whitespace().next()? {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

fn is_client_route(s: &Sample<'_>) -> bool {
    match s.label("route") {
        Some(r) => !NOT_CLIENT_ROUTES.contains(&r) && !r.starts_with("/raft/"),
        None => false,
    }
}

/// Summarize a `/metrics` body (see [`MetricsSummary`]). Metrics it lacks count as zero.
pub fn summarize_metrics(text: &str) -> MetricsSummary {
    let mut out = MetricsSummary::default();
    // (le, cumulative count) summed over routes and methods.
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for s in text.lines().filter_map(parse_sample) {
        if !s.value.is_finite() || !is_client_route(&s) {
            continue;
        }
        match s.name {
            "kvstore_http_requests_total" => {
                out.requests_total += s.value;
                let ok = s.label("status").is_some_and(|st| st.starts_with('2'));
                match s.label("route") {
                    Some("/set") if ok => out.set_total += s.value,
                    Some("/get") if ok => out.get_total += s.value,
                    _ => {}
                }
            }
            "kvstore_http_request_duration_seconds_bucket" => {
                let Some(le) = s.label("le").and_then(|le| match le {
                    "+Inf" | "Inf" => Some(f64::INFINITY),
                    v => v.parse::<f64>().ok(),
                }) else {
                    continue;
                };
                if let Some((_, n)) = buckets.iter_mut().find(|(b, _)| *b == le) {
                    *n += s.value;
                } else if buckets.len() < MAX_BUCKETS {
                    buckets.push((le, s.value));
                }
            }
            _ => {}
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    out.p50_seconds = quantile(&buckets, 0.5);
    out.p99_seconds = quantile(&buckets, 0.99);
    out.buckets = buckets
        .into_iter()
        .map(|(le, n)| (le.is_finite().then_some(le), n))
        .collect();
    out
}

/// The `q` quantile of a histogram given as sorted cumulative `(le, count)` buckets, by linear
/// interpolation inside the bucket it falls in (as Prometheus' `histogram_quantile`); in the
/// `+Inf` bucket, the highest finite bound. `None` without observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if !le.is_finite() {
                return Some(prev.0);
            }
            let in_bucket = count - prev.1;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(prev.0 + (le - prev.0) * (rank - prev.1) / in_bucket);
        }
        prev = (le, count);
    }
    Some(prev.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_parsed_with_labels_and_escapes() {
        let s = parse_sample(
            r#"kvstore_http_requests_total{route="/set",method="PUT",status="200"} 12"#,
        )
        .unwrap();
        assert_eq!(s.name, "kvstore_http_requests_total");
        assert_eq!(s.label("route"), Some("/set"));
        assert_eq!(s.label("status"), Some("200"));
        assert_eq!(s.value, 12.0);
        let s = parse_sample(r#"x{a="q\"u\\o\nte",} 1.5e3 1700000000"#).unwrap();
        assert_eq!(s.label("a"), Some("q\"u\\o\nte"));
        assert_eq!(s.value, 1500.0);
        let s = parse_sample("kvstore_raft_term 7").unwrap();
        assert_eq!((s.name, s.value), ("kvstore_raft_term", 7.0));
        assert!(s.labels.is_empty());
        assert_eq!(
            parse_sample(r#"b{le="+Inf"} +Inf"#).unwrap().value,
            f64::INFINITY
        );
        for bad in [
            "",
            "# HELP x y",
            "x{a=\"1\"",
            "x{a=1} 2",
            "x",
            "{a=\"1\"} 2",
            "x nope",
        ] {
            assert_eq!(parse_sample(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[(0.1, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        let b = [
            (0.001, 0.0),
            (0.01, 100.0),
            (0.1, 200.0),
            (f64::INFINITY, 200.0),
        ];
        assert!((quantile(&b, 0.5).unwrap() - 0.01).abs() < 1e-12);
        assert!((quantile(&b, 0.25).unwrap() - 0.0055).abs() < 1e-12);
        assert!((quantile(&b, 0.99).unwrap() - (0.01 + 0.09 * 0.98)).abs() < 1e-12);
        // Beyond the highest finite bound: that bound.
        let b = [(0.01, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(&b, 0.99), Some(0.01));
    }

    #[test]
    fn metrics_are_summed_over_client_routes_only() {
        let text = r#"
# TYPE kvstore_http_requests_total counter
kvstore_http_requests_total{route="/set",method="PUT",status="200"} 10
kvstore_http_requests_total{route="/set",method="PUT",status="503"} 2
kvstore_http_requests_total{route="/get",method="GET",status="200"} 5
kvstore_http_requests_total{route="/get",method="GET",status="404"} 1
kvstore_http_requests_total{route="/health",method="GET",status="200"} 1000
kvstore_http_requests_total{route="/raft/append",method="POST",status="200"} 1000
kvstore_http_request_duration_seconds_bucket{route="/set",method="PUT",le="0.001"} 0
kvstore_http_request_duration_seconds_bucket{route="/set",method="PUT",le="0.01"} 12
kvstore_http_request_duration_seconds_bucket{route="/set",method="PUT",le="+Inf"} 12
kvstore_http_request_duration_seconds_bucket{route="/get",method="GET",le="0.001"} 6
kvstore_http_request_duration_seconds_bucket{route="/get",method="GET",le="0.01"} 6
kvstore_http_request_duration_seconds_bucket{route="/get",method="GET",le="+Inf"} 6
kvstore_http_request_duration_seconds_bucket{route="/metrics",method="GET",le="+Inf"} 99
kvstore_raft_term 3
"#;
        let m = summarize_metrics(text);
        assert_eq!(m.requests_total, 18.0);
        assert_eq!(m.set_total, 10.0);
        assert_eq!(m.get_total, 5.0);
        assert_eq!(
            m.buckets,
            vec![(Some(0.001), 6.0), (Some(0.01), 18.0), (None, 18.0)]
        );
        assert!((m.p50_seconds.unwrap() - (0.001 + 0.009 * 3.0 / 12.0)).abs() < 1e-12);
        assert!(m.p99_seconds.unwrap() <= 0.01);
        // Without the metrics, zeros and no latency.
        let m = summarize_metrics("kvstore_raft_term 3\n");
        assert_eq!(m, MetricsSummary::default());
    }

    #[test]
    fn a_leader_view_comes_from_the_leaders_cluster_body() {
        let body = br#"{"ok":true,"members":[
            {"id":"n1","url":"http://a:1","role":"voter","matchIndex":9,"lag":0,"lastContactMs":0},
            {"id":"n2","url":"http://b:2","role":"voter","matchIndex":7,"lag":2,"lastContactMs":null},
            {"id":"n3","url":"http://c:3","role":"voter"}]}"#;
        let v = parse_leader_view(body);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[1],
            (
                "n2".to_owned(),
                Progress {
                    match_index: Some(7),
                    lag: Some(2),
                    last_contact_ms: None
                }
            )
        );
        assert!(parse_leader_view(b"not json").is_empty());
    }

    #[test]
    fn a_member_is_up_when_it_answers_or_the_leader_heard_from_it_lately() {
        let h = serde_json::json!({"id":"n1","state":"follower"});
        assert_eq!(member_state(Some(&h), None), "up");
        let removed = serde_json::json!({"id":"n1","state":"removed"});
        assert_eq!(member_state(Some(&removed), None), "removed");
        assert_eq!(member_state(None, None), "down");
        let p = |ms| Progress {
            match_index: Some(1),
            lag: Some(0),
            last_contact_ms: ms,
        };
        assert_eq!(member_state(None, Some(&p(Some(100)))), "up");
        assert_eq!(member_state(None, Some(&p(Some(5000)))), "down");
        assert_eq!(member_state(None, Some(&p(None))), "down");
    }

    #[test]
    fn the_page_is_self_contained() {
        assert!(PAGE.starts_with("<!doctype html>"));
        for external in ["http://", "https://", "//cdn", "@import", "<link"] {
            assert!(
                !PAGE.contains(external),
                "the page must not load {external}"
            );
        }
        assert!(PAGE.contains("/dashboard/state"));
        assert!(PAGE.contains("data-node-id"));
    }
}
