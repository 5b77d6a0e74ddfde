//! [`Configuration`]: who is in the cluster, as a value. The voters (this node included when it
//! votes) decide elections and commitment; learners (none yet: the membership change fills
//! them) only receive the log. Every quorum is computed here, from the voters, never from a
//! count stored elsewhere.
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

use crate::raft::NodeId;

/// A member of the cluster: its id and the base URL at which peers reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
}

impl fmt::Display for ConfigurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigurationError::NoVoters => write!(f, "a configuration needs at least one voter"),
            ConfigurationError::DuplicateId(id) => {
                write!(f, "two members share the id {id:?}")
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

/// The members of a cluster: voters and learners, in a fixed order (the order messages go
/// out in). Invariants: at least one voter; ids are unique across voters and learners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    voters: Vec<Member>,
    learners: Vec<Member>,
}

impl Configuration {
    /// A configuration of these voters and no learners.
    pub fn new(voters: Vec<Member>) -> Result<Configuration, ConfigurationError> {
        if voters.is_empty() {
            return Err(ConfigurationError::NoVoters);
        }
        for (i, m) in voters.iter().enumerate() {
            if voters[..i].iter().any(|o| o.id == m.id) {
                return Err(ConfigurationError::DuplicateId(m.id.clone()));
            }
        }
        Ok(Configuration {
            voters,
            learners: Vec::new(),
        })
    }

    /// The voters, in order.
    pub fn voters(&self) -> &[Member] {
        &self.voters
    }

    /// The learners, in order (none yet).
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
