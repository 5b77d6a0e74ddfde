#!/usr/bin/env bash
# Soak: run `kvstore check --local 3` with kills, pauses, partitions and clock skew, seed after
# seed, one line per run, and stop at the first failure. Bounded (--runs), loopback only; every
# node dies with its check.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/soak.sh [--runs N] [--duration D] [--nemesis LIST] [--first-seed S] [-- CHECK_ARGS...]

Runs `kvstore check --local 3 --nemesis LIST --duration D --seed S` for S = first-seed,
first-seed+1, ... (N runs), prints one line per run (verdict, ops, faults by kind, the clock
rates the clock faults used and measured, availability) and a total, and exits non-zero at the
first run that is not linearizable or whose replicas do not converge (its report and node logs
are kept; the line says where). Extra arguments after `--` go to every check (e.g.
`-- --clock-drift 0.3` for a run outside the lease reads' clock assumption).

  --runs N          runs (default 4)
  --duration D      workload duration per run (default 60s)
  --nemesis LIST    faults (default kill,pause,partition,clock)
  --first-seed S    first seed (default 1)

The binary: $KVSTORE_BIN if set, else `cargo build --release` and target/release/kvstore.
The clock fault needs libfaketime: installed with apt-get if missing (needs root); without it
the checks say "clock nemesis SKIPPED" and run the other faults.
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS=4 DURATION=60s NEMESIS=kill,pause,partition,clock SEED=1 EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --nemesis) NEMESIS="$2"; shift 2 ;;
    --first-seed) SEED="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "--runs must be a positive number" >&2; exit 2; }
source "$ROOT/scripts/lib/bench_bins.sh"
if [[ ",$NEMESIS," == *,clock,* && -z "${KVSTORE_FAKETIME_LIB:-}" ]] \
    && ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then
  (need_tools libfaketime) || echo "could not install libfaketime: the clock fault is skipped" >&2
fi
pick_bins
OUT="$(mktemp -d -t kvstore-soak.XXXXXX)"
total_ops=0 faults=0
for ((i = 0; i < RUNS; i++)); do
  seed=$((SEED + i))
  report="$OUT/seed-$seed.txt"
  if "$BIN" check --local 3 --nemesis "$NEMESIS" --duration "$DURATION" --seed "$seed" \
      --history "$OUT/seed-$seed.jsonl" "${EXTRA[@]}" > "$report" 2>&1; then
    ops=$(sed -n 's/^history: .* (\([0-9]*\) ops.*/\1/p' "$report")
    nf=$(sed -n 's/^faults (\([0-9]*\)):$/\1/p' "$report")
    avail=$(sed -n 's/^availability: \([0-9.]*\)%.*/\1/p' "$report")
    # "  clock    : 4 faults; ..." -> "4 clock"
    kinds=$(sed -n 's/^  \([a-z]*\) *: \([0-9]*\) faults;.*/\2 \1/p' "$report" | paste -sd, - | sed 's/,/, /g')
    rates=$(grep -o 'clock at x[0-9.]* (measured x[0-9.]*\|clock at x[0-9.]* (not measured' "$report" \
      | sed 's/clock at x\([0-9.]*\) (measured x\([0-9.]*\)/x\1~\2/; s/clock at x\([0-9.]*\) (not measured/x\1~?/' \
      | paste -sd' ' - || true)
    skipped=$(grep -q '^clock nemesis SKIPPED' "$report" && echo "; clock SKIPPED (no libfaketime)" || true)
    total_ops=$((total_ops + ${ops:-0})); faults=$((faults + ${nf:-0}))
    echo "seed $seed: PASSED (linearizable, converged): ${ops:-?} ops, ${nf:-0} faults (${kinds:-none})${rates:+; clock rates asked~measured: $rates}${skipped}; availability ${avail:-?}%"
    rm -f "$OUT/seed-$seed.jsonl"
  else
    echo "seed $seed: FAILED; report: $report" >&2
    tail -n 30 "$report" >&2
    exit 1
  fi
done
echo "soak: $RUNS runs x $DURATION ($NEMESIS): $total_ops ops checked, $faults faults, 0 violations"
rm -rf "$OUT"
