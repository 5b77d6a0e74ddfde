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
use clap::{CommandFactory, FromArgMatches, ValueEnum};

pub use crate::tls::Identity;

mod cli;
mod limits;
mod urls;

pub use cli::Cli;
pub use limits::*;
pub use urls::*;

/// Mutual TLS on peer links: this node's certificate and key, and the CA every peer's
/// certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTls {
    pub identity: Identity,
    pub ca: PathBuf,
}

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
    /// How long an `Idempotency-Key` is remembered (`--idempotency-window-secs`).
    pub idempotency_window: Duration,
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
    /// The ids PEERS gave (`id=url` entries), as (url, id); a peer given by URL only has none
    /// (its URL stands in as its provisional id until the cluster learns its real one).
    pub peer_ids: Vec<(String, String)>,
    /// `--join URL`: the member to ask to join its cluster through (normalized base URL).
    pub join: Option<String>,
    /// `--learner`: with `join`, stay a learner.
    pub learner: bool,
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
    /// Codec of Raft RPC bodies (`--peer-codec`).
    pub peer_codec: crate::codec::peer::PeerCodec,
    /// `GET /watch`: heartbeats, history and queue bounds, most watchers.
    pub watch: crate::watch::actor::WatchSettings,
    /// Lease reads on the leader (`--lease-reads`).
    pub lease_reads: bool,
    /// Followers serve linearizable reads at a read index asked of the leader
    /// (`--follower-reads`).
    pub follower_reads: bool,
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
        if cli.join.as_deref().is_some_and(|j| !j.trim().is_empty()) && !node_id_given {
            return Err(ConfigError::Invalid(
                "NODE_ID (--node-id) must be set with KVSTORE_JOIN (--join): every member needs a \
                 distinct id"
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
        if cli.idempotency_window_secs == 0 || cli.idempotency_window_secs > 366 * 24 * 3600 {
            return invalid(
                "KVSTORE_IDEMPOTENCY_WINDOW_SECS must be between 1 and 31622400 (366 days)".into(),
            );
        }
        let watch = watch_settings(
            cli.watch_heartbeat_ms,
            cli.watch_history_changes,
            cli.watch_queue_events,
            cli.watch_max_watchers,
        )?;
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
        let (peers, peer_ids) = parse_peers(&cli.peers)?;
        if let Some((url, _)) = peer_ids.iter().find(|(_, id)| *id == node_id) {
            return invalid(format!(
                "PEERS names {url} {node_id:?}, this node's own NODE_ID; every node needs a \
                 distinct id"
            ));
        }
        let join = match cli.join.as_deref().map(str::trim) {
            Some(u) if !u.is_empty() => Some(parse_base_url(u).map_err(|why| {
                ConfigError::Invalid(format!("invalid KVSTORE_JOIN (--join) URL {u:?}: {why}"))
            })?),
            _ => None,
        };
        if join.is_some() && node_id.bytes().any(|b| !b.is_ascii_graphic() || b == b'/') {
            // The cluster would refuse it (400) only after this node started and recorded the
            // cluster's id: say so now. Members are named in URL paths and peer headers.
            return invalid(format!(
                "NODE_ID {node_id:?} cannot join a cluster (--join): a member id is printable \
                 ASCII without `/` (the membership routes name members in URL paths)"
            ));
        }
        if cli.learner && join.is_none() {
            return invalid(
                "--learner (KVSTORE_LEARNER) only means something with --join (KVSTORE_JOIN)"
                    .into(),
            );
        }
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
        if join.is_some()
            && storage == Storage::Memory
            && !cli.learner
            && !cli.unsafe_volatile_cluster
        {
            return invalid(
                "memory storage (--in-memory, KVSTORE_STORAGE=memory) cannot join a cluster as a \
                 voter: a restarted node would forget its vote and acknowledged writes; use disk \
                 storage, or --learner (a learner never votes)"
                    .into(),
            );
        }
        if let Some(j) = &join {
            if j.starts_with("https://") && tls_ca.is_none() {
                return invalid(format!(
                    "--join {j} is https://: give --tls-ca (the CA that signed the cluster's \
                     certificates) so this node can verify it"
                ));
            }
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
            idempotency_window: Duration::from_secs(cli.idempotency_window_secs),
            max_pending: cli.max_pending,
            storage,
            snapshot_entries: cli.snapshot_entries,
            snapshot_log_factor: cli.snapshot_log_factor,
            snapshot_log_bytes: cli.snapshot_log_mib.saturating_mul(1024 * 1024),
            faults: cli.faults,
            client_tokens_file,
            log_format: cli.log_format,
            peers,
            peer_ids,
            join,
            learner: cli.learner,
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
            peer_codec: cli.peer_codec,
            watch,
            lease_reads: cli.lease_reads,
            follower_reads: cli.follower_reads,
        })
    }
}

/// The `--watch-*` flags, checked.
fn watch_settings(
    heartbeat_ms: u64,
    history_changes: usize,
    queue_events: usize,
    max_watchers: usize,
) -> Result<crate::watch::actor::WatchSettings, ConfigError> {
    let invalid = |s: &str| Err(ConfigError::Invalid(s.into()));
    if heartbeat_ms == 0 {
        return invalid("KVSTORE_WATCH_HEARTBEAT_MS must be at least 1");
    }
    if history_changes == 0 {
        return invalid("KVSTORE_WATCH_HISTORY_CHANGES must be at least 1");
    }
    if queue_events < 2 {
        return invalid("KVSTORE_WATCH_QUEUE_EVENTS must be at least 2");
    }
    Ok(crate::watch::actor::WatchSettings {
        heartbeat: Duration::from_millis(heartbeat_ms),
        limits: crate::watch::hub::WatchLimits {
            history_changes,
            queue_events,
            max_watchers,
            ..Default::default()
        },
    })
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

/// Parse the arguments of a subcommand (`kvstore check`, `verify`, `restore`, the client):
/// `name` is what its usage line shows, `args` what follows it on the command line. `--help`
/// prints to stdout and ends with status 0; a usage error prints to stderr and ends with 2 —
/// the `Err` is that status.
pub fn parse_command<T: clap::Parser>(
    name: &str,
    args: Vec<OsString>,
) -> Result<T, std::process::ExitCode> {
    T::try_parse_from(std::iter::once(OsString::from(name)).chain(args)).map_err(|e| {
        let _ = e.print();
        std::process::ExitCode::from(if e.use_stderr() { 2 } else { 0 })
    })
}

#[cfg(test)]
mod tests;
