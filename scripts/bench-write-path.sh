#!/usr/bin/env bash
# Where a committed write's cost goes on 3 nodes, per node, and what the per-request log costs:
# one durable 3-node cluster per RUST_LOG level, writes at the leader, interleaved rounds.
# Loopback only, bounded in time; every node it starts is killed at the end.
set -euo pipefail
if [[ " $* " == *" -h "* || " $* " == *" --help "* ]]; then
  cat <<'USAGE'
Usage: scripts/bench-write-path.sh [--duration SECS] [--rounds N] [--connections "16 64"]
                                  [--log-levels "info warn"]

Starts one 3-node durable kvstore cluster per log level (RUST_LOG), preloads 10,000 keys in
each, then runs wrk writes (PUT /set) at each leader, the levels interleaved round by round.
Prints medians of req/s, p50, p99, the CPU time per committed write of the leader and of each
follower (utime+stime from /proc/PID/stat), WAL batches per write on each node and
AppendEntries requests per write (from /metrics), and each level's throughput against the
first level's.

  --duration SECS      seconds per case and round (default 5)
  --rounds N           rounds (default 3)
  --connections LIST   connection counts (default "16 64")
  --log-levels LIST    RUST_LOG values to compare (default "info warn": with and without the
                       per-request log line)

The binary: $KVSTORE_BIN if set, else `cargo build --release` and target/release/kvstore.
Installs wrk with apt-get if it is missing (needs root).
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/bench_bins.sh"
need_tools wrk
pick_bins
exec python3 "$ROOT/scripts/lib/bench_report.py" write-path --bin "$BIN" "$@"
