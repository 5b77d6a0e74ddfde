#!/usr/bin/env bash
# Where the time goes: `perf record -g` on the leader (or a follower) of a local cluster during a wrk load
# (writes by default), summarised with `perf report --no-children --percent-limit 2`; where
# perf cannot record, `valgrind --tool=callgrind` on a single node under a light load.
# Loopback only, bounded in time.
set -euo pipefail
if [[ " $* " == *" -h "* || " $* " == *" --help "* ]]; then
  cat <<'USAGE'
Usage: scripts/profile.sh [--duration SECS] [--connections N] [--nodes 1|3] [--case write|read]
                         [--node leader|follower] [--tool perf|callgrind] [--out DIR]

Starts a kvstore cluster (3 nodes by default), preloads 10,000 keys, runs wrk against the
leader (PUT /set, or GET /get with --case read) and meanwhile `perf record --call-graph fp -p
NODE` (the leader, or a follower with --node follower; PERF_CALLGRAPH=dwarf for deeper stacks;
slower, bigger). Prints the load it measured, the frames with >= 2% of that node's self time,
the split by binary (kvstore / kernel / libc) and by thread. perf.data stays in --out (default:
a new temporary directory) for `perf report -i`.
With --tool callgrind (the default when perf cannot record): one node run under callgrind, a
light load (4 connections), then the top of callgrind_annotate: instruction counts, stable on a
noisy machine.

  --duration SECS   length of the load (default 10)
  --connections N   wrk connections (default 64)
  --nodes 1|3       cluster size (default 3)
  --case write|read the load (default write)
  --node leader|follower  which node perf records (default leader; the load goes to the
                    leader either way)
  --tool perf|callgrind
  --out DIR         where perf.data / callgrind.out are kept

The binary: $KVSTORE_BIN if set, else `cargo build --release` and target/release/kvstore
(the release profile keeps debug info, so frames have names). Installs wrk with apt-get if
missing (needs root).
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/bench_bins.sh"
need_tools wrk
pick_bins
exec python3 "$ROOT/scripts/lib/bench_report.py" profile --bin "$BIN" "$@"
