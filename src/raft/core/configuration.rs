//! [`Configuration`]: who is in the cluster, as a value. The voters (this node included when it
//! votes) decide elections and commitment; learners only receive the log (and snapshots) and
//! count for nothing. Every quorum is computed here, from the voters, never from a count stored
//! elsewhere. [`ConfigChange`] is one membership change (add a learner, promote it, remove a
//! member); [`Configuration::change`] checks its shape (ids and URLs unique, a voter left) and
//! gives the configuration it leads to; whether the cluster may make it *now* (one change at a
//! time, caught up, a quorum left reachable) is the core's to decide ([`MembershipError`]).
//!
//! Members are identified by [`NodeId`], with the base URL at which they are reached beside.
//! A node learns its peers from `PEERS`, which holds URLs only: until the membership change
//! teaches nodes each other's `NODE_ID`s, a peer known by URL only gets its URL as its
//! *provisional* id. That changes nothing the cluster decides: a vote is recorded under the
//! candidate's real id (from its request), and the leader keys what it knows of a follower by
//! the id it sent to.
//!
//! Pure: plain data and arithmetic; it never does I/O and never reads a clock.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::io::LeaderInfo;
use crate::raft::{LogIndex, NodeId};

/// Most members (voters and learners) a configuration may have: a bound on what a
/// configuration entry, a snapshot or a message may carry.
pub const MAX_MEMBERS: usize = 64;

/// A member of the cluster: its id and the base URL at which peers reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    pub url: String,
}

impl Member {
    /// A member with this id and URL.
    pub fn new(id: impl Into<NodeId>, url: impl Into<String>) -> Member {
        Member {
            id: id.into(),
            url: url.into(),
        }
    }

    /// A peer known only by its URL: the URL is its provisional id (see the module docs).
    pub fn by_url(url: impl Into<String>) -> Member {
        let url = url.into();
        Member {
            id: url.clone(),
            url,
        }
    }
}

/// Why a list of members is not a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigurationError {
    /// No voters: nothing could ever be elected or committed.
    NoVoters,
    /// Two members share this id.
    DuplicateId(NodeId),
    /// Two members share this URL.
    DuplicateUrl(String),
}

impl fmt::Display for ConfigurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigurationError::NoVoters => write!(f, "a configuration needs at least one voter"),
            ConfigurationError::DuplicateId(id) => {
                write!(f, "two members share the id {id:?}")
            }
            ConfigurationError::DuplicateUrl(url) => {
                write!(f, "two members share the URL {url:?}")
            }
        }
    }
}

impl std::error::Error for ConfigurationError {}

/// How an election stands, counted over the voters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority of the voters granted.
    Won,
    /// A majority of the voters refused: this round cannot be won.
    Lost,
    /// Neither yet.
    Pending,
}

/// What a member is in a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// Votes, and counts toward every quorum.
    Voter,
    /// Receives the log; counts for nothing.
    Learner,
}

impl MemberRole {
    /// `voter` or `learner`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Voter => "voter",
            MemberRole::Learner => "learner",
        }
    }
}

/// One membership change. A configuration entry in the log holds the whole configuration it
/// leads to, never the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// Add a learner (a new node with its id and peer URL).
    AddLearner(Member),
    /// Make a learner a voter.
    Promote(NodeId),
    /// Remove a member (voter or learner).
    Remove(NodeId),
}

/// Why a membership change (or a leadership transfer) cannot be made. The HTTP edge maps
/// these: `NotLeader` is routed to the leader, `Unknown` is a 404, `NotReady` a 503, the rest
/// 409 conflicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipError {
    /// This node does not lead; `leader` is the one it knows of.
    NotLeader(Option<LeaderInfo>),
    /// The leader has not yet committed an entry of its own term (thesis errata: a change
    /// before that could be lost with a concurrent one of an earlier leader). Retry shortly.
    NotReady,
    /// The latest configuration is not committed yet: one change at a time.
    InProgress,
    /// A leadership transfer is under way.
    TransferInProgress,
    /// No member has this id.
    Unknown(NodeId),
    /// Another member already uses this id.
    IdInUse(NodeId),
    /// Another member already uses this URL (its id given).
    UrlInUse { url: String, id: NodeId },
    /// The member is already a voter.
    AlreadyVoter(NodeId),
    /// The member is not a voter (it cannot lead).
    NotAVoter(NodeId),
    /// Removing it would leave no voter.
    LastVoter(NodeId),
    /// After the change, too few voters would be reachable to form a quorum.
    NoQuorum { reachable: usize, quorum: usize },
    /// The learner is too far behind to vote: it holds `matched`, the leader `last`.
    Lagging {
        id: NodeId,
        matched: LogIndex,
        last: LogIndex,
    },
    /// No voter can take over the leadership.
    NoCandidate,
    /// The configuration already has [`MAX_MEMBERS`] members.
    TooManyMembers,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipError::NotLeader(Some(l)) => {
                write!(f, "not the leader; the leader is {} ({})", l.id, l.url)
            }
            MembershipError::NotLeader(None) => write!(f, "not the leader; no leader is known"),
            MembershipError::NotReady => write!(
                f,
                "the leader has not committed an entry of its term yet; retry shortly"
            ),
            MembershipError::InProgress => write!(f, "a membership change is in progress"),
            MembershipError::TransferInProgress => {
                write!(f, "a leadership transfer is in progress")
            }
            MembershipError::Unknown(id) => write!(f, "no member has the id {id:?}"),
            MembershipError::IdInUse(id) => write!(f, "the id {id:?} is already a member's"),
            MembershipError::UrlInUse { url, id } => {
                write!(f, "the URL {url:?} is already used by member {id:?}")
            }
            MembershipError::AlreadyVoter(id) => write!(f, "{id:?} is already a voter"),
            MembershipError::NotAVoter(id) => write!(f, "{id:?} is not a voter"),
            MembershipError::LastVoter(id) => {
                write!(f, "{id:?} is the last voter; a cluster needs one")
            }
            MembershipError::NoQuorum { reachable, quorum } => write!(
                f,
                "after this change only {reachable} voter(s) would be reachable, fewer than the \
                 {quorum} a quorum needs"
            ),
            MembershipError::Lagging { id, matched, last } => write!(
                f,
                "{id:?} lags too far behind to vote: it holds the log up to {matched}, the \
                 leader up to {last}; retry once it has caught up"
            ),
            MembershipError::NoCandidate => write!(f, "no other voter can take over"),
            MembershipError::TooManyMembers => {
                write!(f, "a cluster has at most {MAX_MEMBERS} members")
            }
        }
    }
}

impl std::error::Error for MembershipError {}

/// The members of a cluster: voters and learners, in a fixed order (the order messages go
/// out in). Invariants: at least one voter; ids, and URLs, are unique across voters and
/// learners. Serialized (in configuration entries and snapshots) as `{"voters":[..],
/// "learners":[..]}`; deserializing checks the invariants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ConfigurationParts")]
pub struct Configuration {
    voters: Vec<Member>,
    learners: Vec<Member>,
}

/// A configuration as it arrives, before its invariants are checked.
#[derive(Deserialize)]
struct ConfigurationParts {
    voters: Vec<Member>,
    #[serde(default)]
    learners: Vec<Member>,
}

impl TryFrom<ConfigurationParts> for Configuration {
    type Error = ConfigurationError;

    fn try_from(parts: ConfigurationParts) -> Result<Self, Self::Error> {
        Configuration::with_learners(parts.voters, parts.learners)
    }
}

impl Configuration {
    /// A configuration of these voters and no learners.
    pub fn new(voters: Vec<Member>) -> Result<Configuration, ConfigurationError> {
        Configuration::with_learners(voters, Vec::new())
    }

    /// A configuration of these voters and learners.
    pub fn with_learners(
        voters: Vec<Member>,
        learners: Vec<Member>,
    ) -> Result<Configuration, ConfigurationError> {
        if voters.is_empty() {
            return Err(ConfigurationError::NoVoters);
        }
        let all: Vec<&Member> = voters.iter().chain(&learners).collect();
        for (i, m) in all.iter().enumerate() {
            if all[..i].iter().any(|o| o.id == m.id) {
                return Err(ConfigurationError::DuplicateId(m.id.clone()));
            }
            if all[..i].iter().any(|o| o.url == m.url) {
                return Err(ConfigurationError::DuplicateUrl(m.url.clone()));
            }
        }
        Ok(Configuration { voters, learners })
    }

    /// Every member, voters first, then learners.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.voters.iter().chain(&self.learners)
    }

    /// What `id` is here, if a member.
    pub fn role_of(&self, id: &str) -> Option<MemberRole> {
        if self.is_voter(id) {
            Some(MemberRole::Voter)
        } else if self.learners.iter().any(|m| m.id == id) {
            Some(MemberRole::Learner)
        } else {
            None
        }
    }

    /// Whether some member is still known by its URL only (a provisional id; see the module
    /// docs).
    pub fn is_provisional(&self) -> bool {
        self.members().any(|m| m.id == m.url)
    }

    /// The configuration `change` leads to; `Ok(None)` when it already is so (adding a learner
    /// with the same id and URL again, promoting a voter that asked to be one is not: that is
    /// [`MembershipError::AlreadyVoter`]). Checks the shape only: unique ids and URLs, a voter
    /// left, the member known. The core checks the rest.
    pub fn change(&self, change: &ConfigChange) -> Result<Option<Configuration>, MembershipError> {
        let mut voters = self.voters.clone();
        let mut learners = self.learners.clone();
        match change {
            ConfigChange::AddLearner(m) => {
                if let Some(existing) = self.member(&m.id) {
                    if existing.url == m.url && !self.is_voter(&m.id) {
                        return Ok(None);
                    }
                    return Err(MembershipError::IdInUse(m.id.clone()));
                }
                if let Some(other) = self.members().find(|o| o.url == m.url) {
                    return Err(MembershipError::UrlInUse {
                        url: m.url.clone(),
                        id: other.id.clone(),
                    });
                }
                if self.members().count() >= MAX_MEMBERS {
                    return Err(MembershipError::TooManyMembers);
                }
                learners.push(m.clone());
            }
            ConfigChange::Promote(id) => {
                if self.is_voter(id) {
                    return Err(MembershipError::AlreadyVoter(id.clone()));
                }
                let Some(at) = learners.iter().position(|m| &m.id == id) else {
                    return Err(MembershipError::Unknown(id.clone()));
                };
                voters.push(learners.remove(at));
            }
            ConfigChange::Remove(id) => {
                if let Some(at) = voters.iter().position(|m| &m.id == id) {
                    if voters.len() == 1 {
                        return Err(MembershipError::LastVoter(id.clone()));
                    }
                    voters.remove(at);
                } else if let Some(at) = learners.iter().position(|m| &m.id == id) {
                    learners.remove(at);
                } else {
                    return Err(MembershipError::Unknown(id.clone()));
                }
            }
        }
        Configuration::with_learners(voters, learners)
            .map(Some)
            .map_err(|e| match e {
                ConfigurationError::NoVoters => MembershipError::LastVoter(String::new()),
                ConfigurationError::DuplicateId(id) => MembershipError::IdInUse(id),
                ConfigurationError::DuplicateUrl(url) => MembershipError::UrlInUse {
                    url,
                    id: String::new(),
                },
            })
    }

    /// The same members with the member `id` renamed `new_id` (its URL and role kept): how a
    /// provisional id (see the module docs) is replaced by the real one. `None` when `id` is
    /// not a member or `new_id` is already another member's.
    pub fn renamed(&self, id: &str, new_id: &str) -> Option<Configuration> {
        if self.member(id).is_none() || self.member(new_id).is_some() {
            return None;
        }
        let rename = |ms: &[Member]| -> Vec<Member> {
            ms.iter()
                .map(|m| {
                    if m.id == id {
                        Member::new(new_id, m.url.clone())
                    } else {
                        m.clone()
                    }
                })
                .collect()
        };
        Configuration::with_learners(rename(&self.voters), rename(&self.learners)).ok()
    }

    /// The voters, in order.
    pub fn voters(&self) -> &[Member] {
        &self.voters
    }

    /// The learners, in order.
    pub fn learners(&self) -> &[Member] {
        &self.learners
    }

    /// The member (voter or learner) with this id.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.voters
            .iter()
            .chain(&self.learners)
            .find(|m| m.id == id)
    }

    /// Whether `id` is a voter.
    pub fn is_voter(&self, id: &str) -> bool {
        self.voters.iter().any(|m| m.id == id)
    }

    /// Every member but `me`, voters first: who a leader replicates to.
    pub fn others<'a>(&'a self, me: &'a str) -> impl Iterator<Item = &'a Member> + 'a {
        self.voters
            .iter()
            .chain(&self.learners)
            .filter(move |m| m.id != me)
    }

    /// How many voters make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether the voters for which `yes` holds are a majority.
    pub fn has_quorum(&self, yes: impl Fn(&str) -> bool) -> bool {
        self.voters.iter().filter(|m| yes(&m.id)).count() >= self.quorum()
    }

    /// How an election stands given the answers so far (`true` granted, by voter id; answers
    /// from non-voters do not count).
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let count = |want: bool| {
            self.voters
                .iter()
                .filter(|m| votes.get(&m.id) == Some(&want))
                .count()
        };
        if count(true) >= self.quorum() {
            VoteResult::Won
        } else if count(false) >= self.quorum() {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    /// The highest value that a majority of the voters reach, each voter's value given by
    /// `value`: the majority's match index (commitment), or the sequence number a majority has
    /// answered (read index).
    pub fn quorum_value(&self, value: impl Fn(&str) -> u64) -> u64 {
        let values = self.voters.iter().map(|m| value(&m.id)).collect();
        super::progress::quorum_min(values, self.quorum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(ids: &[&str]) -> Configuration {
        Configuration::new(
            ids.iter()
                .map(|id| Member::new(*id, format!("http://{id}")))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_configuration_needs_voters_with_distinct_ids() {
        assert_eq!(
            Configuration::new(vec![]),
            Err(ConfigurationError::NoVoters)
        );
        let twice = vec![Member::new("a", "http://1"), Member::new("a", "http://2")];
        assert_eq!(
            Configuration::new(twice),
            Err(ConfigurationError::DuplicateId("a".into()))
        );
        let c = conf(&["a", "b", "c"]);
        assert!(c.learners().is_empty());
        assert_eq!(c.member("b").map(|m| m.url.as_str()), Some("http://b"));
        assert!(c.is_voter("c") && !c.is_voter("d"));
        let others: Vec<_> = c.others("b").map(|m| m.id.as_str()).collect();
        assert_eq!(others, ["a", "c"], "in configuration order, without me");
    }

    #[test]
    fn a_configuration_holds_at_most_max_members() {
        let ids: Vec<String> = (0..MAX_MEMBERS).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let full = conf(&refs);
        let add = ConfigChange::AddLearner(Member::new("x", "http://x"));
        assert_eq!(full.change(&add), Err(MembershipError::TooManyMembers));
        let one_less = full
            .change(&ConfigChange::Remove("n0".into()))
            .unwrap()
            .unwrap();
        assert!(one_less.change(&add).unwrap().is_some());
    }

    #[test]
    fn renaming_a_provisional_member_keeps_its_url_and_role() {
        let c = Configuration::with_learners(
            vec![Member::new("a", "http://a"), Member::by_url("http://b")],
            vec![Member::by_url("http://c")],
        )
        .unwrap();
        assert!(c.is_provisional());
        let c = c.renamed("http://b", "b").unwrap();
        let c = c.renamed("http://c", "c").unwrap();
        assert!(!c.is_provisional());
        assert_eq!(c.role_of("b"), Some(MemberRole::Voter));
        assert_eq!(c.role_of("c"), Some(MemberRole::Learner));
        assert_eq!(c.member("c").map(|m| m.url.as_str()), Some("http://c"));
        assert_eq!(c.renamed("b", "a"), None, "a is taken");
        assert_eq!(c.renamed("z", "y"), None, "no member z");
    }

    #[test]
    fn a_peer_known_by_url_only_uses_it_as_its_provisional_id() {
        let m = Member::by_url("http://10.0.0.2:8080");
        assert_eq!(m.id, m.url);
    }

    #[test]
    fn quorum_is_a_majority_of_the_voters() {
        for (n, q) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)] {
            let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            assert_eq!(conf(&refs).quorum(), q, "{n} voters");
        }
        let c = conf(&["a", "b", "c"]);
        assert!(c.has_quorum(|id| id != "c"));
        assert!(!c.has_quorum(|id| id == "a"));
    }

    #[test]
    fn votes_count_only_from_voters() {
        let c = conf(&["a", "b", "c"]);
        let mut votes = BTreeMap::new();
        votes.insert("a".to_owned(), true);
        votes.insert("x".to_owned(), true); // not a voter
        assert_eq!(c.vote_result(&votes), VoteResult::Pending);
        votes.insert("b".to_owned(), true);
        assert_eq!(c.vote_result(&votes), VoteResult::Won);
        let mut votes = BTreeMap::new();
        votes.insert("b".to_owned(), false);
        votes.insert("c".to_owned(), false);
        assert_eq!(c.vote_result(&votes), VoteResult::Lost);
    }

    #[test]
    fn the_quorum_value_is_what_a_majority_reaches() {
        let c = conf(&["a", "b", "c", "d", "e"]);
        let matched = |id: &str| match id {
            "a" => 9,
            "b" => 7,
            "c" => 3,
            "d" => 5,
            _ => 1,
        };
        assert_eq!(c.quorum_value(matched), 5, "a, b and d hold index 5");
    }
}
