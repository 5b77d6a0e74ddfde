#!/usr/bin/env python3
"""The write-path cost of compare-and-set and idempotency keys, and the cost of the ordered map
on point reads/writes (issue #15). Behind scripts/bench-api.sh; standard library only; loopback.

  bench_api.py --bin PATH [--baseline BIN] [--duration S] [--rounds N] [--connections "16 64"]
               [--topologies "1 3"]

For each topology (1 durable node; 3 nodes), starts this build (and the baseline build, if
given), preloads 10,000 keys of 100-byte values, then runs wrk against the leader, the cases
interleaved round by round: get, set, set-if (a precondition that holds: ifValue equal to the
stored value), set-idem (a unique Idempotency-Key per request), and base-get/base-set against
the baseline. Prints medians, each write case's ratio to set, and this build / baseline.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvcluster import (NKEYS, VALUE, WRK_DIR, Cluster, exit_on_signals, free_ports,  # noqa: E402
                       http_json, preload, run_wrk)


def leader_url(cluster):
    (lid, _), _ = cluster.wait_agreed_leader(20)
    return cluster.url(int(lid[1:]) - 1)


def bench_topology(args, nodes, tmp):
    clusters = [("kvstore", args.bin)] + ([("baseline", args.baseline)] if args.baseline else [])
    started, cases = [], []
    script = lambda name: os.path.join(WRK_DIR, name)
    results = {}
    try:
        for system, binary in clusters:
            d = os.path.join(tmp, f"{system}-{nodes}")
            os.makedirs(d)
            c = Cluster(binary, free_ports(nodes), d)
            started.append(c)
            c.start_all()
            url = leader_url(c)
            preload(lambda i: http_json(f"{url}/set", {"key": f"key-{i}", "value": VALUE}, "PUT"))
            if system == "kvstore":
                cases += [("get", url, script("get.lua")), ("set", url, script("set.lua")),
                          ("set-if", url, script("set-if.lua")),
                          ("set-idem", url, script("set-idem.lua"))]
            else:
                cases += [("base-get", url, script("get.lua")),
                          ("base-set", url, script("set.lua"))]
        for rnd in range(1, args.rounds + 1):
            for conns in args.conns:
                for case, url, path in cases:
                    os.environ["KVSTORE_BENCH_NONCE"] = uuid.uuid4().hex[:12]
                    r = run_wrk(url, conns, args.duration, path)
                    results.setdefault((case, conns), []).append(r)
                    print(f"  {nodes} node(s) round {rnd} {case:9} c={conns:<4} {r[0]:9.0f} req/s "
                          f"p50 {r[1]:.2f} ms p99 {r[2]:.2f} ms errors {r[3]}", file=sys.stderr)
    finally:
        for c in started:
            c.stop()
    return results


def report(args, nodes, results):
    med = statistics.median
    what = "1 durable node" if nodes == 1 else f"{nodes}-node cluster (requests to the leader)"
    print(f"\n{what}, loopback, {os.cpu_count()} CPUs, {args.rounds} rounds x {args.duration}s "
          f"per case (medians, interleaved)")
    print(f"{'case':<9} {'conns':>5} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  ratio")
    for conns in args.conns:
        rps = {}
        for case in ("get", "base-get", "set", "set-if", "set-idem", "base-set"):
            r = results.get((case, conns))
            if not r:
                continue
            rps[case] = med(x[0] for x in r)
            ratio = ""
            if case in ("set-if", "set-idem") and rps.get("set"):
                ratio = f"{rps[case] / rps['set']:.2f} of set"
            elif case.startswith("base-") and rps.get(case[5:]) and rps[case] > 0:
                ratio = f"this build {rps[case[5:]] / rps[case]:.2f} of it"
            print(f"{case:<9} {conns:>5} {rps[case]:>9.0f} {med(x[1] for x in r):>7.2f} "
                  f"{med(x[2] for x in r):>7.2f} {sum(x[3] for x in r):>6}  {ratio}")


def main():
    ap = argparse.ArgumentParser(prog="bench_api.py")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--baseline", metavar="BIN",
                    help="a kvstore binary built from main before issue #15")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", default="16 64")
    ap.add_argument("--topologies", default="1 3", help="node counts to measure")
    args = ap.parse_args()
    args.conns = [int(c) for c in args.connections.split()]
    exit_on_signals()
    tmp = tempfile.mkdtemp(prefix="kvstore-bench-api.")
    try:
        all_results = [(n, bench_topology(args, n, tmp)) for n in
                       (int(t) for t in args.topologies.split())]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nkvstore API bench: {NKEYS} keys of {len(VALUE)}-byte values; this build {args.bin}"
          + (f", baseline {args.baseline}" if args.baseline else " (no BASELINE_BIN)"))
    for n, results in all_results:
        report(args, n, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
