#!/usr/bin/env bash
# Membership benchmark: a node joining a cluster that holds a large state (time until it is a
# voter, and the write throughput meanwhile against steady state), leadership transfer time
# against a crash failover, and 5-node against 3-node write throughput. Loopback only, bounded.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/bench-membership.sh [--keys N] [--duration SECS] [--rounds N]
                                   [--transfers N] [--failovers N]

1. Starts a 3-node durable cluster, preloads N keys (default 100,000) of 100-byte values, then
   per round: wrk random writes at 64 connections for SECS (steady state), then the same load
   while an empty node joins with KVSTORE_JOIN; reports the time from its start until /cluster
   lists it as a voter, and the writes/s of that window against the 3-node steady state before
   it and the 4-node steady state for 2 s after it. The node is removed again after each round.
2. Hands leadership to a follower N times (POST /cluster/leader; default 20), timing request
   until the new leader acknowledges a write; interleaved with SIGKILL failovers (default 5),
   timed from the kill until a survivor acknowledges a write.
3. Writes/s at 64 connections on a 3-node and a 5-node cluster, interleaved rounds.
Installs wrk with apt-get if missing (needs root).

  --keys N         keys preloaded before the joins (default 100000)
  --duration SECS  seconds per wrk window (default 10)
  --rounds N       rounds of joins and of the 3/5 comparison (default 3)
  --transfers N    leadership transfers (default 20)
  --failovers N    crash failovers to compare with (default 5)
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
(cd "$ROOT" && cargo build --release --quiet)
exec python3 "$ROOT/scripts/lib/kvcluster.py" bench-membership --bin "$ROOT/target/release/kvstore" "$@"
