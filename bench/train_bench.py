"""`loom train` with the CPU stand-in, measured through the built binary:

- probe build seconds on 50,000 events (summary.build_seconds, measured inside the step, BLAS pinned to 1 thread)
- total `loom train` wall time next to a bare two-step Metaflow flow (start → end) run the same way
- next-event hit@10 / MRR of the backbone against the popularity baseline on the same held-out split
- the larger budgets on the same data, and determinism (sha256 across repeats)
- the nemo launch export (what the NeMo recipe trains on) of the same 50,000 events, per objective: seconds and
  bytes, run in Loom's Python as the TrainFlow step runs it (the Modal submit itself is not reachable here)

    LOOM_PYTHON=.venv/bin/python python bench/train_bench.py [--repeats 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOOM = os.path.join(ROOT, "build", "loom")

BARE = '''from metaflow import FlowSpec, step


class BareFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BareFlow()
'''


def markov_csv(path, n_events=50000, n_types=200, n_users=2000, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    succ = rng.integers(0, n_types, size=(n_types, 4))
    probs = rng.dirichlet(np.ones(4) * 0.7, size=n_types)
    pop = rng.zipf(1.5, n_types).astype(float)
    pop /= pop.sum()
    with open(path, "w") as fh:
        fh.write("user_id,ts,event\n")
        for u in range(n_users):
            s = rng.choice(n_types, p=pop)
            for t in range(n_events // n_users):
                fh.write(f"u{u},{t},e{s}\n")
                s = succ[s, rng.choice(4, p=probs[s])] if rng.random() > 0.1 else rng.choice(n_types, p=pop)


def loom(args, cwd, env):
    t = time.perf_counter()
    p = subprocess.run([LOOM, *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"loom {' '.join(args)} failed ({p.returncode}): {p.stderr[-600:]}")
    return json.loads(p.stdout), wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if not os.path.exists(LOOM):
        raise SystemExit("build/loom is missing: run `bun run build`")
    py = os.path.abspath(os.environ.get("LOOM_PYTHON") or sys.executable)
    ws = tempfile.mkdtemp(prefix="loom-train-bench-")
    env = {**os.environ, "LOOM_PYTHON": py, "LOOM_MODEL_BUILDER_PROVIDER": "local"}
    env.pop("LOOM_GPU_TARGET", None)
    markov_csv(os.path.join(ws, "events.csv"))
    ing, _ = loom(["ingest", "--source", "events.csv", "--json"], ws, env)
    ds = ing["pathspec"]
    print(f"data: {ds}, {ing['summary']['rows']} events (Markov chain, 200 event types, 2000 users); {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")

    runs = [loom(["train", "--dataset", ds, "--budget", "probe", "--json"], ws, env) for _ in range(a.repeats)]
    builds = [r["summary"]["build_seconds"] for r, _ in runs]
    walls = [w for _, w in runs]
    shas = {r["summary"]["backbone_sha256"] for r, _ in runs}
    m = runs[0][0]["summary"]["metrics"]

    # a bare two-step Metaflow flow, launched the same way the bridge launches TrainFlow
    flow = os.path.join(ws, "bare_flow.py")
    open(flow, "w").write(BARE)
    loom_dir = os.path.join(ws, ".loom")
    fenv = {**os.environ, "METAFLOW_USER": "loom", "METAFLOW_DEFAULT_METADATA": "local",
            "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DATASTORE_SYSROOT_LOCAL": loom_dir}
    bare = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        subprocess.run([py, flow, "--quiet", "--no-pylint", "run"], cwd=loom_dir, env=fenv, check=True,
                       capture_output=True)
        bare.append(time.perf_counter() - t)

    med = statistics.median
    print(f"probe build_seconds (inside the step): median {med(builds):.3f} s  [{', '.join(f'{b:.3f}' for b in builds)}]  "
          f"budget 2 s -> {2 / med(builds):.0f}x headroom")
    print(f"loom train wall (binary, ingest done): median {med(walls):.2f} s  [{', '.join(f'{w:.2f}' for w in walls)}]")
    print(f"bare 2-step Metaflow flow wall:        median {med(bare):.2f} s  [{', '.join(f'{w:.2f}' for w in bare)}]")
    print(f"ratio loom train / bare flow: {med(walls) / med(bare):.2f}x (overhead {med(walls) - med(bare):+.2f} s: "
          f"launcher, prepare's load+checks, data load, build, eval, card)")
    print(f"hit@10 {m['hit_at_10']:.3f} vs popularity {m['baseline_hit_at_10']:.3f} "
          f"({m['hit_at_10'] / max(m['baseline_hit_at_10'], 1e-9):.2f}x); MRR {m['mrr']:.3f} vs {m['baseline_mrr']:.3f} "
          f"({m['mrr'] / max(m['baseline_mrr'], 1e-9):.2f}x) on {m['heldout']} held-out last events")
    print(f"deterministic across {a.repeats} runs: {len(shas) == 1} ({next(iter(shas))[:23]}…)")
    for budget in ("small", "full"):
        r, w = loom(["train", "--dataset", ds, "--budget", budget, "--json"], ws, env)
        s = r["summary"]
        print(f"budget {budget:5s}: dim {s['dim']}, window {s['window']}, build {s['build_seconds']:.3f} s, wall {w:.2f} s, "
              f"hit@10 {s['metrics']['hit_at_10']:.3f} (baseline {s['metrics']['baseline_hit_at_10']:.3f})")
    export_bench(py, os.path.join(ws, "events.csv"))


EXPORT = r"""
import json, os, sys, tempfile, time
sys.path.insert(0, %(py)r)
import pandas as pd
from loom_py.verbs.train import nemo_export
from loom_py.verbs.train.sequences import build_sequences, detect_columns
df = pd.read_csv(%(csv)r)
cols = detect_columns(df, objective="next-event")
out = {}
for objective in ("next-event", "finetune", "embedding"):
    d = tempfile.mkdtemp()
    t = time.perf_counter()
    seqs = build_sequences(df, cols)
    m = nemo_export.export(objective, seqs, d)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    out[objective] = {"seconds": time.perf_counter() - t, "bytes": size, "format": m["format"]}
print(json.dumps(out))
"""


def export_bench(py, csv):
    code = EXPORT % {"py": os.path.join(ROOT, "py"), "csv": csv}
    p = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True)
    for objective, r in json.loads(p.stdout.strip().splitlines()[-1]).items():
        print(f"nemo export for {objective:10s}: {r['seconds']:.2f} s, {r['bytes'] / 1e6:.1f} MB ({r['format']})")


if __name__ == "__main__":
    main()
