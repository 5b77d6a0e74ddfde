//! Wire types of the Raft RPCs (`POST /raft/vote`, `/raft/append`, `/raft/snapshot`,
//! `/raft/timeout-now`, `/raft/read-index`) and the [`Message`] enum the core consumes and
//! produces (all but the read-index pair, which the actor answers itself).
//!
//! Plain serde data, plus [`Message::validate`], the bounds every received message must meet
//! before anything acts on it. A change here is a change of the protocol between nodes.

use serde::{Deserialize, Serialize};

use super::core::MAX_MEMBERS;
use super::log::{Entry, EntryPayload};
use super::{LogIndex, NodeId, Term};

/// The largest term or log index a message may carry: 2^53 - 1, the largest integer a JSON
/// number holds exactly in every client (JavaScript reads numbers as doubles). A term grows by
/// one per election, an index by one per entry: at a million a second, 285 years to get there.
/// Capping received values far below `u64::MAX` means no arithmetic on them (`term + 1` for a
/// campaign, `index + 1` for the next entry) can saturate or wrap, so a forged or corrupt
/// message with `term = u64::MAX` cannot leave a cluster unable to elect.
pub const MAX_WIRE_NUMBER: u64 = (1 << 53) - 1;

/// Longest node id a message may carry (the same bound `NODE_ID` has at start).
pub const MAX_ID_BYTES: usize = 128;

/// Longest leader URL a message may carry (a base URL: scheme, host of at most 253 bytes,
/// port).
pub const MAX_URL_BYTES: usize = 512;

/// Most bytes of one snapshot file a transfer may describe (the follower's cap on what it
/// writes to its temporary file).
pub const MAX_SNAPSHOT_OFFSET: u64 = 1 << 40;

/// RequestVote (§5.2), also used for pre-vote (thesis §9.6) when `pre_vote` is set: then
/// `term` is the term the candidate *would* campaign in, and the receiver changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteRequest {
    pub term: Term,
    pub candidate_id: NodeId,
    pub last_log_index: LogIndex,
    pub last_log_term: Term,
    #[serde(default)]
    pub pre_vote: bool,
    /// The election follows a leadership transfer ([`TimeoutNowRequest`]): voters that still
    /// hear from the leader vote anyway (thesis §3.10).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transfer: bool,
}

/// Answer to a [`VoteRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteResponse {
    /// The voter's term, or the requested term for a granted pre-vote.
    pub term: Term,
    pub granted: bool,
    #[serde(default)]
    pub pre_vote: bool,
}

/// AppendEntries (§5.3); with no entries it is a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendRequest {
    pub term: Term,
    pub leader_id: NodeId,
    /// Base URL at which clients and peers reach the leader.
    pub leader_url: String,
    pub prev_log_index: LogIndex,
    pub prev_log_term: Term,
    #[serde(default)]
    pub entries: Vec<Entry>,
    pub leader_commit: LogIndex,
    /// Unique, increasing per leader: echoed in the response, so the leader knows which request
    /// it answers (pipelining, and ReadIndex's proof of leadership).
    #[serde(default)]
    pub seq: u64,
}

/// Answer to an [`AppendRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendResponse {
    pub term: Term,
    pub success: bool,
    /// On success: the index of the last entry the follower now holds that matches the leader.
    #[serde(default)]
    pub match_index: LogIndex,
    /// The request's `seq`, echoed.
    #[serde(default)]
    pub seq: u64,
    /// On a failed consistency check: the request's `prev_log_index`.
    #[serde(default)]
    pub reject_index: LogIndex,
    /// On a failed consistency check: the follower's term at `reject_index`, if it has an entry
    /// there (fast back-off, §5.3).
    #[serde(default)]
    pub conflict_term: Option<Term>,
    /// On a failed consistency check: the first index of `conflict_term` in the follower's log,
    /// or one past its last entry when its log is too short.
    #[serde(default)]
    pub conflict_index: LogIndex,
    /// The follower's own id (`NODE_ID`): how a leader that knows a peer by its URL only
    /// learns its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<NodeId>,
    /// The follower accepted this request from the leader of its term and refuses votes for
    /// its hold from then on (`raft::core::lease`): only such answers count toward the leader's
    /// lease. Nodes older than leases never send it (and do not hold), so their answers never
    /// grant one; in the binary codec (which only nodes that hold speak) it is implied by a
    /// non-zero `seq`.
    #[serde(default)]
    pub lease_hold: bool,
}

/// TimeoutNow (thesis §3.10): the leader asks a caught-up voter to start an election at once,
/// without a pre-vote, to hand it the leadership.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutNowRequest {
    pub term: Term,
    pub leader_id: NodeId,
}

/// Answer to a [`TimeoutNowRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutNowResponse {
    pub term: Term,
    /// The election was started.
    pub accepted: bool,
}

/// ReadIndex for a follower (thesis §6.4, `POST /raft/read-index`): a follower asks the leader
/// for an index at which a linearizable read may be served, then serves it from its own state
/// machine once it has applied that index (`--follower-reads`). Answered by the leader's actor
/// (from its lease, or after a heartbeat round to a majority), never by the core; a node that
/// does not lead refuses it (503).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadIndexRequest {
    /// The follower's term (for the leader's logs; not needed for safety).
    pub term: Term,
}

/// Answer to a [`ReadIndexRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadIndexResponse {
    /// The leader's term.
    pub term: Term,
    /// The leader's commit index at a moment it knew itself the only leader, after the request
    /// arrived: every write acknowledged before the read began is at or below it.
    pub index: LogIndex,
}

/// InstallSnapshot (§7), one chunk of the snapshot file at a time (`POST /raft/snapshot`, the
/// fields in the query string and the chunk as the body), so a large state never travels as one
/// huge body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRequest {
    pub term: Term,
    pub leader_id: NodeId,
    pub leader_url: String,
    /// The last index the snapshot includes.
    pub index: LogIndex,
    /// The term of that entry.
    pub last_term: Term,
    /// Where `data` starts in the snapshot file.
    pub offset: u64,
    /// This is the last chunk.
    pub done: bool,
    /// The leader's sequence number for this transfer (echoed).
    pub seq: u64,
    /// The chunk: bytes `offset..offset + data.len()` of the snapshot file (the HTTP body).
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// Answer to a [`SnapshotRequest`] chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotResponse {
    pub term: Term,
    pub seq: u64,
    /// Set once the follower holds everything up to this index (the snapshot is installed, or
    /// it had those entries already): the transfer is over.
    #[serde(default)]
    pub match_index: Option<LogIndex>,
    /// Otherwise: where the next chunk must start (0 to start over).
    #[serde(default)]
    pub next_offset: u64,
    /// The follower is still installing an earlier transfer of this snapshot: try later.
    #[serde(default)]
    pub busy: bool,
}

/// A configuration entry within [`MAX_MEMBERS`] members, each id within [`MAX_ID_BYTES`] and
/// URL within [`MAX_URL_BYTES`] (the configuration's own invariants are checked when it is
/// parsed).
fn check_config_entry(e: &Entry) -> Result<(), String> {
    let EntryPayload::Config { configuration } = &e.payload else {
        return Ok(());
    };
    let n = configuration.members().count();
    if n > MAX_MEMBERS {
        return Err(format!(
            "configuration entry {} has {n} members (at most {MAX_MEMBERS})",
            e.index
        ));
    }
    for m in configuration.members() {
        // A provisional id is the member's URL (see `Member::by_url`).
        let id_too_long = m.id.len() > MAX_ID_BYTES && m.id != m.url;
        if id_too_long || m.url.len() > MAX_URL_BYTES {
            return Err(format!(
                "configuration entry {} has a member id or URL too long (at most \
                 {MAX_ID_BYTES} and {MAX_URL_BYTES} bytes)",
                e.index
            ));
        }
    }
    Ok(())
}

/// Every message of the protocol. Requests arrive through HTTP routes; responses come back as
/// the HTTP answer to a request this node sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Message {
    VoteRequest(VoteRequest),
    VoteResponse(VoteResponse),
    AppendRequest(AppendRequest),
    AppendResponse(AppendResponse),
    SnapshotRequest(SnapshotRequest),
    SnapshotResponse(SnapshotResponse),
    TimeoutNowRequest(TimeoutNowRequest),
    TimeoutNowResponse(TimeoutNowResponse),
    ReadIndexRequest(ReadIndexRequest),
    ReadIndexResponse(ReadIndexResponse),
}

impl Message {
    /// The term the message carries.
    pub fn term(&self) -> Term {
        match self {
            Message::VoteRequest(m) => m.term,
            Message::VoteResponse(m) => m.term,
            Message::AppendRequest(m) => m.term,
            Message::AppendResponse(m) => m.term,
            Message::SnapshotRequest(m) => m.term,
            Message::SnapshotResponse(m) => m.term,
            Message::TimeoutNowRequest(m) => m.term,
            Message::TimeoutNowResponse(m) => m.term,
            Message::ReadIndexRequest(m) => m.term,
            Message::ReadIndexResponse(m) => m.term,
        }
    }

    /// Refuse a message whose numbers are out of bounds ([`MAX_WIRE_NUMBER`]), so no
    /// arithmetic on a received term or index can saturate or wrap. The core ignores such a
    /// message; the HTTP edge refuses it first (400), with [`Message::validate`].
    pub fn check_bounds(&self) -> Result<(), String> {
        self.check(false)
    }

    /// [`Message::check_bounds`], plus the shape a well-formed message has: entries that follow
    /// `prev_log_index` one by one with terms no higher than the request's, a snapshot's last
    /// term no higher than the request's, chunk offsets within [`MAX_SNAPSHOT_OFFSET`].
    pub fn validate(&self) -> Result<(), String> {
        self.check(true)
    }

    fn check(&self, shape: bool) -> Result<(), String> {
        if shape {
            self.check_names()?;
        }
        fn check(name: &str, value: u64) -> Result<(), String> {
            if value > MAX_WIRE_NUMBER {
                return Err(format!(
                    "{name} {value} is out of range (at most {MAX_WIRE_NUMBER})"
                ));
            }
            Ok(())
        }
        match self {
            Message::VoteRequest(m) => {
                check("term", m.term)?;
                check("lastLogIndex", m.last_log_index)?;
                check("lastLogTerm", m.last_log_term)
            }
            Message::VoteResponse(m) => check("term", m.term),
            Message::AppendRequest(m) => {
                check("term", m.term)?;
                check("prevLogIndex", m.prev_log_index)?;
                check("prevLogTerm", m.prev_log_term)?;
                check("leaderCommit", m.leader_commit)?;
                check("seq", m.seq)?;
                let mut expected = m.prev_log_index;
                for e in &m.entries {
                    expected += 1;
                    check("entry index", e.index)?;
                    check("entry term", e.term)?;
                    if !shape {
                        continue;
                    }
                    if e.index != expected {
                        return Err(format!(
                            "entry index {} where {expected} was expected (entries follow \
                             prevLogIndex one by one)",
                            e.index
                        ));
                    }
                    if e.term > m.term {
                        return Err(format!(
                            "entry {} has term {}, above the request's term {}",
                            e.index, e.term, m.term
                        ));
                    }
                    check_config_entry(e)?;
                }
                check("last entry index", expected)
            }
            Message::AppendResponse(m) => {
                check("term", m.term)?;
                check("matchIndex", m.match_index)?;
                check("seq", m.seq)?;
                check("rejectIndex", m.reject_index)?;
                check("conflictIndex", m.conflict_index)?;
                check("conflictTerm", m.conflict_term.unwrap_or(0))
            }
            Message::SnapshotRequest(m) => {
                check("term", m.term)?;
                check("index", m.index)?;
                check("lastTerm", m.last_term)?;
                check("seq", m.seq)?;
                if shape && m.last_term > m.term {
                    return Err(format!(
                        "snapshot lastTerm {} is above the request's term {}",
                        m.last_term, m.term
                    ));
                }
                let end = m.offset.checked_add(m.data.len() as u64);
                if end.is_none_or(|end| end > MAX_SNAPSHOT_OFFSET) {
                    return Err(format!(
                        "snapshot chunk at offset {} runs past {MAX_SNAPSHOT_OFFSET} bytes",
                        m.offset
                    ));
                }
                Ok(())
            }
            Message::SnapshotResponse(m) => {
                check("term", m.term)?;
                check("seq", m.seq)?;
                check("matchIndex", m.match_index.unwrap_or(0))?;
                if m.next_offset > MAX_SNAPSHOT_OFFSET {
                    return Err(format!("nextOffset {} is out of range", m.next_offset));
                }
                Ok(())
            }
            Message::TimeoutNowRequest(m) => check("term", m.term),
            Message::TimeoutNowResponse(m) => check("term", m.term),
            Message::ReadIndexRequest(m) => check("term", m.term),
            Message::ReadIndexResponse(m) => {
                check("term", m.term)?;
                check("index", m.index)
            }
        }
    }

    /// Node ids and leader URLs within [`MAX_ID_BYTES`] and [`MAX_URL_BYTES`].
    fn check_names(&self) -> Result<(), String> {
        let (id, url) = match self {
            Message::VoteRequest(m) => (m.candidate_id.as_str(), ""),
            Message::AppendRequest(m) => (m.leader_id.as_str(), m.leader_url.as_str()),
            Message::SnapshotRequest(m) => (m.leader_id.as_str(), m.leader_url.as_str()),
            Message::TimeoutNowRequest(m) => (m.leader_id.as_str(), ""),
            Message::AppendResponse(m) => (m.node_id.as_deref().unwrap_or(""), ""),
            _ => ("", ""),
        };
        if id.len() > MAX_ID_BYTES {
            return Err(format!(
                "node id of {} bytes (at most {MAX_ID_BYTES})",
                id.len()
            ));
        }
        if url.len() > MAX_URL_BYTES {
            return Err(format!(
                "leader URL of {} bytes (at most {MAX_URL_BYTES})",
                url.len()
            ));
        }
        Ok(())
    }

    /// True for the request kinds.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Message::VoteRequest(_)
                | Message::AppendRequest(_)
                | Message::SnapshotRequest(_)
                | Message::TimeoutNowRequest(_)
                | Message::ReadIndexRequest(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::core::{Configuration, Member};

    fn append_with(configuration: Configuration) -> Message {
        Message::AppendRequest(AppendRequest {
            term: 2,
            leader_id: "a".into(),
            leader_url: "http://a".into(),
            entries: vec![Entry {
                index: 1,
                term: 2,
                payload: EntryPayload::Config { configuration },
            }],
            ..AppendRequest::default()
        })
    }

    #[test]
    fn configuration_entries_are_bounded() {
        let members = |n: usize| -> Vec<Member> {
            (0..n)
                .map(|i| Member::new(format!("n{i}"), format!("http://n{i}")))
                .collect()
        };
        let ok = Configuration::new(members(MAX_MEMBERS)).unwrap();
        assert_eq!(append_with(ok).validate(), Ok(()));
        let big = Configuration::new(members(MAX_MEMBERS + 1)).unwrap();
        assert!(append_with(big).validate().unwrap_err().contains("members"));
        let long_id =
            Configuration::new(vec![Member::new("x".repeat(MAX_ID_BYTES + 1), "http://x")]);
        assert!(append_with(long_id.unwrap()).validate().is_err());
        let long_url = Configuration::new(vec![Member::new("x", "h".repeat(MAX_URL_BYTES + 1))]);
        assert!(append_with(long_url.unwrap()).validate().is_err());
        // A peer known by its URL only has it as its id: as long as a URL may be.
        let provisional = Configuration::new(vec![
            Member::new("n0", "http://n0"),
            Member::by_url(format!("http://{}:1", "h".repeat(MAX_ID_BYTES))),
        ]);
        assert_eq!(append_with(provisional.unwrap()).validate(), Ok(()));
        let answer = Message::AppendResponse(AppendResponse {
            node_id: Some("y".repeat(MAX_ID_BYTES + 1)),
            ..AppendResponse::default()
        });
        assert!(answer.validate().is_err(), "node_id is bounded too");
    }
}
