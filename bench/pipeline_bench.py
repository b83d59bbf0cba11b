"""`loom pipeline` against the same five stages run as separate verbs, on the bundled example.

Each round runs, in one workspace holding the ingested examples/churn.csv, both:
  separate   loom eda → loom features --from → loom run (offline, --steps S) → loom validate --model → loom report,
             five CLI invocations as scripts/demo.sh used to thread them (each its own Bun process, bridge,
             warm image and Metaflow run; `loom run` also makes its preflight call)
  pipeline   loom pipeline with the same options: one CLI process, one bridge, PipelineFlow's steps each
             starting the same verb's run
alternated (odd rounds pipeline first), wall time from spawn to exit; medians and the ratio printed.
Both do the same model work (same data, same seeds, same offline search); the search's own seconds are printed
for each so a difference there is visible. Goal: pipeline ≤ 0.9 × separate.

Usage: python bench/pipeline_bench.py [--rounds=N] [--steps=S]
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import LOOM, ROOT, median, workspace  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402



def timed(cmd, cwd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return dt, p

METRIC = "Maximize ROC-AUC on a held-out split."


def j(p):
    try:
        return json.loads(p.stdout)
    except ValueError:
        sys.exit(f"not JSON: {p.stdout[-500:]}\n{p.stderr[-1500:]}")


def separate(ws, ds, steps):
    total = 0.0
    dt, p = timed([LOOM, "eda", "--dataset", ds, "--target", "churned", "--json"], ws)
    total += dt
    eda = j(p)["pathspec"]
    dt, p = timed([LOOM, "features", "--dataset", ds, "--from", eda, "--json"], ws)
    total += dt
    feat = j(p)["pathspec"]
    dt, p = timed([LOOM, "run", "--dataset", feat, "--target", "churned", "--goal", "Predict churn.", "--metric", METRIC,
                   "--steps", str(steps), "--model-provider", "offline", "--json"], ws)
    total += dt
    o = j(p)
    dt, p = timed([LOOM, "validate", "--dataset", feat, "--target", "churned", "--metric", "roc_auc", "--model", o["pathspec"],
                   "--json"], ws)
    total += dt
    v = j(p)
    dt, p = timed([LOOM, "report", "--run", v["pathspec"], "--json"], ws)
    total += dt
    return total, o["summary"]["spend"]["seconds"], v["verdict"]


def pipeline(ws, ds, steps):
    dt, p = timed([LOOM, "pipeline", "--dataset", ds, "--target", "churned", "--goal", "Predict churn.", "--metric", METRIC,
                   "--steps", str(steps), "--model-provider", "offline", "--json"], ws)
    r = j(p)
    search = next(s for s in r["summary"]["stages"] if s["name"] == "optimize")
    return dt, search["seconds"], r["verdict"]


def main():
    rounds = int(next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--rounds=")), 3))
    steps = int(next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--steps=")), 10))
    ws = workspace()
    _, p = timed([LOOM, "ingest", "--source", os.path.join(ROOT, "examples", "churn.csv"), "--json"], ws)
    ds = j(p)["pathspec"]
    sep, pip = [], []
    print(f"bundled example (examples/churn.csv, 2000 rows), offline search --steps {steps}, {rounds} rounds alternated")
    print(f"{'round':>5}  {'separate s':>10}  {'(search s)':>10}  {'pipeline s':>10}  {'(stage s)':>9}  {'ratio':>6}  verdicts")
    for i in range(rounds):
        order = [("p", pipeline), ("s", separate)] if i % 2 == 0 else [("s", separate), ("p", pipeline)]
        got = {}
        for k, fn in order:
            got[k] = fn(ws, ds, steps)
        sep.append(got["s"][0])
        pip.append(got["p"][0])
        print(f"{i + 1:>5}  {got['s'][0]:>10.2f}  {got['s'][1]:>10.2f}  {got['p'][0]:>10.2f}  {got['p'][1]:>9.2f}  "
              f"{got['p'][0] / got['s'][0]:>6.3f}  {got['s'][2]}/{got['p'][2]}", flush=True)
    ms, mp_ = median(sep), median(pip)
    print(f"median wall: separate {ms:.2f} s, pipeline {mp_:.2f} s: ratio {mp_ / ms:.3f} (goal <= 0.9)")
    print(f"os.cpu_count() = {os.cpu_count()}, load average at the end {os.getloadavg()[0]:.1f} (other work on the machine "
          "slows both sides alike within a round; compare the per-round ratios)")


if __name__ == "__main__":
    main()
