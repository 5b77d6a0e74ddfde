#!/usr/bin/env bash
# The cost of the trust boundary: 3-node clusters with no peer authentication, with the cluster
# secret, and with TLS on both listeners, measured side by side (interleaved rounds) with wrk.
# Loopback only, bounded in time.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/bench-security.sh [--duration SECS] [--rounds N] [--connections "16 64"]

Starts one 3-node durable kvstore cluster per variant (no auth; KVSTORE_CLUSTER_SECRET; TLS on
the client and peer listeners with certificates made for the run), preloads 10,000 keys of
100-byte values in each, then runs wrk against each leader: writes (PUT /set) and linearizable
reads (GET /get), interleaved over rounds. Prints medians and each variant's ratio to no auth.
Installs wrk (and openssl, for the TLS certificates) with apt-get if missing (needs root).

  --duration SECS      seconds per case and round (default 5)
  --rounds N           rounds (default 3)
  --connections LIST   connection counts (default "16 64")
USAGE
  exit 0
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
if [[ ${#need[@]} -gt 0 ]]; then
  echo "installing ${need[*]}..." >&2
  (apt-get update -qq && apt-get install -y -qq "${need[@]}") >/dev/null
fi
(cd "$ROOT" && cargo build --release --quiet)
exec python3 "$ROOT/scripts/lib/kvcluster.py" bench-security --bin "$ROOT/target/release/kvstore" "$@"
