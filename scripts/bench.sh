#!/usr/bin/env bash
# Single-node HTTP benchmark: GET and SET at several connection counts against a release node,
# with GET /health (the cheapest route) measured in the same run as the baseline.
# Loopback only, bounded in time; prints req/s, p50, p99 and the ratio to the baseline.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/bench.sh [--duration SECS] [--rounds N] [--connections "16 64"] [--threads N]
                       [--workers N]

Starts target/release/kvstore on 127.0.0.1 (a free port), preloads 10,000 keys, then runs wrk
for each case (health baseline, GET, SET) at each connection count, interleaved over several
rounds, and prints the median req/s, p50 and p99 of each case and its ratio to the baseline.

  --duration SECS      seconds per case and round (default 10)
  --rounds N           rounds (default 3)
  --connections LIST   connection counts (default "16 64")
  --threads N          wrk threads (default 2)
  --workers N          server HTTP workers (default: kvstore's default, the CPU count)
  -h, --help           this text

Installs wrk with apt-get if it is missing (needs root).
USAGE
}

DURATION=10
ROUNDS=3
CONNS="16 64"
THREADS=2
WORKERS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi

cargo build --release --quiet
BIN="$ROOT/target/release/kvstore"
LOG="$(mktemp /tmp/kvstore-bench.XXXXXX.log)"
DATA="$(mktemp -d /tmp/kvstore-bench-data.XXXXXX)"
PID=""
cleanup() {
  if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT INT TERM

ARGS=(--host 127.0.0.1 --port 0)
[[ -n "$WORKERS" ]] && ARGS+=(--workers "$WORKERS")
# Default logging (info): every request writes its log line, as in production.
RUST_LOG="${RUST_LOG:-info}" KVSTORE_DATA_DIR="$DATA" "$BIN" "${ARGS[@]}" 2>"$LOG" &
PID=$!

ADDR=""
for _ in $(seq 1 200); do
  ADDR="$(grep -o 'listening on http://[0-9.:]*' "$LOG" | head -1 | sed 's#listening on ##' || true)"
  [[ -n "$ADDR" ]] && break
  kill -0 "$PID" 2>/dev/null || { echo "kvstore exited:" >&2; cat "$LOG" >&2; exit 1; }
  sleep 0.05
done
[[ -n "$ADDR" ]] || { echo "kvstore did not start" >&2; cat "$LOG" >&2; exit 1; }
# Only ever loopback.
case "$ADDR" in http://127.*) ;; *) echo "refusing non-loopback target $ADDR" >&2; exit 1 ;; esac

# Preload the keys GET reads, over one keep-alive connection.
python3 - "$ADDR" <<'PY'
import http.client, json, sys
host = sys.argv[1].removeprefix("http://")
c = http.client.HTTPConnection(host, timeout=10)
v = "v" * 100
for i in range(10000):
    c.request("PUT", "/set", json.dumps({"key": f"key-{i}", "value": v}),
              {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY

# run_case CONNS URL [SCRIPT] -> prints "req/s p50 p99 non2xx socket_errors"
run_case() {
  local conns="$1" url="$2" script="${3:-}"
  local args=(-t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout 5s --latency)
  [[ -n "$script" ]] && args+=(-s "$script")
  local out
  out="$(wrk "${args[@]}" "$url")"
  local rps p50 p99 errs sockerr
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  errs="$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")"
  sockerr="$(grep -c 'Socket errors:' <<<"$out" || true)"
  echo "$rps $p50 $p99 ${errs:-0} $sockerr"
}

RESULTS="$(mktemp /tmp/kvstore-bench.XXXXXX.tsv)"
echo "running: $ROUNDS rounds x conns {$CONNS} x {health,get,set}, ${DURATION}s each" >&2
# Cases are interleaved round by round, so drift in machine load hits all of them alike.
for round in $(seq 1 "$ROUNDS"); do
  for c in $CONNS; do
    for name in health get set; do
      if [[ "$name" == health ]]; then
        r="$(run_case "$c" "$ADDR/health")"
      else
        r="$(run_case "$c" "$ADDR" "$ROOT/scripts/wrk/$name.lua")"
      fi
      echo "$round $c $name $r" >>"$RESULTS"
      echo "  round $round: $name c=$c: $r" >&2
    done
  done
done

printf '\nkvstore single-node bench: %s, %s CPUs, wrk -t%s, %s rounds x %ss per case (medians)\n' \
  "$ADDR" "$(nproc)" "$THREADS" "$ROUNDS" "$DURATION"
python3 "$ROOT/scripts/wrk/summarize.py" "$RESULTS" health
rm -f "$RESULTS"
