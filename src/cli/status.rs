//! `kvstore status`: one row per member of the cluster, from `GET /cluster` (who the members
//! are and, from the leader, how far each one's log is and when it last answered) and each
//! member's own `GET /health` (its role, term, leader, commit and applied index).
//!
//! A member that does not answer is shown as `down`, which is not an error: only when no
//! endpoint answers at all does the command fail (exit 3). It never changes anything.

use std::collections::HashMap;

use actix_web::http::Method;
use serde::Serialize;
use serde_json::Value;

use super::client::Client;
use super::output::{print_json, table, CliError, Output};

/// Largest `/health` answer read.
const MAX_HEALTH_BYTES: usize = 1024 * 1024;

/// Longest wait for one member's `/health` (a member slower than that is shown as `down`).
const MAX_HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// One member as `status` shows it (`--output json`: an array of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub id: String,
    pub url: String,
    /// `voter` or `learner`.
    pub role: String,
    /// What the member says it is (`leader`, `follower`, `candidate`, `removed`), or `down`
    /// when it did not answer.
    pub state: String,
    pub term: Option<u64>,
    pub leader_id: Option<String>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// From the leader: the highest index known in the member's log, and how far behind it is.
    pub match_index: Option<u64>,
    pub lag: Option<u64>,
    /// Milliseconds since the member last answered the leader (from the leader's view), or
    /// since the member last heard from a leader (its own `/health`).
    pub last_contact_ms: Option<u64>,
    pub storage_error: Option<String>,
}

/// `kvstore status`.
pub async fn run(client: &Client, out: Output) -> Result<(), CliError> {
    let cluster = client
        .send(Method::GET, "/cluster", None)
        .await?
        .json(Output::Text)
        .await?;
    let mut urls: Vec<String> = members(&cluster)
        .iter()
        .filter_map(|m| m.get("url").and_then(Value::as_str).map(str::to_owned))
        .collect();
    // With a separate peer port a member's URL serves only /raft/*: its /health is reached
    // through the endpoints, matched by id.
    for e in client.endpoints() {
        if !urls.contains(e) {
            urls.push(e.clone());
        }
    }
    let healths =
        futures_util::future::join_all(urls.iter().map(|u| health(client, u.as_str()))).await;
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for h in healths.into_iter().flatten() {
        if let Some(id) = h.get("id").and_then(Value::as_str) {
            by_id.entry(id.to_owned()).or_insert(h);
        }
    }
    let rows = rows(&cluster, &by_id);
    match out {
        Output::Json => print_json(&serde_json::to_value(&rows).unwrap_or(Value::Null)),
        Output::Text => print!("{}", render(&rows)),
    }
    Ok(())
}

/// `GET {url}/health` on that node only; `None` if it does not answer with a health body.
async fn health(client: &Client, url: &str) -> Option<Value> {
    // A member that hangs must not hold the table up for the whole --timeout.
    let mut res = client
        .http()
        .get(format!("{url}/health"))
        .timeout(client.timeout().min(MAX_HEALTH_WAIT))
        .send()
        .await
        .ok()?;
    if !res.status().is_success() {
        return None;
    }
    let body = res.body().limit(MAX_HEALTH_BYTES).await.ok()?;
    serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(|h| h.get("id").is_some())
}

fn members(cluster: &Value) -> Vec<Value> {
    cluster
        .get("members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The rows of the members of `cluster` (a `GET /cluster` answer), each with its `/health`
/// from `healths` (by id) when it answered.
pub fn rows(cluster: &Value, healths: &HashMap<String, Value>) -> Vec<MemberStatus> {
    let u = |v: &Value, f: &str| v.get(f).and_then(Value::as_u64);
    let s = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).map(str::to_owned);
    members(cluster)
        .iter()
        .map(|m| {
            let id = s(m, "id").unwrap_or_default();
            let h = healths.get(&id);
            let from_leader = m.get("lastContactMs").and_then(Value::as_u64);
            MemberStatus {
                url: s(m, "url").unwrap_or_default(),
                role: s(m, "role").unwrap_or_default(),
                state: h
                    .and_then(|h| s(h, "state"))
                    .unwrap_or_else(|| "down".into()),
                term: h.and_then(|h| u(h, "term")),
                leader_id: h.and_then(|h| s(h, "leaderId")),
                commit_index: h.and_then(|h| u(h, "commitIndex")),
                applied_index: h.and_then(|h| u(h, "appliedIndex")),
                match_index: u(m, "matchIndex"),
                lag: u(m, "lag"),
                last_contact_ms: from_leader.or_else(|| h.and_then(|h| u(h, "lastHeartbeatAgoMs"))),
                storage_error: h.and_then(|h| s(h, "storageError")),
                id,
            }
        })
        .collect()
}

/// The rows as a table; a storage error, if any, is listed under it.
pub fn render(rows: &[MemberStatus]) -> String {
    let opt = |v: Option<u64>| v.map_or("-".to_owned(), |n| n.to_string());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.url.clone(),
                r.role.clone(),
                r.state.clone(),
                opt(r.term),
                r.leader_id.clone().unwrap_or_else(|| "-".into()),
                format!("{}/{}", opt(r.commit_index), opt(r.applied_index)),
                opt(r.lag),
                r.last_contact_ms
                    .map_or("-".to_owned(), |ms| format!("{ms}ms")),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "URL",
            "ROLE",
            "STATE",
            "TERM",
            "LEADER",
            "COMMIT/APPLIED",
            "LAG",
            "LAST CONTACT",
        ],
        &cells,
    );
    for r in rows {
        if let Some(e) = &r.storage_error {
            out.push_str(&format!("{}: storage error: {e}\n", r.id));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_without_health_is_down_and_the_leaders_view_gives_lag_and_contact() {
        let cluster: Value = serde_json::from_str(
            r#"{"ok":true,"leaderId":"n1","members":[
              {"id":"n1","url":"http://a:1","role":"voter","matchIndex":40,"lag":0,"lastContactMs":0},
              {"id":"n2","url":"http://b:2","role":"voter","matchIndex":38,"lag":2,"lastContactMs":35},
              {"id":"n3","url":"http://c:3","role":"learner","matchIndex":0,"lag":40,"lastContactMs":null}]}"#,
        )
        .unwrap();
        let mut healths = HashMap::new();
        for (id, state) in [("n1", "leader"), ("n2", "follower")] {
            healths.insert(
                id.to_owned(),
                serde_json::json!({"id": id, "state": state, "term": 3, "leaderId": "n1",
                    "commitIndex": 40, "appliedIndex": 39, "lastHeartbeatAgoMs": 7,
                    "storageError": null}),
            );
        }
        let rows = rows(&cluster, &healths);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].state, "follower");
        assert_eq!(rows[1].lag, Some(2));
        assert_eq!(rows[1].last_contact_ms, Some(35));
        assert_eq!(rows[2].state, "down");
        assert_eq!(rows[2].term, None);
        assert_eq!(rows[2].last_contact_ms, None);
        let text = render(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID  URL         ROLE     STATE     TERM  LEADER"));
        assert!(
            lines[1].contains("leader    3     n1      40/39           0    0ms"),
            "{text}"
        );
        assert!(
            lines[3].contains("learner  down      -     -       -/-             40   -"),
            "{text}"
        );
    }

    #[test]
    fn without_a_leader_the_members_own_heartbeat_age_is_shown() {
        let cluster: Value = serde_json::from_str(
            r#"{"ok":true,"leaderId":null,"members":[{"id":"n2","url":"http://b:2","role":"voter"}]}"#,
        )
        .unwrap();
        let healths = HashMap::from([(
            "n2".to_owned(),
            serde_json::json!({"id":"n2","state":"candidate","term":9,"leaderId":null,
                "lastHeartbeatAgoMs":1500,"storageError":"disk full"}),
        )]);
        let rows = rows(&cluster, &healths);
        assert_eq!(rows[0].last_contact_ms, Some(1500));
        assert_eq!(rows[0].leader_id, None);
        let text = render(&rows);
        assert!(text.ends_with("n2: storage error: disk full\n"), "{text}");
    }
}
