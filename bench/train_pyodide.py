"""Why the CPU stand-in does not run in pyodide: measure pyodide's load time under Bun and Node, a pure-Python
co-occurrence + PPMI pass on 50,000 events inside pyodide (a lower bound: no SVD), whether numpy can be loaded
offline, and next to it the numpy build Loom runs (same events, whole build incl. SVD).

    python bench/train_pyodide.py [--pyodide-dir /tmp/pyo/node_modules/pyodide] [--repeats 3]

pyodide is NOT a Loom dependency: install it for this measurement only (`cd /tmp/pyo && npm install pyodide`).
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
sys.path.insert(0, os.path.join(ROOT, "py"))

PURE_PY = r'''
import random, math, time
t0 = time.perf_counter()
rng = random.Random(0)
T, U, N, W = 200, 2000, 50000, 3
succ = [[rng.randrange(T) for _ in range(4)] for _ in range(T)]
events = []
for u in range(U):
    s = rng.randrange(T)
    for _ in range(N // U):
        events.append((u, s))
        s = succ[s][rng.randrange(4)] if rng.random() > 0.1 else rng.randrange(T)
t1 = time.perf_counter()
counts = {}
for i in range(len(events)):
    u, a = events[i]
    for d in range(1, W + 1):
        if i + d < len(events) and events[i + d][0] == u:
            k = (a, events[i + d][1])
            counts[k] = counts.get(k, 0.0) + 1.0 / d
total = sum(counts.values())
row, col = {}, {}
for (a, b), c in counts.items():
    row[a] = row.get(a, 0.0) + c
    col[b] = col.get(b, 0.0) + c
colp = {b: c ** 0.75 for b, c in col.items()}
z = sum(colp.values())
ppmi = {}
for (a, b), c in counts.items():
    v = math.log((c / total) / ((row[a] / total) * (colp[b] / z)))
    if v > 0:
        ppmi[(a, b)] = v
t2 = time.perf_counter()
(t1 - t0, t2 - t1, len(ppmi))
'''

JS = r'''
const t0 = performance.now();
const { loadPyodide } = await import(process.env.PYODIDE_MJS);
const py = await loadPyodide({ indexURL: process.env.PYODIDE_DIR + "/" });
const t1 = performance.now();
const r = py.runPython(process.env.PURE_PY).toJs();
const t2 = performance.now();
let numpy = "ok";
const msgs = [];
try { await Promise.race([py.loadPackage("numpy", { messageCallback: (m) => msgs.push(m), errorCallback: (m) => msgs.push(m) }), new Promise((_, rej) => setTimeout(() => rej(new Error("timeout")), 15000))]);
      py.runPython("import numpy"); } catch (e) { numpy = "unavailable"; }
if (numpy !== "ok") numpy = "unavailable offline: " + msgs.filter((m) => /Didn't find|fetch|error/i.test(m)).map((m) => m.trim().slice(0, 200)).join(" | ");
console.log(JSON.stringify({ load_s: (t1 - t0) / 1000, gen_s: r[0], cooc_ppmi_s: r[1], ppmi_nnz: r[2], py_total_s: (t2 - t1) / 1000, numpy }));
process.exit(0);
'''


def run_js(runtime: list[str], pyodide_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.mjs")
        open(path, "w").write(JS)
        env = {**os.environ, "PYODIDE_DIR": pyodide_dir, "PYODIDE_MJS": os.path.join(pyodide_dir, "pyodide.mjs"),
               "PURE_PY": PURE_PY}
        t = time.perf_counter()
        p = subprocess.run(runtime + [path], capture_output=True, text=True, env=env, timeout=300)
        wall = time.perf_counter() - t
        line = [l for l in p.stdout.splitlines() if l.startswith("{")]
        if not line:
            raise SystemExit(f"{runtime[0]} failed: {p.stderr[-800:]}")
        out = json.loads(line[-1])
        out["process_wall_s"] = wall
        return out


def numpy_build(repeats: int) -> list[float]:
    code = r'''
import sys, time, json
sys.path.insert(0, %r)
from loom_py import flowkit; flowkit.pin_threads(1)
import numpy as np, pandas as pd
from loom_py.verbs.train import sequences as S, local as L
rng = np.random.default_rng(0)
T, U, N = 200, 2000, 50000
succ = rng.integers(0, T, size=(T, 4))
ev, us, ts = [], [], []
for u in range(U):
    s = int(rng.integers(T))
    for t in range(N // U):
        ev.append(f"e{s}"); us.append(u); ts.append(t)
        s = int(succ[s, rng.integers(4)]) if rng.random() > 0.1 else int(rng.integers(T))
df = pd.DataFrame({"user_id": us, "ts": ts, "event": ev})
t0 = time.perf_counter()
cols = S.Columns("user_id", "ts", "event", [])
seqs = S.build_sequences(df, cols, 50000)
bb = L.build(seqs, objective="next-event", dim=32, window=3, max_vocab=2000)
print(json.dumps({"build_s": time.perf_counter() - t0}))
''' % os.path.join(ROOT, "py")
    out = []
    for _ in range(repeats):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        out.append(json.loads(p.stdout.strip().splitlines()[-1])["build_s"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pyodide-dir", default=os.environ.get("PYODIDE_DIR", "/tmp/pyo/node_modules/pyodide"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bun", default=os.path.join(ROOT, "node_modules", ".bin", "bun"))
    a = ap.parse_args()
    if not os.path.isfile(os.path.join(a.pyodide_dir, "pyodide.mjs")):
        raise SystemExit(f"pyodide not found in {a.pyodide_dir}: `mkdir -p /tmp/pyo && cd /tmp/pyo && npm install pyodide`")
    version = json.load(open(os.path.join(a.pyodide_dir, "package.json")))["version"]
    print(f"pyodide {version} from npm; machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    res = {}
    for name, cmd in (("bun", [a.bun, "run"]), ("node", ["node"])):
        runs = [run_js(cmd, a.pyodide_dir) for _ in range(a.repeats)]
        res[name] = runs
        loads = [r["load_s"] for r in runs]
        print(f"{name:5s} loadPyodide: {min(loads):.2f}-{max(loads):.2f} s (median {statistics.median(loads):.2f});"
              f" pure-Python co-occurrence+PPMI on 50k events: {statistics.median(r['cooc_ppmi_s'] for r in runs):.2f} s"
              f" (+ {statistics.median(r['gen_s'] for r in runs):.2f} s generating); numpy: {runs[0]['numpy']}")
    nb = numpy_build(a.repeats)
    print(f"numpy  Loom's build (sequences+counts+PPMI+SVD, 50k events): median {statistics.median(nb):.3f} s "
          f"({', '.join(f'{x:.3f}' for x in nb)})")
    for name in ("bun", "node"):
        lo = statistics.median(r["load_s"] for r in res[name])
        cp = statistics.median(r["cooc_ppmi_s"] for r in res[name])
        print(f"ratio  {name}: pyodide load alone = {lo / statistics.median(nb):.0f}x the numpy build; "
              f"load + pure-Python counting (no SVD) = {lo + cp:.2f} s vs the 2 s budget")


if __name__ == "__main__":
    main()
