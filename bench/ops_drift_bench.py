"""ops drift and collab bundle, measured in one invocation.

1. Drift on ROWS x 20 columns (14 numeric, 6 categorical; 5 shifted on purpose): loom_py.stats.drift
   against Evidently's DataDriftPreset (the new Report API) on the same DataFrames. Each side runs in its
   own child process so its peak memory (VmHWM) is its own; both read the same generated Parquet.
   Printed: seconds, peak RSS, drifted columns, whether the per-column decisions agree, the ratio.
2. False-alarm and detection rates of the default tests (small reference: KS / chi-square / Z; large:
   normed Wasserstein / Jensen-Shannon) over generated cases.
3. Bundle build (loom_py.verbs.collab.build_bundle) on a report run of a fresh workspace made with the
   built binary (ingest -> eda -> report), median of 3.

    python bench/ops_drift_bench.py [--rows 1000000] [--evidently-rows N] [--skip-bundle]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "py"))
N_NUM, N_CAT = 14, 6
SHIFTED = {"num_0", "num_1", "num_2", "cat_0", "cat_1"}


def make(rows: int, path_ref: str, path_cur: str, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd

    g = np.random.default_rng(seed)
    for path, cur in ((path_ref, False), (path_cur, True)):
        cols = {}
        for i in range(N_NUM):
            shift = 0.3 if cur and f"num_{i}" in SHIFTED else 0.0
            cols[f"num_{i}"] = g.normal(shift, 1.0 + 0.1 * i, rows)
        for i in range(N_CAT):
            p = np.array([0.4, 0.3, 0.2, 0.1])
            if cur and f"cat_{i}" in SHIFTED:
                p = np.array([0.2, 0.3, 0.2, 0.3])
            cols[f"cat_{i}"] = pd.Categorical(g.choice(["a", "b", "c", "d"], rows, p=p)).astype(str)
        pd.DataFrame(cols).to_parquet(path)


def peak_mib() -> float:
    """This process's peak resident memory: VmHWM (ru_maxrss on Linux carries the parent's peak across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(which: str, ref_path: str, cur_path: str) -> None:
    import pandas as pd

    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    t0 = time.perf_counter()
    if which == "loom":
        from loom_py.stats import drift

        res = drift.dataset_drift(ref, cur)
        decisions = {r["column"]: bool(r["drifted"]) for r in res["columns"]}
        dataset = res["dataset_drift"]
    else:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        dd = DataDefinition(numerical_columns=[c for c in ref.columns if c.startswith("num_")],
                            categorical_columns=[c for c in ref.columns if c.startswith("cat_")])
        snap = Report([DataDriftPreset()]).run(current_data=Dataset.from_pandas(cur, data_definition=dd),
                                               reference_data=Dataset.from_pandas(ref, data_definition=dd))
        decisions, dataset = {}, None
        for m in snap.dict()["metrics"]:
            cfg = m.get("config") or {}
            if cfg.get("type", "").endswith("ValueDrift"):
                v, thr = m["value"], cfg["threshold"]
                p_value = "p_value" in cfg.get("method", "")
                decisions[cfg["column"]] = bool(v <= thr if cfg["method"].startswith("K-S") else (v < thr if p_value else v >= thr))
            elif cfg.get("type", "").endswith("DriftedColumnsCount"):
                dataset = m["value"]["share"] >= cfg.get("drift_share", 0.5)
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": secs, "maxrss_mib": peak_mib(),
                      "decisions": decisions, "dataset_drift": dataset}))


def run_child(which: str, ref: str, cur: str, timeout: float) -> dict | None:
    try:
        p = subprocess.run([sys.executable, __file__, "--child", which, ref, cur], capture_output=True, text=True,
                           timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        print(p.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def drift_vs_evidently(rows: int, ev_rows: int, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        for n in sorted({rows, ev_rows}, reverse=True):
            ref, cur = os.path.join(d, f"ref{n}.parquet"), os.path.join(d, f"cur{n}.parquet")
            make(n, ref, cur)
            loom = run_child("loom", ref, cur, timeout)
            print(f"drift {n:,} x {N_NUM + N_CAT}: loom {loom['seconds']:.2f} s, peak RSS {loom['maxrss_mib']:.0f} MiB, "
                  f"drifted {sorted(c for c, v in loom['decisions'].items() if v)}; dataset drift {loom['dataset_drift']}")
            assert {c for c, v in loom["decisions"].items() if v} == SHIFTED, "loom missed or over-flagged a column"
            if n != ev_rows:
                continue
            ev = run_child("evidently", ref, cur, timeout)
            if ev is None:
                print(f"  evidently: did not finish within {timeout:.0f} s at {n:,} rows")
                continue
            same = ev["decisions"] == loom["decisions"] and ev["dataset_drift"] == loom["dataset_drift"]
            print(f"  evidently DataDriftPreset {ev['seconds']:.2f} s, peak RSS {ev['maxrss_mib']:.0f} MiB; "
                  f"same decisions: {same}; loom is {ev['seconds'] / loom['seconds']:.1f}x faster, "
                  f"{ev['maxrss_mib'] / loom['maxrss_mib']:.1f}x less memory")


def rates(cases: int = 200) -> None:
    import numpy as np
    import pandas as pd

    from loom_py.stats import drift

    def rate(make_pair):
        hits, test = 0, None
        for s in range(cases):
            a, b = make_pair(np.random.default_rng(s))
            r = drift.column_drift(pd.Series(a), pd.Series(b))
            hits += r["drifted"]
            test = r["test"]
        return test, hits / cases

    rows = []
    for n in (500, 5000):
        rows.append((n, "numeric, no shift",) + rate(lambda g: (g.normal(0, 1, n), g.normal(0, 1, n))))
        rows.append((n, "numeric, +0.2 sd",) + rate(lambda g: (g.normal(0, 1, n), g.normal(0.2, 1, n))))
        rows.append((n, "numeric, +0.5 sd",) + rate(lambda g: (g.normal(0, 1, n), g.normal(0.5, 1, n))))
        p0, p1 = [0.5, 0.3, 0.2], [0.4, 0.3, 0.3]
        rows.append((n, "3 categories, no shift",) + rate(lambda g: (g.choice(list("abc"), n, p=p0), g.choice(list("abc"), n, p=p0))))
        rows.append((n, "3 categories, 10-point move",) + rate(lambda g: (g.choice(list("abc"), n, p=p0), g.choice(list("abc"), n, p=p1))))
        rows.append((n, "binary, no shift",) + rate(lambda g: (g.choice([0, 1], n, p=[.7, .3]), g.choice([0, 1], n, p=[.7, .3]))))
        rows.append((n, "binary, 0.30 -> 0.36",) + rate(lambda g: (g.choice([0, 1], n, p=[.7, .3]), g.choice([0, 1], n, p=[.64, .36]))))
    print(f"\nflag rates over {cases} generated cases per row (reference and current of equal size):")
    for n, what, test, r in rows:
        print(f"  {n:>5} rows  {what:<28} {test:<14} {r:6.1%}")


def bundle_bench() -> None:
    loom_bin = os.path.join(ROOT, "build", "loom")
    if not os.path.exists(loom_bin):
        print("\nbundle: build/loom is absent (node_modules/.bin/bun build/build.ts)")
        return
    import numpy as np
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="loom-bundle-bench-") as ws:
        g = np.random.default_rng(0)
        n = 5000
        pd.DataFrame({"a": g.normal(size=n), "b": g.normal(size=n), "plan": g.choice(["x", "y", "z"], n),
                      "id": [f"user-{i:06d}" for i in range(n)], "y": (g.random(n) < 0.3).astype(int)}).to_csv(os.path.join(ws, "d.csv"), index=False)
        env = {k: v for k, v in os.environ.items() if k != "METAFLOW_USER"}

        def loom(*args):
            p = subprocess.run([loom_bin, *args, "--json"], cwd=ws, capture_output=True, text=True, env=env)
            return json.loads(p.stdout)
        ing = loom("ingest", "--source", "d.csv")
        val = loom("validate", "--dataset", ing["pathspec"], "--target", "y")
        rep = loom("report", "--run", val["pathspec"])
        t0 = time.perf_counter()
        col = loom("collab", "--run", rep["pathspec"], "--include-lineage")
        wall = time.perf_counter() - t0
        os.environ.update({"METAFLOW_DATASTORE_SYSROOT_LOCAL": os.path.join(ws, ".loom"), "METAFLOW_USER": "loom"})
        from loom_py.verbs import collab

        times = []
        for i in range(3):
            t = time.perf_counter()
            collab.build_bundle(rep["pathspec"], True, os.path.join(ws, "bench-out", str(i)), ws_dir=os.path.join(ws, ".loom"))
            times.append(time.perf_counter() - t)
        s = col["summary"]
        print(f"\nbundle of {rep['pathspec']} + lineage ({len(s['runs'])} runs, {len(s['files'])} files, {s['bytes']:,} bytes): "
              f"build {statistics.median(times):.2f} s (median of 3, in-process: read runs, sanitize, 2 detect-secrets passes, pack); "
              f"inside CollabFlow {s['build_seconds']:.2f} s; `loom collab` wall {wall:.2f} s; removed {s['removed']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--evidently-rows", type=int, default=None, help="size Evidently runs at (default: --rows)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--skip-bundle", action="store_true")
    ap.add_argument("--child", nargs=3)
    a = ap.parse_args()
    if a.child:
        return child(*a.child)
    drift_vs_evidently(a.rows, a.evidently_rows or a.rows, a.timeout)
    rates()
    if not a.skip_bundle:
        bundle_bench()


if __name__ == "__main__":
    main()
