"""validate on 100,000 rows x 20 columns with 5 folds: wall time, peak memory, and the share that is
model fitting versus Loom's own work (goal: Loom's own work under 20%).

Three measurements, each in its own process (threads pinned to 1 for every one of them):
  reference   plain scikit-learn: the same default model, StratifiedKFold(5) on the CV rows + one fit on
              them scored on the holdout (the model work any honest validation must do, nothing else)
  evaluate    loom_py.validate.evaluate in-process (seal, CV, holdout, calibration, fairness, leakage)
              with its own split of time: model fit/predict vs the rest
  end to end  the real ValidateFlow through the bridge (Metaflow run, artifacts, card) on an ingested
              data object, as `loom validate` runs it

Usage: .venv/bin/python bench/validate_bench.py [rows] [--no-flow]
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "py"))


def make(n: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 15))
    df = pd.DataFrame(X, columns=[f"num{i}" for i in range(15)])
    df["region"] = r.choice(["north", "south", "east", "west"], n)
    df["plan"] = r.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1])
    df["channel"] = r.choice([f"c{i}" for i in range(12)], n)
    df["gender"] = r.choice(["f", "m"], n)
    logit = X[:, 0] - 0.8 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + (df.plan == "pro") * 0.7
    df["churned"] = (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df  # 19 features + target = 20 columns


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reference(n, q):
    from loom_py import flowkit

    flowkit.pin_threads(1)
    import numpy as np
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from loom_py.tabular import default_model

    df = make(n)
    X, y = df.drop(columns="churned"), df.churned.to_numpy()
    t = time.perf_counter()
    Xc, Xh, yc, yh = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    scores = []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(Xc, yc):
        m = default_model("classification", Xc, 0).fit(Xc.iloc[tr], yc[tr])
        scores.append(roc_auc_score(yc[te], m.predict_proba(Xc.iloc[te])[:, 1]))
    m = default_model("classification", Xc, 0).fit(Xc, yc)
    hold = roc_auc_score(yh, m.predict_proba(Xh)[:, 1])
    q.put({"wall_s": time.perf_counter() - t, "peak_mb": _peak_mb(), "cv_mean": float(np.mean(scores)), "holdout": hold})


def _evaluate(n, q):
    from loom_py import flowkit

    flowkit.pin_threads(1)
    import sklearn.ensemble  # noqa: F401  (imports outside the timer, as in the reference)
    import sklearn.model_selection  # noqa: F401

    from loom_py import validate

    df = make(n)
    t = time.perf_counter()
    opts = validate.resolve_options(df, {"target": "churned", "sensitive": ["gender"], "folds": 5})
    s = validate.evaluate(df, opts, content_hash="sha256:bench")["summary"]
    q.put({"wall_s": time.perf_counter() - t, "peak_mb": _peak_mb(), "timings": s["timings"], "verdict": s["verdict"],
           "cv_mean": s["cv"]["mean"], "holdout": s["holdout"]["value"], "reasons": s["reasons"]})


def _in_process(fn, n):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(n, q))
    p.start()
    out = q.get()
    p.join()
    return out


def _bridge(req: dict, env: dict) -> tuple[dict, float]:
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "loom_py.bridge"], input=json.dumps(req), capture_output=True,
                       text=True, env=env)
    return json.loads(p.stdout), time.perf_counter() - t


def end_to_end(n: int) -> dict:
    ws = tempfile.mkdtemp(prefix="loom-bench-")
    loom = os.path.join(ws, ".loom")
    os.makedirs(os.path.join(loom, "tmp"))
    env = {**os.environ, "METAFLOW_USER": "bench", "METAFLOW_DEFAULT_METADATA": "local",
           "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DATASTORE_SYSROOT_LOCAL": loom,
           "LOOM_WORKSPACE_DIR": loom, "LOOM_TMP": os.path.join(loom, "tmp"),
           "PYTHONPATH": os.path.join(ROOT, "py"), "LOOM_FLOWS_DIR": os.path.join(ROOT, "flows"), "MPLBACKEND": "Agg"}
    src = os.path.join(ws, "bench.csv")
    make(n).to_csv(src, index=False)
    ing, _ = _bridge({"mode": "flow", "flow": "ingest_flow.py", "flow_name": "IngestDataset",
                      "params": {"source": src}, "prepare": "loom_py.ingest:prepare"}, env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    val, wall = _bridge({"mode": "flow", "flow": "validate_flow.py", "flow_name": "ValidateFlow",
                         "params": {"dataset": ing["pathspec"], "target": "churned", "sensitive": ["gender"], "folds": 5},
                         "prepare": "loom_py.validate:prepare"}, env)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    phases = {}
    if val.get("pathspec"):  # where the wall time went, from the run's own task timestamps
        code = ("import json\nfrom metaflow import Run, namespace\nnamespace(None)\nr = Run(%r)\n"
                "t = {s.id: (s.task.created_at.timestamp(), s.task.finished_at.timestamp()) for s in r}\n"
                "print(json.dumps(t))" % val["pathspec"])
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=loom)
        t = json.loads(p.stdout)
        phases = {"start_step_s": t["start"][1] - t["start"][0], "between_steps_s": t["end"][0] - t["start"][1],
                  "end_step_s": t["end"][1] - t["end"][0]}
    return {"wall_s": wall, "peak_child_mb": max(peak, before) / 1024, "flow_s": val.get("flow_seconds"),
            "verdict": val.get("verdict"), "timings": (val.get("summary") or {}).get("timings"),
            "message": val.get("message"), "phases": phases}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 100_000
    print(f"validate bench: {n:,} rows x 20 columns, 5 folds, threads pinned to 1, cpus={os.cpu_count()}, "
          f"load={os.getloadavg()[0]:.2f}")
    ref = _in_process(_reference, n)
    print(f"reference (sklearn CV + holdout fit, same model): {ref['wall_s']:.2f} s, peak {ref['peak_mb']:.0f} MB, "
          f"CV AUC {ref['cv_mean']:.4f}, holdout {ref['holdout']:.4f}")
    ev = _in_process(_evaluate, n)
    t = ev["timings"]
    own = t["total_s"] - t["model_fit_predict_s"]
    print(f"loom evaluate (in-process): {ev['wall_s']:.2f} s, peak {ev['peak_mb']:.0f} MB, verdict {ev['verdict']} "
          f"{ev['reasons']}")
    print(f"  model fit/predict {t['model_fit_predict_s']:.2f} s, Loom's own {own:.2f} s "
          f"({own / t['total_s']:.1%} of evaluate; leakage checks {t['leakage_s']:.2f} s)")
    print(f"  ratio evaluate / reference: {ev['wall_s'] / ref['wall_s']:.2f}x")
    if "--no-flow" not in sys.argv:
        e2e = end_to_end(n)
        tt = e2e["timings"] or {}
        fit = tt.get("model_fit_predict_s") or 0
        print(f"end to end (bridge + ValidateFlow): {e2e['wall_s']:.2f} s wall, flow {e2e['flow_s']} s, "
              f"peak child RSS {e2e['peak_child_mb']:.0f} MB, verdict {e2e['verdict']} {e2e['message'] or ''}")
        print(f"  model fit/predict {fit:.2f} s = {fit / e2e['wall_s']:.1%} of wall; Loom's own work "
              f"(load, seal, checks, Metaflow run + artifacts + card) {e2e['wall_s'] - fit:.2f} s = "
              f"{(e2e['wall_s'] - fit) / e2e['wall_s']:.1%}")
        ph = e2e["phases"]
        if ph:
            ev_s = tt.get("total_s") or 0
            rest = e2e["wall_s"] - ph["start_step_s"] - ph["between_steps_s"] - ph["end_step_s"]
            print(f"  phases: start step {ph['start_step_s']:.2f} s (evaluate {ev_s:.2f} s, load + imports + card + "
                  f"artifacts {ph['start_step_s'] - ev_s:.2f} s), between steps {ph['between_steps_s']:.2f} s, end step "
                  f"{ph['end_step_s']:.2f} s, launcher (prepare + Metaflow start + read-back) {rest:.2f} s")
            fixed = e2e["wall_s"] - ev_s
            print(f"  Loom's own work inside evaluate: {(ev_s - fit) / ev_s:.1%}; fixed orchestration around it: {fixed:.2f} s")
        print(f"  ratio end to end / reference: {e2e['wall_s'] / ref['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
