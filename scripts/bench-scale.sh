#!/usr/bin/env bash
# Scale benchmark (issue 10): write latency and leader stability at a small and a big state.
# Two fresh 3-node durable clusters, one after the other; loopback only, bounded in time.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/bench-scale.sh [--duration SECS] [--keys "1000 1000000"] [--connections N]

For each key count, starts a fresh 3-node durable kvstore cluster (default settings, temporary
data directories), runs wrk against the leader: PUT /set of 100-byte values under random keys
out of that many, at N connections for SECS seconds, while sampling /health every 0.2 s. Prints
writes/s, p50, p99 and max latency, failed requests, leader changes seen, the term at the end
against the start, the keys reached and the snapshots taken. Installs wrk with apt-get if
missing (needs root).

  --duration SECS    seconds per cluster (default 60)
  --keys LIST        key counts, one cluster each (default "1000 1000000")
  --connections N    wrk connections (default 64)
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
(cd "$ROOT" && cargo build --release --quiet)
exec python3 "$ROOT/scripts/lib/kvcluster.py" bench-scale --bin "$ROOT/target/release/kvstore" "$@"
