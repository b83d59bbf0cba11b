"""Loom's own time per node (proposal, sandbox start, scoring, record) against the candidate's own training
(fit + predict), with the pre-forked launcher (default) and with one fresh interpreter per candidate
(LOOM_SANDBOX_ZYGOTE=0), each under the OS sandbox (bubblewrap, the default where it runs) and, as the
reference, with the audit hook and `unshare -rn` only (LOOM_SANDBOX_BWRAP=0, the layering before bubblewrap).
Goal: under 0.3 s of overhead per sandboxed fit with bubblewrap. Both data sets are small (< 1000 labeled rows),
so each node is 5 sandboxed fits (cross-validation); the sandbox part of the overhead is summed over the folds.

Usage: .venv/bin/python bench/optimize_overhead.py [STEPS=10] [CONFIGS=zygote/bwrap,zygote/hook,process/bwrap,process/hook]
"""

import os
import statistics
import sys
import time

from optimize_common import dev_test, load, loom_search, spec_for, use_sandbox


steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
configs = (sys.argv[2] if len(sys.argv) > 2 else "zygote/bwrap,zygote/hook,process/bwrap,process/hook").split(",")
rows = []
for config in configs:
    launcher, box = use_sandbox(config)
    for name in ("breast_cancer", "diabetes"):
        df = load(name)
        spec = spec_for(name)
        dev, _ = dev_test(df, spec["task"])
        t0 = time.time()
        rec = loom_search(dev, spec, steps=steps)
        wall = time.time() - t0
        assert rec["isolation"]["launcher"] == launcher, rec["isolation"]
        # candidate nodes only (the ensemble node is combined from their predictions, it has no sandbox run of its own)
        t = [n["timings"] for n in rec["journal"] if "overhead" in (n.get("timings") or {})]
        own = [(x.get("fit") or 0) + (x.get("predict") or 0) for x in t]
        over = [x["overhead"] for x in t]
        parts = {k: statistics.mean([(x.get(k) or 0) for x in t]) for k in ("propose", "score", "record")}
        start = statistics.mean([x.get("sandbox_overhead", max(0.0, (x.get("sandbox") or 0) - o)) for x, o in zip(t, own)])
        folds = statistics.mean([x.get("folds") or 1 for x in t])
        rows.append((config, name, wall, statistics.mean(own), statistics.mean(over), max(over), parts, start / folds))
print(f"{'config':14} {'dataset':14} {'search s':>8} {'own/node':>8} {'overhead/node':>13} {'max':>6}  propose  sandbox/fit  score  record")
for config, name, wall, own, over, mx, parts, start in rows:
    print(f"{config:14} {name:14} {wall:8.2f} {own:8.3f} {over:13.3f} {mx:6.3f}  {parts['propose']:7.3f}  {start:11.3f}  "
          f"{parts['score']:5.3f}  {parts['record']:6.4f}")
for config in configs:
    mine = [r for r in rows if r[0] == config]
    print(f"{config}: overhead per node {statistics.mean([r[4] for r in mine]):.3f} s, "
          f"sandbox per fit {statistics.mean([r[7] for r in mine]):.3f} s")
if "zygote/bwrap" in configs and "zygote/hook" in configs:
    b = statistics.mean([r[7] for r in rows if r[0] == "zygote/bwrap"])
    h = statistics.mean([r[7] for r in rows if r[0] == "zygote/hook"])
    print(f"the OS sandbox costs {b - h:+.3f} s per fit with the zygote (ratio {b / h:.2f}x vs hook only; goal < 0.3 s per fit)")
