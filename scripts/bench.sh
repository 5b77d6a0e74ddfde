#!/usr/bin/env bash
# Single-node HTTP benchmark: GET and SET against a durable release node, with GET /health (the
# cheapest route) measured in the same interleaved run as the baseline, plus the server's CPU
# time per operation. Loopback only, bounded in time.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/bench.sh [--duration SECS] [--rounds N] [--connections "16 64"] [--threads N]
                       [--workers N] [--baseline BIN]

Starts a durable kvstore node on 127.0.0.1 (a free port), preloads 10,000 keys of 100-byte
values, then runs wrk for each case (health baseline, GET, SET) at each connection count,
interleaved over several rounds, and prints per case the median req/s, p50, p99, the server's
CPU time per operation (utime+stime from /proc/PID/stat around the case, divided by the 2xx
answers) and the ratio to the /health baseline; then the issue #16 goals (SET/health >= 0.7).

  --duration SECS      seconds per case and round (default 10)
  --rounds N           rounds (default 3)
  --connections LIST   connection counts (default "16 64")
  --threads N          wrk threads (default 2)
  --workers N          server HTTP workers (default: kvstore's default, the CPU count)
  --baseline BIN       also run a node of another kvstore binary, its cases interleaved with
                       this build's, and print this build / baseline (or BASELINE_BIN=BIN)
  -h, --help           this text

The binary: $KVSTORE_BIN if set, else `cargo build --release` and target/release/kvstore.
Installs wrk with apt-get if it is missing (needs root).
USAGE
}
for a in "$@"; do [[ "$a" == -h || "$a" == --help ]] && { usage; exit 0; }; done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/bench_bins.sh"
need_tools wrk
pick_bins
exec python3 "$ROOT/scripts/lib/bench_report.py" single --bin "$BIN" "${BASE[@]}" "$@"
