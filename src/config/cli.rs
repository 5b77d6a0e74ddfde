//! The command line: every flag of `kvstore` (serve) with its environment variable and
//! default, as clap parses them. Only shapes and defaults live here; [`super::Config::from_cli`]
//! validates what they mean.

use std::path::PathBuf;

use clap::Parser;

use super::limits::*;
use super::{LogFormat, StorageKind};

/// raft-kv-store node: an HTTP key-value store (PUT /set, GET /get, DELETE /delete, GET /health).
///
/// Every flag can also be given as the environment variable named in its help; a flag beats the
/// variable. Log verbosity comes from RUST_LOG (default: info).
#[derive(Debug, Parser)]
#[command(
    name = "kvstore",
    version,
    about,
    long_about = None,
    after_help = "Logging: RUST_LOG sets verbosity (default: info), e.g. RUST_LOG=debug.\n\n\
                  Other commands (each has --help; `kvstore help` lists the client's):\n  \
                  kvstore get|set|delete KEY     read and write keys of a running cluster\n  \
                  kvstore status                 every member: role, term, leader, commit/applied, lag\n  \
                  kvstore member list|add|remove|promote, kvstore leader transfer [ID]\n  \
                  kvstore backup --out FILE      a consistent snapshot of a running cluster\n  \
                  kvstore restore ...            a fresh data directory from a backup\n  \
                  kvstore check ...              a workload under faults, checked for linearizability\n  \
                  kvstore verify --data-dir DIR  the offline check of a stopped node's data"
)]
pub struct Cli {
    /// Port to listen on (0 = any free port). Falls back to PORT, then to 8080.
    #[arg(long, env = "KVSTORE_PORT", value_name = "PORT")]
    pub port: Option<String>,

    /// Address to listen on.
    #[arg(long, env = "KVSTORE_HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// This node's id, as reported by /health.
    #[arg(long, env = "NODE_ID", default_value = "n1")]
    pub node_id: String,

    /// Largest key accepted, in bytes of UTF-8 (larger: 413).
    #[arg(long, env = "KVSTORE_MAX_KEY_BYTES", default_value_t = Limits::default().max_key_bytes)]
    pub max_key_bytes: usize,

    /// Largest value accepted, in bytes of UTF-8 (larger: 413).
    #[arg(long, env = "KVSTORE_MAX_VALUE_BYTES", default_value_t = Limits::default().max_value_bytes)]
    pub max_value_bytes: usize,

    /// Largest request body accepted, in bytes (larger: 413). At least key + value limits.
    #[arg(long, env = "KVSTORE_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,

    /// HTTP worker threads [default: number of CPUs].
    #[arg(long, env = "KVSTORE_WORKERS")]
    pub workers: Option<usize>,

    /// Seconds to let in-flight requests finish after SIGINT/SIGTERM.
    #[arg(long, env = "KVSTORE_SHUTDOWN_TIMEOUT_SECS", default_value_t = 5)]
    pub shutdown_timeout_secs: u64,

    /// Longest a client request waits for a leader, a commit or a read, in milliseconds; then
    /// it gets a 503 that says whether a write may have been applied.
    #[arg(long, env = "KVSTORE_REQUEST_TIMEOUT_MS", default_value_t = 5000)]
    pub request_timeout_ms: u64,

    /// How long a write's `Idempotency-Key` is remembered (a retry within it answers the first
    /// outcome), in seconds. Stamped into each write by the leader that takes it.
    #[arg(long, env = "KVSTORE_IDEMPOTENCY_WINDOW_SECS", default_value_t = 600)]
    pub idempotency_window_secs: u64,

    /// Most writes (and, separately, linearizable reads) waiting in the Raft pipeline at once;
    /// beyond that requests get 503 "overloaded" instead of queueing without bound.
    #[arg(long, env = "KVSTORE_MAX_PENDING", default_value_t = crate::raft::actor::DEFAULT_MAX_PENDING)]
    pub max_pending: usize,

    /// Directory of this node's write-ahead log [default: data/NODE_ID].
    #[arg(long, env = "KVSTORE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Where the Raft log is kept: on disk (durable) or in memory (lost on restart).
    #[arg(long, env = "KVSTORE_STORAGE", value_enum, default_value_t = StorageKind::Disk)]
    pub storage: StorageKind,

    /// Keep everything in memory; the same as --storage memory.
    #[arg(long)]
    pub in_memory: bool,

    /// Allow memory storage together with PEERS. UNSAFE: a restarted node forgets its vote and
    /// the entries it acknowledged (two leaders in one term become possible); for benchmarks
    /// that compare against memory storage only.
    #[arg(long, env = "KVSTORE_UNSAFE_VOLATILE_CLUSTER", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub unsafe_volatile_cluster: bool,

    /// The cluster's id, recorded in the data directory at first start and sent with every
    /// peer RPC [default: derived from this node's URL and PEERS, the same on every member].
    #[arg(long, env = "KVSTORE_CLUSTER_ID", value_name = "ID")]
    pub cluster_id: Option<String>,

    /// The cluster secret, from the environment variable KVSTORE_CLUSTER_SECRET only (never a
    /// flag: command lines are visible to every user of the machine).
    #[arg(skip)]
    pub cluster_secret: Option<String>,

    /// A file holding the cluster secret (whitespace-separated secrets: the first signs, every
    /// one is accepted, for rotation). Every peer RPC is then signed with it and RPCs without a
    /// valid signature are refused (401). Alternative: the environment variable
    /// KVSTORE_CLUSTER_SECRET. Without a secret, peer RPCs are accepted from loopback only.
    #[arg(long, env = "KVSTORE_CLUSTER_SECRET_FILE", value_name = "PATH")]
    pub cluster_secret_file: Option<PathBuf>,

    /// Let a node with non-loopback PEERS run without a cluster secret or peer TLS, accepting
    /// Raft RPCs from any address. INSECURE: anyone who reaches the port can rewrite the data.
    #[arg(long, env = "KVSTORE_INSECURE_PEERS", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub insecure_peers: bool,

    /// Serve linearizable reads on the leader from a lease (no network round) while it holds
    /// one (`on`, the default), or always with a ReadIndex round (`off`). See `raft::core::lease`
    /// for the clock assumption.
    #[arg(long, env = "KVSTORE_LEASE_READS", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = true, action = clap::ArgAction::Set, value_name = "on|off", hide_possible_values = true)]
    pub lease_reads: bool,

    /// How a follower serves a linearizable read: `on` asks the leader for a read index
    /// (`POST /raft/read-index`, a few bytes each way) and reads its own state machine once it
    /// has applied that index; `off` forwards the whole request to the leader. Either way the
    /// read is linearizable; a follower falls back to forwarding when the leader cannot answer.
    #[arg(long, env = "KVSTORE_FOLLOWER_READS", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = true, action = clap::ArgAction::Set, value_name = "on|off", hide_possible_values = true)]
    pub follower_reads: bool,

    /// Codec of Raft RPC bodies: `auto` sends binary to peers that announce it and JSON to the
    /// others; `json` sends, reads and answers JSON only, like a node before the binary codec
    /// (to roll an upgrade back, or to test an old peer).
    #[arg(long, env = "KVSTORE_PEER_CODEC", default_value = "auto", value_parser = clap::value_parser!(crate::codec::peer::PeerCodec))]
    pub peer_codec: crate::codec::peer::PeerCodec,

    /// Start a new write-ahead log segment once the current one reaches this size.
    #[arg(long, env = "KVSTORE_WAL_SEGMENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub wal_segment_bytes: u64,

    /// Snapshot the key-value map (and drop the log before it) once at least this many entries
    /// were applied since the last snapshot AND that log is at least
    /// KVSTORE_SNAPSHOT_LOG_FACTOR times the last snapshot's size; 0 turns this rule off.
    #[arg(long, env = "KVSTORE_SNAPSHOT_ENTRIES", default_value_t = 10_000)]
    pub snapshot_entries: u64,

    /// The growth factor of the rule above (the log must outgrow the snapshot this many times
    /// over), so big states are snapshotted less often; 0: the entry count alone decides.
    #[arg(long, env = "KVSTORE_SNAPSHOT_LOG_FACTOR", default_value_t = crate::raft::actor::DEFAULT_SNAPSHOT_FACTOR)]
    pub snapshot_log_factor: u64,

    /// A limit: snapshot once this many MiB of log were applied since the last snapshot,
    /// whatever its size (bounds the log replayed at restart); 0: no limit.
    #[arg(long, env = "KVSTORE_SNAPSHOT_LOG_MIB", default_value_t = 64)]
    pub snapshot_log_mib: u64,

    /// Enable the fault layer and its switch, /admin/faults (for `kvstore check` and tests;
    /// never in production). KVSTORE_FAULTS=1 or true.
    #[arg(long, env = "KVSTORE_FAULTS", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub faults: bool,

    /// A file of client bearer tokens, one `ROLE TOKEN` per line (roles: read, write, admin);
    /// when given, /get, /set, /delete and /admin/* need a token (see the README). Must not be
    /// readable by group or others. Unset: the client API is open.
    #[arg(long, env = "KVSTORE_CLIENT_TOKENS_FILE", value_name = "PATH")]
    pub client_tokens_file: Option<PathBuf>,

    /// Log line format.
    #[arg(long, env = "KVSTORE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Base URLs of the other nodes, comma-separated (e.g. http://localhost:8082,http://localhost:8083);
    /// an entry may name the node's id as `n2=http://localhost:8082`. Empty: a single node.
    /// Requires an explicit, distinct NODE_ID on every node. Read at the first start only: after
    /// that the membership recorded in the log (and snapshots) wins and PEERS is only a hint.
    #[arg(long, env = "PEERS", value_name = "URLS", default_value = "")]
    pub peers: String,

    /// Join a running cluster through the member at this URL (any member: requests are
    /// forwarded to the leader). Only a node with an empty data directory joins: it is added as
    /// a learner, receives the state, and is promoted to voter once caught up (unless
    /// --learner). A node that already has data ignores JOIN and resumes. For an empty node
    /// JOIN wins over PEERS. Needs an explicit NODE_ID.
    #[arg(long, env = "KVSTORE_JOIN", value_name = "URL")]
    pub join: Option<String>,

    /// With --join: stay a learner (receives the log, never votes) instead of asking to be
    /// promoted to voter.
    #[arg(long, env = "KVSTORE_LEARNER", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub learner: bool,

    /// URL at which other nodes and clients reach this node [default: http://localhost:PORT,
    /// or http://HOST:PORT when --host is a specific address].
    #[arg(long, env = "KVSTORE_ADVERTISE_URL", value_name = "URL")]
    pub advertise_url: Option<String>,

    /// PEM certificate chain served on the client port: turns on HTTPS there (needs --tls-key).
    #[arg(long, env = "KVSTORE_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "KVSTORE_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle that signed the other nodes' client-port certificates: trusted when a
    /// follower forwards a request to an https:// leader (and for https:// PEERS without peer
    /// mTLS) [default: --peer-ca].
    #[arg(long, env = "KVSTORE_TLS_CA", value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,

    /// Serve the Raft RPCs (/raft/*) on this separate port only (the client port then answers
    /// them 404); PEERS then lists the other nodes' peer URLs. 0 = any free port (single node).
    #[arg(long, env = "KVSTORE_PEER_PORT", value_name = "PORT")]
    pub peer_port: Option<u16>,

    /// URL at which other nodes reach this node's peer port [default: like the advertise URL,
    /// with the peer port, https:// with peer mTLS].
    #[arg(long, env = "KVSTORE_PEER_ADVERTISE_URL", value_name = "URL")]
    pub peer_advertise_url: Option<String>,

    /// PEM certificate chain of this node on peer links (mutual TLS; with --peer-tls-key and
    /// --peer-ca, and --peer-port). Served on the peer port and presented to peers.
    #[arg(long, env = "KVSTORE_PEER_TLS_CERT", value_name = "PATH")]
    pub peer_tls_cert: Option<PathBuf>,

    /// PEM private key of --peer-tls-cert.
    #[arg(long, env = "KVSTORE_PEER_TLS_KEY", value_name = "PATH")]
    pub peer_tls_key: Option<PathBuf>,

    /// PEM CA bundle that signs every node's peer certificate: the only CA peer links trust.
    #[arg(long, env = "KVSTORE_PEER_CA", value_name = "PATH")]
    pub peer_ca: Option<PathBuf>,

    /// Milliseconds between heartbeat events on every `GET /watch` stream.
    #[arg(long, env = "KVSTORE_WATCH_HEARTBEAT_MS", default_value_t = crate::watch::actor::DEFAULT_HEARTBEAT_MS)]
    pub watch_heartbeat_ms: u64,

    /// Most `GET /watch` streams open at once on this node (more: 503).
    #[arg(long, env = "KVSTORE_WATCH_MAX_WATCHERS", default_value_t = crate::watch::hub::DEFAULT_MAX_WATCHERS)]
    pub watch_max_watchers: usize,

    /// Most recent changes kept for `GET /watch?fromIndex=N` (also at most 64 MiB); a
    /// fromIndex older than the history gets 410.
    #[arg(long, env = "KVSTORE_WATCH_HISTORY_CHANGES", default_value_t = crate::watch::hub::DEFAULT_HISTORY_CHANGES)]
    pub watch_history_changes: usize,

    /// Most events waiting for one watcher's connection (also at most 16 MiB); a watcher that
    /// falls further behind is cut with an `error` event.
    #[arg(long, env = "KVSTORE_WATCH_QUEUE_EVENTS", default_value_t = crate::watch::hub::DEFAULT_QUEUE_EVENTS)]
    pub watch_queue_events: usize,

    /// Milliseconds between leader heartbeats.
    #[arg(long, env = "RAFT_HEARTBEAT_MS", default_value_t = DEFAULT_HEARTBEAT_MS)]
    pub raft_heartbeat_ms: u64,

    /// Base election timeout in milliseconds; each election waits a random time in [T, 2T).
    #[arg(long, env = "RAFT_ELECTION_TIMEOUT_MS", default_value_t = DEFAULT_ELECTION_TIMEOUT_MS)]
    pub raft_election_timeout_ms: u64,

    /// Timeout of one Raft RPC to a peer, in milliseconds; below the election timeout
    /// [default: two thirds of the election timeout].
    #[arg(long, env = "RAFT_RPC_TIMEOUT_MS")]
    pub raft_rpc_timeout_ms: Option<u64>,
}
