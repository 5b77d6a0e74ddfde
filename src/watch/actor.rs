//! [`WatchActor`]: owns the watch [`Hub`] and the channels to the open `GET /watch` streams.
//!
//! Fed by the `StoreActor` in apply order: [`Applied`] with the changes of one or more applied
//! batches (every batch at once while this actor has watchers; in bulk, at most 50 ms late,
//! while it has none: it tells its feeder which with [`HasWatchers`]), [`Reset`] when a snapshot
//! replaced the whole map (the history before it is gone).
//! [`Subscribe`] opens a watcher and answers the [`WatchStream`] the HTTP route serves, or the
//! hub's refusal. Each event is encoded once by the hub and the same bytes are handed to every
//! matching watcher's bounded channel (`tokio::sync::mpsc`); when a channel is full the actor
//! waits for room without blocking (a spawned `reserve`), and the hub's queue and bounds decide
//! when a watcher is too slow. A watcher's last event (`error`, `compacted`) travels on a
//! oneshot, so it always gets through a full channel. A stream whose connection is gone is
//! found by the next send (heartbeats make sure there is one) and forgotten.
//!
//! It never touches the map, never blocks, holds no lock and never talks to Raft.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult, Recipient,
    SpawnHandle, WrapFuture,
};
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

use super::hub::{Hub, Refusal, WatchLimits, WatcherId};
use super::Change;

/// Events in flight in one watcher's channel (the rest wait in the hub's bounded queue).
const CHANNEL_EVENTS: usize = 64;

/// Default `--watch-heartbeat-ms`.
pub const DEFAULT_HEARTBEAT_MS: u64 = 5000;

/// The watch settings of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSettings {
    /// Time between heartbeats on every stream.
    pub heartbeat: Duration,
    pub limits: WatchLimits,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            heartbeat: Duration::from_millis(DEFAULT_HEARTBEAT_MS),
            limits: WatchLimits::default(),
        }
    }
}

/// The changes of one applied batch, in index order, and the store's applied index after it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Applied {
    pub changes: Vec<Change>,
    pub applied: u64,
}

/// The store's map was replaced by a snapshot at `index`: changes up to `index` are not known
/// one by one; the history starts again at `index + 1`.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Reset {
    pub index: u64,
}

/// Whether this node has watchers (`true`) or none (`false`), told to the feeder registered
/// with [`FedBy`] whenever that changes: a store may hold changes back while nobody watches.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct HasWatchers(pub bool);

/// Register who feeds this actor, to be told [`HasWatchers`] (at once, then on every change).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct FedBy(pub Recipient<HasWatchers>);

/// Open a watch of the keys starting with `prefix`, from `from_index` (`None`: from the next
/// change on).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Subscription, Refusal>")]
pub struct Subscribe {
    pub prefix: String,
    pub from_index: Option<u64>,
}

/// The node is stopping: end every stream (without a last event) and refuse new ones.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopAll;

/// How many watchers are open and the oldest index a watch may start from.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "WatchStatus")]
pub struct GetWatchStatus;

/// The answer to [`GetWatchStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchStatus {
    pub watchers: usize,
    pub oldest_index: u64,
    pub applied: u64,
}

/// A watch that started: the applied index when it did, and its events.
#[derive(Debug)]
pub struct Subscription {
    pub index: u64,
    pub events: WatchStream,
}

/// The events of one watcher, as the HTTP body streams them: the channel's events, then the
/// last event if the watcher was cut; it ends when the actor drops the watcher.
#[derive(Debug)]
pub struct WatchStream {
    events: mpsc::Receiver<Bytes>,
    last: Option<oneshot::Receiver<Bytes>>,
}

impl Stream for WatchStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(b)) => return Poll::Ready(Some(Ok(b))),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {}
        }
        let Some(last) = self.last.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(last).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                self.last = None;
                Poll::Ready(r.ok().map(Ok))
            }
        }
    }
}

/// The actor's side of one watcher.
#[derive(Debug)]
struct Shell {
    events: mpsc::Sender<Bytes>,
    last: Option<oneshot::Sender<Bytes>>,
    /// A wait for room in a full channel is under way.
    waiting: Option<SpawnHandle>,
}

/// Owns the change history and the watchers (see the module's documentation).
#[derive(Debug)]
pub struct WatchActor {
    hub: Hub,
    heartbeat: Duration,
    shells: HashMap<WatcherId, Shell>,
    /// Who feeds the changes, and what it was last told (see [`HasWatchers`]).
    feeder: Option<(Recipient<HasWatchers>, bool)>,
}

impl Default for WatchActor {
    fn default() -> Self {
        WatchActor::new(0)
    }
}

impl WatchActor {
    /// A watch hub whose history starts after `applied` (the store's applied index at start),
    /// with the default settings.
    pub fn new(applied: u64) -> Self {
        WatchActor::with_settings(applied, WatchSettings::default())
    }

    /// A watch hub whose history starts after `applied`, with `settings`.
    pub fn with_settings(applied: u64, settings: WatchSettings) -> Self {
        WatchActor {
            hub: Hub::new(applied, settings.limits),
            heartbeat: settings.heartbeat,
            shells: HashMap::new(),
            feeder: None,
        }
    }

    /// Tell the feeder whether there are watchers, if that changed.
    fn tell_feeder(&mut self) {
        let has = self.hub.watchers() > 0;
        if let Some((feeder, told)) = &mut self.feeder {
            if *told != has {
                *told = has;
                feeder.do_send(HasWatchers(has));
            }
        }
    }

    /// Move watcher `id`'s queued events into its channel while there is room; when it is
    /// full, wait for room off the mailbox.
    fn drain(&mut self, id: WatcherId, ctx: &mut Context<Self>) {
        let Some(shell) = self.shells.get_mut(&id) else {
            self.hub.remove(id);
            return;
        };
        if shell.waiting.is_some() {
            return;
        }
        while let Some(event) = self.hub.peek(id) {
            match shell.events.try_send(event) {
                Ok(()) => self.hub.pop(id),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let room = shell.events.clone().reserve_owned();
                    let wait = room
                        .into_actor(self)
                        .map(move |permit, act, ctx| act.room(id, permit.ok(), ctx));
                    let handle = ctx.spawn(wait);
                    if let Some(shell) = self.shells.get_mut(&id) {
                        shell.waiting = Some(handle);
                    }
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    // The stream is gone (the client left).
                    self.hub.remove(id);
                    self.shells.remove(&id);
                    return;
                }
            }
        }
    }

    /// Watcher `id`'s channel has room again (`None`: its stream is gone).
    fn room(
        &mut self,
        id: WatcherId,
        permit: Option<mpsc::OwnedPermit<Bytes>>,
        ctx: &mut Context<Self>,
    ) {
        let Some(shell) = self.shells.get_mut(&id) else {
            return;
        };
        shell.waiting = None;
        let Some(permit) = permit else {
            self.hub.remove(id);
            self.shells.remove(&id);
            self.tell_feeder();
            return;
        };
        if let Some(event) = self.hub.peek(id) {
            permit.send(event);
            self.hub.pop(id);
        }
        self.drain(id, ctx);
        self.tell_feeder();
    }

    /// Forget every watcher whose stream is gone (its client left); how many there were.
    fn forget_closed(&mut self, ctx: &mut Context<Self>) -> usize {
        let gone: Vec<WatcherId> = self
            .shells
            .iter()
            .filter(|(_, shell)| shell.events.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            if let Some(mut shell) = self.shells.remove(id) {
                if let Some(h) = shell.waiting.take() {
                    ctx.cancel_future(h);
                }
            }
            self.hub.remove(*id);
        }
        gone.len()
    }

    /// Deliver the last event of every watcher the hub cut, and drop their channels.
    fn end_cut(&mut self, ctx: &mut Context<Self>) {
        for (id, last) in self.hub.take_ended() {
            if let Some(mut shell) = self.shells.remove(&id) {
                if let Some(h) = shell.waiting.take() {
                    ctx.cancel_future(h);
                }
                if let Some(tx) = shell.last.take() {
                    let _ = tx.send(last);
                }
            }
        }
    }
}

impl Actor for WatchActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.heartbeat, |act, ctx| {
            for id in act.hub.heartbeat() {
                act.drain(id, ctx);
            }
            act.tell_feeder();
        });
    }
}

impl Handler<Applied> for WatchActor {
    type Result = ();

    fn handle(&mut self, msg: Applied, ctx: &mut Context<Self>) {
        let touched = self.hub.applied_batch(&msg.changes, msg.applied);
        self.end_cut(ctx);
        for id in touched {
            self.drain(id, ctx);
        }
        self.tell_feeder();
    }
}

impl Handler<Reset> for WatchActor {
    type Result = ();

    fn handle(&mut self, msg: Reset, ctx: &mut Context<Self>) {
        self.hub.reset(msg.index);
        self.end_cut(ctx);
        self.tell_feeder();
    }
}

impl Handler<Subscribe> for WatchActor {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        let started = match self.hub.subscribe(&msg.prefix, msg.from_index) {
            // Watchers whose client left count until the next send finds them gone: forget
            // them now rather than refuse a reconnecting client.
            Err(Refusal::TooMany { .. }) if self.forget_closed(ctx) > 0 => {
                self.hub.subscribe(&msg.prefix, msg.from_index)
            }
            other => other,
        };
        let started = match started {
            Ok(s) => s,
            Err(refusal) => return MessageResult(Err(refusal)),
        };
        let (tx, rx) = mpsc::channel(CHANNEL_EVENTS);
        let (last_tx, last_rx) = oneshot::channel();
        self.shells.insert(
            started.id,
            Shell {
                events: tx,
                last: Some(last_tx),
                waiting: None,
            },
        );
        // A watcher starting in the past catches up from the history at once.
        self.drain(started.id, ctx);
        self.tell_feeder();
        MessageResult(Ok(Subscription {
            index: started.applied,
            events: WatchStream {
                events: rx,
                last: Some(last_rx),
            },
        }))
    }
}

impl Handler<StopAll> for WatchActor {
    type Result = ();

    fn handle(&mut self, _: StopAll, ctx: &mut Context<Self>) {
        self.hub.stop();
        for (_, mut shell) in self.shells.drain() {
            if let Some(h) = shell.waiting.take() {
                ctx.cancel_future(h);
            }
        }
        self.tell_feeder();
    }
}

impl Handler<FedBy> for WatchActor {
    type Result = ();

    fn handle(&mut self, msg: FedBy, _: &mut Context<Self>) {
        let has = self.hub.watchers() > 0;
        msg.0.do_send(HasWatchers(has));
        self.feeder = Some((msg.0, has));
    }
}

impl Handler<GetWatchStatus> for WatchActor {
    type Result = MessageResult<GetWatchStatus>;

    fn handle(&mut self, _: GetWatchStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(WatchStatus {
            watchers: self.hub.watchers(),
            oldest_index: self.hub.oldest(),
            applied: self.hub.applied(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn a_watcher_whose_client_left_does_not_count_against_the_limit() {
        let settings = WatchSettings {
            // No heartbeat during the test: nothing else finds the closed stream.
            heartbeat: Duration::from_secs(3600),
            limits: WatchLimits {
                max_watchers: 2,
                ..WatchLimits::default()
            },
        };
        let addr = WatchActor::with_settings(0, settings).start();
        let sub = || Subscribe {
            prefix: String::new(),
            from_index: None,
        };
        let live = addr.send(sub()).await.unwrap().expect("first");
        for _ in 0..5 {
            let gone = addr.send(sub()).await.unwrap().expect("a reconnect");
            drop(gone); // the client left
        }
        let second = addr.send(sub()).await.unwrap().expect("room for a second");
        assert_eq!(
            addr.send(sub()).await.unwrap().err(),
            Some(Refusal::TooMany { limit: 2 }),
            "two live watchers: the limit holds"
        );
        drop((live, second));
    }
}
