//! Node settings from command-line flags and environment variables, validated into a
//! [`Config`].
//!
//! Precedence for every setting: flag, then its environment variable, then the default. The port
//! also falls back to `PORT` (as the original project did) after `KVSTORE_PORT`. Anything that
//! makes no sense is refused here with a one-line [`ConfigError`]; nothing past this module has
//! to re-check settings. This module never opens sockets or files.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::api::Limits;
pub use crate::tls::Identity;

/// Mutual TLS on peer links: this node's certificate and key, and the CA every peer's
/// certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTls {
    pub identity: Identity,
    pub ca: PathBuf,
}

/// Port used when neither `--port`, `KVSTORE_PORT` nor `PORT` is set.
pub const DEFAULT_PORT: u16 = 8080;

/// Where a node keeps its Raft log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageKind {
    /// A write-ahead log in the data directory: everything acknowledged survives a restart.
    Disk,
    /// Memory only: a restarted node comes back empty. For demos and tests.
    Memory,
}

/// Validated storage settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    Memory,
    Disk { dir: PathBuf, segment_bytes: u64 },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

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
    after_help = "Logging: RUST_LOG sets verbosity (default: info), e.g. RUST_LOG=debug."
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

    /// Base URLs of the other nodes, comma-separated (e.g. http://localhost:8082,http://localhost:8083).
    /// Empty: a single node. Requires an explicit, distinct NODE_ID on every node.
    #[arg(long, env = "PEERS", value_name = "URLS", default_value = "")]
    pub peers: String,

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

/// Largest `--max-value-bytes` accepted.
pub const MAX_VALUE_BYTES_LIMIT: usize = crate::store::command::MAX_VALUE_BYTES;

/// Largest `--max-key-bytes` accepted.
pub const MAX_KEY_BYTES_LIMIT: usize = crate::store::command::MAX_KEY_BYTES;

/// Longest node id: it travels in every vote request and AppendEntries, whose size bounds
/// count on it.
pub const MAX_NODE_ID_BYTES: usize = crate::raft::rpc::MAX_ID_BYTES;

/// Default `RAFT_HEARTBEAT_MS`.
pub const DEFAULT_HEARTBEAT_MS: u64 = 50;
/// Default `RAFT_ELECTION_TIMEOUT_MS`.
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 150;

/// Raft timing, validated: heartbeat < RPC timeout bound < election timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftSettings {
    pub heartbeat: Duration,
    pub election_timeout: Duration,
    pub rpc_timeout: Duration,
}

/// Validated settings of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub node_id: String,
    pub limits: Limits,
    pub workers: usize,
    pub shutdown_timeout: Duration,
    pub request_timeout: Duration,
    pub max_pending: usize,
    pub storage: Storage,
    /// Snapshot after at least this many applied entries once the log outgrows the last
    /// snapshot `snapshot_log_factor` times (0: not by this rule).
    pub snapshot_entries: u64,
    pub snapshot_log_factor: u64,
    /// ... or after this many bytes of applied log (0: not by size).
    pub snapshot_log_bytes: u64,
    /// The fault layer may be switched through `/admin/faults`.
    pub faults: bool,
    /// The client tokens file, read at start (see `api::auth`); `None`: no client auth.
    pub client_tokens_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// The other nodes' base URLs (normalized `http://host:port`); empty for a single node.
    pub peers: Vec<String>,
    /// This node's base URL, if given; else derived from host and bound port at start.
    pub advertise_url: Option<String>,
    /// TLS on the client port (`--tls-cert`/`--tls-key`); the advertise URL is `https://` then.
    pub tls: Option<Identity>,
    /// The CA bundle trusted for other nodes' client ports (forwarding to an `https://`
    /// leader; `https://` PEERS without peer mTLS): `--tls-ca`, else `--peer-ca`.
    pub tls_ca: Option<PathBuf>,
    /// A separate listener for `/raft/*` (0: any free port); `None`: Raft RPCs on the client port.
    pub peer_port: Option<u16>,
    /// The peer listener's URL, if given; else derived from host and bound peer port at start.
    pub peer_advertise_url: Option<String>,
    /// Mutual TLS on peer links (needs `peer_port`).
    pub peer_tls: Option<PeerTls>,
    pub raft: RaftSettings,
    /// The cluster id, if given; else derived at start (see `storage::identity`).
    pub cluster_id: Option<String>,
    /// Where the cluster secret comes from, if any (read and checked at start).
    pub cluster_secret: Option<SecretSource>,
    /// Raft RPCs are accepted from any address without a secret (`--insecure-peers`).
    pub insecure_peers: bool,
}

/// Where the cluster secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `KVSTORE_CLUSTER_SECRET`: the text itself.
    Env(String),
    /// `--cluster-secret-file`: a file to read at start.
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(_) => f.write_str("Env(redacted)"),
            SecretSource::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

/// A setting that cannot be used; `Display` is the one line printed before exiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// clap refused the command line (unknown flag, bad number, ...).
    Usage(String),
    /// A value parsed but makes no sense.
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Usage(s) | ConfigError::Invalid(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ConfigError {}

/// What parsing the command line asks the caller to do.
#[derive(Debug)]
pub enum Parsed {
    /// Run a node with this configuration.
    Run(Box<Config>),
    /// Print this text (help or version) to stdout and exit 0.
    Print(String),
}

impl Config {
    /// Parse `args` (program name first) and the process environment.
    pub fn parse_from<I, T>(args: I) -> Result<Parsed, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = match Cli::command().try_get_matches_from(args) {
            Ok(m) => m,
            Err(e) => {
                use clap::error::ErrorKind;
                return match e.kind() {
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                        Ok(Parsed::Print(e.render().to_string()))
                    }
                    _ => Err(ConfigError::Usage(first_line(&e.render().to_string()))),
                };
            }
        };
        let from_env = matches.value_source("port") == Some(ValueSource::EnvVariable);
        let node_id_given = matches.value_source("node_id") != Some(ValueSource::DefaultValue);
        let mut cli = Cli::from_arg_matches(&matches)
            .map_err(|e| ConfigError::Usage(first_line(&e.render().to_string())))?;
        cli.cluster_secret =
            match std::env::var("KVSTORE_CLUSTER_SECRET") {
                Ok(text) => Some(text),
                Err(std::env::VarError::NotPresent) => None,
                Err(std::env::VarError::NotUnicode(_)) => return Err(ConfigError::Invalid(
                    "KVSTORE_CLUSTER_SECRET is not valid UTF-8 (use e.g. `openssl rand -hex 32`)"
                        .into(),
                )),
            };
        if !cli.peers.trim().is_empty() && !node_id_given {
            return Err(ConfigError::Invalid(
                "NODE_ID (--node-id) must be set when PEERS is: every node needs a distinct id"
                    .into(),
            ));
        }
        let port_env = std::env::var("PORT").ok();
        Self::from_cli(cli, from_env, port_env).map(|c| Parsed::Run(Box::new(c)))
    }

    /// Validate parsed flags. `port_from_env` says whether `cli.port` came from `KVSTORE_PORT`;
    /// `port_env` is the value of `PORT`, the last fallback.
    pub fn from_cli(
        cli: Cli,
        port_from_env: bool,
        port_env: Option<String>,
    ) -> Result<Config, ConfigError> {
        let port = match (cli.port, port_env) {
            (Some(p), _) => parse_port(
                &p,
                if port_from_env {
                    "KVSTORE_PORT"
                } else {
                    "--port"
                },
            )?,
            (None, Some(p)) => parse_port(&p, "PORT")?,
            (None, None) => DEFAULT_PORT,
        };
        let invalid = |s: String| Err(ConfigError::Invalid(s));
        if cli.host.trim().is_empty() {
            return invalid("invalid host: must not be empty (e.g. 0.0.0.0 or 127.0.0.1)".into());
        }
        let node_id = cli.node_id.trim().to_owned();
        if node_id.is_empty()
            || node_id.len() > MAX_NODE_ID_BYTES
            || node_id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return invalid(format!(
                "invalid node id {:?}: must be non-empty, at most {MAX_NODE_ID_BYTES} bytes, with \
                 no spaces",
                cli.node_id
            ));
        }
        if cli.max_key_bytes == 0 || cli.max_value_bytes == 0 {
            return invalid("max key and value sizes must be at least 1 byte".into());
        }
        if cli.max_key_bytes > MAX_KEY_BYTES_LIMIT {
            return invalid(format!(
                "max key bytes ({}) must be at most {MAX_KEY_BYTES_LIMIT} (1 MiB): keys travel \
                 inside AppendEntries and log records, which are limited in size",
                cli.max_key_bytes
            ));
        }
        if cli.max_value_bytes > MAX_VALUE_BYTES_LIMIT {
            return invalid(format!(
                "max value bytes ({}) must be at most {MAX_VALUE_BYTES_LIMIT} (8 MiB): values travel \
                 JSON-escaped inside AppendEntries and log records, which are limited in size",
                cli.max_value_bytes
            ));
        }
        let needed = cli.max_key_bytes + cli.max_value_bytes;
        if cli.max_body_bytes < needed {
            return invalid(format!(
                "max body bytes ({}) must be at least max key bytes + max value bytes ({needed})",
                cli.max_body_bytes
            ));
        }
        let workers = match cli.workers {
            Some(0) => return invalid("workers must be at least 1".into()),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let storage = if cli.in_memory || cli.storage == StorageKind::Memory {
            Storage::Memory
        } else {
            if cli.wal_segment_bytes < 4096 {
                return invalid("KVSTORE_WAL_SEGMENT_BYTES must be at least 4096".into());
            }
            Storage::Disk {
                dir: cli
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("data").join(&node_id)),
                segment_bytes: cli.wal_segment_bytes,
            }
        };
        if cli.max_pending == 0 {
            return invalid("KVSTORE_MAX_PENDING must be at least 1".into());
        }
        if cli.request_timeout_ms == 0 {
            return invalid("KVSTORE_REQUEST_TIMEOUT_MS must be at least 1".into());
        }
        let raft = raft_settings(
            cli.raft_heartbeat_ms,
            cli.raft_election_timeout_ms,
            cli.raft_rpc_timeout_ms,
        )?;
        let host = cli.host.trim().to_owned();
        let advertise_url = match cli.advertise_url.as_deref().map(str::trim) {
            Some(u) if !u.is_empty() => Some(parse_base_url(u).map_err(|why| {
                ConfigError::Invalid(format!("invalid advertise URL {u:?}: {why}"))
            })?),
            _ => None,
        };
        let peers = parse_peers(&cli.peers)?;
        let tls = match (cli.tls_cert, cli.tls_key) {
            (Some(cert), Some(key)) => Some(Identity { cert, key }),
            (None, None) => None,
            _ => {
                return invalid("--tls-cert and --tls-key go together: give both or neither".into())
            }
        };
        let peer_tls =
            match (cli.peer_tls_cert, cli.peer_tls_key, cli.peer_ca) {
                (Some(cert), Some(key), Some(ca)) => Some(PeerTls {
                    identity: Identity { cert, key },
                    ca,
                }),
                (None, None, None) => None,
                _ => return invalid(
                    "--peer-tls-cert, --peer-tls-key and --peer-ca go together: give all three \
                     or none"
                        .into(),
                ),
            };
        let peer_port = cli.peer_port;
        if peer_tls.is_some() && peer_port.is_none() {
            return invalid(
                "peer mutual TLS (--peer-tls-cert ...) needs --peer-port: the peer listener \
                 demands certificates, which the client port cannot ask of ordinary clients"
                    .into(),
            );
        }
        if peer_port.is_some_and(|p| p != 0 && p == port) {
            return invalid(format!(
                "--peer-port ({port}) must differ from the client port"
            ));
        }
        let tls_ca = cli
            .tls_ca
            .or_else(|| peer_tls.as_ref().map(|p| p.ca.clone()));
        let scheme = |https: bool| if https { "https" } else { "http" };
        let check_scheme = |url: &str, https: bool, what: &str, why: &str| {
            if url.starts_with(scheme(https)) && url[scheme(https).len()..].starts_with("://") {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "{what} {url} must be {}:// ({why})",
                    scheme(https)
                )))
            }
        };
        if let Some(u) = &advertise_url {
            check_scheme(
                u,
                tls.is_some(),
                "the advertise URL",
                "TLS on the client port is set by --tls-cert",
            )?;
        }
        let peer_advertise_url = match cli.peer_advertise_url.as_deref().map(str::trim) {
            Some(u) if !u.is_empty() => {
                if peer_port.is_none() {
                    return invalid("--peer-advertise-url needs --peer-port".into());
                }
                let u = parse_base_url(u).map_err(|why| {
                    ConfigError::Invalid(format!("invalid peer advertise URL {u:?}: {why}"))
                })?;
                check_scheme(
                    &u,
                    peer_tls.is_some(),
                    "the peer advertise URL",
                    "peer TLS is set by --peer-tls-cert",
                )?;
                Some(u)
            }
            _ => None,
        };
        // Raft RPCs go to the peer port when there is one, else to the client port; every node
        // of a cluster uses the same settings, so PEERS speak what this node's Raft port speaks.
        let raft_https = match peer_port {
            Some(_) => peer_tls.is_some(),
            None => tls.is_some(),
        };
        for p in &peers {
            check_scheme(
                p,
                raft_https,
                "PEERS URL",
                if peer_port.is_some() {
                    "PEERS lists the other nodes' peer URLs; peer TLS is set by --peer-tls-cert"
                } else {
                    "PEERS lists the other nodes' client URLs; TLS there is set by --tls-cert"
                },
            )?;
        }
        if !peers.is_empty() && tls.is_some() && tls_ca.is_none() {
            return invalid(
                "--tls-ca (or --peer-ca) is needed with --tls-cert and PEERS: followers forward \
                 client requests to the leader's https:// URL and must verify its certificate"
                    .into(),
            );
        }
        if !peers.is_empty() && storage == Storage::Memory && !cli.unsafe_volatile_cluster {
            return invalid(
                "memory storage (--in-memory, KVSTORE_STORAGE=memory) cannot be used with PEERS: \
                 a restarted node would forget its vote and acknowledged writes (two leaders in \
                 one term become possible); use disk storage (or, for benchmarks only, \
                 --unsafe-volatile-cluster)"
                    .into(),
            );
        }
        let cluster_id = match cli.cluster_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => {
                if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                    return invalid(format!(
                        "invalid cluster id {id:?}: at most 128 visible ASCII characters, no spaces"
                    ));
                }
                Some(id.to_owned())
            }
            _ => None,
        };
        let client_tokens_file = match cli.client_tokens_file {
            Some(p) if p.as_os_str().is_empty() => {
                return invalid("--client-tokens-file must not be an empty path".into())
            }
            other => other,
        };
        if !peers.is_empty() {
            if port == 0 {
                return invalid(
                    "port 0 cannot be used with PEERS: the other nodes must know this node's port"
                        .into(),
                );
            }
            if peer_port == Some(0) {
                return invalid(
                    "peer port 0 cannot be used with PEERS: the other nodes must know this \
                     node's peer port"
                        .into(),
                );
            }
            let (raft_port, me) = match peer_port {
                Some(pp) => (
                    pp,
                    peer_advertise_url
                        .clone()
                        .unwrap_or_else(|| default_url(raft_https, &host, pp)),
                ),
                None => (
                    port,
                    advertise_url
                        .clone()
                        .unwrap_or_else(|| default_url(raft_https, &host, port)),
                ),
            };
            if let Some(p) = peers.iter().find(|p| is_self(p, &me, &host, raft_port)) {
                return invalid(format!(
                    "PEERS lists this node itself ({p}); list only the other nodes"
                ));
            }
        }
        let cluster_secret = match (cli.cluster_secret, cli.cluster_secret_file) {
            (Some(_), Some(_)) => {
                return invalid(
                    "both KVSTORE_CLUSTER_SECRET and --cluster-secret-file are set; give one"
                        .into(),
                )
            }
            (Some(text), None) => {
                crate::security::peer_auth::PeerKeys::from_text(&text)
                    .map_err(|e| ConfigError::Invalid(format!("KVSTORE_CLUSTER_SECRET: {e}")))?;
                Some(SecretSource::Env(text))
            }
            (None, Some(path)) => Some(SecretSource::File(path)),
            (None, None) => None,
        };
        // Peer mutual TLS also proves who a peer is (see the TLS settings).
        let peer_mtls = peer_tls.is_some();
        if let Some(remote) = peers.iter().find(|p| !is_loopback_url(p)) {
            if cluster_secret.is_none() && !peer_mtls && !cli.insecure_peers {
                return invalid(format!(
                    "PEERS lists a non-loopback node ({remote}): peers on other machines must \
                     prove who they are. Set a cluster secret (KVSTORE_CLUSTER_SECRET or \
                     --cluster-secret-file, the same on every node) or peer TLS; or, on a \
                     network you trust completely, --insecure-peers"
                ));
            }
        }
        Ok(Config {
            host,
            port,
            node_id,
            limits: Limits {
                max_key_bytes: cli.max_key_bytes,
                max_value_bytes: cli.max_value_bytes,
                max_body_bytes: cli.max_body_bytes,
            },
            workers,
            shutdown_timeout: Duration::from_secs(cli.shutdown_timeout_secs),
            request_timeout: Duration::from_millis(cli.request_timeout_ms),
            max_pending: cli.max_pending,
            storage,
            snapshot_entries: cli.snapshot_entries,
            snapshot_log_factor: cli.snapshot_log_factor,
            snapshot_log_bytes: cli.snapshot_log_mib.saturating_mul(1024 * 1024),
            faults: cli.faults,
            client_tokens_file,
            log_format: cli.log_format,
            peers,
            advertise_url,
            tls,
            tls_ca,
            peer_port,
            peer_advertise_url,
            peer_tls,
            raft,
            cluster_id,
            cluster_secret,
            insecure_peers: cli.insecure_peers,
        })
    }
}

fn raft_settings(
    heartbeat: u64,
    election: u64,
    rpc: Option<u64>,
) -> Result<RaftSettings, ConfigError> {
    let invalid = |s: String| Err(ConfigError::Invalid(s));
    if heartbeat == 0 {
        return invalid("RAFT_HEARTBEAT_MS must be at least 1".into());
    }
    if heartbeat >= election {
        return invalid(format!(
            "RAFT_HEARTBEAT_MS ({heartbeat}) must be less than RAFT_ELECTION_TIMEOUT_MS ({election}), \
             or followers time out between heartbeats"
        ));
    }
    let rpc = rpc.unwrap_or((election * 2 / 3).max(1));
    if rpc == 0 || rpc >= election {
        return invalid(format!(
            "RAFT_RPC_TIMEOUT_MS ({rpc}) must be between 1 and RAFT_ELECTION_TIMEOUT_MS ({election})"
        ));
    }
    Ok(RaftSettings {
        heartbeat: Duration::from_millis(heartbeat),
        election_timeout: Duration::from_millis(election),
        rpc_timeout: Duration::from_millis(rpc),
    })
}

/// `http://host:port` (or `https://host:port`) from a base URL like `http://host:port/` (no
/// path or query; the port defaults to 80 or 443).
pub fn parse_base_url(raw: &str) -> Result<String, String> {
    let uri: awc::http::Uri = raw.parse().map_err(|e| format!("{e}"))?;
    let (scheme, default_port) = match uri.scheme_str() {
        Some("http") => ("http", 80),
        Some("https") => ("https", 443),
        Some(other) => {
            return Err(format!(
                "scheme {other:?} is not supported (use http:// or https://)"
            ))
        }
        None => return Err("missing scheme (use http://host:port)".into()),
    };
    let authority = uri.authority().ok_or("missing host")?;
    if authority.host().is_empty() {
        return Err("missing host".into());
    }
    if authority.as_str().contains('@') {
        return Err("user info is not supported".into());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must be a base URL without a path or query".into());
    }
    let port = authority.port_u16().unwrap_or(default_port);
    Ok(format!("{scheme}://{}:{port}", authority.host()))
}

fn parse_peers(raw: &str) -> Result<Vec<String>, ConfigError> {
    let mut peers: Vec<String> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let url = parse_base_url(item).map_err(|why| {
            ConfigError::Invalid(format!("invalid peer URL {item:?} in PEERS: {why}"))
        })?;
        if peers.contains(&url) {
            return Err(ConfigError::Invalid(format!("PEERS lists {url} twice")));
        }
        peers.push(url);
    }
    Ok(peers)
}

/// This node's URL when none is given: `http://localhost:PORT` when listening on every
/// interface, else `http://HOST:PORT`.
pub fn default_advertise_url(host: &str, port: u16) -> String {
    default_url(false, host, port)
}

/// [`default_advertise_url`], with `https://` when `https`.
pub fn default_url(https: bool, host: &str, port: u16) -> String {
    let scheme = if https { "https" } else { "http" };
    match host {
        "0.0.0.0" | "::" | "[::]" => format!("{scheme}://localhost:{port}"),
        h if h.contains(':') && !h.starts_with('[') => format!("{scheme}://[{h}]:{port}"),
        h => format!("{scheme}://{h}:{port}"),
    }
}

/// Is the host of base URL `url` a loopback name or address (`localhost`, 127.0.0.0/8, ::1)?
pub fn is_loopback_url(url: &str) -> bool {
    url.parse::<awc::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .is_some_and(|h| h != "0.0.0.0" && is_loopback_name(&h))
}

/// `localhost`, a loopback address (127.0.0.0/8, ::1, ::ffff:127.x; brackets allowed), or
/// `0.0.0.0` (every interface, which includes loopback). A name is never resolved: only the
/// literal `localhost` counts (so `127.0.0.1.example.com` does not).
fn is_loopback_name(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host == "0.0.0.0" {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Does peer URL `peer` point at this node (advertised as `me`, bound to `host:port`)?
fn is_self(peer: &str, me: &str, host: &str, port: u16) -> bool {
    if peer == me {
        return true;
    }
    let Ok(uri) = peer.parse::<awc::http::Uri>() else {
        return false;
    };
    let (Some(h), Some(p)) = (uri.host(), uri.port_u16()) else {
        return false;
    };
    let bound_locally = matches!(host, "0.0.0.0" | "::" | "[::]") || is_loopback_name(host);
    p == port && bound_locally && is_loopback_name(h)
}

fn parse_port(raw: &str, source: &str) -> Result<u16, ConfigError> {
    raw.trim().parse::<u16>().map_err(|_| {
        ConfigError::Invalid(format!(
            "invalid port {raw:?} from {source}: expected a number from 0 to 65535"
        ))
    })
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid command line")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["kvstore"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn defaults() {
        let c = Config::from_cli(cli(&[]), false, None).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.node_id, "n1");
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(c.log_format, LogFormat::Human);
        assert!(c.workers >= 1);
        assert_eq!(
            c.storage,
            Storage::Disk {
                dir: PathBuf::from("data/n1"),
                segment_bytes: 64 * 1024 * 1024
            }
        );
        let m = Config::from_cli(cli(&["--in-memory"]), false, None).unwrap();
        assert_eq!(m.storage, Storage::Memory);
        assert_eq!(c.cluster_id, None);
    }

    #[test]
    fn memory_storage_with_peers_is_refused_unless_explicitly_unsafe() {
        let peers = ["--port", "8081", "--peers", "http://localhost:8082"];
        for memory in [&["--in-memory"][..], &["--storage", "memory"][..]] {
            let args: Vec<&str> = peers.iter().chain(memory).copied().collect();
            let e = Config::from_cli(cli(&args), false, None).unwrap_err();
            assert!(e.to_string().contains("cannot be used with PEERS"), "{e}");
        }
        let args: Vec<&str> = peers
            .iter()
            .chain(&["--in-memory", "--unsafe-volatile-cluster"])
            .copied()
            .collect();
        let c = Config::from_cli(cli(&args), false, None).unwrap();
        assert_eq!(c.storage, Storage::Memory);
    }

    #[test]
    fn a_cluster_id_is_visible_ascii() {
        let c = Config::from_cli(cli(&["--cluster-id", " prod-1 "]), false, None).unwrap();
        assert_eq!(c.cluster_id.as_deref(), Some("prod-1"));
        assert!(Config::from_cli(cli(&["--cluster-id", "a b"]), false, None).is_err());
        assert!(Config::from_cli(cli(&["--cluster-id", "é"]), false, None).is_err());
    }

    #[test]
    fn port_precedence_flag_then_port_env() {
        let c = Config::from_cli(cli(&["--port", "9001"]), false, Some("9002".into())).unwrap();
        assert_eq!(c.port, 9001);
        let c = Config::from_cli(cli(&[]), false, Some("9002".into())).unwrap();
        assert_eq!(c.port, 9002);
    }

    #[test]
    fn bad_port_names_its_source() {
        let e = Config::from_cli(cli(&["--port", "abc"]), false, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid port \"abc\" from --port: expected a number from 0 to 65535"
        );
        let e = Config::from_cli(cli(&["--port", "70000"]), true, None).unwrap_err();
        assert!(e.to_string().contains("KVSTORE_PORT"), "{e}");
        let e = Config::from_cli(cli(&[]), false, Some("x".into())).unwrap_err();
        assert!(e.to_string().contains("from PORT"), "{e}");
    }

    #[test]
    fn nonsense_limits_are_refused() {
        let e = Config::from_cli(
            cli(&["--max-value-bytes", "100", "--max-body-bytes", "50"]),
            false,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("max body bytes"), "{e}");
        assert!(Config::from_cli(cli(&["--max-key-bytes", "0"]), false, None).is_err());
        assert!(Config::from_cli(
            cli(&[
                "--max-value-bytes",
                "100000000",
                "--max-body-bytes",
                "200000000"
            ]),
            false,
            None
        )
        .is_err());
        assert!(Config::from_cli(cli(&["--workers", "0"]), false, None).is_err());
        assert!(Config::from_cli(cli(&["--node-id", "a b"]), false, None).is_err());
    }

    #[test]
    fn peers_are_parsed_and_normalized() {
        let c = Config::from_cli(
            cli(&[
                "--port",
                "8081",
                "--peers",
                "http://localhost:8082/, http://127.0.0.1:8083,,",
            ]),
            false,
            None,
        )
        .unwrap();
        assert_eq!(
            c.peers,
            vec!["http://localhost:8082", "http://127.0.0.1:8083"]
        );
        assert_eq!(c.raft.heartbeat, Duration::from_millis(50));
        assert_eq!(c.raft.election_timeout, Duration::from_millis(150));
        assert_eq!(c.raft.rpc_timeout, Duration::from_millis(100));
        assert!(Config::from_cli(cli(&[]), false, None)
            .unwrap()
            .peers
            .is_empty());
    }

    #[test]
    fn nonsense_cluster_settings_are_refused() {
        let bad = |args: &[&str], part: &str| {
            let e = Config::from_cli(cli(args), false, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(part), "{args:?}: {e:?} lacks {part:?}");
        };
        bad(
            &["--port", "8081", "--peers", "localhost:8082"],
            "invalid peer URL",
        );
        bad(&["--port", "8081", "--peers", "ftp://a:1"], "not supported");
        bad(
            &["--port", "8081", "--peers", "https://a:1"],
            "must be http://",
        );
        bad(
            &["--port", "8081", "--peers", "http://a:1/x"],
            "without a path",
        );
        bad(
            &["--port", "8081", "--peers", "http://a:1,http://a:1/"],
            "twice",
        );
        bad(
            &["--port", "8081", "--peers", "http://localhost:8081"],
            "itself",
        );
        bad(
            &["--port", "8081", "--peers", "http://127.0.0.1:8081"],
            "itself",
        );
        bad(
            &[
                "--port",
                "8081",
                "--advertise-url",
                "http://me.example:9000",
                "--peers",
                "http://me.example:9000",
            ],
            "itself",
        );
        bad(&["--port", "0", "--peers", "http://a:1"], "port 0");
        bad(
            &[
                "--raft-heartbeat-ms",
                "200",
                "--raft-election-timeout-ms",
                "200",
            ],
            "must be less than",
        );
        bad(&["--raft-heartbeat-ms", "0"], "at least 1");
        bad(&["--raft-rpc-timeout-ms", "150"], "RAFT_RPC_TIMEOUT_MS");
        bad(&["--advertise-url", "nope"], "invalid advertise URL");
        // A different port on localhost is another node, not this one.
        assert!(Config::from_cli(
            cli(&["--port", "8081", "--peers", "http://localhost:8082"]),
            false,
            None
        )
        .is_ok());
    }

    #[test]
    fn tls_settings_go_together_and_fix_the_schemes() {
        let bad = |args: &[&str], part: &str| {
            let e = Config::from_cli(cli(args), false, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(part), "{args:?}: {e:?} lacks {part:?}");
        };
        bad(&["--tls-cert", "c.pem"], "--tls-key");
        bad(
            &["--peer-tls-cert", "c.pem", "--peer-tls-key", "k.pem"],
            "all three",
        );
        let mtls = [
            "--peer-tls-cert",
            "c.pem",
            "--peer-tls-key",
            "k.pem",
            "--peer-ca",
            "ca.pem",
        ];
        bad(&mtls, "needs --peer-port");
        bad(&["--port", "9000", "--peer-port", "9000"], "must differ");
        bad(&["--peer-advertise-url", "http://a:1"], "needs --peer-port");
        let tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            tls.iter().chain(extra).copied().collect()
        };
        bad(
            &with(&["--advertise-url", "http://a:1"]),
            "must be https://",
        );
        // Without a peer port PEERS are client URLs: https with client TLS, and a CA is needed.
        bad(
            &with(&["--port", "9000", "--peers", "http://a:1"]),
            "must be https://",
        );
        bad(
            &with(&["--port", "9000", "--peers", "https://a:1"]),
            "--tls-ca",
        );
        let c = Config::from_cli(
            cli(&with(&[
                "--port",
                "9000",
                "--peers",
                "https://a:1",
                "--tls-ca",
                "ca.pem",
                // a remote peer without a secret or peer mTLS (see the peer-trust rule)
                "--insecure-peers",
            ])),
            false,
            None,
        )
        .unwrap();
        assert_eq!(c.peers, vec!["https://a:1"]);
        assert_eq!(c.tls_ca.as_deref(), Some(Path::new("ca.pem")));
        // With a peer port and peer mTLS, PEERS are https peer URLs; the peer CA is the default
        // CA for forwarding.
        let mut args = with(&mtls);
        args.extend([
            "--port",
            "9000",
            "--peer-port",
            "9100",
            "--peers",
            "http://a:1",
        ]);
        bad(&args, "must be https://");
        args.pop();
        args.push("https://a:1,https://b");
        let c = Config::from_cli(cli(&args), false, None).unwrap();
        assert_eq!(c.peers, vec!["https://a:1", "https://b:443"]);
        assert_eq!(c.tls_ca.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(c.peer_port, Some(9100));
        assert!(c.peer_tls.is_some());
        // A peer port with PEERS must be explicit, and PEERS must not list this node's.
        bad(
            &[
                "--port",
                "9000",
                "--peer-port",
                "0",
                "--peers",
                "http://a:1",
            ],
            "peer port 0",
        );
        bad(
            &[
                "--port",
                "9000",
                "--peer-port",
                "9100",
                "--peers",
                "http://localhost:9100",
            ],
            "itself",
        );
        // Without TLS, a peer port keeps plain http peer URLs.
        let c = Config::from_cli(
            cli(&[
                "--port",
                "9000",
                "--peer-port",
                "9100",
                "--peers",
                "http://localhost:9000",
            ]),
            false,
            None,
        )
        .unwrap();
        assert_eq!(c.peers, vec!["http://localhost:9000"]);
    }

    #[test]
    fn base_urls_accept_https() {
        assert_eq!(parse_base_url("https://a/").unwrap(), "https://a:443");
        assert_eq!(parse_base_url("http://a").unwrap(), "http://a:80");
        assert!(parse_base_url("ftp://a").is_err());
        assert_eq!(default_url(true, "0.0.0.0", 5), "https://localhost:5");
    }

    #[test]
    fn cluster_mode_requires_an_explicit_node_id() {
        let e = Config::parse_from([
            "kvstore",
            "--port",
            "8081",
            "--peers",
            "http://localhost:8082",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("NODE_ID"), "{e}");
        assert!(matches!(
            Config::parse_from([
                "kvstore",
                "--port",
                "8081",
                "--node-id",
                "a",
                "--peers",
                "http://localhost:8082"
            ]),
            Ok(Parsed::Run(_))
        ));
    }

    #[test]
    fn default_advertise_url_names_a_reachable_host() {
        assert_eq!(default_advertise_url("0.0.0.0", 80), "http://localhost:80");
        assert_eq!(
            default_advertise_url("127.0.0.1", 81),
            "http://127.0.0.1:81"
        );
        assert_eq!(default_advertise_url("::1", 82), "http://[::1]:82");
    }

    #[test]
    fn usage_errors_are_one_line() {
        let e = Config::parse_from(["kvstore", "--max-key-bytes", "lots"]).unwrap_err();
        let s = e.to_string();
        assert!(!s.contains('\n'), "{s}");
        assert!(s.contains("--max-key-bytes"), "{s}");
        let e = Config::parse_from(["kvstore", "--no-such-flag"]).unwrap_err();
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn help_documents_every_setting_with_env_and_default() {
        let Parsed::Print(help) = Config::parse_from(["kvstore", "--help"]).unwrap() else {
            panic!("--help must print");
        };
        for needle in [
            "KVSTORE_PORT",
            "PORT",
            "KVSTORE_HOST",
            "NODE_ID",
            "KVSTORE_MAX_KEY_BYTES",
            "KVSTORE_MAX_VALUE_BYTES",
            "KVSTORE_MAX_BODY_BYTES",
            "KVSTORE_WORKERS",
            "KVSTORE_SHUTDOWN_TIMEOUT_SECS",
            "KVSTORE_REQUEST_TIMEOUT_MS",
            "KVSTORE_MAX_PENDING",
            "KVSTORE_DATA_DIR",
            "KVSTORE_STORAGE",
            "KVSTORE_WAL_SEGMENT_BYTES",
            "KVSTORE_LOG_FORMAT",
            "PEERS",
            "KVSTORE_ADVERTISE_URL",
            "KVSTORE_CLUSTER_ID",
            "KVSTORE_CLIENT_TOKENS_FILE",
            "KVSTORE_UNSAFE_VOLATILE_CLUSTER",
            "RAFT_HEARTBEAT_MS",
            "RAFT_ELECTION_TIMEOUT_MS",
            "RAFT_RPC_TIMEOUT_MS",
            "KVSTORE_TLS_CERT",
            "KVSTORE_TLS_KEY",
            "KVSTORE_TLS_CA",
            "KVSTORE_PEER_PORT",
            "KVSTORE_PEER_ADVERTISE_URL",
            "KVSTORE_PEER_TLS_CERT",
            "KVSTORE_PEER_TLS_KEY",
            "KVSTORE_PEER_CA",
            "[default: 4096]",
            "RUST_LOG",
        ] {
            assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
        }
    }

    #[test]
    fn non_loopback_peers_need_a_secret_or_an_explicit_insecure_flag() {
        let remote = [
            "--node-id",
            "a",
            "--port",
            "8081",
            "--peers",
            "http://10.0.0.2:8081",
        ];
        let e = Config::from_cli(cli(&remote), false, None).unwrap_err();
        assert!(e.to_string().contains("non-loopback"), "{e}");
        let mut with_secret = cli(&remote);
        with_secret.cluster_secret = Some("0123456789abcdef0123".into());
        let c = Config::from_cli(with_secret, false, None).unwrap();
        assert!(matches!(c.cluster_secret, Some(SecretSource::Env(_))));
        assert!(
            !format!("{c:?}").contains("0123456789abcdef0123"),
            "Debug shows no secret"
        );
        let args: Vec<&str> = remote
            .iter()
            .chain(&["--cluster-secret-file", "/s"])
            .copied()
            .collect();
        let c = Config::from_cli(cli(&args), false, None).unwrap();
        assert_eq!(c.cluster_secret, Some(SecretSource::File("/s".into())));
        let args: Vec<&str> = remote
            .iter()
            .chain(&["--insecure-peers"])
            .copied()
            .collect();
        let c = Config::from_cli(cli(&args), false, None).unwrap();
        assert!(c.insecure_peers && c.cluster_secret.is_none());
        // A name that only looks like a loopback address is not one.
        for remote in [
            "http://127.0.0.1.nip.io:8082",
            "http://127.attacker.example:8082",
        ] {
            let args = ["--node-id", "a", "--port", "8081", "--peers", remote];
            assert!(
                Config::from_cli(cli(&args), false, None).is_err(),
                "{remote}"
            );
        }
        // Loopback peers, by name or address, need nothing (the original three-terminal demo).
        for peer in [
            "http://localhost:8082",
            "http://127.0.0.1:8082",
            "http://[::1]:8082",
        ] {
            let c = Config::from_cli(
                cli(&["--node-id", "a", "--port", "8081", "--peers", peer]),
                false,
                None,
            );
            assert!(c.is_ok(), "{peer}: {c:?}");
        }
    }

    #[test]
    fn a_weak_or_doubly_given_secret_is_refused() {
        let mut weak = cli(&[]);
        weak.cluster_secret = Some("short".into());
        let e = Config::from_cli(weak, false, None).unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
        assert!(
            !e.to_string().contains("short\""),
            "the error never repeats the secret: {e}"
        );
        let mut both = cli(&["--cluster-secret-file", "/s"]);
        both.cluster_secret = Some("0123456789abcdef0123".into());
        assert!(Config::from_cli(both, false, None).is_err());
    }
}
