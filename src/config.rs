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
pub const MAX_NODE_ID_BYTES: usize = 128;

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
    pub raft: RaftSettings,
    /// The cluster id, if given; else derived at start (see `storage::identity`).
    pub cluster_id: Option<String>,
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
        let cli = Cli::from_arg_matches(&matches)
            .map_err(|e| ConfigError::Usage(first_line(&e.render().to_string())))?;
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
            let me = advertise_url
                .clone()
                .unwrap_or_else(|| default_advertise_url(&host, port));
            if let Some(p) = peers.iter().find(|p| is_self(p, &me, &host, port)) {
                return invalid(format!(
                    "PEERS lists this node itself ({p}); list only the other nodes"
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
            raft,
            cluster_id,
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

/// `http://host:port` from a base URL like `http://host:port/` (http only, no path or query).
pub fn parse_base_url(raw: &str) -> Result<String, String> {
    let uri: awc::http::Uri = raw.parse().map_err(|e| format!("{e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => return Err(format!("scheme {other:?} is not supported (use http://)")),
        None => return Err("missing scheme (use http://host:port)".into()),
    }
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
    let port = authority.port_u16().unwrap_or(80);
    Ok(format!("http://{}:{port}", authority.host()))
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
    match host {
        "0.0.0.0" | "::" | "[::]" => format!("http://localhost:{port}"),
        h if h.contains(':') && !h.starts_with('[') => format!("http://[{h}]:{port}"),
        h => format!("http://{h}:{port}"),
    }
}

fn is_loopback_name(host: &str) -> bool {
    matches!(host, "localhost" | "[::1]" | "::1" | "0.0.0.0") || host.starts_with("127.")
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
        bad(
            &["--port", "8081", "--peers", "https://a:1"],
            "not supported",
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
            "[default: 4096]",
            "RUST_LOG",
        ] {
            assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
        }
    }
}
