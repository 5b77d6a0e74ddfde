#!/usr/bin/env bash
# Fuzz: run the fuzz targets of tests/integration/fuzz.rs (peer RPCs, WAL segments, snapshot
# files, client API) far longer than the normal test run, with random seeds, printing each seed
# so a failure can be replayed. Stops at the first failure.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/fuzz.sh [--rounds N] [--cases N] [--secs S] [--seed SEED] [--target NAME]

Each round picks a random seed (or uses --seed), prints it, and runs every target (or one:
peer_rpcs, wal_segments, snapshot_files, client_api) for up to --cases cases or --secs seconds.
A failure prints the input and `KVSTORE_FUZZ_SEED=...`; replay it with --seed.

  --rounds N    rounds, each with a new random seed (default 1)
  --cases N     cases per target per round (default 1000000)
  --secs S      seconds per target per round (default 60)
  --seed SEED   use this seed (for a replay) instead of random ones
  --target NAME run only this target
USAGE
  exit 0
fi
rounds=1 cases=1000000 secs=60 seed="" target=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --cases) cases="$2"; shift 2 ;;
    --secs) secs="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --target) target="$2"; shift 2 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
filter="test(/^fuzz::${target}/)"
for ((i = 1; i <= rounds; i++)); do
  s="${seed:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}"
  echo "fuzz round $i/$rounds: KVSTORE_FUZZ_SEED=$s, $cases cases or $secs s per target"
  log="$(mktemp)"
  status=0
  KVSTORE_FUZZ_SEED="$s" KVSTORE_FUZZ_CASES="$cases" KVSTORE_FUZZ_SECS="$secs" \
    cargo nextest run --release --no-capture -E "$filter" >"$log" 2>&1 || status=$?
  grep -E '^fuzz |panicked|input:|replay:|Summary' "$log" || true
  if [[ "$status" != 0 ]]; then
    echo "FAILED: replay with scripts/fuzz.sh --seed $s${target:+ --target $target} (full output: $log)"
    exit 1
  fi
  rm -f "$log"
done
echo "fuzz: $rounds round(s) passed"
