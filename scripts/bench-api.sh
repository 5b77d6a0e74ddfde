#!/usr/bin/env bash
# The write-path cost of compare-and-set and idempotency keys, and the ordered map's cost on point
# reads and writes (issue #15): wrk, interleaved rounds, medians, on 1 durable node and 3 nodes.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: [BASELINE_BIN=PATH] scripts/bench-api.sh [--duration SECS] [--rounds N]
                                                [--connections "16 64"] [--topologies "1 3"]

For 1 durable node and for a 3-node cluster, starts target/release/kvstore (and, with
BASELINE_BIN, a kvstore binary built from main before issue #15), preloads 10,000 keys of
100-byte values, and runs wrk against the leader, cases interleaved round by round:
  get        GET /get
  set        PUT /set
  set-if     PUT /set with "ifValue" equal to the stored value (a precondition that holds)
  set-idem   PUT /set with a unique Idempotency-Key per request
  base-get   GET /get on BASELINE_BIN        base-set   PUT /set on BASELINE_BIN
Prints median req/s, p50, p99 per case, set-if and set-idem as a ratio of set, and this build
as a ratio of the baseline for get and set (the ordered map should cost at most 10%).

  --duration SECS      seconds per case and round (default 10)
  --rounds N           rounds (default 3)
  --connections LIST   connection counts (default "16 64")
  --topologies LIST    node counts (default "1 3")
Installs wrk with apt-get if it is missing (needs root). Loopback only.
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
(cd "$ROOT" && cargo build --release --quiet)
BASE=()
if [[ -n "${BASELINE_BIN:-}" ]]; then
  [[ -x "$BASELINE_BIN" ]] || { echo "BASELINE_BIN=$BASELINE_BIN is not an executable" >&2; exit 2; }
  BASE=(--baseline "$(cd "$(dirname "$BASELINE_BIN")" && pwd)/$(basename "$BASELINE_BIN")")
fi
exec python3 "$ROOT/scripts/lib/bench_api.py" --bin "$ROOT/target/release/kvstore" "${BASE[@]}" "$@"
