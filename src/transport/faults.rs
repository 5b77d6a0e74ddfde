//! The in-app fault layer (`KVSTORE_FAULTS=1`): per-peer rules, [`Faulty`], a [`Transport`]
//! that applies them to this node's requests, and [`FaultsActor`], the one owner of the rules.
//! A rule for peer P:
//!
//! - `cut`: this node's requests to P fail at once, and its answers to P's requests are lost
//!   (the peer routes ask [`AnswerFate`] before handing a request to the Raft actor). Nothing
//!   this node says reaches P: a one-way cut; cutting both ends' rules splits two nodes.
//! - `drop` p: a request to P is lost with chance p (half of those before delivery, half after
//!   P handled it, as if P's answer were lost); this node's answers to P are lost with chance p.
//! - `delay`: requests to P and answers to P wait a random time in the range.
//! - `duplicate` p: a request to P is sent twice with chance p (requests only).
//!
//! Only a test and diagnosis tool: switched by `POST /admin/faults`, which exists only when the
//! node was started with `KVSTORE_FAULTS=1`. It never changes a message's content.
//!
//! Ownership, without locks: the rules and the dice live in one [`Faults`] value shared (an
//! `Rc<RefCell<..>>`, borrowed only briefly, never across an await) by the [`Faulty`] transport
//! and the [`FaultsActor`], both on the Raft actor's thread ([`FaultSwitch::install`] puts them
//! there). Everything else (the admin route, the peer routes on the HTTP workers) talks to the
//! `FaultsActor` by message. The Raft actor knows nothing of faults.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use actix::dev::channel::{self, AddressReceiver};
use actix::{Actor, Addr, Context, Handler, Message as ActixMessage};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use super::{Transport, TransportError};
use crate::raft::{Member, Message};

/// Faults on the messages from this node to one peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkFault {
    /// The peer's base URL (a member of the configuration in force), or `*` for every peer.
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
    /// Why these rules cannot be used, if they cannot (`peers`: the other members' URLs in the
    /// configuration in force).
    pub fn validate(&self, peers: &[String]) -> Result<(), String> {
        for r in &self.rules {
            // A rule may name a URL that is not a member right now: members come and go (a
            // removed node may join again while the rule holds).
            let url_like = r.peer.starts_with("http://") || r.peer.starts_with("https://");
            if r.peer != "*" && !url_like {
                return Err(format!(
                    "unknown peer {:?}: a peer's base URL (now: {}) or \"*\"",
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

/// The rules in force and the dice that decide each message's fate.
#[derive(Debug)]
pub struct Faults {
    pub rules: FaultRules,
    pub dice: Dice,
}

/// What happens to this node's answer to a peer's request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fate {
    /// The answer is lost (the request was still handled).
    pub dropped: bool,
    /// The answer waits this long first.
    pub delay: Option<Duration>,
}

impl Faults {
    /// The fate of an answer to the peer at `from` (as it said), if a rule covers it.
    fn answer_fate(&self, from: &str) -> Option<Fate> {
        let rule = self.rules.for_peer(from)?;
        let dropped = rule.cut || self.dice.roll() < rule.drop;
        let delay = self.dice.delay(rule.delay_ms);
        Some(Fate { dropped, delay })
    }
}

/// The one owner of the fault rules: the admin route replaces and reads them, the peer routes
/// ask the fate of their answers. Runs on the Raft actor's thread, next to the [`Faulty`]
/// transport that shares its [`Faults`].
pub struct FaultsActor {
    faults: Rc<RefCell<Faults>>,
}

impl Actor for FaultsActor {
    type Context = Context<Self>;
}

/// Replace the fault rules (the route checks `KVSTORE_FAULTS=1` and validates them).
#[derive(Debug, Clone, ActixMessage)]
#[rtype(result = "()")]
pub struct SetFaults(pub FaultRules);

impl Handler<SetFaults> for FaultsActor {
    type Result = ();

    fn handle(&mut self, SetFaults(rules): SetFaults, _: &mut Context<Self>) {
        tracing::warn!(rules = ?rules.rules, "fault injection rules changed");
        self.faults.borrow_mut().rules = rules;
    }
}

/// The current fault rules.
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "FaultRules")]
pub struct GetFaults;

impl Handler<GetFaults> for FaultsActor {
    type Result = actix::MessageResult<GetFaults>;

    fn handle(&mut self, _: GetFaults, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.faults.borrow().rules.clone())
    }
}

/// The fate of this node's answer to a request from the peer at base URL `from` (as it said);
/// `None` when no rule covers it. Asked before the request is handed to the Raft actor.
#[derive(Debug, Clone, ActixMessage)]
#[rtype(result = "Option<Fate>")]
pub struct AnswerFate {
    pub from: Option<String>,
}

impl Handler<AnswerFate> for FaultsActor {
    type Result = Option<Fate>;

    fn handle(&mut self, m: AnswerFate, _: &mut Context<Self>) -> Option<Fate> {
        self.faults.borrow().answer_fate(m.from.as_deref()?)
    }
}

/// The fault layer before it runs: its address can be handed out at once (to the routes), and
/// [`FaultSwitch::install`] starts it on the thread of the transport it wraps.
pub struct FaultSwitch {
    rx: AddressReceiver<FaultsActor>,
}

impl FaultSwitch {
    /// The switch, and the address of the [`FaultsActor`] it will start; messages sent before
    /// [`Self::install`] wait in its mailbox.
    pub fn new() -> (FaultSwitch, Addr<FaultsActor>) {
        let (tx, rx) = channel::channel(16);
        (FaultSwitch { rx }, Addr::new(tx))
    }

    /// Wrap `inner` in the fault layer and start the [`FaultsActor`] here. Call on the thread
    /// that will use the transport (inside a running actix arbiter), as both share [`Faults`].
    /// Rules name peers by URL (the member's, as the Raft actor gives it); `seed` drives the
    /// dice.
    pub fn install<T: Transport>(self, inner: T, seed: u64) -> Faulty<T> {
        let faults = Rc::new(RefCell::new(Faults {
            rules: FaultRules::default(),
            dice: Dice::new(seed),
        }));
        Context::with_receiver(self.rx).run(FaultsActor {
            faults: faults.clone(),
        });
        Faulty { inner, faults }
    }
}

/// A transport that applies the [`FaultRules`] to outgoing requests before handing them to
/// `inner`.
pub struct Faulty<T> {
    inner: T,
    faults: Rc<RefCell<Faults>>,
}

impl<T: Transport> Transport for Faulty<T> {
    fn call(
        &self,
        to: &Member,
        msg: Message,
    ) -> LocalBoxFuture<'static, Result<Message, TransportError>> {
        let faults = self.faults.borrow();
        let Some(rule) = faults.rules.for_peer(&to.url).cloned() else {
            return self.inner.call(to, msg);
        };
        let dice = &faults.dice;
        if rule.cut {
            return async { Err(lost("link cut")) }.boxed_local();
        }
        let delay = dice.delay(rule.delay_ms);
        // Half the losses before delivery, half after (the peer acted, the answer is lost).
        let loss = dice.roll() < rule.drop;
        let before = loss && dice.roll() < 0.5;
        if before {
            return async { Err(lost("request dropped")) }.boxed_local();
        }
        if dice.roll() < rule.duplicate {
            let twin = self.inner.call(to, msg.clone());
            let twin_delay = dice.delay(rule.delay_ms);
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
        assert!(bad(r#"{"rules":[{"peer":"c:3","cut":true}]}"#).contains("unknown peer"));
        // A URL that is not a member now is accepted: it may join (again) while the rule holds.
        let later: FaultRules =
            serde_json::from_str(r#"{"rules":[{"peer":"http://c:3","cut":true}]}"#).unwrap();
        later.validate(&peers).unwrap();
        assert!(bad(r#"{"rules":[{"peer":"*","drop":2}]}"#).contains("between 0 and 1"));
        assert!(bad(r#"{"rules":[{"peer":"*","delayMs":[9,1]}]}"#).contains("delayMs"));
        assert!(bad(r#"{"rules":[{"peer":"*","cutt":true}]}"#).contains("unknown field"));
    }

    /// A transport that answers every request with itself and counts the calls.
    struct Echo(Rc<Cell<u32>>);

    impl Transport for Echo {
        fn call(
            &self,
            _: &Member,
            msg: Message,
        ) -> LocalBoxFuture<'static, Result<Message, TransportError>> {
            self.0.set(self.0.get() + 1);
            async move { Ok(msg) }.boxed_local()
        }
    }

    #[actix_rt::test]
    async fn the_switch_sets_the_rules_for_requests_and_answers() {
        let (switch, addr) = FaultSwitch::new();
        let calls = Rc::new(Cell::new(0));
        let faulty = switch.install(Echo(calls.clone()), 1);
        let msg = || {
            Message::VoteRequest(crate::raft::rpc::VoteRequest {
                term: 1,
                candidate_id: "n1".into(),
                last_log_index: 0,
                last_log_term: 0,
                pre_vote: false,
                transfer: false,
            })
        };
        assert!(
            faulty
                .call(&Member::by_url("http://b:2"), msg())
                .await
                .is_ok(),
            "no rules yet"
        );
        assert_eq!(addr.send(GetFaults).await.unwrap(), FaultRules::default());
        let rules: FaultRules =
            serde_json::from_str(r#"{"rules":[{"peer":"http://b:2","cut":true}]}"#).unwrap();
        addr.send(SetFaults(rules.clone())).await.unwrap();
        assert_eq!(addr.send(GetFaults).await.unwrap(), rules);
        // Requests to b fail without reaching it; to a they go through.
        assert!(faulty
            .call(&Member::by_url("http://b:2"), msg())
            .await
            .is_err());
        assert!(faulty
            .call(&Member::by_url("http://a:1"), msg())
            .await
            .is_ok());
        assert_eq!(calls.get(), 2);
        // Answers to b are lost; to a, and to an unnamed sender, untouched.
        let fate = |from: Option<&str>| AnswerFate {
            from: from.map(str::to_owned),
        };
        let to_b = addr.send(fate(Some("http://b:2"))).await.unwrap();
        assert_eq!(to_b.map(|f| f.dropped), Some(true));
        assert_eq!(addr.send(fate(Some("http://a:1"))).await.unwrap(), None);
        assert_eq!(addr.send(fate(None)).await.unwrap(), None);
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
