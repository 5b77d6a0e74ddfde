#!/usr/bin/env python3
"""Cluster tooling behind scripts/*.sh: the health dashboard, the kill-the-leader test and the
leader-stability measurement (the cluster benchmark against etcd lives in bench_report.py,
which uses this file's Cluster, EtcdCluster and wrk helpers). Standard library only; talks to loopback nodes only.

  kvcluster.py watch [--interval S] [--once] [--ca PATH] [URL ...]
  kvcluster.py kill-leader-test --bin PATH [--rounds N] [--nodes N] [--base-port P] [--keep-logs]
  kvcluster.py stability --bin PATH --seconds S [--load-connections C]
  kvcluster.py bench-scale --bin PATH [--duration S] [--keys "1000 1000000"] [--connections N]
  kvcluster.py bench-security --bin PATH [--duration S] [--rounds N] [--connections "16 64"]
"""
import base64
import shutil
import argparse
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

DEFAULT_URLS = [f"http://localhost:{p}" for p in (8081, 8082, 8083)]

# What https:// nodes are verified with (watch --ca PATH: only that CA bundle); None: http only.
SSL_CONTEXT = None


def health(url, timeout=0.3):
    """The node's /health as a dict, or None if it does not answer."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout, context=SSL_CONTEXT) as r:
            return json.loads(r.read())
    except Exception:
        return None


def leaders_of(hs):
    return [h for h in hs if h and h.get("state") == "leader"]


def agreed_leader(hs):
    """(leader id, term) if exactly one node leads and every answering node follows it."""
    up = [h for h in hs if h]
    ls = leaders_of(up)
    if len(ls) != 1:
        return None
    l = ls[0]
    if all(h.get("term") == l["term"] and h.get("leaderId") == l["id"] for h in up):
        return l["id"], l["term"]
    return None


# ---- watch ---------------------------------------------------------------------------------

def with_members(urls, timeout=0.3):
    """`urls` plus the members that `GET /cluster` of the first node that answers names (nodes
    that joined after the watch started appear; removed ones stay listed, as removed or down)."""
    for u in urls:
        try:
            with urllib.request.urlopen(u + "/cluster", timeout=timeout, context=SSL_CONTEXT) as r:
                view = json.load(r)
        except Exception:
            continue
        known = {h.get("id") for h in (health(x, timeout) for x in urls) if h}
        extra = [m["url"].rstrip("/") for m in view.get("members", [])
                 if isinstance(m, dict) and isinstance(m.get("url"), str)
                 and m.get("id") not in known]
        return urls + [m for m in extra if m not in urls]
    return urls


def cmd_watch(args):
    urls = [u.rstrip("/") for u in args.urls] or DEFAULT_URLS
    history = []
    last = None
    tty = sys.stdout.isatty()
    try:
        while True:
            urls = with_members(urls)
            hs = [health(u) for u in urls]
            ls = leaders_of(hs)
            now = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
            cur = tuple(sorted((h["id"], h["term"]) for h in ls))
            if cur != last:
                if ls:
                    history.append(f"{now}  leader: " + ", ".join(f"{i} (term {t})" for i, t in cur))
                else:
                    history.append(f"{now}  no leader")
                history = history[-8:]
                last = cur
            lines = [f"kvstore cluster health  {now}  (refresh {args.interval}s, Ctrl+C quits)", ""]
            lines.append(f"  {'':2}{'node':<26} {'up':<5} {'id':<8} {'member':<8} {'state':<10} "
                         f"{'term':>6} {'leader':<8} {'heartbeat':>10}")
            for u, h in zip(urls, hs):
                if h is None:
                    lines.append(f"  {'':2}{u:<26} {'DOWN':<5}")
                    continue
                mark = "★ " if h.get("state") == "leader" else "  "
                age = h.get("lastHeartbeatAgoMs")
                age_s = "-" if age is None else f"{age} ms"
                lines.append(f"  {mark}{u:<26} {'up':<5} {str(h.get('id')):<8} "
                             f"{str(h.get('membership', 'voter')):<8} "
                             f"{str(h.get('state')):<10} {h.get('term', '?'):>6} "
                             f"{str(h.get('leaderId') or '-'):<8} {age_s:>10}")
            lines.append("")
            if len(ls) == 1:
                lines.append(f"  OK: one leader, {ls[0]['id']} in term {ls[0]['term']}")
            elif not ls:
                lines.append("  WARNING: no leader")
            else:
                lines.append("  WARNING: %d leaders: %s" % (len(ls), ", ".join(
                    f"{h['id']} (term {h['term']})" for h in ls)))
            lines.append("")
            lines.append("  leader changes:")
            lines.extend("    " + e for e in history)
            out = "\n".join(lines)
            if args.once:
                print(out)
                return 0 if len(ls) == 1 else 1
            if tty:
                sys.stdout.write("\x1b[H\x1b[2J" + out + "\n")
            else:
                sys.stdout.write(out + "\n\n")
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


# ---- local clusters --------------------------------------------------------------------------

def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Cluster:
    """Processes started here and only here; stop() kills every one of them."""

    def __init__(self, binary, ports, logdir, extra_env=None, tls=None):
        """tls: a directory of scripts/gen-certs.sh certificates (ca.pem, nI.pem, nI-key.pem):
        HTTPS on the client ports and Raft on separate peer ports with mutual TLS."""
        self.binary, self.ports, self.logdir = binary, ports, logdir
        self.extra_env = extra_env or {}
        self.tls = os.path.abspath(tls) if tls else None
        # Picked apart from the client ports (a second pick could return one of them).
        self.peer_ports = ([p for p in free_ports(2 * len(ports)) if p not in ports][:len(ports)]
                           if tls else [])
        self.procs = [None] * len(ports)
        self.logs = [None] * len(ports)

    def url(self, i):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.ports[i]}"

    def peer_url(self, i):
        """Where the other nodes send Raft RPCs (what their PEERS list)."""
        return f"https://127.0.0.1:{self.peer_ports[i]}" if self.tls else self.url(i)

    def urls(self):
        return [self.url(i) for i in range(len(self.ports))]

    def start(self, i, extra=None):
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith("KVSTORE_") or k in ("PORT", "NODE_ID", "PEERS"))}
        env.update(self.extra_env)
        env.update(NODE_ID=f"n{i + 1}", PORT=str(self.ports[i]), KVSTORE_HOST="127.0.0.1",
                   KVSTORE_DATA_DIR=os.path.join(self.logdir, f"n{i + 1}-data"),
                   PEERS=",".join(self.peer_url(j) for j in range(len(self.ports)) if j != i))
        env.update(extra or {})
        if self.tls:
            cert, key = (os.path.join(self.tls, f"n{i + 1}.pem"),
                         os.path.join(self.tls, f"n{i + 1}-key.pem"))
            ca = os.path.join(self.tls, "ca.pem")
            env.update(KVSTORE_TLS_CERT=cert, KVSTORE_TLS_KEY=key, KVSTORE_TLS_CA=ca,
                       KVSTORE_PEER_PORT=str(self.peer_ports[i]), KVSTORE_PEER_TLS_CERT=cert,
                       KVSTORE_PEER_TLS_KEY=key, KVSTORE_PEER_CA=ca)
        log = open(os.path.join(self.logdir, f"n{i + 1}.log"), "ab")
        self.logs[i] = log
        self.procs[i] = subprocess.Popen([self.binary], env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)

    def add_joiner(self, join_url, learner=False):
        """One more node, on a new port with an empty data directory, that joins through
        `join_url` (KVSTORE_JOIN); its index."""
        port = [p for p in free_ports(len(self.ports) + 1) if p not in self.ports][0]
        self.ports.append(port)
        self.procs.append(None)
        self.logs.append(None)
        i = len(self.ports) - 1
        shutil.rmtree(os.path.join(self.logdir, f"n{i + 1}-data"), ignore_errors=True)
        extra = {"KVSTORE_JOIN": join_url}
        if learner:
            extra["KVSTORE_LEARNER"] = "1"
        self.start(i, extra=extra)
        return i

    def drop_last(self):
        """Kill the last node and forget it (its data directory is deleted)."""
        i = len(self.ports) - 1
        self.kill(i)
        if self.logs[i]:
            self.logs[i].close()
        self.ports.pop()
        self.procs.pop()
        self.logs.pop()
        shutil.rmtree(os.path.join(self.logdir, f"n{i + 1}-data"), ignore_errors=True)

    def start_all(self):
        for i in range(len(self.ports)):
            self.start(i)

    def kill(self, i):
        p = self.procs[i]
        if p and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)
        self.procs[i] = None

    def stop(self):
        for i, p in enumerate(self.procs):
            if p and p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            self.procs[i] = None
        for log in self.logs:
            if log:
                log.close()

    def healths(self, timeout=0.3):
        return [health(self.url(i), timeout) if self.procs[i] else None
                for i in range(len(self.ports))]

    def wait_agreed_leader(self, within):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            hs = self.healths()
            running = sum(1 for p in self.procs if p)
            got = agreed_leader(hs)
            if got and sum(1 for h in hs if h) == running:
                return got, hs
            time.sleep(0.02)
        raise RuntimeError(f"no agreed leader within {within}s; last: {self.healths()}")


def exit_on_signals():
    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


# ---- kill-leader-test ------------------------------------------------------------------------

def cmd_kill_leader_test(args):
    exit_on_signals()
    ports = ([args.base_port + i for i in range(args.nodes)] if args.base_port
             else free_ports(args.nodes))
    logdir = tempfile.mkdtemp(prefix="kvstore-kill-leader.")
    cluster = Cluster(args.bin, ports, logdir)
    failovers = []
    ok = False
    try:
        cluster.start_all()
        (leader_id, term), _ = cluster.wait_agreed_leader(15)
        print(f"cluster up: {', '.join(cluster.urls())}; leader {leader_id} in term {term}")
        for rnd in range(1, args.rounds + 1):
            (leader_id, term), hs = cluster.wait_agreed_leader(10)
            li = int(leader_id[1:]) - 1
            # Followers hear heartbeats: sample a few times.
            worst = 0
            for _ in range(5):
                for i, h in enumerate(cluster.healths()):
                    if h and i != li:
                        worst = max(worst, h.get("lastHeartbeatAgoMs") or 10**9)
                time.sleep(0.05)
            if worst >= 250:
                raise RuntimeError(f"a follower's lastHeartbeatAgoMs reached {worst} ms (limit 250)")
            cluster.kill(li)
            t0 = time.monotonic()
            new = None
            while time.monotonic() - t0 < 10:
                hs = cluster.healths(timeout=0.2)
                ls = [h for h in leaders_of(hs) if h["term"] > term]
                if ls:
                    new = ls[0]
                    break
                time.sleep(0.005)
            if new is None:
                raise RuntimeError("no new leader within 10 s of the kill")
            ms = (time.monotonic() - t0) * 1000
            failovers.append(ms)
            cluster.start(li)
            (l2, t2), _ = cluster.wait_agreed_leader(10)
            h = health(cluster.url(li))
            if not h or h.get("state") != "follower" or h.get("leaderId") != l2:
                raise RuntimeError(f"restarted {leader_id} is not a follower of {l2}: {h}")
            print(f"round {rnd}: killed {leader_id} (term {term}); new leader {new['id']} "
                  f"(term {new['term']}) after {ms:.0f} ms; {leader_id} rejoined as follower "
                  f"(max follower heartbeat age before kill: {worst} ms)")
        ok = True
    except (RuntimeError, KeyboardInterrupt) as e:
        print(f"error: {e}", file=sys.stderr)
    finally:
        cluster.stop()
    if failovers:
        print(f"failover ms: median {statistics.median(failovers):.0f}, max {max(failovers):.0f}, "
              f"min {min(failovers):.0f} over {len(failovers)} kill(s)")
    if args.keep_logs:
        print(f"logs: {logdir}")
    else:
        shutil.rmtree(logdir, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


# ---- stability -------------------------------------------------------------------------------

def cmd_stability(args):
    """Count leader changes over a period, optionally under wrk write load on the leader."""
    exit_on_signals()
    ports = free_ports(3)
    logdir = tempfile.mkdtemp(prefix="kvstore-stability.")
    cluster = Cluster(args.bin, ports, logdir)
    wrk = None
    try:
        cluster.start_all()
        (leader, term), _ = cluster.wait_agreed_leader(15)
        if args.load_connections:
            li = int(leader[1:]) - 1
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wrk", "set.lua")
            wrk = subprocess.Popen(["wrk", "-t2", f"-c{args.load_connections}",
                                    f"-d{args.seconds}s", "-s", script, cluster.url(li)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        changes, samples, seen = 0, 0, (leader, term)
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            hs = cluster.healths(timeout=1.0)
            samples += 1
            ls = leaders_of(hs)
            terms = {h["term"] for h in hs if h}
            cur = (ls[0]["id"], ls[0]["term"]) if len(ls) == 1 else None
            if cur and cur != seen:
                changes += 1
                print(f"  leader change: {seen} -> {cur}")
                seen = cur
            elif max(terms, default=0) > seen[1] and not cur:
                pass  # an election is under way; counted when it settles
            time.sleep(0.1)
        load = ""
        if wrk:
            out, _ = wrk.communicate(timeout=args.seconds + 30)
            rps = [l for l in out.splitlines() if l.startswith("Requests/sec")]
            load = f" under wrk SET load at {args.load_connections} connections ({rps[0].strip() if rps else '?'})"
            wrk = None
        final = agreed_leader(cluster.healths(timeout=1.0))
        print(f"{args.seconds}s{load}: {changes} leader change(s), {samples} samples; "
              f"start {leader} term {term}, end {final}")
        return 0 if changes == 0 else 1
    finally:
        if wrk and wrk.poll() is None:
            wrk.kill()
        cluster.stop()
        shutil.rmtree(logdir, ignore_errors=True)


# ---- wrk and etcd helpers (bench_report.py, bench_api.py) -----------------------------------

WRK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wrk")
NKEYS = 10000
VALUE = "v" * 100


def run_wrk(url, conns, duration, script):
    """(req/s, p50 ms, p99 ms, errors) of one wrk run."""
    threads = min(2, conns)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--timeout", "5s",
                          "--latency", "-s", script, url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    return parse_wrk(out)


def wrk_ms(v):
    """A wrk duration ("812.00us", "1.20ms", "2.01s") in milliseconds."""
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * f
    return float("nan")


def parse_wrk(out):
    """(req/s, p50 ms, p99 ms, errors) from wrk --latency output."""
    ms = wrk_ms
    rps = p50 = p99 = float("nan")
    errs = 0
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            rps = float(parts[1])
        elif parts[:1] == ["50%"]:
            p50 = ms(parts[1])
        elif parts[:1] == ["99%"]:
            p99 = ms(parts[1])
        elif "Non-2xx" in line:
            errs += int(parts[-1])
        elif line.strip().startswith("Socket errors"):
            errs += sum(int(x.strip(",")) for x in parts[3::2])
    return rps, p50, p99, errs


def etcd_scripts(tmp):
    """wrk scripts for etcd's JSON gateway: bodies precomputed (base64 keys and values)."""
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    keys = [b64(f"key-{i}") for i in range(NKEYS)]
    val = b64(VALUE)
    table = "local keys = {" + ",".join(f'"{k}"' for k in keys) + "}\n"
    scripts = {}
    for name, body in (("put", 'return wrk.format("POST", "/v3/kv/put", nil, \'{"key":"\' .. k .. \'","value":"%s"}\')' % val),
                       ("range", 'return wrk.format("POST", "/v3/kv/range", nil, \'{"key":"\' .. k .. \'"}\')'),
                       ("range_stale", 'return wrk.format("POST", "/v3/kv/range", nil, \'{"key":"\' .. k .. \'","serializable":true}\')')):
        path = os.path.join(tmp, f"etcd_{name}.lua")
        with open(path, "w") as f:
            f.write(table)
            f.write('wrk.headers["Content-Type"] = "application/json"\nlocal counter = 0\n')
            f.write("request = function()\n  counter = counter + 1\n  local k = keys[(counter %% %d) + 1]\n  %s\nend\n" % (NKEYS, body))
        scripts[name] = path
    stale = os.path.join(tmp, "kv_get_stale.lua")
    with open(stale, "w") as f:
        f.write('local counter = 0\nrequest = function()\n  counter = counter + 1\n'
                '  return wrk.format("GET", "/get?consistency=stale&key=key-" .. (counter % 10000))\nend\n')
    scripts["kv_stale"] = stale
    return scripts


def http_json(url, body=None, method=None, timeout=2.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout, context=SSL_CONTEXT) as r:
        return json.loads(r.read() or b"{}")


def preload(put):
    """Write every key once; a 503 (say, an election under way) is retried a few times."""
    for i in range(NKEYS):
        for attempt in range(5):
            try:
                put(i)
                break
            except urllib.error.HTTPError as e:
                body = e.read()[:300]
                if e.code != 503 or attempt == 4:
                    raise RuntimeError(f"preload of key {i}: HTTP {e.code}: {body!r}") from None
                print(f"preload of key {i}: HTTP 503 {body!r}; retrying", file=sys.stderr)
                time.sleep(0.2)


class EtcdCluster:
    def __init__(self, tmp):
        self.tmp = tmp
        ports = free_ports(6)
        self.client_ports, self.peer_ports = ports[:3], ports[3:]
        self.procs = []

    def urls(self):
        return [f"http://127.0.0.1:{p}" for p in self.client_ports]

    def start(self):
        initial = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports))
        for i in range(3):
            d = os.path.join(self.tmp, f"etcd{i}")
            log = open(os.path.join(self.tmp, f"etcd{i}.log"), "wb")
            self.procs.append(subprocess.Popen([
                "etcd", "--name", f"e{i}", "--data-dir", d,
                "--listen-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--log-level", "error"], stdout=log, stderr=log, stdin=subprocess.DEVNULL))

    def leader_url(self, within=30):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for u in self.urls():
                try:
                    st = http_json(u + "/v3/maintenance/status", {})
                    if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                        return u
                except Exception:
                    pass
            time.sleep(0.1)
        raise RuntimeError("etcd elected no leader")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


# ---- bench-membership ------------------------------------------------------------------------

def preload_script(tmp, nkeys, threads):
    """A wrk script that writes keys key-0 .. key-(nkeys-1) in order, the threads interleaved."""
    path = os.path.join(tmp, "preload.lua")
    with open(path, "w") as f:
        f.write('wrk.method = "PUT"\nwrk.headers["Content-Type"] = "application/json"\n'
                'local ids = 0\nfunction setup(thread) thread:set("tid", ids); ids = ids + 1 end\n'
                'local from = tonumber(os.getenv("KVSTORE_PRELOAD_FROM") or "0")\n'
                'local counter = -1\nlocal value = string.rep("v", 100)\n'
                'request = function()\n  counter = counter + 1\n'
                f'  local k = (from + counter * {threads} + tid) % {nkeys}\n'
                '  return wrk.format(nil, "/set", nil, \'{"key":"key-\' .. k .. \'","value":"\' .. value .. \'"}\')\n'
                'end\n')
    return path


def leader_index(cluster, within=15):
    (lid, _), _ = cluster.wait_agreed_leader(within)
    return int(lid[1:]) - 1


def role_of(url, node_id, timeout=1.0):
    try:
        view = http_json(url + "/cluster", timeout=timeout)
    except Exception:
        return None
    for m in view.get("members", []):
        if m.get("id") == node_id:
            return m.get("role")
    return None


def put_until_ok(url, key, within=10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            http_json(f"{url}/set", {"key": key, "value": "x"}, "PUT", timeout=1.0)
            return time.monotonic()
        except Exception:
            time.sleep(0.002)
    raise RuntimeError(f"no write through {url} within {within}s")


def cmd_bench_membership(args):
    """Join time with a large state and write throughput meanwhile; leadership transfer time
    against a crash failover; 5-node against 3-node write throughput. Loopback, bounded."""
    exit_on_signals()
    tmp = tempfile.mkdtemp(prefix="kvstore-bench-membership.")
    med = statistics.median
    set_random = os.path.join(WRK_DIR, "set-random.lua")
    os.environ["KVSTORE_BENCH_KEYS"] = str(args.keys)
    report = []
    clusters = []
    try:
        # -- 1. join a node to a cluster holding `keys` keys, under write load ----------------
        c3 = Cluster(args.bin, free_ports(3), tmp)
        clusters.append(c3)
        c3.start_all()
        li = leader_index(c3)
        leader = c3.url(li)
        script = preload_script(tmp, args.keys, 2)
        t0 = time.monotonic()
        keys = 0
        while True:
            # Each run continues where the last one got to (keys are written in order).
            os.environ["KVSTORE_PRELOAD_FROM"] = str(max(0, keys - 2000))
            run_wrk(leader, 64, 5, script)
            keys = (health(leader, 2.0) or {}).get("store", {}).get("keys", 0)
            if keys >= args.keys:
                break
            if time.monotonic() - t0 > 300:
                raise RuntimeError(f"preload stalled at {keys} keys")
        print(f"preloaded {args.keys} keys in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        joins, steady, during, after = [], [], [], []

        def committed():
            return (health(leader, 2.0) or {}).get("commitIndex", 0), time.monotonic()

        for rnd in range(1, args.rounds + 1):
            # One wrk run per round: 1 s of warm-up, 2 s of steady state measured from the
            # leader's commit index, then the join, measured the same way until it is a voter,
            # then 2 s on the four nodes.
            wrk = subprocess.Popen(["wrk", "-t2", "-c64", f"-d{args.duration}s", "--timeout", "5s",
                                    "-s", set_random, leader],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # warm-up: a pace, not a wait for state
            c_a, t_a = committed()
            time.sleep(2.0)  # the steady-state window
            c_b, t_b = committed()
            steady.append((c_b - c_a) / (t_b - t_a))
            c0, t_join = committed()
            j = c3.add_joiner(leader)
            jid = f"n{j + 1}"
            while role_of(leader, jid) != "voter":
                if time.monotonic() - t_join > 120:
                    raise RuntimeError(f"{jid} did not become a voter within 120 s")
                time.sleep(0.02)
            c1, t1 = committed()
            joined = t1 - t_join
            during.append((c1 - c0) / joined)
            joins.append(joined)
            # The same load on the four nodes it is now, for as long as the steady window: what
            # a fourth process costs on these shared CPUs, catch-up or not.
            time.sleep(2.0)  # the 4-node window: a pace, not a wait for state
            c2, t2 = committed()
            after.append((c2 - c1) / (t2 - t1))
            if wrk.wait(timeout=args.duration + 60) is None:
                wrk.kill()
            if joined > args.duration - 5:
                print(f"  note: the join outlasted the wrk window ({args.duration}s); "
                      "raise --duration", file=sys.stderr)
            print(f"  round {rnd}: steady {steady[-1]:.0f} commits/s; join to voter "
                  f"{joined * 1000:.0f} ms, {during[-1]:.0f} commits/s meanwhile, "
                  f"{after[-1]:.0f} on 4 nodes after", file=sys.stderr)
            http_json(f"{leader}/cluster/members/{jid}", None, "DELETE", timeout=20)
            c3.drop_last()
        report.append(f"join of an empty node to a 3-node cluster holding {args.keys} keys "
                      f"(100-byte values), under 64-connection random writes, {args.rounds} rounds:")
        report.append(f"  time to voter (median): {med(joins) * 1000:.0f} ms "
                      f"(min {min(joins) * 1000:.0f}, max {max(joins) * 1000:.0f})")
        report.append(f"  commits/s during the catch-up (start to voter) {med(during):.0f} vs the 2 s "
                      f"just before it {med(steady):.0f} -> ratio {med(during) / med(steady):.2f}")
        report.append(f"  the 2 s after it (4 nodes) {med(after):.0f} -> 4-node/3-node steady "
                      f"{med(after) / med(steady):.2f}; catch-up vs 4-node steady "
                      f"{med(during) / med(after):.2f}")
        # -- 2. leadership transfer vs crash failover -------------------------------------------
        transfers, failovers = [], []
        for rnd in range(args.transfers):
            li = leader_index(c3)
            target = (li + 1 + rnd % 2) % 3
            t0 = time.monotonic()
            http_json(f"{c3.url(li)}/cluster/leader", {"id": f"n{target + 1}"}, timeout=10)
            t1 = put_until_ok(c3.url(target), f"transfer-{rnd}")
            transfers.append(t1 - t0)
            if rnd < args.failovers:
                li = leader_index(c3)
                others = [i for i in range(3) if i != li]
                t0 = time.monotonic()
                c3.kill(li)
                t1 = put_until_ok(c3.url(others[0]), f"failover-{rnd}")
                failovers.append(t1 - t0)
                c3.start(li)
        report.append(f"leadership transfer, request sent until the new leader acknowledged a write "
                      f"({len(transfers)} transfers, idle cluster): median {med(transfers) * 1000:.0f} ms,"
                      f" max {max(transfers) * 1000:.0f} ms")
        if failovers:
            report.append(f"  against SIGKILL of the leader until a write is acknowledged through a "
                          f"survivor ({len(failovers)} kills, interleaved): median "
                          f"{med(failovers) * 1000:.0f} ms")
        c3.stop()
        # -- 3. 5 nodes against 3 -------------------------------------------------------------
        c5 = Cluster(args.bin, free_ports(5), os.path.join(tmp, "five"))
        os.makedirs(os.path.join(tmp, "five"), exist_ok=True)
        clusters.append(c5)
        c3b = Cluster(args.bin, free_ports(3), os.path.join(tmp, "three"))
        os.makedirs(os.path.join(tmp, "three"), exist_ok=True)
        clusters.append(c3b)
        res = {3: [], 5: []}
        for n, c in ((3, c3b), (5, c5)):
            c.start_all()
        for rnd in range(args.rounds):
            for n, c in ((3, c3b), (5, c5)):
                r = run_wrk(c.url(leader_index(c)), 64, args.duration, set_random)
                res[n].append(r)
                print(f"  round {rnd + 1}: {n} nodes {r[0]:.0f} w/s p99 {r[2]:.1f} ms",
                      file=sys.stderr)
        r3, r5 = med(x[0] for x in res[3]), med(x[0] for x in res[5])
        report.append(f"writes/s at 64 connections, {args.rounds} interleaved rounds of "
                      f"{args.duration}s: 3 nodes {r3:.0f} (p99 {med(x[2] for x in res[3]):.1f} ms), "
                      f"5 nodes {r5:.0f} (p99 {med(x[2] for x in res[5]):.1f} ms) -> 5/3 ratio {r5 / r3:.2f}")
    finally:
        for c in clusters:
            c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"bench-membership on loopback, {os.cpu_count()} CPUs, durable storage")
    for line in report:
        print(line)
    return 0


# ---- bench-security --------------------------------------------------------------------------

def cmd_bench_security(args):
    """3-node clusters side by side: no peer auth, the cluster secret, and TLS on both listeners
    (HTTPS client ports, mutual TLS on peer ports), with writes and linearizable reads
    interleaved across them (wrk speaks https to the TLS cluster)."""
    exit_on_signals()
    tmp = tempfile.mkdtemp(prefix="kvstore-bench-security.")
    conns = [int(c) for c in args.connections.split()]
    secret = os.urandom(32).hex()
    certs = os.path.join(tmp, "certs")
    subprocess.run([os.path.join(os.path.dirname(WRK_DIR), "gen-certs.sh"), certs, "3"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    global SSL_CONTEXT
    SSL_CONTEXT = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    # (name, environment, certificates: TLS on the client port, mutual TLS on a peer port)
    variants = [("none", {}, None), ("secret", {"KVSTORE_CLUSTER_SECRET": secret}, None),
                ("tls", {}, certs)]
    clusters = {}
    results = {}
    try:
        for name, env, tls in variants:
            d = os.path.join(tmp, name)
            os.makedirs(d)
            c = Cluster(args.bin, free_ports(3), d, env, tls=tls)
            c.start_all()
            clusters[name] = c
        leaders = {}
        for name, c in clusters.items():
            (lid, _), _ = c.wait_agreed_leader(15)
            leaders[name] = c.url(int(lid[1:]) - 1)
            preload(lambda i, u=leaders[name]: http_json(f"{u}/set", {"key": f"key-{i}", "value": VALUE}, "PUT"))
        print("leaders: " + ", ".join(f"{n} {u}" for n, u in leaders.items()), file=sys.stderr)
        for rnd in range(1, args.rounds + 1):
            for c in conns:
                for case, script in (("write", "set.lua"), ("read", "get.lua")):
                    # Each round starts with another variant, so no variant always runs first
                    # (or right after the heaviest one).
                    order = list(clusters)
                    order = order[rnd % len(order):] + order[:rnd % len(order)]
                    for name in order:
                        r = run_wrk(leaders[name], c, args.duration, os.path.join(WRK_DIR, script))
                        results.setdefault((name, case, c), []).append(r)
                        print(f"  round {rnd} {name:7} {case:6} c={c:<3} {r[0]:9.0f} req/s "
                              f"p50 {r[1]:.2f} ms p99 {r[2]:.2f} ms errors {r[3]}", file=sys.stderr)
    finally:
        for c in clusters.values():
            c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    med = statistics.median
    print(f"\n3-node clusters on loopback, durable, {os.cpu_count()} CPUs, {args.rounds} rounds x "
          f"{args.duration}s per case, interleaved (medians; ratios: median of each round's "
          f"ratio); requests to the leader")
    names = list(clusters)
    print(f"{'case':<6} {'conns':>5} | " + " | ".join(f"{n + ' req/s':>13} {'p99':>6}" for n in names)
          + " | " + " ".join(f"{n + '/none':>12}" for n in names[1:]))
    for case in ("write", "read"):
        for c in conns:
            meds = {n: (med(x[0] for x in results[(n, case, c)]),
                        med(x[2] for x in results[(n, case, c)])) for n in names}
            line = f"{case:<6} {c:>5} | " + " | ".join(f"{meds[n][0]:>13.0f} {meds[n][1]:>6.2f}" for n in names)
            # The ratio of each round's pair (measured seconds apart), then the median: less
            # sensitive to a noisy machine than the ratio of medians.
            paired = {n: med(x[0] / b[0] for x, b in zip(results[(n, case, c)],
                                                        results[("none", case, c)]))
                      for n in names[1:]}
            line += " | " + " ".join(f"{paired[n]:>12.3f}" for n in names[1:])
            errs = sum(x[3] for n in names for x in results[(n, case, c)])
            if errs:
                line += f"  (errors: {errs})"
            print(line)
    return 0


# ---- bench-scale -----------------------------------------------------------------------------

def cmd_bench_scale(args):
    """Write latency and leader changes over a small and a big key space, one fresh cluster each."""
    exit_on_signals()
    rows = []
    for nkeys in [int(k) for k in args.keys.split()]:
        tmp = tempfile.mkdtemp(prefix="kvstore-bench-scale.")
        kv = Cluster(args.bin, free_ports(3), tmp)
        wrk = None
        try:
            kv.start_all()
            (lid, term0), _ = kv.wait_agreed_leader(15)
            leader = kv.url(int(lid[1:]) - 1)
            env = dict(os.environ, KVSTORE_BENCH_KEYS=str(nkeys))
            script = os.path.join(WRK_DIR, "set-random.lua")
            wrk = subprocess.Popen(["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s",
                                    "--timeout", "5s", "--latency", "-s", script, leader],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
            changes, seen = 0, (lid, term0)
            while wrk.poll() is None:
                ls = leaders_of(kv.healths(timeout=1.0))
                cur = (ls[0]["id"], ls[0]["term"]) if len(ls) == 1 else None
                if cur and cur != seen:
                    changes += 1
                    print(f"  {nkeys} keys: leader change {seen} -> {cur}", file=sys.stderr)
                    seen = cur
                time.sleep(0.2)
            out, _ = wrk.communicate(timeout=60)
            wrk = None
            rps, p50, p99, errs = parse_wrk(out)
            mx = float("nan")
            for line in out.splitlines():
                parts = line.split()
                if parts[:1] == ["Latency"] and len(parts) >= 4:
                    mx = wrk_ms(parts[3])
            hs = [h for h in kv.healths(timeout=2.0) if h]
            term1 = max((h["term"] for h in hs), default=0)
            lh = leaders_of(hs)
            reached = lh[0]["store"]["keys"] if lh else max((h["store"]["keys"] for h in hs), default=0)
            snaps = max((h.get("snapshotIndex", 0) for h in hs), default=0)
            rows.append((nkeys, rps, p50, p99, mx, errs, changes, term0, term1, reached, snaps))
            print(f"  {nkeys} keys: {rps:.0f} writes/s p50 {p50:.2f} ms p99 {p99:.2f} ms "
                  f"max {mx:.1f} ms errors {errs} leader changes {changes} "
                  f"term {term0}->{term1} keys {reached}", file=sys.stderr)
        finally:
            if wrk and wrk.poll() is None:
                wrk.kill()
            kv.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n3-node durable clusters on loopback, {os.cpu_count()} CPUs, PUT /set at "
          f"{args.connections} connections, 100-byte values, random keys, {args.duration}s each")
    print(f"{'key space':>10} | {'writes/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'failed':>6} | {'leader changes':>14} {'term':>7} | {'keys reached':>12} "
          f"{'snapshot idx':>12}")
    for (n, rps, p50, p99, mx, errs, ch, t0, t1, reached, snaps) in rows:
        print(f"{n:>10} | {rps:>8.0f} {p50:>7.2f} {p99:>7.2f} {mx:>7.1f} {errs:>6} | "
              f"{ch:>14} {f'{t0}->{t1}':>7} | {reached:>12} {snaps:>12}")
    if len(rows) >= 2 and rows[0][3] > 0:
        print(f"p99 ratio {rows[-1][0]} keys / {rows[0][0]} keys: {rows[-1][3] / rows[0][3]:.2f}")
    return 0 if all(r[6] == 0 for r in rows) else 1


# ---- bench-metrics ---------------------------------------------------------------------------

class Scraper:
    """Fetches /metrics from every node once a second on its own thread, until stopped."""

    def __init__(self, urls, interval=1.0):
        import threading
        self.urls, self.interval = urls, interval
        self.scrapes, self.failed, self.bytes = 0, 0, 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            for u in self.urls:
                try:
                    with urllib.request.urlopen(u + "/metrics", timeout=2.0,
                                                context=SSL_CONTEXT) as r:
                        self.bytes += len(r.read())
                    self.scrapes += 1
                except Exception:
                    self.failed += 1
            self.stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=10)


def cmd_bench_metrics(args):
    """Throughput and latency of writes and linearizable reads with and without a scraper
    fetching /metrics from every node once a second: interleaved rounds on one cluster."""
    exit_on_signals()
    tmp = tempfile.mkdtemp(prefix="kvstore-bench-metrics.")
    med = statistics.median
    results = {}
    scraped = [0, 0, 0]
    c = Cluster(args.bin, free_ports(3), tmp)
    try:
        c.start_all()
        leader = c.url(leader_index(c))
        preload(lambda i: http_json(f"{leader}/set", {"key": f"key-{i}", "value": VALUE}, "PUT"))
        for rnd in range(1, args.rounds + 1):
            for case, script in (("write", "set.lua"), ("read", "get.lua")):
                # Alternate which variant runs first, so neither always follows the other.
                order = ["off", "on"] if rnd % 2 else ["on", "off"]
                for variant in order:
                    path = os.path.join(WRK_DIR, script)
                    if variant == "on":
                        with Scraper(c.urls()) as sc:
                            r = run_wrk(leader, args.connections, args.duration, path)
                        scraped[0] += sc.scrapes
                        scraped[1] += sc.failed
                        scraped[2] = max(scraped[2], sc.bytes // max(1, sc.scrapes))
                    else:
                        r = run_wrk(leader, args.connections, args.duration, path)
                    results.setdefault((case, variant), []).append(r)
                    print(f"  round {rnd} {case:5} scrape {variant:3} {r[0]:9.0f} req/s "
                          f"p50 {r[1]:.2f} ms p99 {r[2]:.2f} ms errors {r[3]}", file=sys.stderr)
    finally:
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n3-node durable cluster on loopback, {os.cpu_count()} CPUs, {args.connections} "
          f"connections to the leader, {args.rounds} rounds x {args.duration}s per case, "
          f"interleaved; scraper: GET /metrics on all 3 nodes once a second "
          f"({scraped[0]} scrapes, {scraped[1]} failed, ~{scraped[2]} bytes each)")
    print(f"{'case':<6} | {'off req/s':>10} {'p99 ms':>7} | {'on req/s':>10} {'p99 ms':>7} | "
          f"{'on/off':>7}")
    worst = 0.0
    for case in ("write", "read"):
        off, on = results[(case, "off")], results[(case, "on")]
        # The ratio of each round's pair (measured seconds apart), then the median.
        ratio = med(a[0] / b[0] for a, b in zip(on, off))
        worst = max(worst, 1.0 - ratio)
        errs = sum(x[3] for x in off + on)
        print(f"{case:<6} | {med(x[0] for x in off):>10.0f} {med(x[2] for x in off):>7.2f} | "
              f"{med(x[0] for x in on):>10.0f} {med(x[2] for x in on):>7.2f} | {ratio:>7.3f}"
              + (f"  (errors: {errs})" if errs else ""))
    print(f"largest throughput loss with scraping: {100 * worst:.1f}% (goal: at most 3%)")
    return 0


def main():
    ap = argparse.ArgumentParser(prog="kvcluster.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--interval", type=float, default=0.5)
    w.add_argument("--once", action="store_true")
    w.add_argument("--ca", help="PEM CA bundle to trust for https:// nodes")
    w.add_argument("urls", nargs="*")
    k = sub.add_parser("kill-leader-test")
    k.add_argument("--bin", required=True)
    k.add_argument("--rounds", type=int, default=1)
    k.add_argument("--nodes", type=int, default=3)
    k.add_argument("--base-port", type=int, default=0)
    k.add_argument("--keep-logs", action="store_true")
    s = sub.add_parser("stability")
    s.add_argument("--bin", required=True)
    s.add_argument("--seconds", type=int, default=60)
    s.add_argument("--load-connections", type=int, default=0)
    sc = sub.add_parser("bench-scale")
    sc.add_argument("--bin", required=True)
    sc.add_argument("--duration", type=int, default=60)
    sc.add_argument("--keys", default="1000 1000000")
    sc.add_argument("--connections", type=int, default=64)
    bm = sub.add_parser("bench-membership")
    bm.add_argument("--bin", required=True)
    bm.add_argument("--keys", type=int, default=100000)
    bm.add_argument("--duration", type=int, default=10)
    bm.add_argument("--rounds", type=int, default=3)
    bm.add_argument("--transfers", type=int, default=20)
    bm.add_argument("--failovers", type=int, default=5)
    bs = sub.add_parser("bench-security")
    bs.add_argument("--bin", required=True)
    bs.add_argument("--duration", type=int, default=5)
    bs.add_argument("--rounds", type=int, default=3)
    bs.add_argument("--connections", default="16 64")
    bme = sub.add_parser("bench-metrics")
    bme.add_argument("--bin", required=True)
    bme.add_argument("--duration", type=int, default=10)
    bme.add_argument("--rounds", type=int, default=5)
    bme.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    if args.cmd == "bench-metrics":
        return cmd_bench_metrics(args)
    if args.cmd == "bench-membership":
        return cmd_bench_membership(args)
    if args.cmd == "bench-security":
        return cmd_bench_security(args)
    if args.cmd == "bench-scale":
        return cmd_bench_scale(args)
    if args.cmd == "watch":
        if args.ca:
            global SSL_CONTEXT
            SSL_CONTEXT = ssl.create_default_context(cafile=args.ca)
        return cmd_watch(args)
    if args.cmd == "kill-leader-test":
        return cmd_kill_leader_test(args)
    return cmd_stability(args)


if __name__ == "__main__":
    sys.exit(main())
