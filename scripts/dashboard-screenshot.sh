#!/usr/bin/env bash
# The README's dashboard screenshot: a local 3-node cluster under a little write load, its leader
# killed halfway (so the page shows a node down, a new leader and the change in its timeline),
# captured by headless Chromium. Everything it starts is stopped by pid when it ends.
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/dashboard-screenshot.sh [--out FILE] [--base-port PORT] [--seconds S]

  --out FILE        where the PNG goes (default docs/dashboard.png)
  --base-port PORT  node i listens on PORT+i-1 (default 18181)
  --seconds S       how long the page runs before the capture (default 24; the leader is
                    killed at a third of it)

Chromium is driven over --remote-debugging-pipe by a few lines of python3 (no npm).

Needs chromium (apt-get install chromium) and curl. Builds kvstore with cargo (release) and finds
the binary in cargo's target directory (CARGO_TARGET_DIR is honoured).
USAGE
  exit 0
fi
OUT=docs/dashboard.png
BASE=18181
SECS=24
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --base-port) BASE="$2"; shift 2 ;;
    --seconds) SECS="$2"; shift 2 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
command -v chromium >/dev/null || { echo "error: chromium not installed (apt-get install chromium)" >&2; exit 1; }
command -v curl >/dev/null || { echo "error: curl not installed (apt-get install curl)" >&2; exit 1; }

cargo build --release --quiet
TARGET="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$TARGET/release/kvstore"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

url() { echo "http://127.0.0.1:$((BASE + $1 - 1))"; }
NODE_PIDS=()
for i in 1 2 3; do
  peers=()
  for j in 1 2 3; do [[ $j != "$i" ]] && peers+=("$(url "$j")"); done
  mkdir -p "$WORK/n$i"
  NODE_ID="n$i" PORT="$((BASE + i - 1))" PEERS="$(IFS=,; echo "${peers[*]}")" \
    KVSTORE_DATA_DIR="$WORK/n$i" RUST_LOG=warn \
    "$BIN" --host 127.0.0.1 >"$WORK/n$i.log" 2>&1 </dev/null &
  PIDS+=($!)
  NODE_PIDS+=($!)
done

leader=""
for _ in $(seq 1 100); do
  leader="$(curl -s --max-time 1 "$(url 1)/health" |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("leaderId") or "")' 2>/dev/null || true)"
  [[ -n "$leader" ]] && break
  sleep 0.1
done
[[ -n "$leader" ]] || { echo "error: no leader elected; logs in $WORK" >&2; cat "$WORK"/n*.log >&2; exit 1; }
echo "cluster up, leader $leader"

# A little write load through every node (followers forward to the leader).
for c in 1 2 3 4; do
  (
    n=0
    while :; do
      n=$((n + 1))
      curl -s -o /dev/null --max-time 1 -X PUT -d "{\"key\":\"k$c-$((n % 500))\",\"value\":\"v$n\"}" \
        "$(url $(( (c % 3) + 1 )))/set" || true
    done
  ) &
  PIDS+=($!)
done

# The page is served by a node that is not the leader, so it outlives the kill.
serve=1
[[ "$leader" == "n1" ]] && serve=2
mkdir -p "$(dirname "$OUT")"
# Chromium's own --screenshot captures right after the first render; to let the page run for a
# while (the chart fills, the kill shows), drive it over --remote-debugging-pipe (fds 3 and 4,
# NUL-separated JSON; no websocket or npm needed) and capture after SECS seconds.
cat >"$WORK/shot.py" <<'PY'
import base64, json, os, subprocess, sys, time
url, out, secs, profile, log = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()
def fds():
    os.dup2(to_chrome_r, 3); os.dup2(from_chrome_w, 4)
args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--hide-scrollbars", "--window-size=1280,800",
        "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank"]
proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=fds, stdin=subprocess.DEVNULL,
                        stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
os.close(to_chrome_r); os.close(from_chrome_w)
buf = b""
def send(i, method, params=None, session=None):
    msg = {"id": i, "method": method, "params": params or {}}
    if session: msg["sessionId"] = session
    os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
def answer(i, deadline=30):
    global buf
    end = time.time() + deadline
    while time.time() < end:
        while b"\0" in buf:
            raw, buf = buf.split(b"\0", 1)
            msg = json.loads(raw)
            if msg.get("id") == i:
                if "error" in msg: raise SystemExit("chromium: %s" % msg["error"])
                return msg["result"]
        chunk = os.read(from_chrome_r, 1 << 20)
        if not chunk: raise SystemExit("chromium closed the pipe")
        buf += chunk
    raise SystemExit("chromium did not answer")
try:
    send(1, "Target.createTarget", {"url": url}); target = answer(1)["targetId"]
    send(2, "Target.attachToTarget", {"targetId": target, "flatten": True})
    session = answer(2)["sessionId"]
    time.sleep(secs)
    send(3, "Page.captureScreenshot", {"format": "png"}, session)
    open(out, "wb").write(base64.b64decode(answer(3)["data"]))
finally:
    try: os.killpg(proc.pid, 9)
    except ProcessLookupError: pass
    proc.wait()
PY
python3 "$WORK/shot.py" "$(url "$serve")/dashboard" "$ROOT/$OUT" "$SECS" "$WORK/profile" \
  "$WORK/chromium.log" &
BROWSER=$!
PIDS+=($BROWSER)
sleep "$((SECS / 3))"
victim="${leader#n}"
echo "killing the leader $leader (pid ${NODE_PIDS[$((victim - 1))]})"
kill -9 "${NODE_PIDS[$((victim - 1))]}"
wait "$BROWSER" || { echo "error: the capture failed:" >&2; cat "$WORK/chromium.log" >&2; exit 1; }
ls -l "$OUT"
