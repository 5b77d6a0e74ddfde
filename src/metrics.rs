//! The node's metric registry (`prometheus-client`) and the typed handles that record into it.
//!
//! [`Metrics`] is made once at start-up; cheap clones of its parts go to whoever records:
//! [`HttpMetrics`] to the API middleware, [`RaftMetrics`] to the `RaftActor` (elections, leader
//! changes, peer RPCs, snapshots), [`WalMetrics`] to the log's sync thread. Recording is a few
//! atomic operations (a label set's series is looked up under the crate's read lock, created
//! once). Gauges that mirror actor state (term, role, indexes, pending work, peer lag, keys)
//! are not kept up to date on the hot path: the `/metrics` handler gathers a [`StateSample`]
//! from the actors and [`Metrics::render`] sets them just before encoding.
//!
//! Every label has a bounded set of values: routes are matched route patterns (or
//! `"unmatched"`), methods a fixed list (or `"other"`), peers the members of the cluster, RPCs
//! a fixed list. This module only counts and encodes; it never reads actor state itself, never
//! does I/O and never decides anything.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `content-type` of [`Metrics::render`]'s text (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The route label of a request that matched no route (so unknown paths add no series).
pub const UNMATCHED: &str = "unmatched";

/// Every value of `kvstore_raft_role{role}`.
pub const ROLES: [&str; 6] = [
    "leader",
    "follower",
    "candidate",
    "precandidate",
    "learner",
    "removed",
];

/// Latency buckets of HTTP requests and peer RPCs, in seconds (100 µs .. 10 s).
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// fsync buckets, in seconds (20 µs .. 2.5 s).
const FSYNC_BUCKETS: [f64; 15] = [
    0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    1.0, 2.5,
];
/// Snapshot duration buckets, in seconds (1 ms .. 120 s).
const SNAPSHOT_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0,
];
/// Group commit batch sizes (entries per fsync): 1, 2, 4, .. 8192.
const BATCH_BUCKETS: [f64; 14] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The method label: a fixed set, anything else is `"other"`.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "PUT" => "PUT",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

/// Labels of `kvstore_http_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

/// Labels of `kvstore_http_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: &'static str,
}

/// Labels of the per-peer RPC series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerRpcLabels {
    pub peer: String,
    /// `append`, `vote`, `snapshot` or `timeout_now`.
    pub rpc: &'static str,
}

/// Labels of `kvstore_raft_peer_lag`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: String,
}

/// Labels of `kvstore_raft_role`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub role: &'static str,
}

/// The labelled families that may have no series yet (no request, no peer, not leading):
/// name as exposed, type and help. The encoder writes nothing for an empty family, so
/// [`Metrics::render`] adds their `# HELP` and `# TYPE` lines itself: every name is always
/// there with its type.
const FAMILIES: [(&str, &str, &str); 6] = [
    (
        "kvstore_http_requests_total",
        "counter",
        "HTTP requests answered, by matched route pattern, method and status",
    ),
    (
        "kvstore_http_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its response, by matched route pattern and method",
    ),
    (
        "kvstore_raft_peer_rpc_duration_seconds",
        "histogram",
        "Round trip of Raft RPCs to each peer, by rpc (append, vote, snapshot, timeout_now)",
    ),
    (
        "kvstore_raft_peer_rpc_errors_total",
        "counter",
        "Raft RPCs to each peer that failed (timeout, unreachable, bad answer), by rpc",
    ),
    (
        "kvstore_raft_peer_lag",
        "gauge",
        "Leader only: entries each peer lacks (last log index - its match index)",
    ),
    (
        "kvstore_linearizable_reads_total",
        "counter",
        "Linearizable reads served here, by how leadership was proved (lease, read_index)",
    ),
];

/// Labels of `kvstore_linearizable_reads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadPathLabels {
    /// `lease` or `read_index`.
    pub path: &'static str,
}

/// The registered name of family `i` of [`FAMILIES`] (counters without `_total`: the encoder
/// adds it) and its help.
fn family(i: usize) -> (&'static str, &'static str) {
    let (name, kind, help) = FAMILIES[i];
    match kind {
        "counter" => (name.trim_end_matches("_total"), help),
        _ => (name, help),
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// What the API middleware records: one request, by matched route pattern.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily<RouteLabels>,
}

impl HttpMetrics {
    /// A request to `route` (its matched pattern, or `None`: [`UNMATCHED`]) answered `status`
    /// after `elapsed`.
    pub fn record(&self, route: Option<String>, method: &str, status: u16, elapsed: Duration) {
        let route = route.unwrap_or_else(|| UNMATCHED.to_owned());
        let method = method_label(method);
        let labels = RouteLabels { route, method };
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        let RouteLabels { route, method } = labels;
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }
}

/// What the `RaftActor` records: elections, leader changes, peer RPCs, snapshots.
#[derive(Debug, Clone)]
pub struct RaftMetrics {
    elections_started: Counter,
    leader_changes: Counter,
    rpc_duration: HistogramFamily<PeerRpcLabels>,
    rpc_errors: Family<PeerRpcLabels, Counter>,
    snapshots: Counter,
    snapshot_duration: Histogram,
    snapshot_bytes: Gauge,
}

impl RaftMetrics {
    /// This node started an election (became candidate in a new term).
    pub fn election_started(&self) {
        self.elections_started.inc();
    }

    /// This node learned of a new leader (itself included) or a new term's leader.
    pub fn leader_changed(&self) {
        self.leader_changes.inc();
    }

    /// An RPC of kind `rpc` to `peer` answered (`ok`) or failed after `elapsed`.
    pub fn rpc(&self, peer: &str, rpc: &'static str, ok: bool, elapsed: Duration) {
        let labels = PeerRpcLabels {
            peer: peer.to_owned(),
            rpc,
        };
        self.rpc_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if !ok {
            self.rpc_errors.get_or_create(&labels).inc();
        }
    }

    /// A snapshot of `bytes` was taken in `elapsed`.
    pub fn snapshot_taken(&self, bytes: u64, elapsed: Duration) {
        self.snapshots.inc();
        self.snapshot_duration.observe(elapsed.as_secs_f64());
        self.snapshot_bytes.set(clamp(bytes));
    }
}

/// What the log's sync thread records: one group commit.
#[derive(Debug, Clone)]
pub struct WalMetrics {
    fsync: Histogram,
    bytes: Counter,
    batch_entries: Histogram,
}

impl WalMetrics {
    /// A batch of `entries` log entries (`bytes` written) was made durable by one fsync that
    /// took `fsync`.
    pub fn batch(&self, entries: usize, bytes: u64, fsync: Duration) {
        self.fsync.observe(fsync.as_secs_f64());
        self.bytes.inc_by(bytes);
        self.batch_entries.observe(entries as f64);
    }
}

/// The state gauges, set from a [`StateSample`] at scrape time.
#[derive(Debug, Clone)]
struct StateGauges {
    term: Gauge,
    is_leader: Gauge,
    role: Family<RoleLabels, Gauge>,
    commit_index: Gauge,
    applied_index: Gauge,
    last_log_index: Gauge,
    proposals_pending: Gauge,
    reads_pending: Gauge,
    apply_lag: Gauge,
    keys: Gauge,
    peer_lag: Family<PeerLabels, Gauge>,
}

/// A node's state as the `/metrics` handler gathered it from its actors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateSample {
    pub term: u64,
    /// One of [`ROLES`].
    pub role: &'static str,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub proposals_pending: usize,
    pub reads_pending: usize,
    pub keys: usize,
    /// Leader only: each other member's id and `last log index − match index`.
    pub peer_lag: Vec<(String, u64)>,
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The registry and every handle. Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    http: HttpMetrics,
    raft: RaftMetrics,
    wal: WalMetrics,
    state: StateGauges,
    reads: Family<ReadPathLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every `kvstore_*` metric registered (at zero).
    pub fn new() -> Self {
        let mut r = Registry::default();
        let http = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
        };
        let (name, help) = family(0);
        r.register(name, help, http.requests.clone());
        let (name, help) = family(1);
        r.register(name, help, http.duration.clone());
        let raft = RaftMetrics {
            elections_started: Counter::default(),
            leader_changes: Counter::default(),
            rpc_duration: Family::new_with_constructor(latency_histogram),
            rpc_errors: Family::default(),
            snapshots: Counter::default(),
            snapshot_duration: Histogram::new(SNAPSHOT_BUCKETS),
            snapshot_bytes: Gauge::default(),
        };
        r.register(
            "kvstore_raft_elections_started",
            "Elections this node started (it became candidate in a new term)",
            raft.elections_started.clone(),
        );
        r.register(
            "kvstore_raft_leader_changes",
            "Leaders this node has seen (a new leader, or a new term's leader)",
            raft.leader_changes.clone(),
        );
        let (name, help) = family(2);
        r.register(name, help, raft.rpc_duration.clone());
        let (name, help) = family(3);
        r.register(name, help, raft.rpc_errors.clone());
        r.register(
            "kvstore_snapshots",
            "Snapshots this node took",
            raft.snapshots.clone(),
        );
        r.register(
            "kvstore_snapshot_duration_seconds",
            "Time to take a snapshot (freeze, encode, write)",
            raft.snapshot_duration.clone(),
        );
        r.register(
            "kvstore_snapshot_bytes",
            "Size of the last snapshot this node took, in bytes",
            raft.snapshot_bytes.clone(),
        );
        let wal = WalMetrics {
            fsync: Histogram::new(FSYNC_BUCKETS),
            bytes: Counter::default(),
            batch_entries: Histogram::new(BATCH_BUCKETS),
        };
        r.register(
            "kvstore_wal_fsync_duration_seconds",
            "Time of each fsync of the write-ahead log (one per group commit)",
            wal.fsync.clone(),
        );
        r.register(
            "kvstore_wal_bytes_written",
            "Bytes written to the write-ahead log",
            wal.bytes.clone(),
        );
        r.register(
            "kvstore_wal_batch_entries",
            "Log entries made durable by one fsync (group commit batch size)",
            wal.batch_entries.clone(),
        );
        let state = StateGauges {
            term: Gauge::default(),
            is_leader: Gauge::default(),
            role: Family::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            last_log_index: Gauge::default(),
            proposals_pending: Gauge::default(),
            reads_pending: Gauge::default(),
            apply_lag: Gauge::default(),
            keys: Gauge::default(),
            peer_lag: Family::default(),
        };
        let gauges: [(&str, &str, &Gauge); 9] = [
            ("kvstore_raft_term", "Current Raft term", &state.term),
            (
                "kvstore_raft_is_leader",
                "1 if this node is the leader, else 0",
                &state.is_leader,
            ),
            (
                "kvstore_raft_commit_index",
                "Highest log index known committed",
                &state.commit_index,
            ),
            (
                "kvstore_raft_applied_index",
                "Highest log index applied to the key-value map",
                &state.applied_index,
            ),
            (
                "kvstore_raft_last_log_index",
                "Index of the last entry in this node's log",
                &state.last_log_index,
            ),
            (
                "kvstore_raft_proposals_pending",
                "Client writes proposed here and waiting for their entry to be applied",
                &state.proposals_pending,
            ),
            (
                "kvstore_raft_reads_pending",
                "Linearizable reads waiting for a read index",
                &state.reads_pending,
            ),
            (
                "kvstore_apply_lag",
                "Committed entries not yet applied (commit index - applied index)",
                &state.apply_lag,
            ),
            ("kvstore_keys", "Keys in the map", &state.keys),
        ];
        for (name, help, g) in gauges {
            r.register(name, help, g.clone());
        }
        r.register(
            "kvstore_raft_role",
            "1 for this node's current role, 0 for the others",
            state.role.clone(),
        );
        let (name, help) = family(4);
        r.register(name, help, state.peer_lag.clone());
        let reads: Family<ReadPathLabels, Counter> = Family::default();
        let (name, help) = family(5);
        r.register(name, help, reads.clone());
        Metrics {
            inner: Arc::new(Inner {
                registry: r,
                http,
                raft,
                wal,
                state,
                reads,
            }),
        }
    }

    pub fn http(&self) -> &HttpMetrics {
        &self.inner.http
    }

    /// The handles the `RaftActor` records with.
    pub fn raft(&self) -> RaftMetrics {
        self.inner.raft.clone()
    }

    /// A linearizable read was served, its leadership proved by `path` (`lease` or
    /// `read_index`).
    pub fn read_served(&self, path: &'static str) {
        self.inner
            .reads
            .get_or_create(&ReadPathLabels { path })
            .inc();
    }

    /// The handles the log writer records with.
    pub fn wal(&self) -> WalMetrics {
        self.inner.wal.clone()
    }

    /// Set the state gauges from `sample`, then encode every metric as Prometheus text
    /// ([`CONTENT_TYPE`]).
    pub fn render(&self, sample: &StateSample) -> String {
        let s = &self.inner.state;
        s.term.set(clamp(sample.term));
        s.is_leader.set(i64::from(sample.role == "leader"));
        for role in ROLES {
            s.role
                .get_or_create(&RoleLabels { role })
                .set(i64::from(sample.role == role));
        }
        s.commit_index.set(clamp(sample.commit_index));
        s.applied_index.set(clamp(sample.applied_index));
        s.last_log_index.set(clamp(sample.last_log_index));
        s.proposals_pending
            .set(clamp(sample.proposals_pending as u64));
        s.reads_pending.set(clamp(sample.reads_pending as u64));
        s.apply_lag.set(clamp(
            sample.commit_index.saturating_sub(sample.applied_index),
        ));
        s.keys.set(clamp(sample.keys as u64));
        // Only the current peers of a leader: a removed peer, or a node that stopped leading,
        // shows none.
        s.peer_lag.clear();
        for (peer, lag) in &sample.peer_lag {
            s.peer_lag
                .get_or_create(&PeerLabels { peer: peer.clone() })
                .set(clamp(*lag));
        }
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.registry);
        for (name, kind, help) in FAMILIES {
            if !out.contains(&format!("# TYPE {name} {kind}\n")) {
                out.push_str(&format!("# HELP {name} {help}.\n# TYPE {name} {kind}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths that match no route share one series: a scan of random URLs cannot grow the
    /// registry.
    #[test]
    fn unmatched_paths_add_no_series() {
        let m = Metrics::new();
        let series = |m: &Metrics| {
            m.render(&StateSample::default())
                .lines()
                .filter(|l| l.starts_with("kvstore_http_requests_total{"))
                .count()
        };
        let http = m.http();
        let ms = Duration::from_millis(1);
        http.record(Some("/set".into()), "PUT", 200, ms);
        assert_eq!(series(&m), 1);
        for _ in 0..100 {
            http.record(None, "GET", 404, ms);
        }
        assert_eq!(series(&m), 2);
        // Unusual methods share one label value too.
        http.record(None, "BREW", 404, ms);
        http.record(None, "PROPFIND", 404, ms);
        assert_eq!(series(&m), 3);
        let text = m.render(&StateSample::default());
        assert!(text.contains(
            "kvstore_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 100"
        ));
        assert!(text.contains("method=\"other\""));
    }

    /// Every contract name is there with its type, and counters end in `_total`.
    #[test]
    fn every_metric_is_registered_with_its_type() {
        let text = Metrics::new().render(&StateSample {
            role: "follower",
            ..StateSample::default()
        });
        for (name, kind) in [
            ("kvstore_http_requests_total", "counter"),
            ("kvstore_http_request_duration_seconds", "histogram"),
            ("kvstore_raft_term", "gauge"),
            ("kvstore_raft_is_leader", "gauge"),
            ("kvstore_raft_role", "gauge"),
            ("kvstore_raft_commit_index", "gauge"),
            ("kvstore_raft_applied_index", "gauge"),
            ("kvstore_raft_last_log_index", "gauge"),
            ("kvstore_raft_leader_changes_total", "counter"),
            ("kvstore_raft_elections_started_total", "counter"),
            ("kvstore_raft_proposals_pending", "gauge"),
            ("kvstore_raft_reads_pending", "gauge"),
            ("kvstore_apply_lag", "gauge"),
            ("kvstore_keys", "gauge"),
            ("kvstore_raft_peer_lag", "gauge"),
            ("kvstore_raft_peer_rpc_duration_seconds", "histogram"),
            ("kvstore_raft_peer_rpc_errors_total", "counter"),
            ("kvstore_wal_fsync_duration_seconds", "histogram"),
            ("kvstore_wal_bytes_written_total", "counter"),
            ("kvstore_wal_batch_entries", "histogram"),
            ("kvstore_snapshots_total", "counter"),
            ("kvstore_snapshot_duration_seconds", "histogram"),
            ("kvstore_snapshot_bytes", "gauge"),
            ("kvstore_linearizable_reads_total", "counter"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} {kind} missing in:\n{text}"
            );
        }
        assert!(text.contains("kvstore_raft_role{role=\"follower\"} 1\n"));
        assert!(text.contains("kvstore_raft_role{role=\"leader\"} 0\n"));
        assert!(text.contains("kvstore_raft_is_leader 0\n"));
    }

    /// Peer lag shows only the peers of the last sample (a node that stops leading shows none).
    #[test]
    fn peer_lag_follows_the_last_sample() {
        let m = Metrics::new();
        let leading = StateSample {
            role: "leader",
            peer_lag: vec![("n2".into(), 3), ("n3".into(), 0)],
            ..StateSample::default()
        };
        let text = m.render(&leading);
        assert!(text.contains("kvstore_raft_peer_lag{peer=\"n2\"} 3\n"));
        assert!(text.contains("kvstore_raft_is_leader 1\n"));
        let text = m.render(&StateSample {
            role: "follower",
            ..StateSample::default()
        });
        assert!(!text.contains("kvstore_raft_peer_lag{"));
    }
}
