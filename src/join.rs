//! Joining a running cluster (`KVSTORE_JOIN=<url>` / `--join URL`): what an empty node does
//! to become a member.
//!
//! 1. Before it starts: [`fetch_cluster`] asks any member for `GET /cluster` (forwarded to the
//!    leader), retrying for about [`FETCH_FOR`] while it answers 503 or cannot be reached. A
//!    cluster without a known leader after that is an error.
//! 2. Once its listeners are bound (so its own URL is known): [`plan`] checks that no other
//!    member uses this node's id or URL (the same id *and* URL is a retried join: fine) and
//!    gives the configuration it starts with: the cluster's members plus itself as a learner,
//!    so it never campaigns before the cluster has added it. The node records the fetched
//!    cluster id in its data directory.
//! 3. Once it serves: [`add_and_promote`] asks the cluster to add it as a learner
//!    (`POST /cluster/members`, retried on 503, or a 409 saying another change or a transfer
//!    is in progress, for about [`ADD_FOR`]), then, unless `--learner`, asks every
//!    [`PROMOTE_EVERY`] to promote it (`POST /cluster/members/{id}/promote`) while it lags
//!    (409), another change or a transfer is in progress (409) or no leader answers (503),
//!    until it is a voter (a 409 "already a voter" included: an earlier answer was lost). Any
//!    other refusal ends the process (`crate::fatal`, [`Fatal::Join`]).
//!
//! An edge module: HTTP calls to the cluster's client API and checks of what it answers; it
//! never touches the node's storage or Raft state (startup and the cluster do).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::fatal::{self, Fatal};
use crate::raft::{Configuration, Member, MemberRole};

/// How long [`fetch_cluster`] keeps asking while the cluster answers 503 or is unreachable.
pub const FETCH_FOR: Duration = Duration::from_secs(10);
/// How long [`add_and_promote`] keeps asking to be added while the cluster answers 503.
pub const ADD_FOR: Duration = Duration::from_secs(30);
/// Pause between two attempts of a request the cluster cannot answer yet.
pub const RETRY_EVERY: Duration = Duration::from_millis(200);
/// Pause between two promotion requests while this node lags.
pub const PROMOTE_EVERY: Duration = Duration::from_millis(200);
/// How often the promotion loop logs that it is still waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// Most bytes of an answer read from the cluster.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// One member as `GET /cluster` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterMember {
    pub id: String,
    pub url: String,
    pub role: MemberRole,
}

/// What `GET /cluster` answers (the fields a join needs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    pub cluster_id: String,
    #[serde(default)]
    pub leader_id: Option<String>,
    pub members: Vec<ClusterMember>,
}

/// Where and how to reach the cluster.
#[derive(Clone)]
pub struct JoinTarget {
    /// The member's base URL (`--join`).
    pub url: String,
    /// TLS for an `https://` member (`--tls-ca`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The client token (`KVSTORE_TOKEN`), sent as `Authorization: Bearer`.
    pub token: Option<String>,
}

impl std::fmt::Debug for JoinTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTarget")
            .field("url", &self.url)
            .field("tls", &self.tls.is_some())
            .field("token", &self.token.as_ref().map(|_| "redacted"))
            .finish()
    }
}

impl JoinTarget {
    fn client(&self) -> awc::Client {
        crate::tls::awc_client_with_token(
            self.tls.as_ref(),
            Duration::from_secs(2),
            Duration::from_secs(10),
            self.token.as_deref(),
        )
    }
}

/// `{base}/cluster`.
pub fn cluster_url(base: &str) -> String {
    format!("{}/cluster", base.trim_end_matches('/'))
}

/// `{base}/cluster/members`.
pub fn members_url(base: &str) -> String {
    format!("{}/cluster/members", base.trim_end_matches('/'))
}

/// `{base}/cluster/members/{id}/promote`, the id percent-encoded.
pub fn promote_url(base: &str, id: &str) -> String {
    format!(
        "{}/cluster/members/{}/promote",
        base.trim_end_matches('/'),
        percent_encode(id)
    )
}

/// Percent-encode everything but unreserved characters (RFC 3986).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Check that this node (`id` at `url`, the URL peers reach it at) can join the cluster
/// `view` describes, and give the configuration it starts with: the members, plus itself as a
/// learner unless it already is a member with this id and URL (a retried join). Errors are
/// the clear line printed before exiting (without the `error: ` prefix).
pub fn plan(view: &ClusterView, id: &str, url: &str) -> Result<Configuration, String> {
    if view.leader_id.is_none() {
        return Err(format!(
            "cannot join: the cluster {} has no leader right now; retry once it has one",
            view.cluster_id
        ));
    }
    let mut voters = Vec::new();
    let mut learners = Vec::new();
    let mut already = false;
    for m in &view.members {
        if m.id == id && m.url == url {
            already = true;
        } else if m.id == id {
            return Err(format!(
                "cannot join: the id {id:?} is already used by member at {}",
                m.url
            ));
        } else if m.url == url {
            return Err(format!(
                "cannot join: the URL {url} is already used by member {:?}",
                m.id
            ));
        }
        let member = Member::new(m.id.clone(), m.url.clone());
        match m.role {
            MemberRole::Voter => voters.push(member),
            MemberRole::Learner => learners.push(member),
        }
    }
    if !already {
        learners.push(Member::new(id, url));
    }
    Configuration::with_learners(voters, learners)
        .map_err(|e| format!("cannot join: the cluster's member list is unusable: {e}"))
}

/// An answer from the cluster: status and JSON body (or what it said instead).
struct Answer {
    status: u16,
    body: serde_json::Value,
}

impl Answer {
    fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(|m| m.as_str())
            .map_or_else(|| self.body.to_string(), str::to_owned)
    }
}

async fn call(
    client: &awc::Client,
    method: awc::http::Method,
    url: &str,
    body: Option<&serde_json::Value>,
) -> Result<Answer, String> {
    let req = client.request(method, url);
    let res = match body {
        Some(b) => req.send_json(b).await,
        None => req.send().await,
    };
    let mut res = res.map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = res.status().as_u16();
    let bytes = res
        .body()
        .limit(MAX_ANSWER_BYTES)
        .await
        .map_err(|e| format!("cannot read the answer of {url}: {e}"))?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok(Answer { status, body })
}

/// `GET {target}/cluster`, retried for about [`FETCH_FOR`] while it answers 503, cannot be
/// reached, or names no leader.
pub async fn fetch_cluster(target: &JoinTarget) -> Result<ClusterView, String> {
    let client = target.client();
    let url = cluster_url(&target.url);
    let deadline = Instant::now() + FETCH_FOR;
    loop {
        let last = match call(&client, awc::http::Method::GET, &url, None).await {
            Ok(a) if a.status == 200 => {
                let view: ClusterView = serde_json::from_value(a.body)
                    .map_err(|e| format!("cannot join: {url} answered an unknown shape: {e}"))?;
                if view.leader_id.is_some() || Instant::now() >= deadline {
                    return Ok(view);
                }
                "no leader yet".to_owned()
            }
            Ok(a) if a.status == 503 => format!("503: {}", a.message()),
            Ok(a) => {
                return Err(format!(
                    "cannot join: {url} answered {}: {}",
                    a.status,
                    a.message()
                ))
            }
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "cannot join: no answer with a leader from {url} within {} s (last: {last})",
                FETCH_FOR.as_secs()
            ));
        }
        tracing::info!(url = %url, reason = %last, "join: the cluster cannot answer yet; retrying");
        actix_web::rt::time::sleep(RETRY_EVERY).await;
    }
}

/// End the process with a join error (the clear line, then a non-zero status).
fn give_up(why: &str) {
    eprintln!("error: {why}");
    fatal::stop(Fatal::Join, why);
}

/// Ask the cluster to add this node (`id` at `url`) as a learner, then, unless `learner`, to
/// promote it until it is a voter. A refusal ends the process (see the module header).
pub async fn add_and_promote(
    target: JoinTarget,
    cluster_id: String,
    id: String,
    url: String,
    learner: bool,
) {
    if let Err(why) = add_and_promote_inner(&target, &cluster_id, &id, &url, learner).await {
        give_up(&why);
    }
}

async fn add_and_promote_inner(
    target: &JoinTarget,
    cluster_id: &str,
    id: &str,
    url: &str,
    learner: bool,
) -> Result<(), String> {
    let client = target.client();
    let add = members_url(&target.url);
    let body = serde_json::json!({ "id": id, "url": url, "learner": true });
    let deadline = Instant::now() + ADD_FOR;
    loop {
        let last = match call(&client, awc::http::Method::POST, &add, Some(&body)).await {
            Ok(a) if a.status == 200 => break,
            Ok(a) if a.status == 503 || is_busy(&a) => format!("{}: {}", a.status, a.message()),
            Ok(a) => {
                return Err(format!(
                    "cannot join: the cluster refused to add {id:?} ({}): {}",
                    a.status,
                    a.message()
                ))
            }
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "cannot join: the cluster did not add {id:?} within {} s (last: {last})",
                ADD_FOR.as_secs()
            ));
        }
        tracing::info!(reason = %last, "join: the cluster cannot add this node yet; retrying");
        actix_web::rt::time::sleep(RETRY_EVERY).await;
    }
    tracing::info!(
        cluster_id,
        node_id = id,
        "joined cluster {cluster_id} as a learner"
    );
    if learner {
        return Ok(());
    }
    let promote = promote_url(&target.url, id);
    let started = Instant::now();
    let mut logged = Instant::now();
    loop {
        let last = match call(&client, awc::http::Method::POST, &promote, None).await {
            // 409 already a voter: an earlier request was made, its answer lost.
            Ok(a) if a.status == 200 || is_already_voter(&a, id) => break,
            // 409 lagging: still catching up; 409 busy: another change (or a transfer) is
            // being made; 503: no leader or not ready yet.
            Ok(a) if a.status == 503 || is_lagging(&a) || is_busy(&a) => a.message(),
            Ok(a) => {
                return Err(format!(
                    "cannot join: the cluster refused to promote {id:?} ({}): {}",
                    a.status,
                    a.message()
                ))
            }
            Err(why) => why,
        };
        if logged.elapsed() >= PROGRESS_EVERY {
            logged = Instant::now();
            tracing::info!(
                waited_ms = started.elapsed().as_millis() as u64,
                reason = %last,
                "join: catching up before promotion to voter"
            );
        }
        actix_web::rt::time::sleep(PROMOTE_EVERY).await;
    }
    tracing::info!(
        node_id = id,
        ms = started.elapsed().as_millis() as u64,
        "promoted to voter"
    );
    Ok(())
}

/// A 409 that says the node lags (keep waiting), not another conflict.
fn is_lagging(a: &Answer) -> bool {
    a.status == 409 && a.message().contains("lags")
}

/// A 409 that says the cluster is making another change or a leadership transfer (one at a
/// time): retry, it ends shortly. Another node joining at the same time, an operator's change,
/// the leader's own rewrite of provisional ids, or a leader handing over before it stops.
fn is_busy(a: &Answer) -> bool {
    let m = a.message();
    a.status == 409
        && (m.contains("a membership change is in progress")
            || m.contains("a leadership transfer is in progress"))
}

/// A 409 that says `id` is a voter already.
fn is_already_voter(a: &Answer, id: &str) -> bool {
    let voter = crate::raft::MembershipError::AlreadyVoter(id.into()).to_string();
    a.status == 409 && a.message().contains(&voter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(leader: Option<&str>) -> ClusterView {
        serde_json::from_value(serde_json::json!({
            "ok": true, "clusterId": "c0123", "leaderId": leader, "leaderUrl": null,
            "term": 3, "configIndex": 4, "commitIndex": 9, "changeInProgress": false,
            "members": [
                {"id": "n1", "url": "http://127.0.0.1:1", "role": "voter", "matchIndex": 9,
                 "lag": 0, "lastContactMs": 0},
                {"id": "n2", "url": "http://127.0.0.1:2", "role": "voter"},
                {"id": "n3", "url": "http://127.0.0.1:3", "role": "learner"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn urls_are_built_from_the_base() {
        assert_eq!(cluster_url("http://h:1/"), "http://h:1/cluster");
        assert_eq!(members_url("http://h:1"), "http://h:1/cluster/members");
        assert_eq!(
            promote_url("http://h:1", "n 4/x"),
            "http://h:1/cluster/members/n%204%2Fx/promote"
        );
    }

    #[test]
    fn a_new_node_starts_as_a_learner_beside_the_members() {
        let c = plan(&view(Some("n1")), "n4", "http://127.0.0.1:4").unwrap();
        let ids = |ms: &[Member]| ms.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(c.voters()), ["n1", "n2"]);
        assert_eq!(ids(c.learners()), ["n3", "n4"]);
        assert_eq!(c.role_of("n4"), Some(MemberRole::Learner));
    }

    #[test]
    fn an_id_or_url_used_by_another_member_is_refused_but_a_retried_join_is_not() {
        let e = plan(&view(Some("n1")), "n2", "http://127.0.0.1:9").unwrap_err();
        assert_eq!(
            e,
            "cannot join: the id \"n2\" is already used by member at http://127.0.0.1:2"
        );
        let e = plan(&view(Some("n1")), "n9", "http://127.0.0.1:2").unwrap_err();
        assert!(
            e.contains("the URL http://127.0.0.1:2 is already used by member \"n2\""),
            "{e}"
        );
        // The same id and URL: a join retried after it was added.
        let c = plan(&view(Some("n1")), "n3", "http://127.0.0.1:3").unwrap();
        assert_eq!(c.members().count(), 3);
        assert_eq!(c.role_of("n3"), Some(MemberRole::Learner));
    }

    fn answer(status: u16, error: crate::raft::MembershipError) -> Answer {
        Answer {
            status,
            body: serde_json::json!({"ok": false, "message": error.to_string()}),
        }
    }

    #[test]
    fn a_busy_cluster_or_a_lost_answer_is_not_a_refusal() {
        use crate::raft::MembershipError as E;
        // Another node joining at once, or a transfer: retried, not fatal.
        assert!(is_busy(&answer(409, E::InProgress)));
        assert!(is_busy(&answer(409, E::TransferInProgress)));
        assert!(!is_busy(&answer(409, E::IdInUse("n4".into()))));
        let lag = E::Lagging {
            id: "n4".into(),
            matched: 1,
            last: 2000,
        };
        assert!(is_lagging(&answer(409, lag)) && !is_busy(&answer(409, E::NotReady)));
        // A promotion made whose answer was lost: retried, it says "already a voter".
        assert!(is_already_voter(
            &answer(409, E::AlreadyVoter("n4".into())),
            "n4"
        ));
        assert!(!is_already_voter(
            &answer(409, E::AlreadyVoter("n5".into())),
            "n4"
        ));
    }

    #[test]
    fn no_leader_is_an_error() {
        let e = plan(&view(None), "n4", "http://127.0.0.1:4").unwrap_err();
        assert!(e.contains("has no leader"), "{e}");
    }
}
