"""Summarize bench rounds: median req/s, p50, p99 per (case, conns), and ratio to a baseline.

Input lines: "round conns case req/s p50 p99 non2xx socket_errors", latencies as wrk prints
them (e.g. 812.00us, 1.21ms, 2.00s).
Usage: summarize.py RESULTS_FILE BASELINE_CASE
"""
import statistics
import sys
from collections import defaultdict


def to_ms(s):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if s.endswith(unit):
            return float(s[: -len(unit)]) * f
    return float("nan")


rows = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 8:
        continue
    _, conns, case, rps, p50, p99, non2xx, sockerr = parts[:8]
    key = (int(conns), case)
    if key not in rows:
        order.append(key)
    rows[key].append((float(rps), to_ms(p50), to_ms(p99), int(non2xx), int(sockerr)))

base = sys.argv[2]
print(f"{'case':<8} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} "
      f"{'non2xx':>7} {'rounds':>6}")
for conns, case in sorted(order, key=lambda k: (k[0], k[1] != base, k[1])):
    r = rows[(conns, case)]
    rps = statistics.median(x[0] for x in r)
    p50 = statistics.median(x[1] for x in r)
    p99 = statistics.median(x[2] for x in r)
    errs = sum(x[3] for x in r) + sum(x[4] for x in r)
    b = rows.get((conns, base))
    ratio = rps / statistics.median(x[0] for x in b) if b else float("nan")
    print(f"{case:<8} {conns:>5} {rps:>10.0f} {p50:>8.2f} {p99:>8.2f} {ratio:>6.2f} "
          f"{errs:>7} {len(r):>6}")
