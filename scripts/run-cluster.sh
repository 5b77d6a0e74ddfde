#!/usr/bin/env bash
# Start, stop or inspect a local kvstore cluster (background processes, one log and pid file each).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/run-cluster.sh [start|stop|status] [--nodes N] [--base-port PORT] [--dir DIR]
                              [--tls CERTDIR] [--peer-base-port PORT]
       scripts/run-cluster.sh add [--learner]     (same --base-port/--dir/--tls as start)
       scripts/run-cluster.sh remove ID
       scripts/run-cluster.sh transfer [ID]

  start       build once (cargo build --release), start N nodes in the background, wait until
              each answers /health, print where they are (default)
  stop        stop exactly the processes this script started (by their pid files)
  status      print each node's /health, then the cluster's members (GET /cluster)
  add         start one more node (the next free n<i>, port and data dir) that joins the running
              cluster (KVSTORE_JOIN) and becomes a voter once caught up (a learner with
              --learner); waits until /cluster shows it
  remove ID   remove member ID from the cluster (DELETE /cluster/members/ID), then stop its
              process and delete its data directory (a removed node rejoins only as a new one)
  transfer [ID]  hand leadership to voter ID (the most caught-up voter without ID)

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
ARG=""
LEARNER=""
NODES=3
BASE=8081
DIR=.cluster
TLS=""
PEER_BASE=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    start|stop|status|add) CMD="$1"; shift ;;
    remove) CMD="$1"; ARG="${2:?remove needs a member id}"; shift 2 ;;
    transfer) CMD="$1"; shift; if [[ $# -gt 0 && "$1" != --* ]]; then ARG="$1"; shift; fi ;;
    --learner) LEARNER=1; shift ;;
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

# The node numbers this script started in DIR (from their pid files), in order.
started_nodes() {
  for f in "$DIR"/n*.pid; do
    [[ -e "$f" ]] || continue
    local n; n="$(basename "$f" .pid)"; echo "${n#n}"
  done | sort -n
}

# The URL of a node of ours that answers /health, to send cluster requests to.
any_live_url() {
  for i in $(started_nodes); do
    local u; u="$(url_of "$i")"
    if "${CURL[@]}" -o /dev/null "$u/health"; then echo "$u"; return 0; fi
  done
  echo "no node of $DIR answers (start one with: scripts/run-cluster.sh start)" >&2
  return 1
}

status_all() {
  local nodes; nodes="$(started_nodes)"
  [[ -n "$nodes" ]] || nodes="$(seq 1 "$NODES")"
  for i in $nodes; do
    local u; u="$(url_of "$i")"
    printf '%s  %s\n' "$u" "$("${CURL[@]}" "$u/health" || echo down)"
  done
  local live; live="$(any_live_url 2>/dev/null)" || return 0
  echo
  echo "members (GET $live/cluster):"
  "${CURL[@]}" "$live/cluster" || echo "  (no answer)"
  echo
}

# Ask a live node to change the cluster; print the answer; fail on an error status.
cluster_call() { # method path [json]
  local live; live="$(any_live_url)" || return 1
  local out code
  out="$(curl -s -m 30 -w '\n%{http_code}' -X "$1" ${3:+-H 'content-type: application/json' -d "$3"} \
    "${CURL[@]:4}" "$live$2")" || { echo "no answer from $live" >&2; return 1; }
  code="${out##*$'\n'}"; echo "${out%$'\n'*}"
  [[ "$code" == 200 ]]
}

case "$CMD" in
  stop) stop_all; exit 0 ;;
  status) status_all; exit 0 ;;
  transfer)
    if [[ -n "$ARG" ]]; then cluster_call POST /cluster/leader "{\"id\":\"$ARG\"}"
    else cluster_call POST /cluster/leader '{}'; fi
    exit $? ;;
  remove)
    cluster_call DELETE "/cluster/members/$ARG" || exit 1
    f="$DIR/$ARG.pid"
    if [[ -e "$f" ]] && is_ours "$(cat "$f")"; then
      kill -TERM "$(cat "$f")" 2>/dev/null || true
      echo "stopped $ARG (pid $(cat "$f"))"
      rm -f "$f"
    fi
    rm -rf "${KVSTORE_DATA_DIR_BASE:-$DIR/data}/$ARG"
    exit 0 ;;
esac

# Start node i in the background with the given extra environment (NAME=value ...).
start_node() {
  local i="$1"; shift
  local tls_env=()
  if [[ -n "$TLS" ]]; then
    tls_env=(KVSTORE_TLS_CERT="$TLS/n$i.pem" KVSTORE_TLS_KEY="$TLS/n$i-key.pem"
      KVSTORE_PEER_PORT="$((PEER_BASE + i - 1))" KVSTORE_PEER_TLS_CERT="$TLS/n$i.pem"
      KVSTORE_PEER_TLS_KEY="$TLS/n$i-key.pem" KVSTORE_PEER_CA="$TLS/ca.pem")
  fi
  env -u KVSTORE_PORT NODE_ID="n$i" PORT="$((BASE + i - 1))" \
    KVSTORE_DATA_DIR="${KVSTORE_DATA_DIR_BASE:-$DIR/data}/n$i" "${tls_env[@]}" "$@" \
    nohup "$BIN" >"$DIR/n$i.log" 2>&1 </dev/null &
  echo $! >"$DIR/n$i.pid"
}

# Wait until node i answers /health; on failure show its log and stop everything.
wait_node() {
  local i="$1" u ok=""
  u="$(url_of "$i")"
  for _ in $(seq 1 100); do
    if "${CURL[@]}" -o /dev/null "$u/health"; then ok=1; break; fi
    is_ours "$(cat "$DIR/n$i.pid")" || break
    sleep 0.1
  done
  if [[ -z "$ok" ]]; then
    echo "node n$i did not come up; its log:" >&2
    tail -n 20 "$DIR/n$i.log" >&2
    return 1
  fi
  echo "n$i  $u  pid $(cat "$DIR/n$i.pid")  log $DIR/n$i.log"
}

BIN="$ROOT/target/release/kvstore"

if [[ "$CMD" == add ]]; then
  live="$(any_live_url)" || exit 1
  last="$(started_nodes | tail -n 1)"
  k=$(( ${last:-0} + 1 ))
  [[ -x "$BIN" ]] || cargo build --release --quiet
  rm -rf "${KVSTORE_DATA_DIR_BASE:-$DIR/data}/n$k"
  extra=(KVSTORE_JOIN="$live")
  [[ -n "$LEARNER" ]] && extra+=(KVSTORE_LEARNER=1)
  start_node "$k" "${extra[@]}"
  wait_node "$k" || exit 1
  want=voter; [[ -n "$LEARNER" ]] && want=learner
  for _ in $(seq 1 300); do
    if "${CURL[@]}" "$live/cluster" | tr -d ' ' | grep -q "\"id\":\"n$k\"[^}]*\"role\":\"$want\""; then
      echo "n$k joined the cluster as a $want"
      exit 0
    fi
    is_ours "$(cat "$DIR/n$k.pid")" || { echo "n$k stopped; its log:" >&2; tail -n 20 "$DIR/n$k.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "n$k did not become a $want within 30 s; see $DIR/n$k.log" >&2
  exit 1
fi

for f in "$DIR"/n*.pid; do
  if [[ -e "$f" ]] && is_ours "$(cat "$f")"; then
    echo "a cluster from $DIR is already running; run: scripts/run-cluster.sh stop" >&2
    exit 1
  fi
done

echo "building (cargo build --release)..."
cargo build --release --quiet

for i in $(seq 1 "$NODES"); do
  peers=""
  for j in $(seq 1 "$NODES"); do
    [[ $j == "$i" ]] && continue
    peers+="${peers:+,}$(peer_url_of "$j")"
  done
  start_node "$i" PEERS="$peers"
done

for i in $(seq 1 "$NODES"); do
  wait_node "$i" || { stop_all >&2; exit 1; }
done
echo
if [[ -n "$TLS" ]]; then
  echo "watch:  scripts/watch-leader.sh --ca $TLS/ca.pem $(for i in $(seq 1 "$NODES"); do printf '%s ' "$(url_of "$i")"; done)"
  echo "try:    curl --cacert $TLS/ca.pem -X PUT $(url_of 1)/set -d '{\"key\":\"a\",\"value\":\"1\"}'"
else
  echo "watch:  scripts/watch-leader.sh"
fi
echo "grow:   scripts/run-cluster.sh add      shrink: scripts/run-cluster.sh remove n3"
echo "move the leader:    scripts/run-cluster.sh transfer n2"
echo "stop:   scripts/run-cluster.sh stop"
