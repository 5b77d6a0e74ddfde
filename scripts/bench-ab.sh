#!/usr/bin/env bash
# A/B of two (or more) kvstore binaries on one durable node: a fresh server and data directory per
# measurement, interleaved (the order flips every round), wrk throughput and the server's CPU time
# per request; or, with --callgrind, instructions per request under valgrind (slow, but stable on
# a noisy machine). Loopback only, bounded in time.
set -euo pipefail
usage() {
  cat <<'USAGE'
Usage: scripts/bench-ab.sh [--rounds N] [--duration SECS] [--cases "set:64 get:64"] [--callgrind]
                           NAME=BIN [NAME=BIN ...]

Each case is a wrk script of scripts/wrk (set, get, ...) and a connection count. Every
measurement starts the binary on a fresh data directory, writes for 2 s (so gets find keys), then
measures: req/s and server CPU µs per request (utime+stime from /proc), one line each, and the
medians per case and binary at the end. With --callgrind: the server runs under valgrind's
callgrind, 4 connections, and the line gives instructions per request of the measured phase.
Installs wrk (and valgrind with --callgrind) with apt-get if missing.
USAGE
}
ROUNDS=3; DUR=6; CASES="set:64 get:64"; CALLGRIND=0; BINS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --cases) CASES=$2; shift 2 ;;
    --callgrind) CALLGRIND=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *=*) BINS+=("$1"); shift ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ ${#BINS[@]} -ge 1 ]] || { usage >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
need=()
command -v wrk >/dev/null || need+=(wrk)
[[ $CALLGRIND == 0 ]] || command -v valgrind >/dev/null || need+=(valgrind)
if [[ ${#need[@]} -gt 0 ]]; then
  (apt-get update -qq && apt-get install -y -qq "${need[@]}") >/dev/null
fi
TICK=$(getconf CLK_TCK)
TMP=$(mktemp -d)
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cpu_secs() { awk -v t="$TICK" '{print ($14+$15)/t}' "/proc/$1/stat"; }

measure() { # name bin case conns
  local name=$1 bin=$2 case_=$3 conns=$4 dir port out reqs
  dir=$(mktemp -d "$TMP/d.XXXX"); port=$(free_port)
  if [[ $CALLGRIND == 1 ]]; then
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$bin" --port "$port" \
      --host 127.0.0.1 --data-dir "$dir/data" >/dev/null 2>&1 &
  else
    "$bin" --port "$port" --host 127.0.0.1 --data-dir "$dir/data" >/dev/null 2>&1 &
  fi
  PID=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  local c=64; [[ $CALLGRIND == 1 ]] && { c=4; conns=4; }
  wrk -t1 -c$c -d2s -s "$ROOT/scripts/wrk/set.lua" "http://127.0.0.1:$port" >/dev/null
  if [[ $CALLGRIND == 1 ]]; then
    callgrind_control -z "$PID" >/dev/null 2>&1
    out=$(wrk -t1 -c4 -d"${DUR}s" -s "$ROOT/scripts/wrk/$case_.lua" "http://127.0.0.1:$port")
    callgrind_control -d "$PID" >/dev/null 2>&1
    reqs=$(awk '/requests in/{print $1}' <<<"$out")
    local ir=""
    for _ in $(seq 100); do
      ir=$(callgrind_annotate "$dir/cg.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
      [[ -n "$ir" ]] && break; sleep 0.1
    done
    echo "round $r $case_ c=$conns $name reqs $reqs instructions_per_op $((ir / reqs))"
  else
    local c0 c1
    c0=$(cpu_secs "$PID")
    out=$(wrk -t2 -c"$conns" -d"${DUR}s" -s "$ROOT/scripts/wrk/$case_.lua" "http://127.0.0.1:$port")
    c1=$(cpu_secs "$PID")
    reqs=$(awk '/requests in/{print $1}' <<<"$out")
    echo "round $r $case_ c=$conns $name rps $(awk '/Requests\/sec/{print $2}' <<<"$out") \
cpu_us_per_op $(python3 -c "print(round(($c1-$c0)*1e6/$reqs,1))")"
  fi
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  rm -rf "$dir"
}

for r in $(seq "$ROUNDS"); do
  order=("${BINS[@]}")
  if (( r % 2 == 0 )); then
    order=(); for ((i=${#BINS[@]}-1; i>=0; i--)); do order+=("${BINS[$i]}"); done
  fi
  for cc in $CASES; do
    for nb in "${order[@]}"; do
      measure "${nb%%=*}" "${nb#*=}" "${cc%%:*}" "${cc##*:}" >>"$TMP/lines"
      tail -n 1 "$TMP/lines"
    done
  done
done
echo
python3 - "$TMP/lines" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    key = (f[2], f[3], f[4])
    rows.setdefault(key, []).append([float(x) for x in f[6::2]])
print("medians (req/s and CPU µs per request; with --callgrind: requests and instructions per request):")
for (case, conns, name), vals in sorted(rows.items()):
    cols = list(zip(*vals))
    print(f"  {case:5} {conns:5} {name:10} " + "  ".join(f"{statistics.median(c):10.1f}" for c in cols))
PY
