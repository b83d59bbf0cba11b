"""`--executor metaflow`: the candidates of a round as a Metaflow foreach (flows/optimize_round_flow.py).

The search loop (search.py) stays where it is — in OptimizeFlow's step — and hands each round to
``run_round``: it pickles the round (candidates' code + the staged data files) into an IncludeFile, runs
OptimizeRoundFlow as a real Metaflow run (``LOOM_OPTIMIZE_WITH=kubernetes`` adds ``--with kubernetes`` so the
foreach fans out remotely), reads each task's result through the Client API, and writes the predictions and
fitted models back into the local node directories, so scoring (always Loom's, in the parent) and the rest of
the search are the same as with the local pool.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile

from loom_py.verbs.optimize import sandbox

FLOW = "optimize_round_flow.py"


def _flows_dir() -> str:
    return os.environ.get("LOOM_FLOWS_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "flows")


def _read_dir(d: str) -> dict:
    return {n: open(os.path.join(d, n), "rb").read() for n in sandbox.DATA_FILES}


def run_round(to_run: list[dict], folds: list[dict], cfg: dict, deadline, node_timeout: float, emit, workdir: str) -> dict:
    """Run the round's candidates as OptimizeRoundFlow's foreach; {node id: [fold result, ...]} like the local pool."""
    import time

    data = {(f["name"] or ""): _read_dir(f["data_dir"]) for f in folds}
    cands = []
    for node in to_run:
        timeout = node_timeout
        if deadline:
            timeout = max(1.0, min(timeout, deadline - time.time()))
        cands.append({"id": node["id"], "code": node["code"], "timeout": timeout})
    payload = {"data": data, "candidates": cands, "limits": {"mem_mb": int(cfg.get("mem_mb") or 4096)}}
    with tempfile.TemporaryDirectory(prefix="loom-round-", dir=os.environ.get("LOOM_TMP") or None) as tmp:
        pfile, rid = os.path.join(tmp, "payload.pkl"), os.path.join(tmp, "run-id")
        with open(pfile, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        args = [sys.executable, os.path.join(_flows_dir(), FLOW), "--quiet", "--no-pylint"]
        for w in filter(None, (os.environ.get("LOOM_OPTIMIZE_WITH") or "").split(",")):
            args += ["--with", w.strip()]
        args += ["run", "--run-id-file", rid, "--payload", pfile]
        if int(cfg.get("parallel") or 1) > 1:
            args += ["--max-workers", str(int(cfg["parallel"]))]
        t0 = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, cwd=os.environ.get("LOOM_WORKSPACE_DIR") or None)
        run_id = open(rid).read().strip() if os.path.exists(rid) else None
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not run_id:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
        reason = f"the Metaflow foreach for this round failed (OptimizeRoundFlow/{run_id}): " + (tail[-1] if tail else f"exit {proc.returncode}")
        emit("progress", message=reason)
        return {c["id"]: [{"error": reason[:300], "output": "\n".join(tail), "wall_seconds": wall, "run": {}, "preds": None}
                          for _ in folds] for c in cands}
    from metaflow import Run, namespace

    namespace(None)
    results = Run(f"OptimizeRoundFlow/{run_id}").data.results
    emit("progress", message=f"round ran as OptimizeRoundFlow/{run_id} ({len(cands)} foreach tasks, {wall:.1f}s)")
    out = {}
    for c in cands:
        r = results.get(c["id"])
        node_dir = os.path.join(workdir, f"node-{c['id']:03d}")
        fold_res = []
        for f in folds:
            fr = (r or {}).get("folds", {}).get(f["name"] or "")
            if fr is None:
                fold_res.append({"error": "the foreach task returned no result", "output": "", "wall_seconds": wall,
                                 "run": {}, "preds": None})
                continue
            d = os.path.join(node_dir, f["name"]) if f["name"] else node_dir
            os.makedirs(d, exist_ok=True)
            for name in ("predictions.npz", "model.pkl"):
                if fr["files"].get(name) is not None:
                    with open(os.path.join(d, name), "wb") as fh:
                        fh.write(fr["files"][name])
            res = {k: fr[k] for k in ("error", "output", "wall_seconds", "run")}
            res["preds"] = None
            if not res["error"]:
                try:
                    res["preds"] = sandbox.load_predictions(d)
                except (OSError, ValueError, KeyError) as e:
                    res["error"] = f"predictions: {e}"
            res["task"] = r.get("task")
            fold_res.append(res)
        out[c["id"]] = fold_res
    return out


def run_candidate_task(cand: dict, data_files: dict, limits: dict) -> dict:
    """Inside OptimizeRoundFlow's foreach task: stage the data files, run every fold of this candidate in the
    sandbox (pre-forked launcher where it starts), return outputs, predictions and the fitted model as bytes."""
    import shutil

    from metaflow import current

    root = tempfile.mkdtemp(prefix=f"loom-cand-{cand['id']}-", dir=os.environ.get("LOOM_TMP") or None)
    zygote = sandbox.start_zygote()
    try:
        running = []
        for fold, files in data_files.items():
            ddir = os.path.join(root, "data", fold or "holdout")
            os.makedirs(ddir, exist_ok=True)
            for n, b in files.items():
                with open(os.path.join(ddir, n), "wb") as fh:
                    fh.write(b)
                os.chmod(os.path.join(ddir, n), 0o444)
            running.append((fold, sandbox.Running(cand["code"], os.path.join(root, "node", fold or "holdout"), ddir,
                                                  timeout=float(cand["timeout"]), mem_mb=int(limits["mem_mb"]), zygote=zygote)))
        folds = {}
        for fold, proc in running:
            res = proc.wait()
            files = {}
            for n in ("predictions.npz", "model.pkl"):
                try:
                    files[n] = open(os.path.join(proc.workdir, n), "rb").read()
                except OSError:
                    files[n] = None
            folds[fold] = {"error": res["error"], "output": res["output"], "wall_seconds": res["wall_seconds"],
                           "run": res["run"], "files": files}
        return {"id": cand["id"], "folds": folds, "task": f"{current.flow_name}/{current.run_id}/{current.step_name}/{current.task_id}"}
    finally:
        if zygote is not None:
            zygote.close()
        shutil.rmtree(root, ignore_errors=True)
