#!/usr/bin/env bash
# Start, stop or inspect a local kvstore cluster (background processes, one log and pid file each).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/run-cluster.sh [start|stop|status] [--nodes N] [--base-port PORT] [--dir DIR]
                              [--tls CERTDIR] [--peer-base-port PORT]

  start       build once (cargo build --release), start N nodes in the background, wait until
              each answers /health, print where they are (default)
  stop        stop exactly the processes this script started (by their pid files)
  status      print each node's /health

  --nodes N         number of nodes (default 3)
  --base-port PORT  first port; node i listens on PORT+i-1 (default 8081: 8081, 8082, 8083)
  --dir DIR         where logs and pid files go (default .cluster)
  --tls CERTDIR     TLS on both listeners with the certificates of scripts/gen-certs.sh
                    (CERTDIR/ca.pem, nI.pem, nI-key.pem): HTTPS on the client ports, Raft on
                    separate peer ports with mutual TLS; give it to status too
  --peer-base-port PORT  with --tls: node i's peer port is PORT+i-1 (default base port + 100)
  -h, --help        this text

Node i gets NODE_ID=n<i>, PORT=<port>, PEERS=<the other nodes' URLs> and its write-ahead log in
DIR/data/n<i> (kept across stop/start: delete that folder to start empty). Other settings (e.g.
RAFT_HEARTBEAT_MS, RUST_LOG; memory storage needs KVSTORE_STORAGE=memory together with
KVSTORE_UNSAFE_VOLATILE_CLUSTER=1, unsafe across restarts) are taken from your environment.
Watch it with scripts/watch-leader.sh; stop it with scripts/run-cluster.sh stop.
USAGE
}

CMD=start
NODES=3
BASE=8081
DIR=.cluster
TLS=""
PEER_BASE=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    start|stop|status) CMD="$1"; shift ;;
    --nodes) NODES="$2"; shift 2 ;;
    --base-port) BASE="$2"; shift 2 ;;
    --dir) DIR="$2"; shift 2 ;;
    --tls) TLS="$2"; shift 2 ;;
    --peer-base-port) PEER_BASE="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || { echo "--nodes must be a positive number" >&2; exit 2; }
[[ "$BASE" =~ ^[0-9]+$ ]] || { echo "--base-port must be a number" >&2; exit 2; }

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
mkdir -p "$DIR"

PEER_BASE="${PEER_BASE:-$((BASE + 100))}"
CURL=(curl -s -m 1)
if [[ -n "$TLS" ]]; then
  TLS="$(cd "$TLS" && pwd)"
  [[ -r "$TLS/ca.pem" ]] || { echo "$TLS/ca.pem is missing (make it with scripts/gen-certs.sh $TLS)" >&2; exit 2; }
  CURL+=(--cacert "$TLS/ca.pem")
fi

url_of() {
  if [[ -n "$TLS" ]]; then echo "https://localhost:$((BASE + $1 - 1))"; else echo "http://localhost:$((BASE + $1 - 1))"; fi
}
# Where the other nodes send Raft RPCs: the peer port with --tls, else the client URL.
peer_url_of() {
  if [[ -n "$TLS" ]]; then echo "https://localhost:$((PEER_BASE + $1 - 1))"; else url_of "$1"; fi
}

is_ours() { # pid -> true if it is a running kvstore
  [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q kvstore
}

stop_all() {
  local stopped=0
  for f in "$DIR"/n*.pid; do
    [[ -e "$f" ]] || continue
    local pid; pid="$(cat "$f")"
    if is_ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do is_ours "$pid" || break; sleep 0.1; done
      is_ours "$pid" && kill -KILL "$pid" 2>/dev/null || true
      echo "stopped $(basename "$f" .pid) (pid $pid)"
      stopped=$((stopped + 1))
    fi
    rm -f "$f"
  done
  [[ $stopped -gt 0 ]] || echo "no running nodes found in $DIR"
}

status_all() {
  for i in $(seq 1 "$NODES"); do
    local u; u="$(url_of "$i")"
    printf '%s  %s\n' "$u" "$("${CURL[@]}" "$u/health" || echo down)"
  done
}

case "$CMD" in
  stop) stop_all; exit 0 ;;
  status) status_all; exit 0 ;;
esac

for f in "$DIR"/n*.pid; do
  if [[ -e "$f" ]] && is_ours "$(cat "$f")"; then
    echo "a cluster from $DIR is already running; run: scripts/run-cluster.sh stop" >&2
    exit 1
  fi
done

echo "building (cargo build --release)..."
cargo build --release --quiet
BIN="$ROOT/target/release/kvstore"

for i in $(seq 1 "$NODES"); do
  peers=""
  for j in $(seq 1 "$NODES"); do
    [[ $j == "$i" ]] && continue
    peers+="${peers:+,}$(peer_url_of "$j")"
  done
  tls_env=()
  if [[ -n "$TLS" ]]; then
    tls_env=(KVSTORE_TLS_CERT="$TLS/n$i.pem" KVSTORE_TLS_KEY="$TLS/n$i-key.pem"
      KVSTORE_PEER_PORT="$((PEER_BASE + i - 1))" KVSTORE_PEER_TLS_CERT="$TLS/n$i.pem"
      KVSTORE_PEER_TLS_KEY="$TLS/n$i-key.pem" KVSTORE_PEER_CA="$TLS/ca.pem")
  fi
  env -u KVSTORE_PORT NODE_ID="n$i" PORT="$((BASE + i - 1))" PEERS="$peers" \
    KVSTORE_DATA_DIR="${KVSTORE_DATA_DIR_BASE:-$DIR/data}/n$i" "${tls_env[@]}" \
    nohup "$BIN" >"$DIR/n$i.log" 2>&1 </dev/null &
  echo $! >"$DIR/n$i.pid"
done

for i in $(seq 1 "$NODES"); do
  u="$(url_of "$i")"
  ok=""
  for _ in $(seq 1 100); do
    if "${CURL[@]}" -o /dev/null "$u/health"; then ok=1; break; fi
    is_ours "$(cat "$DIR/n$i.pid")" || break
    sleep 0.1
  done
  if [[ -z "$ok" ]]; then
    echo "node n$i did not come up; its log:" >&2
    tail -n 20 "$DIR/n$i.log" >&2
    stop_all >&2
    exit 1
  fi
  echo "n$i  $u  pid $(cat "$DIR/n$i.pid")  log $DIR/n$i.log"
done
echo
if [[ -n "$TLS" ]]; then
  echo "watch:  scripts/watch-leader.sh --ca $TLS/ca.pem $(for i in $(seq 1 "$NODES"); do printf '%s ' "$(url_of "$i")"; done)"
  echo "try:    curl --cacert $TLS/ca.pem -X PUT $(url_of 1)/set -d '{\"key\":\"a\",\"value\":\"1\"}'"
else
  echo "watch:  scripts/watch-leader.sh"
fi
echo "stop:   scripts/run-cluster.sh stop"
