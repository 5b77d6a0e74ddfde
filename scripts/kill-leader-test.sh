#!/usr/bin/env bash
# The original project's acceptance test in one command: boot 3 nodes, find the leader, check
# heartbeats, SIGKILL the leader, time the failover, restart it, check it rejoins as follower.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/kill-leader-test.sh [--rounds N] [--base-port PORT] [--nodes N] [--keep-logs]

Builds once, starts its own cluster on loopback (ports PORT.. PORT+N-1, default: free ports),
then for each round: waits for exactly one leader, checks every follower's lastHeartbeatAgoMs
< 250, SIGKILLs the leader, measures the time until a new leader shows in /health, restarts the
old leader and checks it rejoins as a follower of the new one. Prints PASS/FAIL and the
failover times (median and max over rounds). Always stops the processes it started.

  --rounds N       kill/restart cycles in one cluster (default 1)
  --nodes N        cluster size (default 3)
  --base-port P    first port (default: free ports picked by the OS)
  --keep-logs      keep the node logs (their folder is printed)
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
(cd "$ROOT" && cargo build --release --quiet)
exec python3 "$ROOT/scripts/lib/kvcluster.py" kill-leader-test --bin "$ROOT/target/release/kvstore" "$@"
