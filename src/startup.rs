//! Building and running a node: start the actors, bind the listeners, serve HTTP (or HTTPS).
//!
//! [`Node::bind`] binds first (port 0 picks a free port, which tests use) and reports the real
//! addresses before serving, so nothing races for ports. With `--peer-port` a second server on
//! the same actix system serves only the Raft routes (`api::peer_app`), with mutual TLS when
//! configured; TLS files are read here (through `crate::tls`), so a bad one stops the start with
//! a [`StartError`] naming it. [`start_actors`] is shared with tests that drive `api::app`
//! directly. This module wires parts together; it holds no request logic.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::{Actor, Arbiter, SyncArbiter};
use actix_web::dev::{Server, ServerHandle};
use actix_web::HttpServer;

use crate::api::auth::{self, ClientTokens};
use crate::api::{self, AppState};
use crate::config::{default_url, Config, SecretSource, Storage};
use crate::raft::actor::{RaftActor, RaftTiming};
use crate::raft::actor::{RaftSetup, SnapshotData, SnapshotInfo, SnapshotPolicy};
use crate::raft::log::{Entry, RaftLog};
use crate::raft::{HardState, Term};
use crate::security::peer_auth::PeerKeys;
use crate::storage::identity::{derive_cluster_id, ClusterId, DataDir, IdentityError};
use crate::storage::snapshot::{self, SnapshotMeta};
use crate::storage::{DiskLog, LogStore, LogWriter, MemoryLog, Wal, WalError};
use crate::store::actor::StoreActor;
use crate::store::KvState;
use crate::tls::{self, TlsError};
use crate::transport::faults::FaultSwitch;
use crate::transport::http::HttpTransport;
use crate::transport::Transport;

/// Could not start serving.
#[derive(Debug)]
pub enum StartError {
    /// The listening socket could not be set up.
    Listen { addr: String, source: io::Error },
    /// The durable log in data directory `dir` could not be opened or is damaged.
    Storage { dir: PathBuf, source: WalError },
    /// The snapshot directory could not be read.
    Snapshot { dir: PathBuf, source: io::Error },
    /// The data directory belongs to another node, cluster or process.
    DataDir(IdentityError),
    /// The cluster secret could not be read or is unusable.
    Secret(String),
    /// A TLS certificate, key or CA bundle cannot be used.
    Tls(TlsError),
    /// The client tokens file cannot be read or used.
    ClientTokens { path: PathBuf, reason: String },
    /// This node and its peers do not make a Raft configuration (e.g. NODE_ID is also a peer's
    /// URL, which stands in for that peer's id).
    Cluster(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Storage { dir, source } => write!(
                f,
                "{source}; `kvstore verify --data-dir {}` reports everything it holds",
                dir.display()
            ),
            StartError::Snapshot { dir, source } => {
                write!(f, "cannot read snapshots in {}: {source}", dir.display())
            }
            StartError::DataDir(e) => write!(f, "{e}"),
            StartError::Secret(why) => write!(f, "cluster secret: {why}"),
            StartError::Tls(e) => write!(f, "{e}"),
            StartError::ClientTokens { path, reason } => {
                write!(f, "client tokens file {}: {reason}", path.display())
            }
            StartError::Cluster(why) => write!(
                f,
                "NODE_ID and PEERS: {why} (a peer's URL stands in for its id: use a NODE_ID that \
                 is not a peer's URL)"
            ),
        }
    }
}

impl std::error::Error for StartError {}

/// A bound, running node. Await [`Node::server`] (and [`Node::peer_server`], if any; or
/// [`Node::run`] for both) to keep it serving. Each server stops on SIGINT/SIGTERM.
pub struct Node {
    /// The client listener's address actually bound (the real port when 0 was asked).
    pub addr: SocketAddr,
    /// The client server future; it resolves when the server stops.
    pub server: Server,
    /// This node's client URL (advertised; `https://` with `--tls-cert`).
    pub url: String,
    /// The peer listener's address (with `--peer-port`).
    pub peer_addr: Option<SocketAddr>,
    /// The peer server (with `--peer-port`): only `/raft/*`.
    pub peer_server: Option<Server>,
    /// This node's peer URL (with `--peer-port`).
    pub peer_url: Option<String>,
}

/// What a node resumes from.
struct Resumed {
    /// The cluster id peer RPCs carry (the data directory's).
    cluster_id: String,
    /// The durable log (its writer thread), or memory.
    storage: Box<dyn LogStore + Send>,
    hard_state: HardState,
    log: RaftLog,
    /// The key-value map as of the newest snapshot, and the term of its last entry.
    state: KvState,
    state_term: Term,
    snapshot: Option<SnapshotInfo>,
    snapshots: SnapshotPolicy,
}

/// Lock the data directory and check its identity, load the newest valid snapshot, open (or
/// create) the durable log and replay what follows the snapshot; start the log's writer thread
/// (which holds the directory's lock from then on).
fn open_storage(config: &Config, cluster_id: ClusterId) -> Result<Resumed, StartError> {
    let Storage::Disk { dir, segment_bytes } = &config.storage else {
        tracing::warn!(
            cluster_id = cluster_id.as_str(),
            "storage: memory only (--in-memory): nothing survives a restart"
        );
        if !config.peers.is_empty() {
            tracing::warn!(
                "UNSAFE (--unsafe-volatile-cluster): after a restart this node has forgotten its \
                 vote and the entries it acknowledged; two leaders in one term are possible"
            );
        }
        return Ok(Resumed {
            cluster_id: cluster_id.as_str().to_owned(),
            storage: Box::new(MemoryLog),
            hard_state: HardState::default(),
            log: RaftLog::new(),
            state: KvState::new(),
            state_term: 0,
            snapshot: None,
            snapshots: SnapshotPolicy::every(
                config.snapshot_entries,
                config.snapshot_log_bytes,
                None,
            )
            .with_factor(config.snapshot_log_factor),
        });
    };
    let data_dir = DataDir::open(dir, &config.node_id, cluster_id).map_err(StartError::DataDir)?;
    let dir = &data_dir.dir;
    let Recovery {
        wal,
        hard_state,
        log,
        state,
        state_term,
        snapshot: info,
    } = recover(dir, *segment_bytes)?;
    let snap_dir = dir.join("snapshots");
    let snapshot_index = log.base_index();
    let replayed = log.last_index() - snapshot_index;
    let empty = snapshot_index == 0 && replayed == 0 && hard_state.term == 0;
    if data_dir.recorded_now && !empty {
        tracing::warn!(
            dir = %dir.display(),
            cluster_id = %data_dir.identity.cluster_id,
            node_id = %data_dir.identity.node_id,
            "this data directory had no identity file (made before they existed); recorded this \
             start's ids"
        );
    }
    if empty {
        tracing::info!(
            dir = %dir.display(),
            cluster_id = %data_dir.identity.cluster_id,
            node_id = %data_dir.identity.node_id,
            "storage: new, empty data directory"
        );
    } else {
        tracing::info!(
            dir = %dir.display(),
            cluster_id = %data_dir.identity.cluster_id,
            node_id = %data_dir.identity.node_id,
            term = hard_state.term,
            snapshot_index,
            snapshot_keys = state.len(),
            entries_replayed = replayed,
            last_index = log.last_index(),
            "storage: recovered; the keys of the replayed entries are applied as the log commits"
        );
    }
    let handoff = wal.handoff();
    drop(wal);
    let cluster_id = data_dir.identity.cluster_id.clone();
    // The writer thread's factory owns the directory (and its lock) as long as the log can be
    // written.
    let writer = SyncArbiter::start(1, move || {
        let _owner = &data_dir;
        LogWriter::new(&handoff)
    });
    Ok(Resumed {
        cluster_id,
        storage: Box::new(DiskLog::new(writer)),
        hard_state,
        log,
        state,
        state_term,
        snapshot: info,
        snapshots: SnapshotPolicy::every(
            config.snapshot_entries,
            config.snapshot_log_bytes,
            Some(snap_dir),
        )
        .with_factor(config.snapshot_log_factor),
    })
}

/// What a data directory holds, recovered: the newest valid snapshot's map, the log after it,
/// the hard state, and the write-ahead log open for appending.
pub struct Recovery {
    pub wal: Wal,
    pub hard_state: HardState,
    pub log: RaftLog,
    /// The key-value map as of the snapshot (the log's entries are not applied yet).
    pub state: KvState,
    /// Term of the snapshot's last entry.
    pub state_term: Term,
    pub snapshot: Option<SnapshotInfo>,
}

/// Recover the node's durable state from `dir`, as start-up does once the directory is locked:
/// load the newest valid snapshot, open the write-ahead log (cutting a torn tail, refusing
/// damage) and build the log that continues the snapshot.
pub fn recover(dir: &Path, segment_bytes: u64) -> Result<Recovery, StartError> {
    let storage_err = |source| StartError::Storage {
        dir: dir.to_owned(),
        source,
    };
    let snap_dir = dir.join("snapshots");
    let loaded = snapshot::load(&snap_dir).map_err(|source| StartError::Snapshot {
        dir: snap_dir.clone(),
        source,
    })?;
    for (path, why) in &loaded.skipped {
        tracing::warn!(file = %path.display(), reason = %why, "damaged snapshot skipped");
    }
    let (meta, state, info) = match loaded.snapshot {
        Some(snap) => {
            let len = snap
                .path
                .as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len());
            let meta = snap.meta;
            let info = snap.path.map(|path| SnapshotInfo {
                meta,
                len,
                data: SnapshotData::File(path),
            });
            (meta, KvState::from_pairs(meta.index, snap.pairs), info)
        }
        None => (SnapshotMeta::default(), KvState::new(), None),
    };
    let wal_dir = dir.join("wal");
    let (wal, recovered) = Wal::open(&wal_dir, segment_bytes, meta.index).map_err(storage_err)?;
    if let Some((path, offset)) = &recovered.torn_tail {
        tracing::warn!(
            file = %path.display(),
            offset,
            "the log ended in a partly written record (a crash mid-write); it was cut off"
        );
    }
    let log = log_after(meta, recovered.entries, recovered.term_at_snapshot).map_err(|why| {
        storage_err(WalError::Corrupt {
            path: wal_dir.clone(),
            offset: 0,
            reason: why,
        })
    })?;
    Ok(Recovery {
        wal,
        hard_state: recovered.hard_state,
        log,
        state,
        state_term: meta.term,
        snapshot: info,
    })
}

/// The log that continues the snapshot at `meta`: the recovered `entries` after it, unless the
/// WAL holds a different term at the snapshot's index (`term_at_snapshot`). Then the node
/// crashed after storing a snapshot from the leader but before recording that it replaced the
/// log: those entries continue another history, conflict with the committed snapshot, and are
/// dropped.
pub fn log_after(
    meta: SnapshotMeta,
    entries: Vec<Entry>,
    term_at_snapshot: Option<Term>,
) -> Result<RaftLog, String> {
    let mut entries = entries;
    if meta.index > 0 && term_at_snapshot.is_some_and(|t| t != meta.term) {
        tracing::warn!(
            snapshot_index = meta.index,
            dropped = entries.len(),
            "the log after the snapshot conflicts with it (a crash while installing a snapshot \
             from the leader); dropping it"
        );
        entries.clear();
    }
    RaftLog::with_base(meta.index, meta.term, entries)
}

/// Most bytes of a cluster secret file (a few secrets and whitespace).
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// The cluster secret's keys, read from where the configuration says; `None` without one.
pub fn load_peer_keys(source: Option<&SecretSource>) -> Result<Option<Arc<PeerKeys>>, StartError> {
    let text = match source {
        None => return Ok(None),
        Some(SecretSource::Env(text)) => text.clone(),
        Some(SecretSource::File(path)) => {
            let err = |why: String| StartError::Secret(format!("{}: {why}", path.display()));
            let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
            let meta = file.metadata().map_err(|e| err(e.to_string()))?;
            if !meta.is_file() || meta.len() > MAX_SECRET_FILE_BYTES {
                return Err(err(format!(
                    "not a regular file of at most {MAX_SECRET_FILE_BYTES} bytes"
                )));
            }
            {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        file = %path.display(),
                        "the cluster secret file can be read by other users; `chmod 600` it"
                    );
                }
            }
            let mut text = String::new();
            use std::io::Read;
            file.take(MAX_SECRET_FILE_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| err(e.to_string()))?;
            text
        }
    };
    let keys = PeerKeys::from_text(&text).map_err(|e| StartError::Secret(e.to_string()))?;
    Ok(Some(Arc::new(keys)))
}

/// Start the store and Raft actors, each on its own thread (an actix [`Arbiter`]), so that
/// neither stalls the other nor the HTTP workers, and return the state the handlers share.
/// Must run inside an actix system. `url` is this node's base URL (no separate peer listener).
pub fn start_actors(config: &Config, url: String) -> Result<AppState, StartError> {
    start_actors_with(config, url, None)
}

/// A TLS client configuration, if the links it is for use TLS.
type ClientTls = Option<Arc<rustls::ClientConfig>>;

/// The TLS client configurations of a node: for Raft RPCs to PEERS (mutual TLS with the peer
/// CA, or the client CA when PEERS are other nodes' `https://` client ports), and for
/// forwarding client requests to an `https://` leader.
fn client_tls(config: &Config) -> Result<(ClientTls, ClientTls), TlsError> {
    let forward = match &config.tls_ca {
        Some(ca) => Some(tls::client_config(ca, None)?),
        None => None,
    };
    let peers_https = config.peers.iter().any(|p| p.starts_with("https://"));
    let raft = match (&config.peer_tls, peers_https) {
        (Some(p), _) => Some(tls::client_config(&p.ca, Some(&p.identity))?),
        (None, true) => forward.clone(),
        (None, false) => None,
    };
    Ok((raft, forward))
}

/// [`start_actors`] for a node whose Raft RPCs arrive at `peer_url` (its peer listener), when
/// it has one. `url`, the client URL, is what the leader announces in its RPCs, so followers
/// forward client requests to the leader's client port; `peer_url` is what the others list in
/// PEERS, so it names this node in the cluster id and in the `x-kvstore-from` header.
pub fn start_actors_with(
    config: &Config,
    url: String,
    peer_url: Option<String>,
) -> Result<AppState, StartError> {
    let (raft_tls, forward_tls) = client_tls(config).map_err(StartError::Tls)?;
    let raft_url = peer_url.clone().unwrap_or_else(|| url.clone());
    let client_tokens = match &config.client_tokens_file {
        Some(path) => {
            if config.cluster_secret.is_none() && config.peer_tls.is_none() {
                tracing::warn!(
                    "client tokens without a cluster secret: any process on this machine can \
                     still speak Raft to this node over loopback and write without a token; set \
                     KVSTORE_CLUSTER_SECRET (or peer mTLS) so that only peers can"
                );
            }
            Some(std::sync::Arc::new(load_client_tokens(path)?))
        }
        None => None,
    };
    let cluster_id = match &config.cluster_id {
        Some(id) => ClusterId::Explicit(id.clone()),
        None => ClusterId::Derived(derive_cluster_id(&raft_url, &config.peers)),
    };
    let peer_keys = load_peer_keys(config.cluster_secret.as_ref())?;
    match (&peer_keys, config.insecure_peers) {
        (Some(keys), _) => tracing::info!(
            secrets = keys.len(),
            "peer RPCs are signed with the cluster secret; unsigned ones are refused"
        ),
        (None, true) => tracing::warn!(
            "INSECURE (--insecure-peers): Raft RPCs are accepted from any address without proof; \
             anyone who can reach this port can rewrite the data. Set a cluster secret instead"
        ),
        (None, false) => {
            tracing::info!("no cluster secret: Raft RPCs are accepted from loopback addresses only")
        }
    }
    let resumed = open_storage(config, cluster_id)?;
    let configuration = RaftSetup::bootstrap(&config.node_id, &raft_url, &config.peers)
        .map_err(|e| StartError::Cluster(e.to_string()))?;
    let (state, state_term) = (resumed.state, resumed.state_term);
    let store = StoreActor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
        StoreActor::with_state(state, state_term)
    });
    let timing = RaftTiming::from_millis(
        config.raft.heartbeat.as_millis() as u64,
        config.raft.election_timeout.as_millis() as u64,
    );
    let setup = RaftSetup {
        id: config.node_id.clone(),
        url: url.clone(),
        configuration,
        timing,
        hard_state: resumed.hard_state,
        seed: uuid::Uuid::new_v4().as_u64_pair().0,
        store: store.clone(),
        max_pending: config.max_pending,
        log: resumed.log,
        storage: resumed.storage,
        snapshots: resumed.snapshots,
        snapshot: resumed.snapshot,
    };
    let (rpc_timeout, faults) = (config.raft.rpc_timeout, config.faults);
    let cluster_id = resumed.cluster_id.clone();
    let keys = peer_keys.clone();
    let (switch, faults_addr) = match faults {
        true => {
            let (switch, addr) = FaultSwitch::new();
            (Some(switch), Some(addr))
        }
        false => (None, None),
    };
    let raft = RaftActor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
        // Made here, on the actor's own thread (one awc client per thread, made on it), and
        // reused for every RPC.
        let http =
            HttpTransport::with_tls(raft_url, rpc_timeout, cluster_id, raft_tls).signed_with(keys);
        let transport: Box<dyn Transport> = match switch {
            Some(switch) => {
                tracing::warn!(
                    "fault injection enabled (KVSTORE_FAULTS): /admin/faults can cut this node's \
                     links"
                );
                // The fault layer runs here too: it shares its rules with this transport.
                Box::new(switch.install(http, uuid::Uuid::new_v4().as_u64_pair().1))
            }
            None => Box::new(http),
        };
        RaftActor::new(setup, transport)
    });
    Ok(AppState {
        node_id: config.node_id.clone(),
        cluster_id: resumed.cluster_id,
        store,
        raft,
        limits: config.limits,
        request_timeout: config.request_timeout,
        faults: faults_addr,
        peer_keys,
        peers_open: config.insecure_peers,
        peer_url,
        peer_mtls: config.peer_tls.is_some(),
        forward_tls,
        client_tokens,
    })
}

/// Read and check the client tokens file (see [`crate::api::auth`]): its permissions, its size
/// and every line. The error names the file and the line, never a token.
pub fn load_client_tokens(path: &Path) -> Result<ClientTokens, StartError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let fail = |reason: String| StartError::ClientTokens {
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    auth::check_file_mode(meta.mode()).map_err(|e| fail(e.to_string()))?;
    if meta.len() > auth::MAX_TOKENS_FILE_BYTES {
        return Err(fail(format!(
            "{} bytes, more than the {} a tokens file may have",
            meta.len(),
            auth::MAX_TOKENS_FILE_BYTES
        )));
    }
    let mut text = String::new();
    file.take(auth::MAX_TOKENS_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read (is it UTF-8 text?): {e}")))?;
    let tokens = auth::parse_tokens(&text).map_err(|e| fail(e.to_string()))?;
    let [read, write, admin] = tokens.counts();
    tracing::info!(
        file = %path.display(),
        read,
        write,
        admin,
        "client tokens: /get, /set, /delete and /admin/* need a bearer token"
    );
    Ok(tokens)
}

impl Node {
    /// Bind `config.host:config.port`, start the actors on the current actix system and build
    /// the HTTP server. Must run inside an actix system.
    pub fn bind(config: &Config) -> Result<Node, StartError> {
        // TLS files first: a bad one stops the start before anything is bound or opened.
        let client_tls = match &config.tls {
            Some(id) => Some(tls::server_config(id).map_err(StartError::Tls)?),
            None => None,
        };
        let peer_tls = match &config.peer_tls {
            Some(p) => Some(tls::peer_server_config(&p.identity, &p.ca).map_err(StartError::Tls)?),
            None => None,
        };
        let (listener, addr) = bind(&config.host, config.port)?;
        let url = config
            .advertise_url
            .clone()
            .unwrap_or_else(|| default_url(client_tls.is_some(), &config.host, addr.port()));
        let peer = match config.peer_port {
            Some(port) => {
                let (listener, addr) = bind(&config.host, port)?;
                let url = config
                    .peer_advertise_url
                    .clone()
                    .unwrap_or_else(|| default_url(peer_tls.is_some(), &config.host, addr.port()));
                Some((listener, addr, url))
            }
            None => None,
        };
        let state = start_actors_with(config, url.clone(), peer.as_ref().map(|p| p.2.clone()))?;
        let listen_err = |addr: SocketAddr| {
            move |source| StartError::Listen {
                addr: addr.to_string(),
                source,
            }
        };
        let client_state = state.clone();
        let server = HttpServer::new(move || api::app(client_state.clone()))
            .workers(config.workers)
            .shutdown_timeout(config.shutdown_timeout.as_secs());
        let server = match client_tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls),
            None => server.listen(listener),
        }
        .map_err(listen_err(addr))?
        .run();
        let (peer_addr, peer_server, peer_url) = match peer {
            Some((listener, peer_addr, peer_url)) => {
                // Peer traffic is a few keep-alive connections (one per leader): few workers.
                let server = HttpServer::new(move || api::peer_app(state.clone()))
                    .workers(config.workers.clamp(1, 2))
                    .shutdown_timeout(config.shutdown_timeout.as_secs());
                let server = match peer_tls {
                    Some(tls) => server.listen_rustls_0_23(listener, tls),
                    None => server.listen(listener),
                }
                .map_err(listen_err(peer_addr))?
                .run();
                (Some(peer_addr), Some(server), Some(peer_url))
            }
            None => (None, None, None),
        };
        Ok(Node {
            addr,
            server,
            url,
            peer_addr,
            peer_server,
            peer_url,
        })
    }

    /// Serve until both servers stop (SIGINT/SIGTERM stops each); the first error, if any.
    pub async fn run(self) -> io::Result<()> {
        let peer = async move {
            match self.peer_server {
                Some(s) => s.await,
                None => Ok(()),
            }
        };
        let (client, peer) = futures_util::future::join(self.server, peer).await;
        client.and(peer)
    }

    /// A handle that can stop the client server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// A handle that can stop the peer server, if there is one.
    pub fn peer_handle(&self) -> Option<ServerHandle> {
        self.peer_server.as_ref().map(Server::handle)
    }
}

/// Bind `host:port` (port 0: any free port) and report the address actually bound.
fn bind(host: &str, port: u16) -> Result<(TcpListener, SocketAddr), StartError> {
    let want = format!("{host}:{port}");
    let err = |source| StartError::Listen {
        addr: want.clone(),
        source,
    };
    let listener = TcpListener::bind(&want).map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    Ok((listener, addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log::EntryPayload;
    use crate::storage::Record;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            payload: EntryPayload::Noop,
        }
    }

    #[test]
    fn a_crash_between_storing_a_leaders_snapshot_and_resetting_the_log_drops_the_old_suffix() {
        // Entries 1..=6 of term 1 (never committed beyond 2); the leader's snapshot at 4 has
        // term 3 and was stored, but the node died before the reset record was written.
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        let old: Vec<_> = (1..=6).map(|i| Record::Entry(entry(i, 1))).collect();
        wal.append(&old).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let meta = SnapshotMeta { index: 4, term: 3 };
        let (_, rec) = Wal::open(dir.path(), 1 << 20, 4).unwrap();
        assert_eq!(rec.term_at_snapshot, Some(1));
        let log = log_after(meta, rec.entries, rec.term_at_snapshot).unwrap();
        assert_eq!(
            (log.base_index(), log.last_index()),
            (4, 4),
            "entries 5 and 6 dropped"
        );
        // A snapshot that matches the log keeps what follows it.
        let (_, rec) = Wal::open(dir.path(), 1 << 20, 4).unwrap();
        let meta = SnapshotMeta { index: 4, term: 1 };
        let log = log_after(meta, rec.entries, rec.term_at_snapshot).unwrap();
        assert_eq!(log.last_index(), 6);
    }
}
