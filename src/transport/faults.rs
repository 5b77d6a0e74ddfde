//! The in-app fault layer (`KVSTORE_FAULTS=1`): per-peer rules, and [`Faulty`], a [`Transport`]
//! that applies them to this node's requests. A rule for peer P:
//!
//! - `cut`: this node's requests to P fail at once, and its answers to P's requests are lost
//!   (the `RaftActor` applies [`FaultRules::for_peer`] to answers). Nothing this node says
//!   reaches P: a one-way cut; cutting both ends' rules splits two nodes.
//! - `drop` p: a request to P is lost with chance p (half of those before delivery, half after
//!   P handled it, as if P's answer were lost); this node's answers to P are lost with chance p.
//! - `delay`: requests to P and answers to P wait a random time in the range.
//! - `duplicate` p: a request to P is sent twice with chance p (requests only).
//!
//! Only a test and diagnosis tool: switched by `POST /admin/faults`, which exists only when the
//! node was started with `KVSTORE_FAULTS=1`. It never changes a message's content.

use std::cell::Cell;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use super::{Transport, TransportError};
use crate::raft::{Member, Message};

/// Faults on the messages from this node to one peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkFault {
    /// The peer's base URL as configured in `PEERS`, or `*` for every peer.
    pub peer: String,
    /// Nothing gets through.
    #[serde(default)]
    pub cut: bool,
    /// Chance (0 to 1) that a message is lost: a request before it is delivered, or the
    /// answer after the request was handled.
    #[serde(default)]
    pub drop: f64,
    /// Each message waits a uniform time in [min, max] milliseconds.
    #[serde(default)]
    pub delay_ms: Option<[u64; 2]>,
    /// Chance (0 to 1) that a request is sent twice.
    #[serde(default)]
    pub duplicate: f64,
}

/// Every rule of one node. Empty: no faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRules {
    #[serde(default)]
    pub rules: Vec<LinkFault>,
}

impl FaultRules {
    /// Why these rules cannot be used, if they cannot (`peers`: the configured peer URLs).
    pub fn validate(&self, peers: &[String]) -> Result<(), String> {
        for r in &self.rules {
            if r.peer != "*" && !peers.contains(&r.peer) {
                return Err(format!(
                    "unknown peer {:?} (peers: {}; or \"*\")",
                    r.peer,
                    peers.join(", ")
                ));
            }
            for (name, p) in [("drop", r.drop), ("duplicate", r.duplicate)] {
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!("{name} must be between 0 and 1, not {p}"));
                }
            }
            if let Some([lo, hi]) = r.delay_ms {
                if lo > hi || hi > 60_000 {
                    return Err(format!(
                        "delayMs must be [min, max] with min <= max <= 60000, not [{lo}, {hi}]"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rule for messages to `peer` (a specific rule wins over `*`).
    pub fn for_peer(&self, peer: &str) -> Option<&LinkFault> {
        self.rules
            .iter()
            .find(|r| r.peer == peer)
            .or_else(|| self.rules.iter().find(|r| r.peer == "*"))
    }
}

/// A small random generator in a cell (the transport is used through `&self` on one thread).
#[derive(Debug)]
pub struct Dice(Cell<u64>);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(Cell::new(seed | 1))
    }

    /// Uniform in [0, 1).
    pub fn roll(&self) -> f64 {
        // xorshift64*
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A delay within `range`, if any.
    pub fn delay(&self, range: Option<[u64; 2]>) -> Option<Duration> {
        let [lo, hi] = range?;
        let ms = lo as f64 + self.roll() * (hi - lo) as f64;
        Some(Duration::from_micros((ms * 1000.0) as u64))
    }
}

/// Why a message did not get through.
fn lost(what: &str) -> TransportError {
    TransportError::Unreachable(format!("fault injection: {what}"))
}

/// A transport that applies [`FaultRules`] to outgoing requests before handing them to `inner`.
pub struct Faulty<T> {
    inner: T,
    peers: Vec<String>,
    rules: FaultRules,
    dice: Dice,
}

impl<T: Transport> Faulty<T> {
    /// `inner` under no faults yet; `peers` are the peer URLs (rules name peers by URL).
    pub fn new(inner: T, peers: Vec<String>, seed: u64) -> Self {
        Faulty {
            inner,
            peers,
            rules: FaultRules::default(),
            dice: Dice::new(seed),
        }
    }
}

impl<T: Transport> Transport for Faulty<T> {
    fn call(
        &self,
        to: &Member,
        msg: Message,
    ) -> LocalBoxFuture<'static, Result<Message, TransportError>> {
        let Some(rule) = self
            .peers
            .iter()
            .find(|p| **p == to.url)
            .and_then(|p| self.rules.for_peer(p))
            .cloned()
        else {
            return self.inner.call(to, msg);
        };
        if rule.cut {
            return async { Err(lost("link cut")) }.boxed_local();
        }
        let delay = self.dice.delay(rule.delay_ms);
        // Half the losses before delivery, half after (the peer acted, the answer is lost).
        let loss = self.dice.roll() < rule.drop;
        let before = loss && self.dice.roll() < 0.5;
        if before {
            return async { Err(lost("request dropped")) }.boxed_local();
        }
        if self.dice.roll() < rule.duplicate {
            let twin = self.inner.call(to, msg.clone());
            let twin_delay = self.dice.delay(rule.delay_ms);
            actix_web::rt::spawn(async move {
                if let Some(d) = twin_delay {
                    actix_web::rt::time::sleep(d).await;
                }
                let _ = twin.await;
            });
        }
        let call = self.inner.call(to, msg);
        async move {
            if let Some(d) = delay {
                actix_web::rt::time::sleep(d).await;
            }
            let res = call.await;
            if loss {
                return Err(lost("answer dropped"));
            }
            res
        }
        .boxed_local()
    }

    fn set_faults(&mut self, rules: FaultRules) {
        self.rules = rules;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_validate_and_the_specific_rule_wins() {
        let peers = vec!["http://a:1".to_owned(), "http://b:2".to_owned()];
        let rules: FaultRules = serde_json::from_str(
            r#"{"rules":[{"peer":"*","drop":0.1},{"peer":"http://b:2","cut":true,"delayMs":[5,10]}]}"#,
        )
        .unwrap();
        rules.validate(&peers).unwrap();
        assert!(rules.for_peer("http://b:2").unwrap().cut);
        assert_eq!(rules.for_peer("http://a:1").unwrap().drop, 0.1);
        let bad = |json: &str| {
            serde_json::from_str::<FaultRules>(json)
                .map_err(|e| e.to_string())
                .and_then(|r| r.validate(&peers))
                .unwrap_err()
        };
        assert!(bad(r#"{"rules":[{"peer":"http://c:3","cut":true}]}"#).contains("unknown peer"));
        assert!(bad(r#"{"rules":[{"peer":"*","drop":2}]}"#).contains("between 0 and 1"));
        assert!(bad(r#"{"rules":[{"peer":"*","delayMs":[9,1]}]}"#).contains("delayMs"));
        assert!(bad(r#"{"rules":[{"peer":"*","cutt":true}]}"#).contains("unknown field"));
    }

    #[test]
    fn dice_are_uniform_enough() {
        let d = Dice::new(7);
        let n = 10_000;
        let below = (0..n).filter(|_| d.roll() < 0.25).count();
        assert!((2_200..2_800).contains(&below), "{below}");
        let ms = d.delay(Some([10, 20])).unwrap().as_millis();
        assert!((10..=20).contains(&ms));
    }
}
