//! Integration tests, one binary (faster to build and link than one per file).
//!
//! - `check`: `kvstore check --local 3` with kills, pauses and partitions, end to end.
//! - `check_retries`: `kvstore check`'s idempotent retries and CAS workload against a mock node
//!   that loses answers (and one that applies a retried write twice, which must be caught).
//! - `cli`: the client commands (`kvstore get|set|delete|status|member|leader|backup`) run as
//!   a script would, their exit codes, against real processes and snapshot fixtures.
//! - `auth`: client tokens: roles per route, 401/403, refusals at start, forwarding, `check
//!   --token`.
//! - `backup`: `GET /admin/snapshot` under load, the cluster destroyed and restored with
//!   `kvstore restore` (every acknowledged write kept, a new cluster id); the admin role.
//! - `bounds`: a peer body or query one byte over its bound is refused and never reaches Raft.
//! - `api`: every route, status and error shape through `actix_web::test` against `api::app`.
//! - `api_v2`: issue #15's revisions, `minIndex`, compare-and-set, `/keys`, `Idempotency-Key`, in
//!   process and on 3 processes (a retried delete answers its first outcome, also across a
//!   leader kill).
//! - `blackbox`: the real `kvstore` binary on a port the OS picks, over TCP.
//! - `concurrency`: hundreds of concurrent clients against an in-process server, checked
//!   against a model; a bounded stress run.
//! - `dashboard`: `/dashboard` and `/dashboard/state` (shape, tokens), and the page in headless
//!   Chromium against a 3-node cluster: the leader shown, killed, shown down, a new one shown.
//! - `fatal`: an injected fsync failure ends a node (single, and a 3-node leader) with its
//!   documented exit status and one log line.
//! - `fuzz`: random and mutated input for the peer RPC, WAL, snapshot and client API decoders
//!   (a short fixed-seed run; `scripts/fuzz.sh` runs them longer).
//! - `helpers`: shared setup (no test lives there).
//! - `peer_codec`: the binary peer codec on processes: announced, answered in kind, and a mixed
//!   cluster with a JSON-only (old) node that replicates and fails over.
//! - `membership`: membership changes on real processes: grow 3 → 5 under writes, replace a
//!   killed node, remove the leader, transfer leadership, a removed node that does not disturb.
//! - `join`: `--join` (a used id refused, a node with data resumes, a 4th node becomes a
//!   voter) and a leader stopped with SIGTERM handing its leadership over.
//! - `identity`: the data directory's lock and recorded ids, cluster ids on peer RPCs, the
//!   start line.
//! - `lease_reads`: lease reads on real processes: `consistency=lease`, the lease counter, and a
//!   leader SIGSTOPped with lease reads in flight that never answers the overwritten value.
//! - `metrics`: `/metrics`, `/livez`, `/readyz` in process and on a 3-node process cluster.
//! - `snapshots`: snapshot catch-up, restart from a snapshot, random SIGKILLs under load.
//! - `tls`: HTTPS client ports, peer ports with mutual TLS, certificates made at run time.
//! - `watch`: `GET /watch` on real processes: SSE shape, resume, 410, slow watchers,
//!   heartbeats, stop, and a watcher reconnecting through leader kills.

mod api;
mod api_v2;
mod auth;
mod backup;
mod bitflip;
mod blackbox;
mod bounds;
mod check;
mod check_retries;
mod cli;
mod cluster_proc;
mod cluster_sim;
mod concurrency;
mod crashpoints;
mod dashboard;
mod durability;
mod fatal;
mod follower_reads;
mod fuzz;
mod helpers;
mod identity;
mod join;
mod layers;
mod lease_reads;
mod linearizable;
mod membership;
mod metrics;
mod netns;
mod peer_auth;
mod peer_codec;
mod raft_sim;
mod snapshots;
mod tls;
mod watch;
