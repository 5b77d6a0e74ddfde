//! [`StoreActor`]: the single owner of the [`KvState`] at run time.
//!
//! The `RaftActor` sends it committed log entries ([`ApplyEntries`]), in log order; handlers
//! read from it, either at once ([`Get`], stale) or once a given log index is applied
//! ([`ReadAt`], the last step of a linearizable read). It never blocks, never does I/O and never
//! talks to the network. Because one actor owns the map, no lock guards it.

use std::collections::BTreeMap;

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use tokio::sync::oneshot;

use super::command::CommandOutcome;
use super::state::{KvState, StateError};
use crate::raft::log::{Entry, EntryPayload};
use crate::raft::{LogIndex, Term};
use crate::storage::snapshot::{self, SnapshotMeta};

/// A read waiting for its index: the key and where to send the value.
type ParkedRead = (String, oneshot::Sender<Option<String>>);

/// The store stopped before a parked read could be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStopped;

/// Owns the key-value map.
#[derive(Debug, Default)]
pub struct StoreActor {
    state: KvState,
    /// Term of the last applied entry (a snapshot records it).
    applied_term: Term,
    /// Reads waiting for their index to be applied, by index.
    parked: BTreeMap<LogIndex, Vec<ParkedRead>>,
}

impl StoreActor {
    /// An actor over an empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An actor over a state restored from a snapshot whose last entry has `term`.
    pub fn with_state(state: KvState, term: Term) -> Self {
        StoreActor {
            state,
            applied_term: term,
            parked: BTreeMap::new(),
        }
    }

    fn release_parked(&mut self) {
        let applied = self.state.last_applied();
        while let Some(entry) = self.parked.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for (key, tx) in entry.remove() {
                let _ = tx.send(self.state.get(&key).map(str::to_owned));
            }
        }
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Reads arrive from every HTTP worker; a deeper mailbox than actix's default of 16
        // keeps them from waiting on each other while still bounding memory.
        ctx.set_mailbox_capacity(4096);
    }
}

/// What applying one log entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub index: LogIndex,
    pub term: Term,
    /// `None` for a no-op entry.
    pub outcome: Option<CommandOutcome>,
}

/// Apply committed entries, which must continue the applied sequence without a gap.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Applied>, StateError>")]
pub struct ApplyEntries(pub Vec<Entry>);

impl Handler<ApplyEntries> for StoreActor {
    type Result = Result<Vec<Applied>, StateError>;

    fn handle(&mut self, msg: ApplyEntries, _: &mut Context<Self>) -> Self::Result {
        let mut done = Vec::with_capacity(msg.0.len());
        for e in msg.0 {
            if e.index <= self.state.last_applied() {
                continue; // already applied (a duplicate delivery); applying twice would be wrong
            }
            let outcome = match e.payload {
                EntryPayload::Noop => {
                    self.state.apply_noop(e.index)?;
                    None
                }
                EntryPayload::Command { command } => Some(self.state.apply(e.index, command)?),
            };
            self.applied_term = e.term;
            done.push(Applied {
                index: e.index,
                term: e.term,
                outcome,
            });
        }
        self.release_parked();
        Ok(done)
    }
}

/// Encode the whole map as a snapshot file's bytes (see [`crate::storage::snapshot`]), as of
/// the last applied entry. Sequential copying only; writing the file is someone else's job.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "(SnapshotMeta, Vec<u8>)")]
pub struct TakeSnapshot;

impl Handler<TakeSnapshot> for StoreActor {
    type Result = actix::MessageResult<TakeSnapshot>;

    fn handle(&mut self, _: TakeSnapshot, _: &mut Context<Self>) -> Self::Result {
        let meta = SnapshotMeta {
            index: self.state.last_applied(),
            term: self.applied_term,
        };
        actix::MessageResult((meta, snapshot::encode(meta, self.state.pairs())))
    }
}

/// Replace the whole map with a snapshot's (installed from the leader), whose last entry has
/// `term`. Comes in log order with [`ApplyEntries`].
#[derive(Debug, Message)]
#[rtype(result = "LogIndex")]
pub struct Restore {
    pub state: KvState,
    pub term: Term,
}

impl Handler<Restore> for StoreActor {
    type Result = LogIndex;

    fn handle(&mut self, msg: Restore, _: &mut Context<Self>) -> LogIndex {
        self.state = msg.state;
        self.applied_term = msg.term;
        self.release_parked();
        self.state.last_applied()
    }
}

/// What the map holds, in brief, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSummary {
    /// Index of the last applied entry.
    pub applied_index: LogIndex,
    /// [`KvState::digest`] at that index: replicas at the same index must agree.
    pub digest: u64,
    pub keys: usize,
}

/// Ask for a [`StoreSummary`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "StoreSummary")]
pub struct Summary;

impl Handler<Summary> for StoreActor {
    type Result = actix::MessageResult<Summary>;

    fn handle(&mut self, _: Summary, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(StoreSummary {
            applied_index: self.state.last_applied(),
            digest: self.state.digest(),
            keys: self.state.len(),
        })
    }
}

/// Read one key now, whatever has been applied (a stale read).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<String>")]
pub struct Get {
    pub key: String,
}

impl Handler<Get> for StoreActor {
    type Result = Option<String>;

    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        self.state.get(&msg.key).map(str::to_owned)
    }
}

/// Read one key once every entry up to `index` has been applied.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<String>, StoreStopped>")]
pub struct ReadAt {
    pub key: String,
    pub index: LogIndex,
}

impl Handler<ReadAt> for StoreActor {
    type Result = ResponseFuture<Result<Option<String>, StoreStopped>>;

    fn handle(&mut self, msg: ReadAt, _: &mut Context<Self>) -> Self::Result {
        if msg.index <= self.state.last_applied() {
            let v = self.state.get(&msg.key).map(str::to_owned);
            return Box::pin(async move { Ok(v) });
        }
        let (tx, rx) = oneshot::channel();
        self.parked
            .entry(msg.index)
            .or_default()
            .push((msg.key, tx));
        // A dropped sender means the store stopped: an error, never "not found".
        Box::pin(async move { rx.await.map_err(|_| StoreStopped) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Command;
    use actix::Actor;

    fn entry(index: LogIndex, cmd: Option<Command>) -> Entry {
        Entry {
            index,
            term: 1,
            payload: match cmd {
                Some(command) => EntryPayload::Command { command },
                None => EntryPayload::Noop,
            },
        }
    }

    fn set(k: &str, v: &str) -> Option<Command> {
        Some(Command::Set {
            key: k.into(),
            value: v.into(),
        })
    }

    #[actix_rt::test]
    async fn apply_and_get_round_trip() {
        let addr = StoreActor::new().start();
        let out = addr
            .send(ApplyEntries(vec![
                entry(1, None),
                entry(2, set("name", "luffy")),
            ]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            vec![
                Applied {
                    index: 1,
                    term: 1,
                    outcome: None
                },
                Applied {
                    index: 2,
                    term: 1,
                    outcome: Some(CommandOutcome::Stored)
                }
            ]
        );
        let got = addr.send(Get { key: "name".into() }).await.unwrap();
        assert_eq!(got.as_deref(), Some("luffy"));
    }

    #[actix_rt::test]
    async fn delete_reports_found_and_missing() {
        let addr = StoreActor::new().start();
        let del = || Some(Command::Delete { key: "k".into() });
        let out = addr
            .send(ApplyEntries(vec![
                entry(1, set("k", "v")),
                entry(2, del()),
                entry(3, del()),
            ]))
            .await
            .unwrap()
            .unwrap();
        let outcomes: Vec<_> = out.iter().map(|a| a.outcome).collect();
        assert_eq!(
            outcomes,
            vec![
                Some(CommandOutcome::Stored),
                Some(CommandOutcome::Deleted),
                Some(CommandOutcome::NotFound)
            ]
        );
        assert_eq!(addr.send(Get { key: "k".into() }).await.unwrap(), None);
    }

    #[actix_rt::test]
    async fn duplicates_are_skipped_and_gaps_refused() {
        let addr = StoreActor::new().start();
        addr.send(ApplyEntries(vec![entry(1, set("k", "a"))]))
            .await
            .unwrap()
            .unwrap();
        let again = addr
            .send(ApplyEntries(vec![entry(1, set("k", "b"))]))
            .await
            .unwrap()
            .unwrap();
        assert!(again.is_empty(), "an entry is applied once");
        assert_eq!(
            addr.send(Get { key: "k".into() }).await.unwrap().as_deref(),
            Some("a")
        );
        let gap = addr.send(ApplyEntries(vec![entry(5, None)])).await.unwrap();
        assert_eq!(
            gap,
            Err(StateError {
                expected: 2,
                got: 5
            })
        );
    }

    #[actix_rt::test]
    async fn read_at_waits_for_its_index() {
        let addr = StoreActor::new().start();
        let early = addr.send(ReadAt {
            key: "k".into(),
            index: 2,
        });
        let now = addr
            .send(ReadAt {
                key: "k".into(),
                index: 0,
            })
            .await
            .unwrap();
        assert_eq!(now, Ok(None));
        addr.send(ApplyEntries(vec![entry(1, set("k", "one"))]))
            .await
            .unwrap()
            .unwrap();
        addr.send(ApplyEntries(vec![entry(2, set("k", "two"))]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(early.await.unwrap(), Ok(Some("two".to_owned())));
    }

    #[actix_rt::test]
    async fn entries_apply_in_send_order() {
        let addr = StoreActor::new().start();
        let sends: Vec<_> = (1..=500u64)
            .map(|i| addr.send(ApplyEntries(vec![entry(i, set("k", &i.to_string()))])))
            .collect();
        for s in sends {
            s.await.unwrap().unwrap();
        }
        let got = addr.send(Get { key: "k".into() }).await.unwrap();
        assert_eq!(got.as_deref(), Some("500"));
    }
}
