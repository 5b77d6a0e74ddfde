//! Stopping a node on SIGINT or SIGTERM: a leader first hands its leadership to its most
//! caught-up voter (thesis §3.10; bounded wait), then the `GET /watch` streams end (they would
//! otherwise hold the graceful stop until its timeout) and the HTTP servers stop gracefully; a
//! second signal stops them at once. The servers are built with `disable_signals()`, so this is the
//! only place signals are handled. It asks the Raft actor and stops servers; it decides nothing
//! about Raft itself.

use actix::Addr;
use actix_web::dev::ServerHandle;

use crate::raft::actor::{GetStatus, RaftActor, TransferLeadership};
use crate::watch::actor::{StopAll, WatchActor};

/// Wait for SIGINT or SIGTERM, then stop the node as [`crate::startup::Node::run`] says.
pub async fn on_signals(
    raft: Addr<RaftActor>,
    watch: Addr<WatchActor>,
    handles: Vec<ServerHandle>,
    handover_wait: std::time::Duration,
) {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot listen for SIGINT/SIGTERM; stop this node with SIGKILL");
        return;
    };
    let name = {
        let a = std::pin::pin!(int.recv());
        let b = std::pin::pin!(term.recv());
        match futures_util::future::select(a, b).await {
            futures_util::future::Either::Left(_) => "SIGINT",
            futures_util::future::Either::Right(_) => "SIGTERM",
        }
    };
    tracing::info!("{name} received: stopping (a second signal stops at once)");
    let graceful = async {
        hand_over(&raft, handover_wait).await;
        // Open watches are endless responses: end them so the graceful stop does not wait.
        let _ = watch.send(StopAll).await;
        let stops = handles.iter().map(|h| h.stop(true));
        futures_util::future::join_all(stops).await;
    };
    let again = async {
        let a = std::pin::pin!(int.recv());
        let b = std::pin::pin!(term.recv());
        futures_util::future::select(a, b).await;
    };
    let graceful = std::pin::pin!(graceful);
    let again = std::pin::pin!(again);
    if let futures_util::future::Either::Right(_) =
        futures_util::future::select(graceful, again).await
    {
        tracing::warn!("second signal: stopping at once");
        let stops = handles.iter().map(|h| h.stop(false));
        futures_util::future::join_all(stops).await;
    }
}

/// If this node leads, hand its leadership to the most caught-up voter, waiting at most
/// `wait`; log how it went. A follower has nothing to hand over.
async fn hand_over(raft: &Addr<RaftActor>, wait: std::time::Duration) {
    let Ok(status) = raft.send(GetStatus).await else {
        return;
    };
    if status.state != "leader" {
        return;
    }
    if status.configuration.voters().len() < 2 {
        return; // the only voter: nobody to hand it to (a single node)
    }
    tracing::info!("handing leadership to the most caught-up voter before stopping");
    let started = std::time::Instant::now();
    let ask = raft.send(TransferLeadership(None));
    match actix_web::rt::time::timeout(wait, ask).await {
        Ok(Ok(Ok(to))) => tracing::info!(
            to = %to,
            ms = started.elapsed().as_millis() as u64,
            "leadership handed to {to} in {} ms",
            started.elapsed().as_millis()
        ),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "could not hand leadership over before stopping")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "could not hand leadership over before stopping"),
        Err(_) => tracing::warn!(
            ms = wait.as_millis() as u64,
            "leadership was not taken over in time; stopping anyway"
        ),
    }
}
