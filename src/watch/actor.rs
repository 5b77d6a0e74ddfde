//! [`WatchActor`]: owns the recent history of committed changes and the open watchers.
//!
//! Fed by the `StoreActor` in apply order: [`Applied`] after every batch that applied at least
//! one entry, [`Reset`] when a snapshot replaced the whole map (the history before it is gone).
//! It never touches the map, never blocks and never talks to Raft.

use actix::{Actor, Context, Handler, Message};

use super::Change;

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

/// Owns the change history and the watchers (filled in by the watch work of issue #15).
#[derive(Debug, Default)]
pub struct WatchActor {
    /// The store's applied index as last reported.
    applied: u64,
}

impl WatchActor {
    /// A watch hub whose history starts after `applied` (the store's applied index at start).
    pub fn new(applied: u64) -> Self {
        WatchActor { applied }
    }
}

impl Actor for WatchActor {
    type Context = Context<Self>;
}

impl Handler<Applied> for WatchActor {
    type Result = ();

    fn handle(&mut self, msg: Applied, _: &mut Context<Self>) {
        self.applied = msg.applied;
    }
}

impl Handler<Reset> for WatchActor {
    type Result = ();

    fn handle(&mut self, msg: Reset, _: &mut Context<Self>) {
        self.applied = msg.index;
    }
}
