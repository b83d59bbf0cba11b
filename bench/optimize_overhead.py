"""Loom's own time per node (proposal, sandbox start, scoring, record) against the candidate's own training
(fit + predict), with the pre-forked launcher (default) and with one fresh interpreter per candidate
(LOOM_SANDBOX_ZYGOTE=0). Goal: under 1 s of overhead per node. Both data sets are small (< 1000 labeled rows),
so each node is 5 sandboxed fits (cross-validation); the sandbox part of the overhead is summed over the folds.

Usage: .venv/bin/python bench/optimize_overhead.py [STEPS=10]
"""

import os
import statistics
import sys
import time

from optimize_common import dev_test, load, loom_search, spec_for

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
rows = []
for launcher in ("zygote", "process"):
    os.environ["LOOM_SANDBOX_ZYGOTE"] = "1" if launcher == "zygote" else "0"
    for name in ("breast_cancer", "diabetes"):
        df = load(name)
        spec = spec_for(name)
        dev, _ = dev_test(df, spec["task"])
        t0 = time.time()
        rec = loom_search(dev, spec, steps=steps)
        wall = time.time() - t0
        assert rec["isolation"]["launcher"] == launcher, rec["isolation"]
        t = [n["timings"] for n in rec["journal"]]
        own = [(x.get("fit") or 0) + (x.get("predict") or 0) for x in t]
        over = [x["overhead"] for x in t]
        parts = {k: statistics.mean([(x.get(k) or 0) for x in t]) for k in ("propose", "score", "record")}
        start = statistics.mean([x.get("sandbox_overhead", max(0.0, (x.get("sandbox") or 0) - o)) for x, o in zip(t, own)])
        rows.append((launcher, name, wall, statistics.mean(own), statistics.mean(over), max(over), parts, start))
print(f"{'launcher':8} {'dataset':14} {'search s':>8} {'own/node':>8} {'overhead/node':>13} {'max':>6}  propose  sandbox-start  score  record")
for launcher, name, wall, own, over, mx, parts, start in rows:
    print(f"{launcher:8} {name:14} {wall:8.2f} {own:8.3f} {over:13.3f} {mx:6.3f}  {parts['propose']:7.3f}  {start:13.3f}  "
          f"{parts['score']:5.3f}  {parts['record']:6.4f}")
z = statistics.mean([r[4] for r in rows if r[0] == "zygote"])
p = statistics.mean([r[4] for r in rows if r[0] == "process"])
print(f"mean overhead per node: zygote {z:.3f} s, process {p:.3f} s  (ratio {p / z:.1f}x; goal < 1 s)")
