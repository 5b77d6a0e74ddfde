#!/usr/bin/env bash
# 3-node cluster benchmark: writes, linearizable reads and stale reads at several connection
# counts, for kvstore and, side by side in the same run, etcd 3.4 (Debian's etcd-server, 3 members
# on loopback, its JSON gateway). Loopback only, bounded in time.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/bench-cluster.sh [--duration SECS] [--rounds N] [--connections "1 16 64 256"]
                               [--no-etcd] [--in-memory] [--tls CERTDIR] [--baseline BIN]

Starts a 3-node kvstore cluster (and a 3-member etcd cluster), preloads 10,000 keys of 100-byte
values in each, then runs wrk against each leader: writes (PUT /set; etcd: POST /v3/kv/put),
linearizable reads (GET /get; etcd: /v3/kv/range) and stale reads (consistency=stale; etcd:
serializable). Cases are interleaved over rounds; prints medians and kvstore/etcd ratios.
Installs wrk and etcd-server with apt-get if missing (needs root).

  --duration SECS      seconds per case and round (default 5)
  --rounds N           rounds (default 3)
  --connections LIST   connection counts (default "1 16 64 256")
  --no-etcd            measure kvstore alone
  --in-memory          run kvstore with KVSTORE_STORAGE=memory (for the durable/in-memory ratio;
                       with KVSTORE_UNSAFE_VOLATILE_CLUSTER=1, which memory storage in a cluster needs)
  --tls CERTDIR        kvstore with TLS on both listeners: HTTPS client ports (wrk over https)
                       and peer ports with mutual TLS; certificates from scripts/gen-certs.sh
                       CERTDIR 3 (etcd stays plain)
  --baseline BIN       also run a 3-node cluster of another kvstore binary (e.g. one built from
                       the commit before a change), interleaved with this build's, and print
                       this build / baseline ratios
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
need=()
command -v wrk >/dev/null || need+=(wrk)
[[ " $* " == *" --no-etcd "* ]] || command -v etcd >/dev/null || need+=(etcd-server)
if [[ ${#need[@]} -gt 0 ]]; then
  echo "installing ${need[*]}..." >&2
  (apt-get update -qq && apt-get install -y -qq "${need[@]}") >/dev/null
fi
(cd "$ROOT" && cargo build --release --quiet)
exec python3 "$ROOT/scripts/lib/kvcluster.py" bench-cluster --bin "$ROOT/target/release/kvstore" "$@"
