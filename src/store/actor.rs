//! [`StoreActor`]: the single owner of the [`KvState`] at run time.
//!
//! Handlers (and later the Raft actor) send it messages; it never blocks, never does I/O and
//! never talks to the network. Because one actor owns the map, no lock guards it: messages are
//! handled one at a time, in the order they arrive.

use actix::{Actor, Context, Handler, Message};

use super::command::{Command, CommandOutcome};
use super::state::{KvState, StateError};

/// Owns the key-value map.
#[derive(Debug, Default)]
pub struct StoreActor {
    state: KvState,
}

impl StoreActor {
    /// An actor over an empty map.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Writes arrive from every HTTP worker; a deeper mailbox than actix's default of 16
        // keeps them from waiting on each other while still bounding memory.
        ctx.set_mailbox_capacity(1024);
    }
}

/// Apply a command at the next log index (single-node write path).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<CommandOutcome, StateError>")]
pub struct Execute(pub Command);

impl Handler<Execute> for StoreActor {
    type Result = Result<CommandOutcome, StateError>;

    fn handle(&mut self, msg: Execute, _: &mut Context<Self>) -> Self::Result {
        let index = self.state.last_applied() + 1;
        self.state.apply(index, msg.0)
    }
}

/// Read the value of one key.
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix::Actor;

    #[actix_rt::test]
    async fn execute_and_get_round_trip() {
        let addr = StoreActor::new().start();
        let out = addr
            .send(Execute(Command::Set {
                key: "name".into(),
                value: "luffy".into(),
            }))
            .await
            .unwrap();
        assert_eq!(out, Ok(CommandOutcome::Stored));
        let got = addr.send(Get { key: "name".into() }).await.unwrap();
        assert_eq!(got.as_deref(), Some("luffy"));
    }

    #[actix_rt::test]
    async fn delete_reports_found_and_missing() {
        let addr = StoreActor::new().start();
        addr.send(Execute(Command::Set {
            key: "k".into(),
            value: "v".into(),
        }))
        .await
        .unwrap()
        .unwrap();
        let del = || Execute(Command::Delete { key: "k".into() });
        assert_eq!(addr.send(del()).await.unwrap(), Ok(CommandOutcome::Deleted));
        assert_eq!(
            addr.send(del()).await.unwrap(),
            Ok(CommandOutcome::NotFound)
        );
        assert_eq!(addr.send(Get { key: "k".into() }).await.unwrap(), None);
    }

    #[actix_rt::test]
    async fn messages_are_handled_in_send_order() {
        let addr = StoreActor::new().start();
        let sends: Vec<_> = (0..500)
            .map(|i| {
                addr.send(Execute(Command::Set {
                    key: "k".into(),
                    value: i.to_string(),
                }))
            })
            .collect();
        for s in sends {
            s.await.unwrap().unwrap();
        }
        let got = addr.send(Get { key: "k".into() }).await.unwrap();
        assert_eq!(got.as_deref(), Some("499"));
    }
}
