"""The launcher's preflight (``prepare``) and the OptimizeFlow step body (``execute``)."""

from __future__ import annotations

import json
import os

from loom_py.runtime.errors import UsageError
from loom_py.verbs.optimize import metric_spec

PROVIDERS = ("anthropic", "openai", "offline")


def require_sandbox(unsafe: bool) -> None:
    """Model-written code runs only under the OS sandbox, unless the person said --unsafe-no-sandbox (which
    the run records). The offline proposer's code is Loom's own library: it never needs this."""
    from loom_py.verbs.optimize import sandbox

    if not unsafe and sandbox.os_sandbox() is None:
        raise UsageError(f"no OS sandbox for model-written code on this machine: {sandbox.install_hint()}, "
                         "or pass --unsafe-no-sandbox (recorded in the run)")


def prepare(params: dict) -> dict:
    """Assert the dataset (and the resumed run), parse the metric, check the proposer — before any run exists."""
    from loom_py.runtime.data import load_frame, resolve_run

    p = dict(params)
    provider = p.get("model_provider") or "anthropic"
    if provider not in PROVIDERS:
        raise UsageError(f"--model-provider {provider} is unknown: pick one of {', '.join(PROVIDERS)}")
    if provider != "offline" and not p.get("proposer_url") and not os.environ.get("LOOM_PROPOSER_URL"):
        raise UsageError(f"the {provider} proposer needs the CLI's proposer server: run through `loom run`, or pick --model-provider offline")
    p["unsafe_no_sandbox"] = 1 if str(p.get("unsafe_no_sandbox") or "").lower() in ("1", "true", "yes") else 0
    if provider != "offline":
        require_sandbox(bool(p["unsafe_no_sandbox"]))
    if p.get("resume"):
        prev = resolve_run(p["resume"], ("OptimizeFlow",), what="search to resume")
        cfg = prev.data.search_config
        for k in ("dataset", "metric", "metric_mapping", "goal", "target", "seed"):
            if p.get(k) in (None, "") and cfg.get(k) not in (None, ""):
                p[k] = cfg[k]
        prev_seal = cfg.get("seal") or {}
        for k, sk in (("time", "time"), ("group", "group"), ("holdout", "fraction")):
            if p.get(k) in (None, "") and prev_seal.get(sk) not in (None, ""):
                p[k] = prev_seal[sk]
        if p.get("dataset") != cfg.get("dataset") or p.get("target") != cfg.get("target") or \
                int(p.get("seed") or 0) != int(cfg.get("seed") or 0):
            raise UsageError(f"--resume {p['resume']} continues a search on {cfg.get('dataset')} (target {cfg.get('target')}, "
                             f"seed {cfg.get('seed')}): drop --dataset/--target/--seed or match them")
    if not p.get("dataset"):
        raise UsageError("--dataset is required: pass a data object pathspec (see `loom datasets`)")
    if not p.get("goal"):
        p["goal"] = "Predict the target for each row."
    spec = metric_spec.resolve(p.get("metric") or "", p.get("metric_mapping"))
    df, _info = load_frame(p["dataset"])
    from loom_py.verbs.optimize.search import resolve_target
    from loom_py.stats.tabular import infer_task, model_frame

    target = resolve_target(df, p.get("target"))
    p["target"] = target
    df, _notes = model_frame(df, target)  # refuses a nested or empty target before any run exists
    metric_spec.check_task(spec, infer_task(df[target].dropna()))
    from loom_py.verbs.optimize.seal import check_options

    check_options(df.columns, target, p.get("time") or None, p.get("group") or None, p.get("holdout"))
    if (p.get("executor") or "local") not in ("local", "metaflow"):
        raise UsageError(f"--executor {p.get('executor')} is unknown: pick local (default) or metaflow")
    steps = int(p.get("steps") or 10)
    if not 1 <= steps <= 500:
        raise UsageError("--steps must be between 1 and 500")
    p["steps"] = steps
    inputs = [p["dataset"]] + ([p["resume"]] if p.get("resume") else [])
    from loom_py.runtime.data import size_basis
    from loom_py.runtime.sizing import size_for
    from loom_py.verbs.optimize.search import selection_for

    tl = p.get("time_limit")
    sel = selection_for(int(df[target].notna().sum()), {"time_limit_min": float(tl) if tl not in (None, "", 0, "0") else None})
    resources = size_for("optimize", **size_basis(p["dataset"]), parallel=int(p.get("parallel") or 1),
                         folds=int(sel.get("folds") or 1), executor=p.get("executor") or "local")
    return {"params": {k: v for k, v in p.items() if v is not None and k not in ("proposer_url", "metric_fallback")},
            "inputs": inputs, "config": {"loom_resources": resources}}


def execute(flow, current) -> None:
    """Body of OptimizeFlow.start: load, search, record, render the card."""
    import shutil
    import tempfile

    from loom_py.runtime import events, flowkit
    from loom_py.runtime.data import load_frame, resolve_run
    from loom_py.verbs.optimize import sandbox, search

    spec = metric_spec.resolve(flow.metric, flow.metric_mapping or None)
    mapping = json.loads(flow.metric_mapping) if flow.metric_mapping else {}
    mapped_tokens = {k: int((mapping.get("tokens") or {}).get(k) or 0) for k in ("input", "output")}
    cfg = {"dataset": flow.dataset, "goal": flow.goal, "metric": flow.metric, "target": flow.target or None,
           "steps": int(flow.steps), "provider": flow.model_provider, "model": flow.model or None,
           "budget_usd": float(flow.budget_usd) if flow.budget_usd is not None and float(flow.budget_usd) >= 0 else None,  # -1: none; 0: no spend
           "time_limit_min": float(flow.time_limit) if flow.time_limit not in (None, "", 0, "0") else None,
           "parallel": int(flow.parallel), "seed": int(flow.seed), "node_timeout": float(flow.node_timeout),
           "mem_mb": int(flow.memory_mb), "policy": flow.policy, "spec": spec, "executor": flow.executor or "local",
           "metric_mapping": flow.metric_mapping or None, "spent_before": float(mapping.get("usd") or 0.0),
           "proposer_url": os.environ.get("LOOM_PROPOSER_URL"),
           "unsafe_no_sandbox": bool(int(getattr(flow, "unsafe_no_sandbox", 0) or 0))}
    if cfg["provider"] != "offline":
        require_sandbox(cfg["unsafe_no_sandbox"])
    prior = []
    if flow.resume:
        prior = resolve_run(flow.resume, ("OptimizeFlow",), what="search to resume").data.journal
    df, info = load_frame(flow.dataset)
    cfg["target"] = search.resolve_target(df, cfg["target"])
    from loom_py.stats.tabular import model_frame

    df, data_notes = model_frame(df, cfg["target"])  # nested columns left out, ±inf as missing (named in notes)
    for n in data_notes:
        events.progress(n)
    # the rows validate will seal for this data object and target never reach a candidate (seal.py)
    from loom_py.stats.tabular import infer_task
    from loom_py.verbs.optimize.seal import exclude

    df, cfg["seal"] = exclude(df, cfg["target"], infer_task(df[cfg["target"]]), info["content_hash"],
                              time_col=getattr(flow, "time", "") or None, group_col=getattr(flow, "group", "") or None,
                              holdout=getattr(flow, "holdout", None))
    events.progress(f"seal {cfg['seal']['id']}: {cfg['seal']['rows_excluded']} rows validate will hold out are left out of the search")
    from loom_py.verbs.optimize import leakdrop

    # eda's leakage checks on what the search will see (after the seal is left out)
    cfg["keep_leaky"] = bool(getattr(flow, "keep_leaky", False))
    df, leak_rec = leakdrop.screen(df, cfg["target"], keep_leaky=cfg["keep_leaky"],
                                   carried=info.get("carried_columns"), seed=cfg["seed"])
    workdir = tempfile.mkdtemp(prefix="loom-opt-", dir=os.environ.get("LOOM_TMP") or None)
    try:
        rec = search.run_search(df, cfg, workdir=workdir, emit=lambda kind, **kw: events.emit(kind, **kw), prior=prior)
        journal = rec["journal"]
        best = next((n for n in journal if n["id"] == rec["best_id"]), None)
        best_model = test_pred = None
        if best is not None:
            node_dir = rec.get("best_dir") or os.path.join(workdir, f"node-{best['id']:03d}")
            interrupted = rec["stopped_because"] == search.INTERRUPTED
            if not interrupted and not os.path.exists(os.path.join(node_dir, "predictions.npz")):  # a resumed search's best: re-run it
                events.progress(f"re-running node {best['id']} (the best, from {flow.resume}) for its model")
                sandbox.run_candidate(best["code"], node_dir, os.path.join(workdir, "data"), timeout=cfg["node_timeout"],
                                      mem_mb=cfg["mem_mb"])
            try:
                best_model = open(os.path.join(node_dir, "model.pkl"), "rb").read()
            except OSError:
                best_model = None
            try:
                test_pred = _test_frame(sandbox.load_predictions(node_dir))
            except (OSError, ValueError, KeyError):
                test_pred = None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    board = search.leaderboard(journal, spec)
    counts = {}
    for n in journal:
        counts[n["status"]] = counts.get(n["status"], 0) + 1
    tokens = {k: sum(n["tokens"][k] for n in journal) + mapped_tokens[k] for k in ("input", "output")}
    pub_spec = {k: spec[k] for k in ("metric", "label", "direction", "split", "source", "text")}
    if spec["source"] == "model":
        pub_spec["mapped_by"] = spec.get("mapped_by")
    pub_spec["task"] = rec["task"]
    flow.metric_spec = pub_spec
    flow.search_config = {k: v for k, v in cfg.items() if k not in ("spec", "proposer_url")}
    flow.journal = journal
    flow.leaderboard = [{k: r[k] for k in ("rank", "node", "operator", "model", "score", "seconds", "status")} for r in board]
    flow.best_code = best["code"] if best else None
    flow.best_node = {k: best[k] for k in ("id", "operator", "model", "score", "plan", "family", "params")} if best else None
    flow.best_model = best_model  # pickle bytes of the fitted estimator (module-level classes live in best_code)
    flow.test_predictions = test_pred
    flow.target_column = rec["target"]
    flow.task = rec["task"]
    flow.dropped_columns = rec["dropped_columns"]
    flow.isolation = rec["isolation"]
    overhead = [n["timings"].get("overhead") for n in journal if n.get("round", 0) and n["timings"].get("overhead") is not None]
    me = f"OptimizeFlow/{current.run_id}"
    summary = {
        "metric_spec": pub_spec,
        "best": ({"node": best["id"], "score": best["score"], "model": best["model"]} if best else None),
        "leaderboard": flow.leaderboard[:10],
        "nodes": {"total": len(journal), **counts},
        "spend": {"usd": round(rec["spend_usd"], 6), "tokens": tokens, "provider": cfg["provider"],
                  "seconds": round(rec["seconds"], 2)},
        "stopped_because": rec["stopped_because"],
        "target": rec["target"], "task": rec["task"], "dataset": flow.dataset,
        "rows": {"train": rec["train_rows"], "held_out": rec["val_rows"], "test": rec["test_rows"], "test_source": rec["test_source"]},
        "selection": {k: v for k, v in rec["selection"].items()},
        "seal": cfg["seal"],
        **({"ensemble": rec["ensemble"]} if rec.get("ensemble") else {}),  # members, weights, chosen and why
        **({"time": rec["time"]} if rec.get("time") else {}),  # how the wall clock was spent
        "overhead_seconds_per_node": round(sum(overhead) / len(overhead), 3) if overhead else None,
        "data_notes": data_notes,
        "leakage": leak_rec,
        "resources": flow.loom_resources.to_dict() if getattr(flow, "loom_resources", None) else None,  # @resources asked, and why
    }
    status = "OK" if best else "NO_SOLUTION"
    msgs = data_notes + leakdrop.messages(leak_rec) + list(spec["split"].get("notes", []))
    finished = lambda js: sum(1 for n in js if n.get("status") != "interrupted")  # noqa: E731
    left = max(1, int(cfg["steps"]) - (finished(journal) - finished(prior)))
    resume = f"loom run --resume {me} --steps {left} --model-provider {cfg['provider']}"
    if rec["stopped_because"] == search.INTERRUPTED:
        status = "INTERRUPTED"  # a finished run holding the journal so far: `--resume` continues it
        msgs.insert(0, f"interrupted: {len(journal)} nodes recorded, best so far "
                       + (f"node {best['id']} = {best['score']:.5g}" if best else "none")
                       + f", spent ${rec['spend_usd']:.4f}; continue with: {resume}")
    if rec["dropped_columns"]:
        msgs.append(f"identifier/text columns the offline library drops: {', '.join(map(str, rec['dropped_columns'][:10]))}")
    nxt = ([resume] if status == "INTERRUPTED" else []) + ([f"loom validate --model {me}"] if best else []) + [f"loom viz --run {me}"]
    if status != "INTERRUPTED":
        nxt.append(f"loom run --resume {me} --steps 10 --model-provider {cfg['provider']}")
    flow.loom_result = flowkit.result(
        status, summary, exit_code=0 if best and status == "OK" else 1,
        inputs=[flow.dataset] + ([flow.resume] if flow.resume else []), messages=msgs, next=nxt)
    _card(current, me, pub_spec, summary, board, journal, flow.best_code, status)


def _test_frame(p: dict):
    import pandas as pd

    from loom_py.verbs.optimize.scoring import _key

    df = pd.DataFrame({"prediction": p["test_labels"]})
    if "test_proba" in p and "classes" in p:
        for j, c in enumerate(p["classes"]):
            df[f"proba_{_key(c)}"] = p["test_proba"][:, j]
    return df


def _card(current, me, spec, summary, board, journal, code, status="OK"):
    from metaflow.cards import Markdown

    from loom_py.runtime import flowkit
    from loom_py.runtime.sizing import describe

    H = flowkit.h
    b = summary["best"]
    best = f"node {b['node']} {b['model']} = {b['score']:.5g}" if b else "none (every node failed)"
    reason = (f"best {spec['label']}: {best}; stopped because {summary['stopped_because']}" if b
              else f"no candidate produced a valid solution; stopped because {summary['stopped_because']}")
    n = summary["nodes"]
    current.card.append(flowkit.banner(status, reason, word="STATUS", title=f"{me}: search on {summary['dataset']}", facts=[
        ("metric", f"{spec['label']} ({spec['direction']})"), ("nodes", ", ".join(f"{k} {v}" for k, v in n.items())),
        ("spend", f"${summary['spend']['usd']:.4f} ({summary['spend']['provider']})"),
        ("tokens", str(summary["spend"]["tokens"]["input"] + summary["spend"]["tokens"]["output"]))]))
    current.card.append(flowkit.items_block([
        f"metric: {H(spec['label'])} ({H(spec['direction'])}), computed by Loom; selection: {H(summary['selection']['why'])}",
        f"best: {H(best)}", f"stopped because: {H(summary['stopped_because'])}",
        f"spend: ${summary['spend']['usd']:.4f} · {summary['spend']['tokens']['input']} input / "
        f"{summary['spend']['tokens']['output']} output tokens · {summary['spend']['seconds']} s"]
        + ([f"remote compute asked for: {H(describe(summary['resources']))}"] if summary.get("resources") else [])))
    current.card.append(Markdown("## Leaderboard"))
    current.card.append(flowkit.card_table(board, ["rank", "node", "operator", "parent", "model", "score", "seconds", "status", "error"], limit=100))
    current.card.append(Markdown("## Search tree\n\n" + flowkit.fence(tree_text(journal, summary["best"]["node"] if b else None))))
    if code:
        current.card.append(Markdown("## Best solution\n\n" + flowkit.fence(code, "python")))


def tree_text(journal, best_id=None) -> str:
    kids: dict = {}
    for n in journal:
        kids.setdefault(n.get("parent"), []).append(n)
    lines = []

    def walk(n, depth):
        s = f"{n['score']:.5g}" if n["score"] is not None else n["status"]
        star = "  ★ best" if n["id"] == best_id else ""
        lines.append(f"{'  ' * depth}- {n['id']} {n['operator']} {n.get('model') or '?'}: {s}{star}")
        for c in kids.get(n["id"], []):
            walk(c, depth + 1)

    for r in kids.get(None, []):
        walk(r, 0)
    return "\n".join(lines)


def describe(params: dict) -> dict:
    """Preflight through the bridge's call mode (before the gate): every check ``prepare`` makes, plus the
    row counts the cost gate shows. Raises UsageError (exit 2) on bad input; creates no run."""
    from loom_py.runtime.data import load_frame

    if (params.get("model_provider") or "anthropic") != "offline":  # before any model call (the metric mapping)
        require_sandbox(str(params.get("unsafe_no_sandbox") or "").lower() in ("1", "true", "yes"))
    if params.get("metric_fallback") and params.get("metric") and not params.get("metric_mapping"):
        try:
            metric_spec.parse_metric(params["metric"])
        except metric_spec.Unmapped:  # the CLI asks the model, then calls again with its answer
            return {"status": "OK", "summary": {"needs_mapping": True, "closed_set": metric_spec.closed_set(),
                                                "understood": metric_spec.UNDERSTOOD}}
    prep = prepare({**params, "proposer_url": params.get("proposer_url") or "preflight"})
    p = prep["params"]
    df, info = load_frame(p["dataset"])
    labeled = int(df[p["target"]].notna().sum())
    return {"status": "OK", "summary": {"dataset": p["dataset"], "rows": int(len(df)), "labeled_rows": labeled,
                                        "columns": int(df.shape[1]), "target": p["target"],
                                        "metric_spec": metric_spec.resolve(p["metric"], p.get("metric_mapping"))}}
