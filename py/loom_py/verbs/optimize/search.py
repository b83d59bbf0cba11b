"""The search loop: propose → run in the sandbox → score → record, round by round.

Runs inside OptimizeFlow's step. ``emit`` receives progress / leaderboard events (the CLI renders them).
"""

from __future__ import annotations

import os
import random
import shutil
import time

from loom_py.runtime.errors import UsageError
from loom_py.verbs.optimize import ensemble, library, llm, metric_spec, policy, sandbox, scoring

TARGET_NAMES = ("target", "label", "labels", "y", "class", "outcome", "response")


def resolve_target(df, target: str | None) -> str:
    cols = list(df.columns)
    if target:
        if target not in cols:
            raise UsageError(f"--target {target} is not a column; columns: {', '.join(map(str, cols[:30]))}")
        return target
    low = {str(c).lower(): c for c in cols}
    for n in TARGET_NAMES:
        if n in low:
            return low[n]
    raise UsageError(f"no column named target/label/y/class: pass --target COL (columns: {', '.join(map(str, cols[:30]))})")


CV_ALWAYS = 1000  # fewer labeled rows than this: always select by K-fold cross-validation (decision 0400)
CV_BELOW = 10000  # up to here too, when --time-limit allows CV_S_PER_1K seconds per 1,000 rows (or there is none)
CV_S_PER_1K = 10.0
CV_FOLDS = 5


def _labeled(df, target: str, task: str):
    labeled = df[df[target].notna()].reset_index(drop=True)
    unlabeled = df[df[target].isna()].reset_index(drop=True)
    if len(labeled) < 20:
        raise UsageError(f"only {len(labeled)} rows have a `{target}` value: the search needs at least 20 labeled rows")
    strat = None
    if task == "classification":
        vc = labeled[target].value_counts()
        if len(vc) < 2:
            raise UsageError(f"`{target}` has a single class: nothing to predict")
        strat = labeled[target] if vc.min() >= 2 else None
    return labeled, unlabeled, strat


def split(df, target: str, spec: dict, seed: int, task: str):
    """Labeled rows → train / validation (stratified for classification); rows with no label are the test rows
    ("predict the target for each row in test.csv"); with none, the held-out rows double as the test rows."""
    from sklearn.model_selection import train_test_split

    labeled, unlabeled, strat = _labeled(df, target, task)
    tr, va = train_test_split(labeled, test_size=spec["split"]["fraction"], random_state=seed, stratify=strat)
    tr, va = tr.reset_index(drop=True), va.reset_index(drop=True)
    if len(unlabeled):
        test, test_source = unlabeled.drop(columns=[target]), f"{len(unlabeled)} rows with no `{target}` value"
    else:
        test, test_source = va.drop(columns=[target]), "the held-out split (no unlabeled rows in the data object)"
    return tr, va, test, test_source


def cv_folds(df, target: str, seed: int, task: str, k: int = CV_FOLDS):
    """Small data: K folds over the labeled rows (stratified where every class has K rows), shuffled by the seed.
    Returns (labeled, [(train_idx, val_idx)], test features, test_source)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    labeled, unlabeled, strat = _labeled(df, target, task)
    if strat is not None and labeled[target].value_counts().min() >= k:
        it = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(labeled, labeled[target].astype(str))
    else:
        it = KFold(n_splits=k, shuffle=True, random_state=seed).split(labeled)
    folds = [(tr, va) for tr, va in it]
    if len(unlabeled):
        test, test_source = unlabeled.drop(columns=[target]), f"{len(unlabeled)} rows with no `{target}` value"
    else:
        test, test_source = (labeled.drop(columns=[target]),
                             "out-of-fold predictions for the labeled rows (no unlabeled rows in the data object)")
    return labeled, folds, test, test_source


def selection_for(n_labeled: int, cfg: dict) -> dict:
    below = int(cfg.get("cv_below", CV_BELOW))
    limit_s = float(cfg["time_limit_min"]) * 60 if cfg.get("time_limit_min") else None
    if "cv_below" not in cfg and n_labeled >= CV_ALWAYS and limit_s is not None and limit_s < CV_S_PER_1K * n_labeled / 1000:
        return {"kind": "holdout", "why": f"{n_labeled} labeled rows and a {limit_s:g} s time limit: one held-out split "
                                          f"(k-fold selection needs ~{CV_S_PER_1K * n_labeled / 1000:.0f} s here)"}
    if n_labeled < below:
        return {"kind": "cv", "folds": int(cfg.get("cv_folds") or CV_FOLDS),
                "why": f"{n_labeled} labeled rows < {below}: each candidate is scored by {int(cfg.get('cv_folds') or CV_FOLDS)}-fold "
                       "cross-validation (one sandboxed fit per fold)"}
    return {"kind": "holdout", "why": f"{n_labeled} labeled rows: one held-out split"}


def drop_columns(train, target: str) -> list[str]:
    from loom_py.stats.tabular import semantic_type

    return [c for c in train.columns if c != target and semantic_type(train[c], c) in ("identifier", "text")]


def leaderboard(journal: list[dict], spec: dict, limit: int | None = None) -> list[dict]:
    key = metric_spec.sort_key(spec)
    ordered = sorted(journal, key=lambda n: (n["status"] != "ok", key(n["score"]), n["id"]))
    rows = []
    for i, n in enumerate(ordered):
        rows.append({"rank": i + 1 if n["status"] == "ok" else None, "node": n["id"], "operator": n["operator"],
                     "parent": n.get("parent"), "model": n.get("model") or "?", "score": n["score"],
                     "seconds": round(n.get("seconds") or 0.0, 2), "status": n["status"],
                     "error": (n.get("error") or "")[:160] or None})
    return rows[:limit] if limit else rows


INTERRUPTED = "interrupted (Ctrl-C)"


def stop_requested() -> bool:
    """The CLI asks the search to stop (Ctrl-C in `loom run`) by creating the file LOOM_STOP_FILE names."""
    p = os.environ.get("LOOM_STOP_FILE")
    return bool(p) and os.path.exists(p)


def run_search(df, cfg: dict, *, workdir: str, emit=lambda kind, **kw: None, prior: list[dict] | None = None) -> dict:
    """cfg: target, spec, goal, steps, provider, seed, parallel, node_timeout, mem_mb, time_limit_min,
    budget_usd, policy, proposer_url, executor (local | metaflow), cv_below, cv_folds, final_fit.
    Returns the search record (journal, leaderboard, best, ...)."""
    import numpy as np

    t_start = time.time()
    spec, target, seed = cfg["spec"], cfg["target"], int(cfg.get("seed", 0))
    from loom_py.stats.tabular import infer_task

    task = infer_task(df[target])
    metric_spec.check_task(spec, task)
    n_labeled = int(df[target].notna().sum())
    selection = selection_for(n_labeled, cfg)
    data_dir = os.path.join(workdir, "data")
    meta = {"target": target, "task": task}
    if selection["kind"] == "cv":
        labeled, idx, test_X, test_source = cv_folds(df, target, seed, task, selection["folds"])
        train = labeled
        drop = drop_columns(train, target)
        folds = []
        for j, (tr, va) in enumerate(idx):
            fdir = os.path.join(data_dir, f"fold-{j + 1}")
            vrows = labeled.iloc[va].reset_index(drop=True)
            sandbox.stage(fdir, labeled.iloc[tr].reset_index(drop=True), vrows.drop(columns=[target]), vrows.drop(columns=[target]).head(1), meta)
            folds.append({"name": f"fold-{j + 1}", "data_dir": fdir, "y": vrows[target].to_numpy(), "index": va})
        full_dir = os.path.join(data_dir, "full")
        sandbox.stage(full_dir, labeled, test_X, test_X, meta)
        val_rows = len(labeled)
    else:
        train, val, test_X, test_source = split(df, target, spec, seed, task)
        drop = drop_columns(train, target)
        sandbox.stage(data_dir, train, val.drop(columns=[target]), test_X, meta)
        folds = [{"name": None, "data_dir": data_dir, "y": val[target].to_numpy(), "index": np.arange(len(val))}]
        full_dir = None
        val_rows = len(val)
    key = metric_spec.sort_key(spec)
    node_timeout = float(cfg.get("node_timeout") or 120)
    if cfg["provider"] == "offline":
        proposer = library.OfflineProposer(task, spec["direction"], drop, seed, metric=spec["metric"],
                                           profile=library.profile(train, target, task, spec["metric"]))
    else:
        preview = llm.data_preview(train, target, task)
        proposer = llm.LLMProposer(cfg["proposer_url"], goal=cfg["goal"], spec=spec, spec_key=key, preview=preview,
                                   timeout=node_timeout)
    # an interrupted search's unfinished candidates (already proposed and paid for) run first when it resumes
    journal: list[dict] = [dict(n) for n in (prior or []) if n.get("status") != "interrupted"]
    requeue = [dict(n, status="pending", score=None, error=None, resumed=True) for n in (prior or [])
               if n.get("status") == "interrupted" and n.get("code")]
    rng = random.Random(seed * 7919 + len(journal))
    steps, parallel = int(cfg["steps"]), max(1, int(cfg.get("parallel") or 1))
    budget = cfg.get("budget_usd")
    deadline = t_start + float(cfg["time_limit_min"]) * 60 if cfg.get("time_limit_min") else None
    spend = sum(n.get("usd") or 0.0 for n in (prior or [])) + float(cfg.get("spent_before") or 0.0)  # + the metric mapping
    done, rnd, stopped = 0, max([n.get("round", 0) for n in journal] or [0]), None
    best_id = _best_id(journal, key)
    executor = cfg.get("executor") or "local"
    # the staged folds are bound read-only into every candidate's sandbox (staged once above, never copied per fit)
    zygote = (sandbox.start_zygote(int(cfg.get("mem_mb") or 4096) * parallel * len(folds) + 1024, data_root=data_dir)
              if executor == "local" else None)
    try:
        rec = _loop(locals())
        rec["selection"] = selection
        # --- ENSEMBLE (decision 0400): greedy forward selection over the nodes' out-of-sample predictions ---
        t_ens = time.time()
        if cfg.get("ensemble", True) and rec["stopped_because"] != INTERRUPTED:
            _ensemble_step(rec, folds, workdir, zygote, cfg, emit, spec, selection, deadline, node_timeout)
        t_fit = time.time()
        # --- end ENSEMBLE ---
        if full_dir and rec["best_id"] is not None and cfg.get("final_fit", True) and rec["stopped_because"] != INTERRUPTED:
            no_unl = test_source.startswith("out-of-fold")
            rec["best_dir"] = _final_fit(rec, folds, full_dir, workdir, zygote, cfg, emit, no_unlabeled=no_unl)
            ens = rec.get("ensemble") or {}
            if rec["best_dir"] is None and ens.get("node") == rec["best_id"]:  # the ensemble's refit failed: its best member
                rec["best_id"] = ens["best_single"]
                ens["chosen"], ens["why"] = False, "its refit on all labeled rows failed"
                rec["best_dir"] = _final_fit(rec, folds, full_dir, workdir, zygote, cfg, emit, no_unlabeled=no_unl)
        rec["time"] = {"limit_s": float(cfg["time_limit_min"]) * 60 if cfg.get("time_limit_min") else None,
                       "search_s": round(t_ens - t_start, 2), "ensemble_s": round(t_fit - t_ens, 2),
                       "final_fit_s": round(time.time() - t_fit, 2), "total_s": round(time.time() - t_start, 2),
                       "nodes_s": round(sum(n.get("seconds") or 0.0 for n in rec["journal"]), 2)}
        rec["seconds"] = time.time() - t_start
        for n in rec["journal"]:
            n.pop("oof", None)
        return rec
    finally:
        if zygote is not None:
            zygote.close()


def _final_fit(rec, folds, full_dir, workdir, zygote, cfg, emit, *, no_unlabeled: bool) -> str | None:
    """Cross-validated search: the best candidate refit on every labeled row (its model and test predictions);
    with no unlabeled rows, its test predictions are the out-of-fold predictions."""
    import numpy as np

    best = next(n for n in rec["journal"] if n["id"] == rec["best_id"])
    emit("progress", message=f"refitting the best (node {best['id']}) on all {rec['val_rows']} labeled rows")
    out = os.path.join(workdir, "final")
    shutil.rmtree(out, ignore_errors=True)
    res = sandbox.run_candidate(best["code"], out, full_dir, timeout=float(cfg.get("node_timeout") or 120),
                                mem_mb=int(cfg.get("mem_mb") or 4096), zygote=zygote)
    if res["error"]:
        emit("progress", message=f"the refit of node {best['id']} failed: {res['error']}")
        return None
    try:
        scoring.check_predictions(sandbox.load_predictions(out), None, prefix="test")
    except Exception as e:  # noqa: BLE001  the refit wrote something Loom cannot use: keep the searched fit
        emit("progress", message=f"the refit of node {best['id']} wrote unusable predictions: {str(e)[:200]}")
        return None
    if no_unlabeled:
        oof = best.get("oof")
        if oof is not None:
            p = sandbox.load_predictions(out)
            p["test_labels"] = oof["labels"]
            if oof.get("proba") is not None:
                p["test_proba"], p["classes"] = oof["proba"], oof["classes"]
            else:
                p.pop("test_proba", None)
            np.savez(os.path.join(out, "predictions.npz"), **p)
    return out


def _run_local(to_run, folds, workdir, zygote, cfg, deadline, node_timeout):
    """Start every (node, fold) sandbox at once, then wait: {node id: [fold result, ...]}."""
    running = []
    for node in to_run:
        timeout = node_timeout
        if deadline:
            timeout = max(1.0, min(timeout, deadline - time.time()))
        node_dir = os.path.join(workdir, f"node-{node['id']:03d}")
        shutil.rmtree(node_dir, ignore_errors=True)
        for f in folds:
            d = os.path.join(node_dir, f["name"]) if f["name"] else node_dir
            running.append((node["id"], sandbox.Running(node["code"], d, f["data_dir"], timeout=timeout,
                                                        mem_mb=int(cfg.get("mem_mb") or 4096), zygote=zygote,
                                                        save_model=f["name"] is None)))  # a fold's model: unused
    out: dict = {}
    for nid, proc in running:
        stopped = False
        while not proc.poll():  # Ctrl-C stops the running candidates (their node is recorded as interrupted)
            if stop_requested():
                proc._kill()
                stopped = True
                break
            proc.pause()
        res = proc.wait()
        res["preds"] = None
        if stopped:
            res["error"], res["interrupted"] = "interrupted (Ctrl-C) before it finished", True
        if not res["error"]:
            try:
                res["preds"] = sandbox.load_predictions(proc.workdir)
            except (OSError, ValueError, KeyError) as e:
                res["error"] = f"predictions: {e}"
        out.setdefault(nid, []).append(res)
    return out


def _record_result(node, results, folds, spec):
    """Fold results → the node's status, score (mean over folds), output, timings; never reads the candidate's output."""
    import numpy as np

    node["seconds"] = max(r["wall_seconds"] for r in results)
    bad = next((r for r in results if r["error"]), None)
    node["output"] = (bad or results[0])["output"]
    runs = [r["run"] for r in results]
    node["timings"].update(sandbox=node["seconds"], fit=sum(r.get("fit_seconds") or 0.0 for r in runs),
                           predict=sum(r.get("predict_seconds") or 0.0 for r in runs),
                           imports=runs[0].get("import_seconds"))
    # Loom's own time in the sandbox (start, data, save): per fold, its wall time minus its fit + predict, summed
    # over the folds (an upper bound when folds run concurrently)
    node["timings"]["sandbox_overhead"] = sum(max(0.0, r["wall_seconds"] - (r["run"].get("fit_seconds") or 0.0)
                                                  - (r["run"].get("predict_seconds") or 0.0)) for r in results)
    if len(results) > 1:
        node["timings"]["folds"] = len(results)
    if node["model"] is None:
        node["model"] = runs[0].get("model_class")
    ts = time.perf_counter()
    if any(r.get("interrupted") for r in results):
        node["status"], node["error"] = "interrupted", "interrupted (Ctrl-C) before it finished: resuming runs it again"
    elif bad:
        node["status"] = "timeout" if bad["error"].startswith("timed out") else "failed"
        node["error"] = bad["error"] if len(results) == 1 else f"{bad['error']}"
    else:
        try:
            scores = []
            for f, r in zip(folds, results):
                p = r["preds"] = scoring.check_predictions(r["preds"], len(f["y"]))
                if p.get("test_labels") is not None:
                    r["preds"] = p = scoring.check_predictions(p, None, prefix="test")
                scores.append(scoring.score(spec, f["y"], {"labels": p.get("val_labels"), "proba": p.get("val_proba")},
                                            classes=p.get("classes")))
            node["score"] = float(np.mean(scores))
            if len(scores) > 1:
                node["fold_scores"] = [round(x, 6) for x in scores]
            node["oof"] = _oof(folds, results)  # out-of-sample predictions: the ensemble's input (search.ENSEMBLE)
            node["status"] = "ok"
        except scoring.ScoringError as e:
            node["status"], node["error"] = "failed", f"scoring: {e}"
        except Exception as e:  # noqa: BLE001  whatever the candidate wrote: a failed node, never a lost search
            node["status"], node["error"] = "failed", f"scoring: {type(e).__name__}: {str(e)[:200]}"
            node.pop("score", None), node.pop("fold_scores", None), node.pop("oof", None)
    node["timings"]["score"] = time.perf_counter() - ts


def _oof(folds, results):
    """Out-of-fold predictions in labeled-row order (probabilities only where every fold saw the same classes)."""
    import numpy as np

    n = sum(len(f["index"]) for f in folds)
    first = results[0]["preds"]
    labels = np.empty(n, dtype=first["val_labels"].dtype if first["val_labels"].dtype != object else object)
    cls = [r["preds"].get("classes") for r in results]
    same = all(c is not None and "val_proba" in r["preds"] and list(c) == list(cls[0]) for c, r in zip(cls, results))
    proba = np.zeros((n, len(cls[0]))) if same else None
    for f, r in zip(folds, results):
        try:
            labels[f["index"]] = r["preds"]["val_labels"]
        except (ValueError, TypeError):
            labels = labels.astype(object)
            labels[f["index"]] = r["preds"]["val_labels"]
        if same:
            proba[f["index"]] = r["preds"]["val_proba"]
    return {"labels": labels, "proba": proba, "classes": cls[0] if same else None}


def _loop(v: dict) -> dict:
    (df, cfg, workdir, emit, prior, t_start, spec, target, seed, task, train, test_X, test_source, folds,
     drop, key, node_timeout, proposer, journal, rng, steps, parallel, budget, deadline, spend, done, rnd, stopped, best_id,
     zygote, selection, val_rows, executor, requeue) = (v[k] for k in (
        "df", "cfg", "workdir", "emit", "prior", "t_start", "spec", "target", "seed", "task", "train", "test_X",
        "test_source", "folds", "drop", "key", "node_timeout", "proposer", "journal", "rng", "steps", "parallel", "budget",
        "deadline", "spend", "done", "rnd", "stopped", "best_id", "zygote", "selection", "val_rows", "executor", "requeue"))
    how = (f"{len(train)} labeled rows, {selection['folds']}-fold cross-validation" if selection["kind"] == "cv"
           else f"{len(train)} train / {val_rows} held-out rows")
    emit("progress", message=f"search: {steps} steps, {task}, {spec['label']} ({spec['direction']}), "
                             f"{how}, proposer {cfg['provider']}, executor {executor}")
    while done < steps:
        if stop_requested():
            stopped = INTERRUPTED
            break
        if budget is not None:
            per = spend / max(1, sum(1 for n in journal if n.get("usd"))) if spend else 0.0
            if spend >= budget or (per and spend + per > budget):
                stopped = f"budget: ${spend:.4f} spent of ${budget:g}"
                break
        if deadline and time.time() > deadline - 2 - _reserve(journal, selection, deadline - t_start, spec):
            stopped = f"time limit: {cfg['time_limit_min']:g} min reached (the rest kept for the ensemble and refit)"
            break
        rnd += 1
        k = min(parallel, steps - done)
        pending: list[dict] = []
        for i in range(k):
            if requeue:  # proposed (and paid for) before the interruption: run, not propose again
                node = requeue.pop(0)
                node.update(id=len(journal) + len(pending) + 1, round=rnd, timings={"propose": 0.0})
                pending.append(node)
                continue
            op, parent = policy.choose(journal, key, rng, policy=cfg.get("policy") or "aide", pending=pending,
                                       num_drafts=int(cfg.get("num_drafts", getattr(proposer, "num_drafts", 5))))
            nid = len(journal) + len(pending) + 1
            t0 = time.perf_counter()
            try:
                prop = (proposer.draft(journal, nid) if op == "draft" else
                        proposer.improve(journal, parent, nid) if op == "improve" else proposer.debug(journal, parent, nid))
            except llm.ProposerError as e:
                if e.fatal:  # the TS proposer server refuses a call that could pass --budget-usd: "budget: …"
                    stopped = str(e) if str(e).startswith("budget:") else f"proposer error: {e}"
                    break
                prop = {"plan": "", "code": None, "error": f"proposer error: {e}", "tokens": {"input": 0, "output": 0}, "usd": 0.0}
            node = {"id": nid, "parent": parent["id"] if parent else None, "operator": op, "round": rnd,
                    "plan": prop.get("plan", ""), "code": prop.get("code"), "family": prop.get("family"),
                    "params": prop.get("params") or {}, "model": prop.get("model"), "llm_model": prop.get("llm_model"),
                    "tokens": prop.get("tokens") or {"input": 0, "output": 0}, "usd": float(prop.get("usd") or 0.0),
                    "raw_reply": prop.get("raw_reply"), "status": "pending", "score": None, "error": prop.get("error"),
                    "output": "", "seconds": 0.0, "timings": {"propose": time.perf_counter() - t0}}
            pending.append(node)
        if stopped and not pending:
            break
        to_run = []
        for node in pending:
            if not node.get("resumed"):
                spend += node["usd"]
            if node["code"] is None:
                node["status"] = "invalid"
            else:
                to_run.append(node)
        if to_run:
            if executor == "metaflow":
                from loom_py.verbs.optimize.foreach import run_round
                results = run_round(to_run, folds, cfg, deadline, node_timeout, emit, workdir)
            else:
                results = _run_local(to_run, folds, workdir, zygote, cfg, deadline, node_timeout)
            for node in to_run:
                _record_result(node, results[node["id"]], folds, spec)
        for node in pending:
            tr = time.perf_counter()
            journal.append(node)
            done += node["status"] != "interrupted"
            if node["status"] == "ok" and metric_spec.is_better(spec, node["score"], _score_of(journal, best_id)):
                best_id = node["id"]
            node["timings"]["record"] = time.perf_counter() - tr
            t = node["timings"]
            own = (t.get("fit") or 0.0) + (t.get("predict") or 0.0)
            sb = t["sandbox_overhead"] if "sandbox_overhead" in t else max(0.0, (t.get("sandbox") or 0) - own)
            node["timings"]["overhead"] = (t.get("propose") or 0) + sb + \
                (t.get("score") or 0) + t["record"]
        ensemble.prune(journal, spec)  # out-of-sample predictions kept for the best ensemble.POOL nodes only
        best = _score_of(journal, best_id)
        emit("leaderboard", step=len(journal), steps=len(prior or []) + steps, round=rnd,
             best={"node": best_id, "score": best}, spend_usd=round(spend, 6), metric=spec["label"],
             rows=leaderboard(journal, spec, 10),
             last=[{"node": n["id"], "operator": n["operator"], "status": n["status"], "score": n["score"],
                    "error": n.get("error")} for n in pending])
        if stopped:
            break
        if stop_requested():
            stopped = INTERRUPTED
            break
    if stopped is None:
        stopped = f"steps: {done} of {steps} done"
    return {"journal": journal, "task": task, "target": target, "train_rows": len(train), "val_rows": val_rows,
            "test_rows": len(test_X), "test_source": test_source, "dropped_columns": drop, "best_id": best_id,
            "spend_usd": spend, "stopped_because": stopped, "seconds": time.time() - t_start,
            "isolation": {**sandbox.isolation(), "unsafe_no_sandbox": bool(cfg.get("unsafe_no_sandbox")), "launcher": "zygote" if zygote is not None else
                          ("metaflow foreach" if executor == "metaflow" else "process")},
            "workdir": workdir, "test_index": list(range(len(test_X)))}


def _best_id(journal, key):
    ok = [n for n in journal if n["status"] == "ok"]
    return min(ok, key=lambda n: (key(n["score"]), n["id"]))["id"] if ok else None


def _score_of(journal, nid):
    for n in journal:
        if n["id"] == nid:
            return n["score"]
    return None


# --- ENSEMBLE and time budget (decision 0400) ---------------------------------------------------------------------
RESERVE_SHARE = 0.3  # at most this share of --time-limit is kept back for the ensemble and the final refit
RESERVE_MEMBERS = 5


def _full_fit_seconds(node, selection) -> float:
    """One fit of ``node`` on all the rows it would be refit on, estimated from its searched fits."""
    fit = float((node.get("timings") or {}).get("fit") or node.get("seconds") or 0.0)
    if selection["kind"] == "cv":
        return fit / max(1, selection["folds"]) * 1.25  # a fold fit sees (k-1)/k of the rows
    return fit


def _reserve(journal, selection, total_s: float, spec) -> float:
    """Seconds to keep back at the end of a timed search: the refit of an ensemble of the best few nodes."""
    key = metric_spec.sort_key(spec)
    ok = sorted([n for n in journal if n["status"] == "ok"], key=lambda n: (key(n["score"]), n["id"]))[:RESERVE_MEMBERS]
    need = sum(_full_fit_seconds(n, selection) for n in ok) * (1 if selection["kind"] == "cv" else 1.1)
    return min(need, RESERVE_SHARE * total_s)


def _ensemble_step(rec, folds, workdir, zygote, cfg, emit, spec, selection, deadline, node_timeout):
    """Build the greedy ensemble over the journal's out-of-sample predictions; record it as a node; make it the best
    when it beats the best single node. Cross-validated selection: its score is its members' out-of-fold predictions
    combined (the refit on all rows gives its model). Held-out selection: it is fitted in the sandbox like any node
    and Loom scores its held-out predictions."""
    import numpy as np

    journal, task = rec["journal"], rec["task"]
    idx = np.concatenate([np.asarray(f["index"]) for f in folds])
    yy = np.concatenate([np.asarray(f["y"]) for f in folds])
    y = np.empty_like(yy)
    y[idx] = yy
    t0 = time.perf_counter()
    groups = [np.asarray(f["index"]) for f in folds] if len(folds) > 1 else None
    ens = ensemble.build(journal, spec, task, y, groups=groups)
    best_single = rec["best_id"]
    if ens is None:
        rec["ensemble"] = {"chosen": False, "why": "fewer than two usable nodes, or no mix beat the best single node"}
        return
    members = [n for n in journal if n["id"] in ens["members"]]
    if deadline:
        need = sum(_full_fit_seconds(n, selection) for n in members)
        if time.time() + need > deadline + 0.1 * need:
            rec["ensemble"] = {"chosen": False, "members": ens["members"], "weights": ens["weights"],
                               "why": f"no time left to fit it (~{need:.0f} s needed)"}
            return
    nid = max(n["id"] for n in journal) + 1
    node = {"id": nid, "parent": None, "operator": "ensemble", "round": max(n.get("round", 0) for n in journal) + 1,
            "plan": "", "code": ensemble.render(ens, task), "family": "ensemble",
            "params": {"members": ens["members"], "weights": ens["weights"]}, "members": ens["members"],
            "weights": ens["weights"], "model": ensemble.label(ens), "llm_model": None,
            "tokens": {"input": 0, "output": 0}, "usd": 0.0, "raw_reply": None, "status": "pending", "score": None,
            "error": None, "output": "", "seconds": 0.0, "timings": {"propose": time.perf_counter() - t0},
            "oof_score": round(ens["score"], 6)}
    node["plan"] = node["code"].split('"""')[1]
    emit("progress", message=f"ensemble of nodes {', '.join(map(str, ens['members']))}: out-of-sample "
                             f"{spec['label']} {ens['score']:.4f} vs best single {ens['single']:.4f}")
    if selection["kind"] == "cv":
        node.update(status="ok", score=float(ens["score"]), oof=ens["oof"], fold_scores=ens["fold_scores"],
                    score_source="its members' out-of-fold predictions, combined with these weights")
    else:
        timeout = node_timeout * len(members)
        if deadline:
            timeout = max(5.0, min(timeout, deadline - time.time() + 5.0))
        if (cfg.get("executor") or "local") == "metaflow":
            from loom_py.verbs.optimize.foreach import run_round
            results = run_round([node], folds, cfg, None, timeout, emit, workdir)
        else:
            results = _run_local([node], folds, workdir, zygote, cfg, None, timeout)
        _record_result(node, results[nid], folds, spec)
    journal.append(node)
    chosen = node["status"] == "ok" and metric_spec.is_better(spec, node["score"], _score_of(journal, best_single))
    if chosen:
        rec["best_id"] = nid
    rec["ensemble"] = {"node": nid, "members": ens["members"], "weights": ens["weights"], "score": node["score"],
                       "oof_score": round(ens["score"], 6), "best_single": best_single,
                       "best_single_score": _score_of(journal, best_single), "chosen": bool(chosen),
                       "why": "it beat the best single node on the out-of-sample rows" if chosen else
                       (f"its fit failed: {(node.get('error') or '')[:160]}" if node["status"] != "ok" else
                        "it did not beat the best single node")}
# --- end ENSEMBLE and time budget ---------------------------------------------------------------------------------
