#!/usr/bin/env bash
# Failover and leader-stability figures for BENCHMARKS.md: failover time over many leader kills,
# and leader changes in an idle period and under write load. Loopback only, bounded in time.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/bench-failover.sh [--kills N] [--seconds S] [--connections C]

  --kills N        leader kills for the failover figures (default 20)
  --seconds S      length of the idle and the loaded stability runs (default 60)
  --connections C  wrk connections for the loaded run (default 64)

Installs wrk with apt-get if missing. Each part starts and stops its own 3-node cluster.
USAGE
  exit 0
fi
KILLS=20
SECONDS_=60
CONNS=64
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kills) KILLS="$2"; shift 2 ;;
    --seconds) SECONDS_="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
command -v wrk >/dev/null || { (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null; }
cargo build --release --quiet
BIN="$ROOT/target/release/kvstore"
PY="$ROOT/scripts/lib/kvcluster.py"

echo "== failover: $KILLS leader kills (defaults: heartbeat 50 ms, election timeout 150 ms)"
python3 "$PY" kill-leader-test --bin "$BIN" --rounds "$KILLS" | grep -E "^(failover|PASS|FAIL)"
echo "== stability: ${SECONDS_}s idle"
python3 "$PY" stability --bin "$BIN" --seconds "$SECONDS_" | tail -1 || true
echo "== stability: ${SECONDS_}s under write load"
python3 "$PY" stability --bin "$BIN" --seconds "$SECONDS_" --load-connections "$CONNS" | tail -1 || true
