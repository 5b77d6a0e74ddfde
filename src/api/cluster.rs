//! The membership routes: `GET /cluster` (who is in the cluster and, from the leader, how far
//! each member's log is), `POST /cluster/members` (add a learner, and promote it unless it
//! should stay one), `POST /cluster/members/{id}/promote`, `DELETE /cluster/members/{id}` and
//! `POST /cluster/leader` (leadership transfer).
//!
//! Every change goes through the same routing loop as the client API (`kv::Routed`): asked of
//! the local `RaftActor`, forwarded to the leader it names, within the request deadline. A
//! change is answered once its configuration entry is committed and applied. Whether a change
//! may be made is the core's to say ([`MembershipError`]); this module only checks the shape of
//! what arrives (ids, URLs, bounded bodies) and maps the answers to HTTP (through
//! [`ApiError`]). It never owns or changes state itself.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tokio::time::timeout_at;

use super::errors::ApiError;
use super::forward::Forwarder;
use super::kv::{actor_gone, Answer, Routed};
use super::AppState;
use crate::config::parse_base_url;
use crate::raft::actor::{
    ChangeMembership, ClientError, GetStatus, NodeStatus, TransferLeadership,
};
use crate::raft::rpc::{MAX_ID_BYTES, MAX_URL_BYTES};
use crate::raft::{ConfigChange, Member, MemberRole, MembershipError, NodeId};

/// Largest body of a membership route: an id (128 bytes), a URL (512 bytes) and a flag, with
/// room for escaping.
pub const MAX_CLUSTER_BODY_BYTES: usize = 4 * 1024;

/// JSON settings for the membership routes: [`MAX_CLUSTER_BODY_BYTES`], errors in the API's
/// shape.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_CLUSTER_BODY_BYTES)
        .content_type_required(false)
        .error_handler(super::errors::json_error)
}

/// A member id: 1 to 128 printable ASCII bytes, no `/` (it appears in paths).
pub fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(ApiError::BadRequest(format!(
            "a member id must have 1 to {MAX_ID_BYTES} bytes, not {}",
            id.len()
        )));
    }
    if let Some(b) = id.bytes().find(|b| !b.is_ascii_graphic() || *b == b'/') {
        return Err(ApiError::BadRequest(format!(
            "a member id must be printable ASCII without spaces or `/`; {id:?} has byte {b:#04x}"
        )));
    }
    Ok(())
}

/// The id of an existing member, as the routes that name one take it (promote, remove,
/// transfer): an id [`check_id`] accepts, or a *provisional* id, the normalized URL of a peer
/// `PEERS` gave by URL only (percent-encoded in a path). Such a peer that never answered keeps
/// that id, and must still be removable.
pub fn check_member_id(id: &str) -> Result<(), ApiError> {
    if id.len() <= MAX_URL_BYTES && parse_base_url(id).as_deref() == Ok(id) {
        return Ok(());
    }
    check_id(id)
}

/// A member URL: `http(s)://host:port` (normalized, the port made explicit), at most 512
/// bytes.
pub fn check_url(url: &str) -> Result<String, ApiError> {
    if url.len() > MAX_URL_BYTES {
        return Err(ApiError::BadRequest(format!(
            "a member URL must have at most {MAX_URL_BYTES} bytes, not {}",
            url.len()
        )));
    }
    parse_base_url(url)
        .map_err(|why| ApiError::BadRequest(format!("invalid member URL {url:?}: {why}")))
}

/// `id` as one path segment: every byte but unreserved ones percent-encoded.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Body of `POST /cluster/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub id: NodeId,
    pub url: String,
    /// Keep it a learner (`false`, the default: promote it once it has caught up).
    #[serde(default)]
    pub learner: bool,
}

/// Body of `POST /cluster/leader` (may be empty: the most caught-up voter).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferTo {
    #[serde(default)]
    pub id: Option<NodeId>,
}

/// `{"ok":true,"message":..,"id":..,"role":..}` (`role` only where it says what the member
/// became).
#[derive(Debug, Serialize)]
pub struct MemberReply<'a> {
    pub ok: bool,
    pub message: &'static str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
}

/// `{"ok":true,"message":"leadership transferred","leaderId":..}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderReply {
    pub ok: bool,
    pub message: &'static str,
    pub leader_id: NodeId,
}

/// The body of `GET /cluster`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterJson {
    pub ok: bool,
    pub cluster_id: String,
    pub leader_id: Option<NodeId>,
    pub leader_url: Option<String>,
    pub term: u64,
    pub config_index: u64,
    pub commit_index: u64,
    pub change_in_progress: bool,
    pub members: Vec<MemberJson>,
}

/// One member in `GET /cluster`; the progress fields only from the leader.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberJson {
    pub id: NodeId,
    pub url: String,
    /// `voter` or `learner`.
    pub role: &'static str,
    /// Highest index known in its log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_index: Option<u64>,
    /// How many entries it is behind the leader's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// Milliseconds since it last answered the leader (`null`: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_contact_ms: Option<Option<u64>>,
    /// A snapshot is on its way to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshotting: Option<bool>,
}

impl ClusterJson {
    /// What node `status` (of cluster `cluster_id`) knows of the cluster: with each member's
    /// progress when it leads.
    pub fn from_status(cluster_id: &str, s: &NodeStatus) -> ClusterJson {
        let leading = s.leader_id.as_deref() == Some(s.id.as_str()) && s.state == "leader";
        let members = s
            .configuration
            .members()
            .map(|m| {
                let role = s
                    .configuration
                    .role_of(&m.id)
                    .map_or("learner", MemberRole::as_str);
                let mut json = MemberJson {
                    id: m.id.clone(),
                    url: m.url.clone(),
                    role,
                    match_index: None,
                    lag: None,
                    last_contact_ms: None,
                    snapshotting: None,
                };
                if !leading {
                    return json;
                }
                if m.id == s.id {
                    json.match_index = Some(s.last_log_index);
                    json.lag = Some(0);
                    json.last_contact_ms = Some(Some(0));
                } else {
                    let p = s.progress.iter().find(|p| p.id == m.id);
                    let matched = p.map_or(0, |p| p.match_index);
                    json.match_index = Some(matched);
                    json.lag = Some(s.last_log_index.saturating_sub(matched));
                    json.last_contact_ms = Some(
                        s.last_contact_ms
                            .iter()
                            .find(|(id, _)| *id == m.id)
                            .map(|(_, ms)| *ms),
                    );
                    json.snapshotting = Some(p.is_some_and(|p| p.snapshotting));
                }
                json
            })
            .collect();
        ClusterJson {
            ok: true,
            cluster_id: cluster_id.to_owned(),
            leader_id: s.leader_id.clone(),
            leader_url: s.leader.clone(),
            term: s.term,
            config_index: s.config_index,
            commit_index: s.commit_index,
            change_in_progress: s.change_in_progress(),
            members,
        }
    }
}

async fn status(state: &AppState) -> Result<NodeStatus, ApiError> {
    state
        .raft
        .send(GetStatus)
        .await
        .map_err(|e| actor_gone("raft", e))
}

/// `GET /cluster`: from the leader (forwarded there like a read); answered here when this
/// node leads, no leader is known, the leader cannot be reached or the request was already
/// forwarded once.
pub async fn show(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = status(&state).await?;
    let at = Routed::new(&state, &fwd, &req, Method::GET, "/cluster").idempotent();
    let leader = s.leader_id.clone().zip(s.leader.clone());
    if let Some((id, url)) = leader.filter(|(id, _)| *id != s.id) {
        if !at.was_forwarded() {
            let leader = crate::raft::LeaderInfo { id, url };
            match at.forward(&leader).await? {
                Ok(res) if res.status().is_success() => return Ok(res),
                Ok(res) => {
                    tracing::debug!(status = %res.status(), "GET /cluster on the leader failed")
                }
                Err(e) => tracing::debug!(error = %e.message, "GET /cluster: leader unreachable"),
            }
        }
    }
    Ok(HttpResponse::Ok().json(ClusterJson::from_status(&state.cluster_id, &s)))
}

/// Ask the leader (here, or by forwarding) for `change`, waiting while the leader is not
/// ready yet (a new leader has not committed an entry of its term).
async fn change(
    at: &Routed<'_>,
    change: ConfigChange,
) -> Result<Result<(), ClientError>, ApiError> {
    let secs = at.timeout_secs();
    loop {
        let sent = timeout_at(
            at.deadline,
            at.state.raft.send(ChangeMembership(change.clone())),
        )
        .await;
        match sent {
            Err(_) => return Err(change_timeout(secs)),
            Ok(Err(e)) => return Err(actor_gone("raft", e)),
            Ok(Ok(Err(ClientError::Membership(MembershipError::NotReady)))) => {
                at.pause(|| ClientError::Membership(MembershipError::NotReady).into())
                    .await?
            }
            Ok(Ok(answer)) => return Ok(answer),
        }
    }
}

fn change_timeout(secs: f64) -> ApiError {
    ApiError::Unavailable(format!(
        "no quorum: the membership change was not confirmed committed within {secs} s; it may \
         or may not have been made"
    ))
}

/// Promote `id` once it has caught up: retried while it lags (or another change is being
/// committed) until the deadline, when the last refusal is answered.
async fn promote_when_caught_up(
    at: &Routed<'_>,
    id: &str,
) -> Result<Result<(), ClientError>, ApiError> {
    loop {
        match change(at, ConfigChange::Promote(id.to_owned())).await? {
            Ok(()) | Err(ClientError::Membership(MembershipError::AlreadyVoter(_))) => {
                return Ok(Ok(()))
            }
            Err(ClientError::Membership(
                e @ (MembershipError::Lagging { .. } | MembershipError::InProgress),
            )) => {
                at.pause(|| ClientError::Membership(e).into()).await?;
            }
            Err(other) => return Ok(Err(other)),
        }
    }
}

/// `POST /cluster/members` with `{"id","url","learner"}`.
pub async fn add(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    body: web::Json<AddMember>,
) -> Result<HttpResponse, ApiError> {
    let mut body = body.into_inner();
    check_id(&body.id)?;
    body.url = check_url(&body.url)?;
    let forwarded = serde_json::to_value(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    let at = Routed::new(&state, &fwd, &req, Method::POST, "/cluster/members").body(forwarded);
    let member = Member::new(body.id.clone(), body.url.clone());
    let answer = at
        .run(|| async {
            let added = change(&at, ConfigChange::AddLearner(member.clone())).await?;
            match added {
                Ok(()) => {}
                // Asked again (a retry, or a forward after a change of leader) once it is a
                // voter already: done, unless it was to stay a learner.
                Err(ClientError::Membership(MembershipError::IdInUse(_))) if !body.learner => {
                    let s = status(at.state).await?;
                    if s.configuration.is_voter(&member.id)
                        && s.configuration.member(&member.id) == Some(&member)
                    {
                        return Ok(Ok(MemberRole::Voter));
                    }
                    return Ok(added.map(|()| MemberRole::Learner));
                }
                Err(e) => return Ok(Err(e)),
            }
            if body.learner {
                return Ok(Ok(MemberRole::Learner));
            }
            Ok(promote_when_caught_up(&at, &member.id)
                .await?
                .map(|()| MemberRole::Voter))
        })
        .await?;
    match answer {
        Answer::Here(role) => Ok(HttpResponse::Ok().json(MemberReply {
            ok: true,
            message: "member added",
            id: &body.id,
            role: Some(role.as_str()),
        })),
        Answer::Forwarded(res) => Ok(res),
    }
}

/// `POST /cluster/members/{id}/promote`.
pub async fn promote(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let path = format!("/cluster/members/{}/promote", path_segment(&id));
    let change = ConfigChange::Promote(id.clone());
    member_change(&state, &fwd, &req, Method::POST, &path, &id, change).await
}

/// `DELETE /cluster/members/{id}`.
pub async fn remove(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let path = format!("/cluster/members/{}", path_segment(&id));
    let change = ConfigChange::Remove(id.clone());
    member_change(&state, &fwd, &req, Method::DELETE, &path, &id, change).await
}

/// A change of member `id` routed to the leader (`method path`), answered once committed.
async fn member_change(
    state: &AppState,
    fwd: &Forwarder,
    req: &HttpRequest,
    method: Method,
    path: &str,
    id: &str,
    change_asked: ConfigChange,
) -> Result<HttpResponse, ApiError> {
    check_member_id(id)?;
    let (message, role) = match change_asked {
        ConfigChange::Promote(_) => ("member promoted", Some("voter")),
        _ => ("member removed", None),
    };
    let at = Routed::new(state, fwd, req, method, path);
    let answer = at.run(|| change(&at, change_asked.clone())).await?;
    match answer {
        Answer::Here(()) => Ok(HttpResponse::Ok().json(MemberReply {
            ok: true,
            message,
            id,
            role,
        })),
        Answer::Forwarded(res) => Ok(res),
    }
}

/// The body of `POST /cluster/leader`: empty, or `{"id":..}` (`id` optional).
pub fn parse_transfer(body: &[u8]) -> Result<TransferTo, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(TransferTo::default());
    }
    let to: TransferTo =
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    if let Some(id) = &to.id {
        check_member_id(id)?;
    }
    Ok(to)
}

/// `POST /cluster/leader` with `{"id":..}` or nothing: answered once another node leads.
pub async fn transfer(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    if body.len() > MAX_CLUSTER_BODY_BYTES {
        return Err(ApiError::BodyTooLarge {
            limit: MAX_CLUSTER_BODY_BYTES,
        });
    }
    let to = parse_transfer(&body)?;
    let forwarded = serde_json::to_value(&to).map_err(|e| ApiError::Internal(e.to_string()))?;
    let at = Routed::new(&state, &fwd, &req, Method::POST, "/cluster/leader").body(forwarded);
    let secs = at.timeout_secs();
    let answer = at
        .run(|| async {
            let sent = timeout_at(
                at.deadline,
                at.state.raft.send(TransferLeadership(to.id.clone())),
            )
            .await;
            match sent {
                Err(_) => Err(ApiError::Unavailable(format!(
                    "the leadership transfer did not complete within {secs} s"
                ))),
                Ok(Err(e)) => Err(actor_gone("raft", e)),
                Ok(Ok(answer)) => Ok(answer),
            }
        })
        .await?;
    match answer {
        Answer::Here(leader_id) => Ok(HttpResponse::Ok().json(LeaderReply {
            ok: true,
            message: "leadership transferred",
            leader_id,
        })),
        Answer::Forwarded(res) => Ok(res),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::core::PeerProgress;
    use crate::raft::Configuration;
    use actix_web::ResponseError;

    fn status(leading: bool) -> NodeStatus {
        let configuration = Configuration::with_learners(
            vec![
                Member::new("n1", "http://a:1"),
                Member::new("n2", "http://b:2"),
            ],
            vec![Member::new("n4", "http://d:4")],
        )
        .unwrap();
        NodeStatus {
            id: "n1".into(),
            state: if leading { "leader" } else { "follower" },
            term: 7,
            leader_id: Some(if leading { "n1" } else { "n2" }.into()),
            leader: Some(if leading { "http://a:1" } else { "http://b:2" }.into()),
            last_heartbeat_ago_ms: Some(0),
            voted_for: None,
            url: "http://a:1".into(),
            peers: vec!["http://b:2".into(), "http://d:4".into()],
            last_log_index: 40,
            last_log_term: 7,
            commit_index: 40,
            applied_index: 40,
            snapshot_index: 0,
            log_start_index: 0,
            storage_error: None,
            membership: "voter",
            configuration,
            config_index: 12,
            progress: vec![
                PeerProgress {
                    id: "n2".into(),
                    match_index: 40,
                    next_index: 41,
                    snapshotting: false,
                    recent_active: true,
                    last_heard_ticks: Some(3),
                },
                PeerProgress {
                    id: "n4".into(),
                    match_index: 12,
                    next_index: 13,
                    snapshotting: true,
                    recent_active: true,
                    last_heard_ticks: Some(3),
                },
            ],
            last_contact_ms: vec![("n2".into(), 35)],
            transfer: None,
            lease: false,
        }
    }

    #[test]
    fn the_leader_shows_every_members_progress() {
        let json = serde_json::to_string(&ClusterJson::from_status("c1", &status(true))).unwrap();
        assert_eq!(
            json,
            r#"{"ok":true,"clusterId":"c1","leaderId":"n1","leaderUrl":"http://a:1","term":7,"configIndex":12,"commitIndex":40,"changeInProgress":false,"members":[{"id":"n1","url":"http://a:1","role":"voter","matchIndex":40,"lag":0,"lastContactMs":0},{"id":"n2","url":"http://b:2","role":"voter","matchIndex":40,"lag":0,"lastContactMs":35,"snapshotting":false},{"id":"n4","url":"http://d:4","role":"learner","matchIndex":12,"lag":28,"lastContactMs":null,"snapshotting":true}]}"#
        );
    }

    #[test]
    fn a_follower_shows_members_and_roles_only() {
        let mut s = status(false);
        s.config_index = 41;
        let json = serde_json::to_string(&ClusterJson::from_status("c1", &s)).unwrap();
        assert_eq!(
            json,
            r#"{"ok":true,"clusterId":"c1","leaderId":"n2","leaderUrl":"http://b:2","term":7,"configIndex":41,"commitIndex":40,"changeInProgress":true,"members":[{"id":"n1","url":"http://a:1","role":"voter"},{"id":"n2","url":"http://b:2","role":"voter"},{"id":"n4","url":"http://d:4","role":"learner"}]}"#
        );
    }

    #[test]
    fn ids_and_urls_are_checked() {
        assert!(check_id("n4").is_ok());
        assert!(check_id(&"x".repeat(128)).is_ok());
        for bad in ["", "a/b", "a b", "é", "\u{7f}"] {
            let e = check_id(bad).unwrap_err();
            assert_eq!(e.status_code().as_u16(), 400, "{bad:?}");
        }
        assert!(check_id(&"x".repeat(129)).is_err());
        assert_eq!(check_url("http://h:9/").unwrap(), "http://h:9");
        assert_eq!(check_url("https://h").unwrap(), "https://h:443");
        for bad in ["h:9", "ftp://h:9", "http://h:9/x", "http://u@h:9"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let long = format!("http://{}:9", "h".repeat(600));
        assert!(check_url(&long)
            .unwrap_err()
            .to_string()
            .contains("at most 512"));
    }

    #[test]
    fn a_provisional_id_can_be_named() {
        // A peer PEERS gave by URL only, that never answered, keeps its URL as its id: it
        // must be removable (and promotable, and a transfer target) by that id.
        assert!(check_member_id("http://10.0.0.2:8082").is_ok());
        assert!(check_member_id("n2").is_ok());
        for bad in ["http://h:9/", "http://h", "a/b", "", "a b"] {
            assert!(check_member_id(bad).is_err(), "{bad:?}");
        }
        assert!(
            check_id("http://10.0.0.2:8082").is_err(),
            "not as a new member's id"
        );
        assert_eq!(
            parse_transfer(br#"{"id":"http://10.0.0.2:8082"}"#)
                .unwrap()
                .id
                .as_deref(),
            Some("http://10.0.0.2:8082")
        );
    }

    #[actix_web::test]
    async fn a_provisional_id_reaches_the_routes_percent_encoded() {
        use actix_web::{test, App};
        let app = test::init_service(App::new().route(
            "/cluster/members/{id}",
            web::delete().to(|id: web::Path<String>| async move { id.into_inner() }),
        ))
        .await;
        let uri = format!("/cluster/members/{}", path_segment("http://10.0.0.2:8082"));
        assert_eq!(uri, "/cluster/members/http%3A%2F%2F10.0.0.2%3A8082");
        let req = test::TestRequest::delete().uri(&uri).to_request();
        let body = test::call_and_read_body(&app, req).await;
        assert_eq!(body, "http://10.0.0.2:8082");
    }

    #[test]
    fn transfer_bodies_may_be_empty_or_name_a_voter() {
        assert_eq!(parse_transfer(b"").unwrap().id, None);
        assert_eq!(parse_transfer(b" \n").unwrap().id, None);
        assert_eq!(parse_transfer(b"{}").unwrap().id, None);
        assert_eq!(
            parse_transfer(br#"{"id":"n2"}"#).unwrap().id.as_deref(),
            Some("n2")
        );
        assert_eq!(
            parse_transfer(br#"{"to":"n2"}"#)
                .unwrap_err()
                .status_code()
                .as_u16(),
            400
        );
        assert!(parse_transfer(br#"{"id":"a/b"}"#).is_err());
    }

    #[test]
    fn member_bodies_refuse_unknown_fields_and_default_to_voters() {
        let m: AddMember = serde_json::from_str(r#"{"id":"n4","url":"http://h:9"}"#).unwrap();
        assert!(!m.learner);
        assert!(
            serde_json::from_str::<AddMember>(r#"{"id":"n4","url":"u","lerner":true}"#).is_err()
        );
        assert_eq!(path_segment("n4"), "n4");
        assert_eq!(path_segment("a?b%"), "a%3Fb%25");
    }

    #[test]
    fn replies_have_the_documented_shape() {
        let added = MemberReply {
            ok: true,
            message: "member added",
            id: "n4",
            role: Some("learner"),
        };
        assert_eq!(
            serde_json::to_string(&added).unwrap(),
            r#"{"ok":true,"message":"member added","id":"n4","role":"learner"}"#
        );
        let removed = MemberReply {
            ok: true,
            message: "member removed",
            id: "n4",
            role: None,
        };
        assert_eq!(
            serde_json::to_string(&removed).unwrap(),
            r#"{"ok":true,"message":"member removed","id":"n4"}"#
        );
        let led = LeaderReply {
            ok: true,
            message: "leadership transferred",
            leader_id: "n2".into(),
        };
        assert_eq!(
            serde_json::to_string(&led).unwrap(),
            r#"{"ok":true,"message":"leadership transferred","leaderId":"n2"}"#
        );
    }
}
