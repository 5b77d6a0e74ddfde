#!/usr/bin/env python3
"""Issue #16's benchmark reports, behind scripts/bench.sh (single) and scripts/bench-cluster.sh
(cluster). Standard library only; loopback only; every process it starts is killed at the end.

  bench_report.py single  --bin PATH [--baseline BIN] [--duration S] [--rounds N]
                          [--connections "16 64"] [--threads N] [--workers N]
  bench_report.py cluster --bin PATH [--baseline BIN] [--duration S] [--rounds N]
                          [--connections "16 64"] [--no-etcd] [--in-memory] [--tls CERTDIR]
  bench_report.py profile --bin PATH [--duration S] [--connections N] [--nodes 1|3]
                          [--case write|read] [--node leader|follower] [--tool perf|callgrind]
                          [--out DIR]
  bench_report.py write-path --bin PATH [--duration S] [--rounds N] [--connections "16 64"]
                          [--log-levels "info warn"]

Every case of every system runs once per round, the rounds interleaved (BENCHMARKS.md: drift in
the machine's load hits all cases alike); the tables print medians over the rounds. Each case
also reads the servers' CPU time (utime + stime of every server process, /proc/PID/stat) before
and after its wrk run: CPU time per operation = that difference / the requests answered 2xx
(for a 3-node cluster: the three nodes' CPU together, per committed write or read).
"""
import argparse
import base64
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvcluster  # noqa: E402
from kvcluster import (NKEYS, VALUE, WRK_DIR, Cluster, EtcdCluster, etcd_scripts,  # noqa: E402
                       exit_on_signals, free_ports, http_json, preload, wrk_ms)

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """utime + stime of these processes, in seconds (a process that is gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # Fields 14 and 15 of stat(5); fields[0] is field 3 (state).
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def parse(out):
    """req/s, p50/p99 (ms), errors (non-2xx + socket errors) and requests of wrk's output."""
    r = dict(rps=float("nan"), p50=float("nan"), p99=float("nan"), errs=0, requests=0)
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            r["rps"] = float(parts[1])
        elif parts[:1] == ["50%"]:
            r["p50"] = wrk_ms(parts[1])
        elif parts[:1] == ["99%"]:
            r["p99"] = wrk_ms(parts[1])
        elif "Non-2xx" in line:
            r["errs"] += int(parts[-1])
        elif line.strip().startswith("Socket errors"):
            r["errs"] += sum(int(x.strip(",")) for x in parts[3::2])
        elif len(parts) > 2 and parts[1:3] == ["requests", "in"]:
            r["requests"] = int(parts[0])
    return r


def measure(url, conns, duration, script, pids, threads=2):
    """One wrk run against url, with the servers' CPU time around it."""
    args = ["wrk", f"-t{min(threads, conns)}", f"-c{conns}", f"-d{duration}s", "--timeout", "5s",
            "--latency"]
    if script:
        args += ["-s", script]
    c0 = cpu_seconds(pids)
    out = subprocess.run(args + [url], capture_output=True, text=True,
                         timeout=duration + 60).stdout
    r = parse(out)
    r["cpu"] = cpu_seconds(pids) - c0
    ok = r["requests"] - r["errs"]
    r["cpu_us"] = r["cpu"] / ok * 1e6 if ok > 0 else float("nan")
    return r


def med(rows, k):
    xs = [r[k] for r in rows]
    return statistics.median(xs) if xs else float("nan")


def ratio(a, b):
    return a / b if b and b == b and b > 0 else float("nan")


def accepts(url):
    """Does the node accept consistency=lease (anything but a 400)?"""
    try:
        urllib.request.urlopen(f"{url}/get?key=key-1&consistency=lease", timeout=5,
                               context=kvcluster.SSL_CONTEXT).read()
        return True
    except urllib.error.HTTPError as e:
        return e.code != 400
    except OSError:
        return False


def lua(tmp, name, query):
    """A wrk script reading the preloaded keys with extra query parameters."""
    path = os.path.join(tmp, f"{name}.lua")
    with open(path, "w") as f:
        f.write("local counter = 0\nrequest = function()\n  counter = counter + 1\n"
                f'  return wrk.format("GET", "/get?{query}key=key-" .. (counter % {NKEYS}))\nend\n')
    return path


def run_rounds(args, cases, conns):
    """cases: (system, case, url, script, pids). Returns {(system, case, conns): [results]}."""
    results = {}
    for rnd in range(1, args.rounds + 1):
        for c in conns:
            for system, case, url, script, pids in cases:
                r = measure(url, c, args.duration, script, pids, getattr(args, "threads", 2))
                results.setdefault((system, case, c), []).append(r)
                print(f"  round {rnd} {system:8} {case:19} c={c:<3} {r['rps']:9.0f} req/s "
                      f"p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms cpu {r['cpu_us']:.0f} us/op "
                      f"errors {r['errs']}", file=sys.stderr)
    return results


def row(results, key):
    rows = results.get(key)
    if not rows:
        return None
    return {k: med(rows, k) for k in ("rps", "p50", "p99", "cpu_us")} | {
        "errs": sum(r["errs"] for r in rows)}


def fmt(r, width=10):
    if not r:
        return f"{'-':>{width}} {'-':>6} {'-':>6} {'-':>7}"
    return f"{r['rps']:>{width}.0f} {r['p50']:>6.2f} {r['p99']:>6.2f} {r['cpu_us']:>7.1f}"


def compare_table(results, names, case_list, conns, title):
    """Rows of case x conns for two systems side by side, and the ratio of their req/s."""
    a, b = names
    print(title)
    print(f"{'case':<19} {'conns':>5} | {a + ' req/s':>14} {'p50':>6} {'p99':>6} {'us/op':>7} | "
          f"{b + ' req/s':>14} {'p50':>6} {'p99':>6} {'us/op':>7} | {'ratio':>5}")
    for case in case_list:
        for c in conns:
            ra, rb = row(results, (a, case, c)), row(results, (b, case, c))
            if not ra and not rb:
                continue
            line = f"{case:<19} {c:>5} | {fmt(ra, 14)} | {fmt(rb, 14)} | "
            line += f"{ratio(ra['rps'], rb['rps']):>5.2f}" if ra and rb else f"{'-':>5}"
            if ra and ra["errs"]:
                line += f"  ({a} errors: {ra['errs']})"
            print(line)


def goal_line(label, value, goal=None, fmt_value="{:.2f}"):
    v = fmt_value.format(value) if value == value else "-"
    print(f"  {label}: {v}" + (f" (goal {goal})" if goal else ""))


# ---- single node -----------------------------------------------------------------------------

def cmd_single(args):
    exit_on_signals()
    tmp = tempfile.mkdtemp(prefix="kvstore-bench.")
    conns = [int(c) for c in args.connections.split()]
    env = {"RUST_LOG": os.environ.get("RUST_LOG", "info")}
    if args.workers:
        env["KVSTORE_WORKERS"] = str(args.workers)
    systems = [("kvstore", args.bin)] + ([("baseline", args.baseline)] if args.baseline else [])
    started, cases = [], []
    try:
        for system, binary in systems:
            d = os.path.join(tmp, system)
            os.makedirs(d)
            node = Cluster(binary, free_ports(1), d, env)
            started.append(node)
            node.start_all()
            node.wait_agreed_leader(20)
            url = node.url(0)
            preload(lambda i: http_json(f"{url}/set", {"key": f"key-{i}", "value": VALUE}, "PUT"))
            pids = [node.procs[0].pid]
            cases += [(system, "health", f"{url}/health", None, pids),
                      (system, "get", url, os.path.join(WRK_DIR, "get.lua"), pids),
                      (system, "set", url, os.path.join(WRK_DIR, "set.lua"), pids)]
        print(f"running: {args.rounds} rounds x conns {conns} x {len(cases)} cases, "
              f"{args.duration}s each", file=sys.stderr)
        results = run_rounds(args, cases, conns)
    finally:
        for n in started:
            n.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nkvstore single node, durable, loopback: {os.cpu_count()} CPUs, wrk -t{args.threads}, "
          f"{args.rounds} rounds x {args.duration}s per case (medians, interleaved); us/op: the "
          f"server's CPU time per 2xx answer; ratio: req/s / the same system's /health")
    print(f"{'system':<9} {'case':<7} {'conns':>5} {'req/s':>10} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'us/op':>7} {'ratio':>6} {'errors':>6}")
    for system, _ in systems:
        for c in conns:
            base = row(results, (system, "health", c))
            for case in ("health", "get", "set"):
                r = row(results, (system, case, c))
                print(f"{system:<9} {case:<7} {c:>5} {r['rps']:>10.0f} {r['p50']:>7.2f} "
                      f"{r['p99']:>7.2f} {r['cpu_us']:>7.1f} {ratio(r['rps'], base['rps']):>6.2f} "
                      f"{r['errs']:>6}")
    print("\ngoals (issue #16):")
    for c in conns:
        base = row(results, ("kvstore", "health", c))
        s, g = row(results, ("kvstore", "set", c)), row(results, ("kvstore", "get", c))
        goal_line(f"durable SET / health at c={c}", ratio(s["rps"], base["rps"]), ">= 0.7")
        goal_line(f"GET / health at c={c}", ratio(g["rps"], base["rps"]))
        if args.baseline:
            for case in ("get", "set"):
                b = row(results, ("baseline", case, c))
                goal_line(f"{case} this build / baseline at c={c}",
                          ratio(row(results, ("kvstore", case, c))["rps"], b["rps"]))
    return 0


# ---- 3-node cluster --------------------------------------------------------------------------

def cmd_cluster(args):
    exit_on_signals()
    tmp = tempfile.mkdtemp(prefix="kvstore-bench-cluster.")
    conns = [int(c) for c in args.connections.split()]
    with_etcd = not args.no_etcd
    if with_etcd and not shutil.which("etcd"):
        print("etcd not found (install Debian's etcd-server), running without it", file=sys.stderr)
        with_etcd = False
    scripts = etcd_scripts(tmp)
    if args.tls:
        import ssl
        kvcluster.SSL_CONTEXT = ssl.create_default_context(cafile=os.path.join(args.tls, "ca.pem"))
    env = ({"KVSTORE_STORAGE": "memory", "KVSTORE_UNSAFE_VOLATILE_CLUSTER": "1"}
           if args.in_memory else None)
    systems = [("kvstore", args.bin)] + ([("baseline", args.baseline)] if args.baseline else [])
    started, cases, etcd, lease = [], [], None, {}
    try:
        for system, binary in systems:
            d = os.path.join(tmp, system)
            os.makedirs(d)
            cl = Cluster(binary, free_ports(3), d, env, tls=args.tls)
            started.append(cl)
            cl.start_all()
            (lid, _), _ = cl.wait_agreed_leader(15)
            li = int(lid[1:]) - 1
            leader, follower = cl.url(li), cl.url((li + 1) % 3)
            preload(lambda i: http_json(f"{leader}/set", {"key": f"key-{i}", "value": VALUE}, "PUT"))
            pids = [p.pid for p in cl.procs]
            get = os.path.join(WRK_DIR, "get.lua")
            cases += [(system, "write", leader, os.path.join(WRK_DIR, "set.lua"), pids),
                      (system, "read", leader, get, pids),
                      (system, "read-stale", leader, scripts["kv_stale"], pids),
                      (system, "read-follower", follower, get, pids)]
            lease[system] = accepts(leader)
            if lease[system]:
                cases += [(system, "read-lease", leader, lua(tmp, "lease", "consistency=lease&"),
                           pids),
                          (system, "read-lease-follower", follower,
                           lua(tmp, "lease", "consistency=lease&"), pids)]
            else:
                print(f"{system}: consistency=lease answered 400: its lease cases are skipped",
                      file=sys.stderr)
            print(f"{system}: leader {leader}, follower {follower}", file=sys.stderr)
        if with_etcd:
            etcd = EtcdCluster(tmp)
            etcd.start()
            e_leader = etcd.leader_url()
            e_follower = next(u for u in etcd.urls() if u != e_leader)
            b64 = lambda s: base64.b64encode(s.encode()).decode()
            preload(lambda i: http_json(f"{e_leader}/v3/kv/put",
                                        {"key": b64(f"key-{i}"), "value": b64(VALUE)}))
            pids = [p.pid for p in etcd.procs]
            cases += [("etcd", "write", e_leader, scripts["put"], pids),
                      ("etcd", "read", e_leader, scripts["range"], pids),
                      ("etcd", "read-stale", e_leader, scripts["range_stale"], pids),
                      ("etcd", "read-follower", e_follower, scripts["range"], pids)]
            print(f"etcd: leader {e_leader}, follower {e_follower}", file=sys.stderr)
        results = run_rounds(args, cases, conns)
    finally:
        for cl in started:
            cl.stop()
        if etcd:
            etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    all_cases = ("write", "read", "read-stale", "read-follower", "read-lease",
                 "read-lease-follower")
    head = (f"\n3-node clusters on loopback, {os.cpu_count()} CPUs, {args.rounds} rounds x "
            f"{args.duration}s per case (medians, interleaved); us/op: the three nodes' CPU time "
            f"per 2xx answer (per committed write for writes)")
    if args.baseline:
        compare_table(results, ("kvstore", "baseline"), all_cases, conns,
                      head + f"; this build vs --baseline {args.baseline}")
    if etcd:
        compare_table(results, ("kvstore", "etcd"), all_cases, conns,
                      head + "; kvstore vs etcd 3.4 (read-follower: etcd's ReadIndex on a follower)")
    else:
        compare_table(results, ("kvstore", "-"), all_cases, conns, head)
    get = lambda s, case, c, k="rps": (row(results, (s, case, c)) or {}).get(k, float("nan"))
    print("\ngoals (issue #16):")
    for c in conns:
        goal = {64: ">= 3", 16: ">= 2.5"}.get(c)
        if etcd:
            goal_line(f"writes kvstore/etcd at c={c}",
                      ratio(get("kvstore", "write", c), get("etcd", "write", c)), goal)
        goal_line(f"write p99 at c={c} (ms)", get("kvstore", "write", c, "p99"), "<= 10")
        if etcd:
            kc, ec = get("kvstore", "write", c, "cpu_us"), get("etcd", "write", c, "cpu_us")
            print(f"  cluster CPU per committed write at c={c}: kvstore {kc:.1f} us, "
                  f"etcd {ec:.1f} us ({ratio(kc, ec):.2f}x; goal: lower)")
    c = 64 if 64 in conns else conns[-1]
    for s in ["kvstore"] + (["etcd"] if etcd else []):
        stale = get(s, "read-stale", c)
        goal_line(f"{s} linearizable / stale reads at c={c}", ratio(get(s, "read", c), stale),
                  ">= 0.8" if s == "kvstore" else None)
        goal_line(f"{s} follower linearizable / leader linearizable reads at c={c}",
                  ratio(get(s, "read-follower", c), get(s, "read", c)))
    if lease.get("kvstore"):
        goal_line(f"kvstore lease / stale reads at c={c}",
                  ratio(get("kvstore", "read-lease", c), get("kvstore", "read-stale", c)))
    return 0


# ---- profile --------------------------------------------------------------------------------

def perf_works():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "record", "-q", "-o", "/dev/null", "--", "true"],
                       capture_output=True, text=True)
    return r.returncode == 0


def by_module(data):
    """Self time summed by crate (kvstore: by its top module), from perf report's symbols."""
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none",
                          "--sort", "dso,symbol", "--percent-limit", "0"],
                         capture_output=True, text=True).stdout
    sums = {}
    for line in rep.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or not parts[0].endswith("%") or line.startswith("#"):
            continue
        pct, dso, sym = float(parts[0][:-1]), parts[1], parts[3].removesuffix(" - -")
        if dso == "[kernel.kallsyms]":
            name = "kernel"
        else:
            path = sym.lstrip("<").replace("&", "").replace("mut ", "").split("::")
            if len(path) > 1 and path[0] == "kvstore":
                name = "kvstore::" + path[1]
            elif len(path) > 1:
                name = path[0]
            else:
                name = dso  # libc's malloc, memcpy...; unnamed code
        sums[name] = sums.get(name, 0.0) + pct
    return sorted(sums.items(), key=lambda kv: -kv[1])


def cmd_profile(args):
    """perf record -g on the leader under a wrk load; or callgrind on a single node."""
    exit_on_signals()
    tool = args.tool or ("perf" if perf_works() else "callgrind")
    if tool == "callgrind" and not shutil.which("valgrind"):
        print("neither perf nor valgrind works here", file=sys.stderr)
        return 2
    out = args.out or tempfile.mkdtemp(prefix="kvstore-profile.")
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="kvstore-profile-run.")
    nodes = 1 if tool == "callgrind" else args.nodes
    script = os.path.join(WRK_DIR, "set.lua" if args.case == "write" else "get.lua")
    data = os.path.join(out, "perf.data" if tool == "perf" else "callgrind.out")
    binary = args.bin
    if tool == "callgrind":
        # The node itself runs under callgrind (instruction counts: stable on a noisy machine);
        # the load is light because it runs ~50x slower.
        binary = os.path.join(tmp, "kvstore-under-callgrind")
        with open(binary, "w") as f:
            f.write(f"#!/bin/sh\nexec valgrind -q --tool=callgrind --callgrind-out-file={data} "
                    f"{os.path.abspath(args.bin)} \"$@\"\n")
        os.chmod(binary, 0o755)
    cl = Cluster(binary, free_ports(nodes), tmp, {"RUST_LOG": os.environ.get("RUST_LOG", "info")})
    try:
        cl.start_all()
        (lid, _), _ = cl.wait_agreed_leader(60)
        li = int(lid[1:]) - 1
        url = cl.url(li)
        n = NKEYS if tool == "perf" else 200
        for i in range(n):
            http_json(f"{url}/set", {"key": f"key-{i}", "value": VALUE}, "PUT", timeout=30)
        conns = args.connections if tool == "perf" else min(args.connections, 4)
        wrk = subprocess.Popen(["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{args.duration}s",
                                "--timeout", "5s", "--latency", "-s", script, url],
                               stdout=subprocess.PIPE, text=True)
        if tool == "perf":
            graph = os.environ.get("PERF_CALLGRAPH", "fp")
            target = li if args.node == "leader" or nodes == 1 else (li + 1) % nodes
            subprocess.run(["perf", "record", "-q", "--call-graph", graph, "-p",
                            str(cl.procs[target].pid), "-o", data, "--", "sleep",
                            str(max(1, args.duration - 1))], check=True)
        load = parse(wrk.communicate(timeout=args.duration + 60)[0])
        if tool == "callgrind":
            cl.procs[li].terminate()  # callgrind writes its file on exit
            cl.procs[li].wait(timeout=60)
    finally:
        cl.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    who = "a follower" if args.node == "follower" and nodes > 1 else "the leader"
    print(f"\nprofile of {who} ({nodes} node{'s' if nodes > 1 else ''}, {args.case} load: "
          f"{load['rps']:.0f} req/s at c={conns}, p99 {load['p99']:.2f} ms) with {tool}; "
          f"data: {data}")
    if tool == "perf":
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--percent-limit",
                              "2", "--stdio", "-g", "none", "--sort", "dso,symbol"],
                             capture_output=True, text=True).stdout
        print("self time by frame (perf report --no-children --percent-limit 2):")
        for line in rep.splitlines():
            if "%" in line and not line.startswith("#"):
                print("  " + " ".join(line.split()).removesuffix(" - -"))
        print("self time by crate/module (all frames, summed; >= 1%):")
        for name, pct in by_module(data)[:20]:
            if pct >= 1.0:
                print(f"  {pct:6.2f}% {name}")
        dso = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g",
                              "none", "--sort", "dso", "--percent-limit", "1"],
                             capture_output=True, text=True).stdout
        print("by binary (kernel = syscalls, network stack, fsync):")
        for line in dso.splitlines():
            if "%" in line and not line.startswith("#"):
                print("  " + " ".join(line.split()))
        threads = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g",
                                  "none", "--sort", "pid", "--percent-limit", "1"],
                                 capture_output=True, text=True).stdout
        print("by thread (tid:name; actix-rt|system = an arbiter: HTTP workers, the Raft "
              "actor's, the store's; kvstore-wal = the WAL writer, wal-sync = its fsyncs):")
        for line in threads.splitlines():
            if "%" in line and not line.startswith("#"):
                print("  " + " ".join(line.split()))
        print(f"full report: perf report -i {data} --no-children")
    else:
        rep = subprocess.run(["callgrind_annotate", data], capture_output=True, text=True).stdout
        print("instructions by function (callgrind_annotate, >= 0.5%; file paths left out):")
        for line in rep.splitlines():
            m = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(?:\S+?\.(?:rs|c|S|h)|\?\?\?):(.*)",
                         line)
            if m and float(m.group(2)) >= 0.5:
                func = re.sub(r" \[[^]]*\]$", "", m.group(3))
                print(f"  {float(m.group(2)):5.2f}%  {func[:160]}")
        print(f"full report: callgrind_annotate {data}")
    return 0


WRITE_PATH_METRICS = {
    "batches": "kvstore_wal_batch_entries_count",
    "appends": 'kvstore_http_requests_total{route="/raft/append",method="POST",status="200"}',
}


def counters(url):
    """The write-path counters of one node's /metrics (missing ones count 0)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        for key, metric in WRITE_PATH_METRICS.items():
            if name == metric:
                values[key] = float(value)
    return values


def cmd_write_path(args):
    """Where a committed write's cost goes, per node, at each log level: one 3-node cluster per
    RUST_LOG level, writes at the leader, interleaved rounds."""
    exit_on_signals()
    levels = args.log_levels.split()
    conns = [int(c) for c in args.connections.split()]
    tmp = tempfile.mkdtemp(prefix="kvstore-write-path.")
    clusters = {}
    results = {}
    try:
        for level in levels:
            d = os.path.join(tmp, level)
            os.makedirs(d)
            cl = Cluster(args.bin, free_ports(3), d, {"RUST_LOG": level})
            clusters[level] = cl
            cl.start_all()
        leaders = {}
        for level, cl in clusters.items():
            (lid, _), _ = cl.wait_agreed_leader(60)
            li = int(lid[1:]) - 1
            leaders[level] = li
            url = cl.url(li)
            preload(lambda i, url=url: http_json(f"{url}/set", {"key": f"key-{i}", "value": VALUE},
                                                 "PUT", timeout=30))
        script = os.path.join(WRK_DIR, "set.lua")
        for rnd in range(1, args.rounds + 1):
            for c in conns:
                # Alternate which level runs first, so neither always follows the other.
                order = levels if rnd % 2 else list(reversed(levels))
                for level in order:
                    cl, li = clusters[level], leaders[level]
                    # Leader first, then the followers in node order.
                    nodes = [li] + [i for i in range(3) if i != li]
                    before = [counters(cl.url(i)) for i in nodes]
                    cpu0 = [cpu_seconds([cl.procs[i].pid]) for i in nodes]
                    r = measure(cl.url(li), c, args.duration, script, [])
                    cpu1 = [cpu_seconds([cl.procs[i].pid]) for i in nodes]
                    after = [counters(cl.url(i)) for i in nodes]
                    ok = max(1, r["requests"] - r["errs"])
                    r["node_cpu_us"] = [(b - a) / ok * 1e6 for a, b in zip(cpu0, cpu1)]
                    r["batches"] = [(y.get("batches", 0) - x.get("batches", 0)) / ok
                                    for x, y in zip(before, after)]
                    r["appends"] = sum(y.get("appends", 0) - x.get("appends", 0)
                                       for x, y in zip(before, after)) / ok
                    r["cpu_us"] = sum(r["node_cpu_us"])
                    results.setdefault((level, c), []).append(r)
                    print(f"  round {rnd} RUST_LOG={level:5} c={c:<3} {r['rps']:9.0f} req/s "
                          f"p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms cpu/write "
                          + " / ".join(f"{x:.1f}" for x in r["node_cpu_us"])
                          + f" us errors {r['errs']}", file=sys.stderr)
    finally:
        for cl in clusters.values():
            cl.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n3-node durable clusters on loopback, {os.cpu_count()} CPUs, writes (PUT /set) at "
          f"the leader, {args.rounds} rounds x {args.duration}s per case (medians, interleaved); "
          "CPU per committed write of the leader and of each follower (utime+stime); WAL batches "
          "per write (leader / followers); AppendEntries requests per write (both followers)")
    print(f"{'RUST_LOG':<8} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'leader us':>9} {'followers us':>13} {'batches/w':>15} {'appends/w':>9} "
          f"{'vs ' + levels[0]:>8}")
    for c in conns:
        base = med(results[(levels[0], c)], "rps")
        for level in levels:
            rows = results[(level, c)]
            node = [statistics.median(r["node_cpu_us"][k] for r in rows) for k in range(3)]
            bat = [statistics.median(r["batches"][k] for r in rows) for k in range(3)]
            print(f"{level:<8} {c:>5} {med(rows, 'rps'):>8.0f} {med(rows, 'p50'):>7.2f} "
                  f"{med(rows, 'p99'):>7.2f} {node[0]:>9.1f} {node[1]:>6.1f} {node[2]:>6.1f} "
                  f"{bat[0]:>5.3f} {bat[1]:>4.3f} {bat[2]:>4.3f} {med(rows, 'appends'):>9.3f} "
                  f"{ratio(med(rows, 'rps'), base):>8.2f}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("single", "cluster"):
        s = sub.add_parser(name)
        s.add_argument("--bin", required=True)
        s.add_argument("--baseline", metavar="BIN")
        s.add_argument("--duration", type=int, default=10 if name == "single" else 5)
        s.add_argument("--rounds", type=int, default=3)
        s.add_argument("--connections", default="16 64")
    sub.choices["single"].add_argument("--threads", type=int, default=2)
    sub.choices["single"].add_argument("--workers", type=int)
    c = sub.choices["cluster"]
    c.add_argument("--no-etcd", action="store_true")
    c.add_argument("--in-memory", action="store_true")
    c.add_argument("--tls", metavar="CERTDIR")
    pr = sub.add_parser("profile")
    pr.add_argument("--bin", required=True)
    pr.add_argument("--baseline", help=argparse.SUPPRESS)
    pr.add_argument("--duration", type=int, default=10)
    pr.add_argument("--connections", type=int, default=64)
    pr.add_argument("--nodes", type=int, choices=(1, 3), default=3)
    pr.add_argument("--case", choices=("write", "read"), default="write")
    pr.add_argument("--node", choices=("leader", "follower"), default="leader")
    pr.add_argument("--tool", choices=("perf", "callgrind"))
    pr.add_argument("--out")
    wp = sub.add_parser("write-path")
    wp.add_argument("--bin", required=True)
    wp.add_argument("--baseline", help=argparse.SUPPRESS)
    wp.add_argument("--duration", type=int, default=5)
    wp.add_argument("--rounds", type=int, default=3)
    wp.add_argument("--connections", default="16 64")
    wp.add_argument("--log-levels", default="info warn")
    args = p.parse_args()
    for b in filter(None, [args.bin, args.baseline]):
        if not os.access(b, os.X_OK):
            p.error(f"{b} is not an executable")
    return {"single": cmd_single, "cluster": cmd_cluster, "profile": cmd_profile,
            "write-path": cmd_write_path}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
