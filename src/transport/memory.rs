//! An in-process network for tests: [`Network`] (an actor that routes requests between nodes and
//! can cut, isolate, drop and delay them) and [`MemoryTransport`] (a node's handle on it).
//!
//! Deterministic given its seed and a paused tokio clock. The network owns its fault rules; tests
//! change them by sending it messages, so nothing here needs a lock. Never used by the binary.

use std::collections::HashSet;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Message as ActixMessage, Recipient, ResponseFuture};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Deliver, Transport, TransportError};
use crate::raft::{Member, Message};

/// Routes requests between registered nodes (by global index; a request names its target by
/// URL, as in the Raft configuration) under the current fault rules.
pub struct Network {
    nodes: Vec<Option<Recipient<Deliver>>>,
    /// The URL each node registered with.
    urls: Vec<Option<String>>,
    /// Directed links that drop everything: (from, to).
    blocked: HashSet<(usize, usize)>,
    /// Chance, in parts per thousand, that a request or its response is lost.
    drop_per_mille: u32,
    /// Each request is delayed by a uniform time in `[min, max]`.
    delay: (Duration, Duration),
    rng: SmallRng,
}

impl Network {
    /// A network for `n` nodes with no faults; `seed` drives drops and delays.
    pub fn new(n: usize, seed: u64) -> Self {
        Self {
            nodes: vec![None; n],
            urls: vec![None; n],
            blocked: HashSet::new(),
            drop_per_mille: 0,
            delay: (Duration::ZERO, Duration::ZERO),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    fn link_up(&self, from: usize, to: usize) -> bool {
        !self.blocked.contains(&(from, to))
    }

    fn lost(&mut self) -> bool {
        self.drop_per_mille > 0 && self.rng.gen_range(0..1000) < self.drop_per_mille
    }
}

impl Actor for Network {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

/// Register (or re-register after a restart) node `index`, reached at `url`.
#[derive(ActixMessage)]
#[rtype(result = "()")]
pub struct Join {
    pub index: usize,
    pub url: String,
    pub node: Recipient<Deliver>,
}

impl Handler<Join> for Network {
    type Result = ();
    fn handle(&mut self, m: Join, _: &mut Context<Self>) {
        self.nodes[m.index] = Some(m.node);
        self.urls[m.index] = Some(m.url);
    }
}

/// Remove node `index` (a crash): requests to it fail as unreachable.
#[derive(ActixMessage)]
#[rtype(result = "()")]
pub struct Leave(pub usize);

impl Handler<Leave> for Network {
    type Result = ();
    fn handle(&mut self, m: Leave, _: &mut Context<Self>) {
        self.nodes[m.0] = None;
    }
}

/// Change the fault rules.
#[derive(ActixMessage, Debug, Clone)]
#[rtype(result = "()")]
pub enum Fault {
    /// Cut every link to and from this node.
    Isolate(usize),
    /// Cut the link from one node to another (one way).
    Cut { from: usize, to: usize },
    /// Split into two sides that cannot talk to each other.
    Partition(Vec<usize>, Vec<usize>),
    /// Lose this many requests or responses per thousand.
    Drop(u32),
    /// Delay each request uniformly within [min, max].
    Delay(Duration, Duration),
    /// Restore every link and remove drops and delays.
    Heal,
}

impl Handler<Fault> for Network {
    type Result = ();
    fn handle(&mut self, f: Fault, _: &mut Context<Self>) {
        let n = self.nodes.len();
        match f {
            Fault::Isolate(i) => {
                for j in (0..n).filter(|j| *j != i) {
                    self.blocked.insert((i, j));
                    self.blocked.insert((j, i));
                }
            }
            Fault::Cut { from, to } => {
                self.blocked.insert((from, to));
            }
            Fault::Partition(a, b) => {
                for &i in &a {
                    for &j in &b {
                        self.blocked.insert((i, j));
                        self.blocked.insert((j, i));
                    }
                }
            }
            Fault::Drop(per_mille) => self.drop_per_mille = per_mille.min(1000),
            Fault::Delay(min, max) => self.delay = (min, max.max(min)),
            Fault::Heal => {
                self.blocked.clear();
                self.drop_per_mille = 0;
                self.delay = (Duration::ZERO, Duration::ZERO);
            }
        }
    }
}

/// Carry request `msg` from node `from` to the node registered at URL `to` and bring back its
/// response.
#[derive(ActixMessage)]
#[rtype(result = "Result<Message, TransportError>")]
pub struct Route {
    pub from: usize,
    pub to: String,
    pub msg: Message,
}

impl Handler<Route> for Network {
    type Result = ResponseFuture<Result<Message, TransportError>>;

    fn handle(&mut self, m: Route, _: &mut Context<Self>) -> Self::Result {
        let Some(to) = self
            .urls
            .iter()
            .position(|u| u.as_deref() == Some(m.to.as_str()))
        else {
            return Box::pin(async {
                Err(TransportError::Unreachable("no node at this URL".into()))
            });
        };
        let forward = self.link_up(m.from, to) && !self.lost();
        let back = self.link_up(to, m.from) && !self.lost();
        let (min, max) = self.delay;
        let delay = if max > min {
            self.rng.gen_range(min..=max)
        } else {
            min
        };
        let target = self.nodes.get(to).cloned().flatten();
        Box::pin(async move {
            if !delay.is_zero() {
                actix::clock::sleep(delay).await;
            }
            let Some(target) = target else {
                return Err(TransportError::Unreachable("node is down".into()));
            };
            if !forward {
                return Err(TransportError::Timeout);
            }
            let reply = target
                .send(Deliver(m.msg))
                .await
                .map_err(|_| TransportError::Unreachable("node stopped".into()))?
                .map_err(|e| TransportError::Remote {
                    status: 500,
                    message: e.to_string(),
                })?;
            if !back {
                return Err(TransportError::Timeout);
            }
            Ok(reply)
        })
    }
}

/// One node's transport on a [`Network`]: a peer is found by the URL it joined with.
pub struct MemoryTransport {
    network: Addr<Network>,
    me: usize,
}

impl MemoryTransport {
    /// Node `me` of the network.
    pub fn new(network: Addr<Network>, me: usize) -> Self {
        Self { network, me }
    }
}

impl Transport for MemoryTransport {
    fn call(
        &self,
        to: &Member,
        msg: Message,
    ) -> LocalBoxFuture<'static, Result<Message, TransportError>> {
        let network = self.network.clone();
        let from = self.me;
        let to = to.url.clone();
        async move {
            network
                .send(Route { from, to, msg })
                .await
                .map_err(|_| TransportError::Unreachable("network stopped".into()))?
        }
        .boxed_local()
    }
}
