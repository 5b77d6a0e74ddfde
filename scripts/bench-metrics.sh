#!/usr/bin/env bash
# Metrics cost benchmark: writes and linearizable reads against a 3-node durable cluster, with
# and without a scraper fetching /metrics from every node once a second. Loopback only, bounded.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/bench-metrics.sh [--duration SECS] [--rounds N] [--connections N]

Starts a 3-node durable cluster, preloads 10,000 keys, then per round runs wrk against the
leader (PUT /set, then GET /get, 100-byte values) once without and once with a scraper that
fetches GET /metrics from all three nodes once a second (the order alternates by round).
Prints the median req/s and p99 of each, and the median of each round's on/off ratio; the goal
is at most 3% lower throughput with scraping. Installs wrk with apt-get if missing (needs root).

  --duration SECS   seconds per wrk run (default 10)
  --rounds N        interleaved rounds (default 5)
  --connections N   wrk connections (default 64)
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
(cd "$ROOT" && cargo build --release --quiet)
# Where cargo puts the binary (CARGO_TARGET_DIR when set).
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kvstore"
exec python3 "$ROOT/scripts/lib/kvcluster.py" bench-metrics --bin "$BIN" "$@"
