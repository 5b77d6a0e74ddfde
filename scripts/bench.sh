#!/usr/bin/env bash
# Single-node HTTP benchmark: GET and SET at several connection counts against a release node,
# with GET /health (the cheapest route) measured in the same run as the baseline.
# Loopback only, bounded in time; prints req/s, p50, p99 and the ratio to the baseline.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/bench.sh [--duration SECS] [--connections "16 64"] [--threads N] [--workers N]

Starts target/release/kvstore on 127.0.0.1 (a free port), preloads 10,000 keys, then runs wrk
for each case (health baseline, GET, SET) at each connection count and prints a table.

  --duration SECS      seconds per case (default 10)
  --connections LIST   connection counts (default "16 64")
  --threads N          wrk threads (default 2)
  --workers N          server HTTP workers (default: kvstore's default, the CPU count)
  -h, --help           this text

Installs wrk with apt-get if it is missing (needs root).
USAGE
}

DURATION=10
CONNS="16 64"
THREADS=2
WORKERS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
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
PID=""
cleanup() {
  if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

ARGS=(--host 127.0.0.1 --port 0)
[[ -n "$WORKERS" ]] && ARGS+=(--workers "$WORKERS")
# Default logging (info): every request writes its log line, as in production.
RUST_LOG="${RUST_LOG:-info}" "$BIN" "${ARGS[@]}" 2>"$LOG" &
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

# run_case NAME CONNS URL [SCRIPT] -> prints "reqs p50 p99 errors"
run_case() {
  local conns="$1" url="$2" script="${3:-}"
  local out
  if [[ -n "$script" ]]; then
    out="$(wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout 5s --latency -s "$script" "$url")"
  else
    out="$(wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout 5s --latency "$url")"
  fi
  local rps p50 p99 errs
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  errs="$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")"
  local sockerr
  sockerr="$(grep -o 'Socket errors:.*' <<<"$out" || true)"
  echo "$rps $p50 $p99 ${errs:-0} ${sockerr:+[$sockerr]}"
}

printf '\nkvstore single-node bench: %s, %ss per case, wrk -t%s, %s\n' \
  "$ADDR" "$DURATION" "$THREADS" "$(nproc) CPUs"
printf '%-8s %6s %12s %10s %10s %8s %s\n' case conns req/s p50 p99 ratio errors
for c in $CONNS; do
  read -r base_rps b50 b99 berr brest <<<"$(run_case "$c" "$ADDR/health")"
  printf '%-8s %6s %12s %10s %10s %8s %s %s\n' health "$c" "$base_rps" "$b50" "$b99" "1.00" "$berr" "${brest:-}"
  for name in get set; do
    read -r rps p50 p99 err rest <<<"$(run_case "$c" "$ADDR" "$ROOT/scripts/wrk/$name.lua")"
    ratio="$(awk -v a="$rps" -v b="$base_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
    printf '%-8s %6s %12s %10s %10s %8s %s %s\n' "$name" "$c" "$rps" "$p50" "$p99" "$ratio" "$err" "${rest:-}"
  done
done
