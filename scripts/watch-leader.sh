#!/usr/bin/env bash
# Live health dashboard of a kvstore cluster.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/watch-leader.sh [--interval SECS] [--once] [--ca PATH] [URL ...]

Shows every node's /health as a table, refreshed every 0.5 s: up/down, state, term, leader id,
heartbeat age. Marks the leader; warns when the cluster has no leader or more than one; keeps a
short history of leader changes. Ctrl+C to quit.

  URL ...          node base URLs (default: http://localhost:8081 .. 8083, as run-cluster.sh)
  --interval SECS  refresh period (default 0.5)
  --once           print one table and exit (exit 1 unless exactly one leader)
  --ca PATH        trust this PEM CA bundle for https:// URLs (e.g. DIR/ca.pem of
                   scripts/gen-certs.sh; a cluster from run-cluster.sh --tls DIR)
USAGE
  exit 0
fi
exec python3 "$(dirname "$0")/lib/kvcluster.py" watch "$@"
