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

use actix::{Actor, Arbiter};
use actix_web::dev::{Server, ServerHandle};
use actix_web::HttpServer;

use crate::api::auth::{self, ClientTokens};
use crate::api::{self, AppState};
use crate::config::{default_url, Config, SecretSource, Storage};
use crate::join::ClusterView;
use crate::raft::actor::{RaftActor, RaftTiming};
use crate::raft::actor::{RaftSetup, SnapshotData, SnapshotInfo, SnapshotPolicy};
use crate::raft::log::{Entry, EntryPayload, RaftLog};
use crate::raft::{Configuration, HardState, Member, Term};
use crate::security::peer_auth::PeerKeys;
use crate::storage::identity::{derive_cluster_id, ClusterId, DataDir, IdentityError};
use crate::storage::snapshot::{self, SnapshotMeta};
use crate::storage::{DiskLog, LogStore, MemoryLog, Wal, WalError};
use crate::store::actor::StoreActor;
use crate::store::KvState;
use crate::tls::{self, TlsError};
use crate::transport::faults::FaultSwitch;
use crate::transport::http::HttpTransport;
use crate::transport::Transport;
use crate::watch::actor::WatchActor;

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
    /// `--join` cannot be done (the line says why: an id or URL in use, no leader, ...).
    Join(String),
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
            StartError::Join(why) => write!(f, "{why}"),
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
/// [`Node::run`] for both) to keep it serving. The servers do not stop on signals by
/// themselves: [`Node::run`] handles SIGINT/SIGTERM (a leader hands its leadership over first).
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
    /// The URL peers reach this node at: the peer URL, else the client URL.
    pub raft_url: String,
    /// The node's Raft actor (asked to hand leadership over before stopping).
    pub raft: actix::Addr<RaftActor>,
    /// How long a leader waits for its leadership to be taken over before stopping.
    pub handover_wait: std::time::Duration,
    /// The node's watch actor (its streams end before the servers stop).
    pub watch: actix::Addr<WatchActor>,
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
    /// The configuration the newest snapshot records, if any.
    configuration: Option<Configuration>,
}

/// Lock the data directory and check its identity, load the newest valid snapshot, open (or
/// create) the durable log and replay what follows the snapshot; start the log's writer thread
/// (which holds the directory's lock from then on).
fn open_storage(
    config: &Config,
    cluster_id: ClusterId,
    wal_metrics: crate::metrics::WalMetrics,
) -> Result<Resumed, StartError> {
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
            configuration: None,
        });
    };
    let mut data_dir =
        DataDir::open_resuming(dir, &config.node_id, cluster_id).map_err(StartError::DataDir)?;
    let dir = &data_dir.dir;
    let Recovery {
        wal,
        hard_state,
        log,
        state,
        state_term,
        snapshot: info,
        configuration,
    } = recover(dir, *segment_bytes)?;
    let snap_dir = dir.join("snapshots");
    let snapshot_index = log.base_index();
    let replayed = log.last_index() - snapshot_index;
    let empty = snapshot_index == 0 && replayed == 0 && hard_state.term == 0;
    if let Some((derived, refusal)) = data_dir.derived_differs.take() {
        // PEERS now derive another cluster id. A directory whose storage records the
        // membership resumes in its recorded cluster (PEERS is only a hint after the first
        // start); one that records none keeps today's refusal.
        let recorded_membership = configuration.is_some() || log_configuration(&log).is_some();
        if empty || !recorded_membership {
            return Err(StartError::DataDir(refusal));
        }
        tracing::info!(
            cluster_id = %data_dir.identity.cluster_id,
            derived_from_peers = %derived,
            "PEERS differ from the membership this data directory records; resuming in its \
             cluster: after the first start the log's configuration wins and PEERS is only a hint"
        );
    }
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
    // The writer thread owns the directory (and its lock) as long as the log can be written.
    let wal_dir = data_dir.dir.clone();
    let storage = DiskLog::start(handoff, data_dir, Some(wal_metrics)).map_err(|source| {
        StartError::Storage {
            dir: wal_dir.clone(),
            source: WalError::Io {
                path: wal_dir,
                op: "start the threads of",
                source,
            },
        }
    })?;
    Ok(Resumed {
        cluster_id,
        storage: Box::new(storage),
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
        configuration,
    })
}

/// The latest configuration entry in `log`, if it holds one.
fn log_configuration(log: &RaftLog) -> Option<&Configuration> {
    (log.base_index() + 1..=log.last_index())
        .rev()
        .find_map(|i| match log.entry(i).map(|e| &e.payload) {
            Some(EntryPayload::Config { configuration }) => Some(configuration),
            _ => None,
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
    /// The configuration the snapshot records (`None`: no snapshot, or a v1 file).
    pub configuration: Option<Configuration>,
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
    let (meta, state, info, configuration) = match loaded.snapshot {
        Some(mut snap) => {
            let len = snap
                .path
                .as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len());
            let meta = snap.meta;
            let info = snap.path.take().map(|path| SnapshotInfo {
                meta,
                len,
                data: SnapshotData::File(path),
            });
            let configuration = snap.configuration.take();
            (meta, snap.into_state(), info, configuration)
        }
        None => (SnapshotMeta::default(), KvState::new(), None, None),
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
        configuration,
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
fn client_tls(config: &Config, peers: &[String]) -> Result<(ClientTls, ClientTls), TlsError> {
    let forward = match &config.tls_ca {
        Some(ca) => Some(tls::client_config(ca, None)?),
        None => None,
    };
    let peers_https = peers.iter().any(|p| p.starts_with("https://"));
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
    start_actors_joining(config, url, peer_url, None)
}

/// A node joining a cluster (`--join`, empty storage): the cluster's id and the configuration
/// it starts with ([`crate::join::plan`]).
#[derive(Debug, Clone)]
pub struct Joining {
    pub cluster_id: String,
    pub configuration: Configuration,
}

/// The configuration of a new cluster from PEERS: this node (`id` at `url`, the URL its peers
/// reach it at) and its peers, all voters; a peer named in PEERS (`id=url`) has that id, one
/// given by URL only its URL as its provisional id.
pub fn bootstrap_configuration(
    id: &str,
    url: &str,
    peers: &[String],
    peer_ids: &[(String, String)],
) -> Result<Configuration, String> {
    let named = |u: &String| peer_ids.iter().find(|(pu, _)| pu == u).map(|(_, id)| id);
    let peers = peers.iter().map(|u| match named(u) {
        Some(id) => Member::new(id.clone(), u.clone()),
        None => Member::by_url(u.clone()),
    });
    Configuration::new(std::iter::once(Member::new(id, url)).chain(peers).collect())
        .map_err(|e| e.to_string())
}

/// Which configuration a node starts with (the log's configuration entries override it inside
/// the core): the one it joins with, else its newest snapshot's, else the bootstrap one from
/// PEERS. Returns it and where it came from (for the log line).
pub fn starting_configuration(
    joining: Option<Configuration>,
    snapshot: Option<Configuration>,
    bootstrap: impl FnOnce() -> Result<Configuration, String>,
) -> Result<(Configuration, &'static str), String> {
    match (joining, snapshot) {
        (Some(c), _) => Ok((c, "the cluster joined")),
        (None, Some(c)) => Ok((c, "the newest snapshot")),
        (None, None) => bootstrap().map(|c| (c, "PEERS")),
    }
}

/// [`start_actors_with`] for a node that may be joining a cluster.
fn start_actors_joining(
    config: &Config,
    url: String,
    peer_url: Option<String>,
    joining: Option<Joining>,
) -> Result<AppState, StartError> {
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
    let cluster_id = match (&config.cluster_id, &joining) {
        (Some(id), Some(j)) if *id != j.cluster_id => {
            return Err(StartError::Join(format!(
                "cannot join: --cluster-id is {id:?} but the cluster at {} is {:?}",
                config.join.as_deref().unwrap_or("?"),
                j.cluster_id
            )))
        }
        (_, Some(j)) => ClusterId::Explicit(j.cluster_id.clone()),
        (Some(id), None) => ClusterId::Explicit(id.clone()),
        (None, None) => ClusterId::Derived(derive_cluster_id(&raft_url, &config.peers)),
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
    // The node's one registry: its handles go to the log writer, the RaftActor and the API.
    let metrics = crate::metrics::Metrics::new();
    let mut resumed = open_storage(config, cluster_id, metrics.wal())?;
    let (configuration, source) = starting_configuration(
        joining.map(|j| j.configuration),
        resumed.configuration.take(),
        || bootstrap_configuration(&config.node_id, &raft_url, &config.peers, &config.peer_ids),
    )
    .map_err(StartError::Cluster)?;
    tracing::info!(
        voters = configuration.voters().len(),
        learners = configuration.learners().len(),
        "starting configuration from {source}"
    );
    // Whom Raft RPCs may go to: the members of the starting configuration and PEERS.
    let mut peers: Vec<String> = configuration
        .others(&config.node_id)
        .map(|m| m.url.clone())
        .collect();
    for p in &config.peers {
        if !peers.contains(p) {
            peers.push(p.clone());
        }
    }
    let (raft_tls, forward_tls) = client_tls(config, &peers).map_err(StartError::Tls)?;
    let (state, state_term) = (resumed.state, resumed.state_term);
    let applied_at_start = state.last_applied();
    let watch_settings = config.watch;
    let watch = WatchActor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
        WatchActor::with_settings(applied_at_start, watch_settings)
    });
    let store_watch = watch.clone();
    let store = StoreActor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
        StoreActor::with_state(state, state_term).with_watch(store_watch)
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
    let peer_codec = config.peer_codec;
    let cluster_id = resumed.cluster_id.clone();
    let keys = peer_keys.clone();
    let (switch, faults_addr) = match faults {
        true => {
            let (switch, addr) = FaultSwitch::new();
            (Some(switch), Some(addr))
        }
        false => (None, None),
    };
    let raft_metrics = metrics.raft();
    let (lease_reads, follower_reads) = (config.lease_reads, config.follower_reads);
    let raft = RaftActor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
        // Made here, on the actor's own thread (one awc client per thread, made on it), and
        // reused for every RPC.
        let http = HttpTransport::with_tls(raft_url, rpc_timeout, cluster_id, raft_tls)
            .signed_with(keys)
            .with_codec(peer_codec);
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
            .with_metrics(raft_metrics)
            .with_lease_reads(lease_reads)
            .with_follower_reads(follower_reads)
    });
    Ok(AppState {
        node_id: config.node_id.clone(),
        cluster_id: resumed.cluster_id,
        store,
        watch,
        raft,
        limits: config.limits,
        request_timeout: config.request_timeout,
        idempotency_window: config.idempotency_window,
        faults: faults_addr,
        peer_keys,
        peers_open: config.insecure_peers,
        peer_url,
        peer_mtls: config.peer_tls.is_some(),
        peer_codec: config.peer_codec,
        forward_tls,
        client_tokens,
        metrics,
        backups: Default::default(),
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

/// Whether the node's storage already holds state (a snapshot, log entries or a term): then
/// `--join` is ignored and the node resumes. Read-only; memory storage never holds any. A
/// directory that cannot be read counts as holding state (start-up then says what is wrong).
pub fn has_state(config: &Config) -> bool {
    let Storage::Disk { dir, .. } = &config.storage else {
        return false;
    };
    if !dir.exists() {
        return false;
    }
    let snapshot = match snapshot::inspect(&dir.join("snapshots")) {
        Ok((files, _)) => files.iter().any(|f| f.result.is_ok()),
        Err(_) => return true,
    };
    if snapshot {
        return true;
    }
    match crate::storage::wal::scan(&dir.join("wal"), 0) {
        Ok(scan) => !scan.recovered.entries.is_empty() || scan.recovered.hard_state.term > 0,
        Err(_) => true,
    }
}

impl Node {
    /// Bind `config.host:config.port`, start the actors on the current actix system and build
    /// the HTTP server. Must run inside an actix system.
    pub fn bind(config: &Config) -> Result<Node, StartError> {
        Self::bind_joining(config, None)
    }

    /// [`Node::bind`] for a node that joins the cluster `view` describes (`--join`, fetched by
    /// [`crate::join::fetch_cluster`]): once its URLs are known, checks they and its id are
    /// free ([`crate::join::plan`]) and starts in the cluster's id with its members and itself
    /// as a learner. The caller then runs [`crate::join::add_and_promote`].
    pub fn bind_joining(config: &Config, view: Option<&ClusterView>) -> Result<Node, StartError> {
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
        let peer_url = peer.as_ref().map(|p| p.2.clone());
        let raft_url = peer_url.clone().unwrap_or_else(|| url.clone());
        let joining = match view {
            Some(v) => Some(Joining {
                cluster_id: v.cluster_id.clone(),
                configuration: crate::join::plan(v, &config.node_id, &raft_url)
                    .map_err(StartError::Join)?,
            }),
            None => None,
        };
        let state = start_actors_joining(config, url.clone(), peer_url, joining)?;
        let raft = state.raft.clone();
        let watch = state.watch.clone();
        let listen_err = |addr: SocketAddr| {
            move |source| StartError::Listen {
                addr: addr.to_string(),
                source,
            }
        };
        let client_state = state.clone();
        let server = HttpServer::new(move || api::app(client_state.clone()))
            .workers(config.workers)
            .disable_signals()
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
                    .disable_signals()
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
            raft_url,
            raft,
            handover_wait: 2 * config.raft.election_timeout,
            watch,
        })
    }

    /// Serve until both servers stop; the first error, if any. On SIGINT or SIGTERM a leader
    /// first hands its leadership to its most caught-up voter (waiting at most
    /// [`Node::handover_wait`]), then both servers stop gracefully; a second signal stops them
    /// at once.
    pub async fn run(self) -> io::Result<()> {
        let handles: Vec<ServerHandle> = std::iter::once(self.server.handle())
            .chain(self.peer_server.as_ref().map(Server::handle))
            .collect();
        let signals = actix_web::rt::spawn(crate::shutdown::on_signals(
            self.raft,
            self.watch,
            handles,
            self.handover_wait,
        ));
        let peer = async move {
            match self.peer_server {
                Some(s) => s.await,
                None => Ok(()),
            }
        };
        let (client, peer) = futures_util::future::join(self.server, peer).await;
        signals.abort();
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
    use crate::storage::Record;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            payload: EntryPayload::Noop,
        }
    }

    #[test]
    fn a_snapshot_holding_a_configuration_wins_over_peers_and_a_join_over_both() {
        let dir = tempfile::tempdir().unwrap();
        let recorded = Configuration::with_learners(
            vec![
                Member::new("n1", "http://127.0.0.1:1"),
                Member::new("n5", "http://127.0.0.1:5"),
            ],
            vec![Member::new("n6", "http://127.0.0.1:6")],
        )
        .unwrap();
        let meta = SnapshotMeta { index: 7, term: 2 };
        snapshot::write(
            &dir.path().join("snapshots"),
            meta,
            Some(&recorded),
            [("k", "v")].into_iter(),
            2,
        )
        .unwrap();
        let rec = recover(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.configuration.as_ref(), Some(&recorded));
        let peers = [
            "http://127.0.0.1:2".to_owned(),
            "http://127.0.0.1:3".to_owned(),
        ];
        let named = [("http://127.0.0.1:2".to_owned(), "n2".to_owned())];
        let bootstrap = || bootstrap_configuration("n1", "http://127.0.0.1:1", &peers, &named);
        let (c, from) = starting_configuration(None, rec.configuration.clone(), bootstrap).unwrap();
        assert_eq!((c, from), (recorded.clone(), "the newest snapshot"));
        // Without a snapshot: PEERS, the named peer by its id, the other by its URL.
        let (c, from) = starting_configuration(None, None, bootstrap).unwrap();
        assert_eq!(from, "PEERS");
        let ids: Vec<&str> = c.voters().iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["n1", "n2", "http://127.0.0.1:3"]);
        assert!(c.is_provisional());
        // A join brings its own.
        let joined = Configuration::new(vec![Member::new("n9", "http://127.0.0.1:9")]).unwrap();
        let (c, _) =
            starting_configuration(Some(joined.clone()), Some(recorded), bootstrap).unwrap();
        assert_eq!(c, joined);
        // A v1 snapshot records none.
        let dir = tempfile::tempdir().unwrap();
        let v1 = crate::codec::snapshot::encode_v1(meta, [("k", "v")].into_iter());
        snapshot::write_bytes(&dir.path().join("snapshots"), 7, &v1, 2).unwrap();
        let rec = recover(dir.path(), 1 << 20).unwrap();
        assert_eq!((rec.configuration, rec.state.len()), (None, 1));
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
