"""The search loop: propose → run in the sandbox → score → record, round by round.

Runs inside OptimizeFlow's step. ``emit`` receives progress / leaderboard events (the CLI renders them).
"""

from __future__ import annotations

import os
import random
import shutil
import time

from ..errors import UsageError
from . import library, llm, metric_spec, policy, sandbox, scoring

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


def split(df, target: str, spec: dict, seed: int, task: str):
    """Labeled rows → train / validation (stratified for classification); rows with no label are the test rows
    ("predict the target for each row in test.csv"); with none, the held-out rows double as the test rows."""
    from sklearn.model_selection import train_test_split

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
    tr, va = train_test_split(labeled, test_size=spec["split"]["fraction"], random_state=seed, stratify=strat)
    tr, va = tr.reset_index(drop=True), va.reset_index(drop=True)
    if len(unlabeled):
        test, test_source = unlabeled.drop(columns=[target]), f"{len(unlabeled)} rows with no `{target}` value"
    else:
        test, test_source = va.drop(columns=[target]), "the held-out split (no unlabeled rows in the data object)"
    return tr, va, test, test_source


def drop_columns(train, target: str) -> list[str]:
    from ..tabular import semantic_type

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


def run_search(df, cfg: dict, *, workdir: str, emit=lambda kind, **kw: None, prior: list[dict] | None = None) -> dict:
    """cfg: target, spec, goal, steps, provider, seed, parallel, node_timeout, mem_mb, time_limit_min,
    budget_usd, policy, proposer_url. Returns the search record (journal, leaderboard, best, ...)."""
    t_start = time.time()
    spec, target, seed = cfg["spec"], cfg["target"], int(cfg.get("seed", 0))
    from ..tabular import infer_task

    task = infer_task(df[target])
    metric_spec.check_task(spec, task)
    train, val, test_X, test_source = split(df, target, spec, seed, task)
    y_val = val[target].to_numpy()
    data_dir = os.path.join(workdir, "data")
    drop = drop_columns(train, target)
    sandbox.stage(data_dir, train, val.drop(columns=[target]), test_X, {"target": target, "task": task})
    key = metric_spec.sort_key(spec)
    node_timeout = float(cfg.get("node_timeout") or 120)
    if cfg["provider"] == "offline":
        proposer = library.OfflineProposer(task, spec["direction"], drop, seed)
    else:
        preview = llm.data_preview(train, target, task)
        proposer = llm.LLMProposer(cfg["proposer_url"], goal=cfg["goal"], spec=spec, spec_key=key, preview=preview,
                                   timeout=node_timeout)
    journal: list[dict] = [dict(n) for n in (prior or [])]
    rng = random.Random(seed * 7919 + len(journal))
    steps, parallel = int(cfg["steps"]), max(1, int(cfg.get("parallel") or 1))
    budget = cfg.get("budget_usd")
    deadline = t_start + float(cfg["time_limit_min"]) * 60 if cfg.get("time_limit_min") else None
    spend = sum(n.get("usd") or 0.0 for n in journal)
    done, rnd, stopped = 0, max([n.get("round", 0) for n in journal] or [0]), None
    best_id = _best_id(journal, key)
    zygote = sandbox.start_zygote()
    try:
        return _loop(locals())
    finally:
        if zygote is not None:
            zygote.close()


def _loop(v: dict) -> dict:
    (df, cfg, workdir, emit, prior, t_start, spec, target, seed, task, train, val, test_X, test_source, y_val, data_dir,
     drop, key, node_timeout, proposer, journal, rng, steps, parallel, budget, deadline, spend, done, rnd, stopped, best_id,
     zygote) = (v[k] for k in ("df", "cfg", "workdir", "emit", "prior", "t_start", "spec", "target", "seed", "task", "train",
                               "val", "test_X", "test_source", "y_val", "data_dir", "drop", "key", "node_timeout", "proposer",
                               "journal", "rng", "steps", "parallel", "budget", "deadline", "spend", "done", "rnd", "stopped",
                               "best_id", "zygote"))
    emit("progress", message=f"search: {steps} steps, {task}, {spec['label']} ({spec['direction']}), "
                             f"{len(train)} train / {len(val)} held-out rows, proposer {cfg['provider']}")
    while done < steps:
        if budget is not None:
            per = spend / max(1, sum(1 for n in journal if n.get("usd"))) if spend else 0.0
            if spend >= budget or (per and spend + per > budget):
                stopped = f"budget: ${spend:.4f} spent of ${budget:g}"
                break
        if deadline and time.time() > deadline - 2:
            stopped = f"time limit: {cfg['time_limit_min']:g} min reached"
            break
        rnd += 1
        k = min(parallel, steps - done)
        pending: list[dict] = []
        proposals = []
        for i in range(k):
            op, parent = policy.choose(journal, key, rng, policy=cfg.get("policy") or "aide", pending=pending,
                                       num_drafts=int(cfg.get("num_drafts", 5)))
            nid = len(journal) + len(pending) + 1
            t0 = time.perf_counter()
            try:
                prop = (proposer.draft(journal, nid) if op == "draft" else
                        proposer.improve(journal, parent, nid) if op == "improve" else proposer.debug(journal, parent, nid))
            except llm.ProposerError as e:
                if e.fatal:
                    stopped = f"proposer error: {e}"
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
        running = []
        for node in pending:
            spend += node["usd"]
            if node["code"] is None:
                node["status"] = "invalid"
                continue
            timeout = node_timeout
            if deadline:
                timeout = max(1.0, min(timeout, deadline - time.time()))
            node_dir = os.path.join(workdir, f"node-{node['id']:03d}")
            shutil.rmtree(node_dir, ignore_errors=True)
            t0 = time.perf_counter()
            running.append((node, sandbox.Running(node["code"], node_dir, data_dir, timeout=timeout,
                                                  mem_mb=int(cfg.get("mem_mb") or 4096), zygote=zygote), t0))
        for node, proc, t0 in running:
            res = proc.wait()
            node["seconds"] = res["wall_seconds"]
            node["output"] = res["output"]
            r = res["run"]
            node["timings"].update(sandbox=res["wall_seconds"], fit=r.get("fit_seconds"), predict=r.get("predict_seconds"),
                                   imports=r.get("import_seconds"))
            if node["model"] is None:
                node["model"] = r.get("model_class")
            ts = time.perf_counter()
            if res["error"]:
                node["status"] = "timeout" if res["error"].startswith("timed out") else "failed"
                node["error"] = res["error"]
            else:
                try:
                    p = sandbox.load_predictions(proc.workdir)
                    node["score"] = scoring.score(spec, y_val, {"labels": p.get("val_labels"), "proba": p.get("val_proba")},
                                                  classes=p.get("classes"))
                    node["status"] = "ok"
                except (scoring.ScoringError, OSError, ValueError, KeyError) as e:
                    node["status"], node["error"] = "failed", f"scoring: {e}"
            node["timings"]["score"] = time.perf_counter() - ts
        for node in pending:
            tr = time.perf_counter()
            journal.append(node)
            done += 1
            if node["status"] == "ok" and metric_spec.is_better(spec, node["score"], _score_of(journal, best_id)):
                best_id = node["id"]
            node["timings"]["record"] = time.perf_counter() - tr
            t = node["timings"]
            own = (t.get("fit") or 0.0) + (t.get("predict") or 0.0)
            node["timings"]["overhead"] = (t.get("propose") or 0) + max(0.0, (t.get("sandbox") or 0) - own) + \
                (t.get("score") or 0) + t["record"]
        best = _score_of(journal, best_id)
        emit("leaderboard", step=len(journal), steps=len(prior or []) + steps, round=rnd,
             best={"node": best_id, "score": best}, spend_usd=round(spend, 6), metric=spec["label"],
             rows=leaderboard(journal, spec, 10),
             last=[{"node": n["id"], "operator": n["operator"], "status": n["status"], "score": n["score"],
                    "error": n.get("error")} for n in pending])
        if stopped:
            break
    if stopped is None:
        stopped = f"steps: {done} of {steps} done"
    return {"journal": journal, "task": task, "target": target, "train_rows": len(train), "val_rows": len(val),
            "test_rows": len(test_X), "test_source": test_source, "dropped_columns": drop, "best_id": best_id,
            "spend_usd": spend, "stopped_because": stopped, "seconds": time.time() - t_start,
            "isolation": {**sandbox.isolation(), "launcher": "zygote" if zygote is not None else "process"}, "workdir": workdir, "test_index": list(range(len(test_X)))}


def _best_id(journal, key):
    ok = [n for n in journal if n["status"] == "ok"]
    return min(ok, key=lambda n: (key(n["score"]), n["id"]))["id"] if ok else None


def _score_of(journal, nid):
    for n in journal:
        if n["id"] == nid:
            return n["score"]
    return None
