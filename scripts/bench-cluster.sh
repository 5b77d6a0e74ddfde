#!/usr/bin/env bash
# 3-node cluster benchmark: kvstore and, side by side in the same interleaved run, etcd 3.4
# (Debian's etcd-server, 3 members on loopback, its JSON gateway): writes, linearizable reads
# (leader and follower), stale reads, lease reads; req/s, p99 and the cluster's CPU time per
# operation. Loopback only, bounded in time.
set -euo pipefail
if [[ " $* " == *" -h "* || " $* " == *" --help "* ]]; then
  cat <<'USAGE'
Usage: scripts/bench-cluster.sh [--duration SECS] [--rounds N] [--connections "16 64"]
                               [--no-etcd] [--in-memory] [--tls CERTDIR] [--baseline BIN]

Starts a 3-node kvstore cluster (and a 3-member etcd cluster), preloads 10,000 keys of 100-byte
values in each, then runs wrk, every case once per round, the rounds interleaved:
  write                PUT /set to the leader (etcd: POST /v3/kv/put)
  read                 GET /get (linearizable, the default) to the leader (etcd: /v3/kv/range)
  read-stale           consistency=stale to the leader (etcd: serializable)
  read-follower        GET /get (linearizable) to a follower (etcd: range on a follower)
  read-lease           consistency=lease to the leader  } skipped when the server answers 400
  read-lease-follower  consistency=lease to a follower  }
Prints medians of req/s, p50, p99 and us/op (all three nodes' utime+stime from /proc/PID/stat
around the case, divided by the 2xx answers: CPU per committed write for writes), the
kvstore/etcd ratios, then the issue #16 goals: writes/etcd at 64 and 16 connections, write p99,
cluster CPU per committed write (kvstore vs etcd), linearizable/stale and follower/leader reads.

  --duration SECS      seconds per case and round (default 5)
  --rounds N           rounds (default 3)
  --connections LIST   connection counts (default "16 64")
  --no-etcd            measure kvstore alone
  --in-memory          run kvstore with KVSTORE_STORAGE=memory (for the durable/in-memory ratio;
                       with KVSTORE_UNSAFE_VOLATILE_CLUSTER=1, which memory storage in a cluster needs)
  --tls CERTDIR        kvstore with TLS on both listeners: HTTPS client ports (wrk over https)
                       and peer ports with mutual TLS; certificates from scripts/gen-certs.sh
                       CERTDIR 3 (etcd stays plain)
  --baseline BIN       also run a 3-node cluster of another kvstore binary (e.g. one built from
                       the commit before a change), interleaved with this build's, and print
                       this build / baseline ratios (or BASELINE_BIN=BIN)

The binary: $KVSTORE_BIN if set, else `cargo build --release` and target/release/kvstore.
Installs wrk and etcd-server with apt-get if missing (needs root).
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/bench_bins.sh"
if [[ " $* " == *" --no-etcd "* ]]; then need_tools wrk; else need_tools wrk etcd; fi
pick_bins
exec python3 "$ROOT/scripts/lib/bench_report.py" cluster --bin "$BIN" "${BASE[@]}" "$@"
