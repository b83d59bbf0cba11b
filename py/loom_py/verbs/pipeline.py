"""pipeline: the whole lifecycle as one gated run (eda → features --from → optimize → validate --model → report).

Each stage is the verb's own run, started the way the verb starts it (its ``prepare`` and its flow, through
``runtime.bridge.run_flow``) from a step of PipelineFlow, and tagged ``pipeline:<id>`` and ``stage:<name>``:
``EdaFlow/N``, ``FeaturesFlow/N``, ``OptimizeFlow/N``, ``ValidateFlow/N``, ``ReportFlow/N`` stay addressable
exactly like the verbs' own runs (validate's VERDICT is what deploy asserts; report and viz read the
search's leaderboard; plain Metaflow reads every artifact). Decision 0600 says why child runs and what it
costs.

Before a stage runs it asserts the previous stage's outcome (``assert_previous``); the first stage that
fails stops the pipeline: the later stages are recorded as skipped and the run's result names the stage
(exit 1). ``--resume PipelineFlow/N`` reads the stage records N's finished steps persisted and reuses every
stage that succeeded, up to the first that did not.
"""

from __future__ import annotations

import json
import time

from loom_py.runtime.errors import LoomError, UsageError
from loom_py.runtime.flowkit import param_list

STAGES = ("eda", "features", "optimize", "validate", "report")
FLOW_OF = {
    "eda": ("eda_flow.py", "EdaFlow", "loom_py.verbs.eda:prepare"),
    "features": ("features_flow.py", "FeaturesFlow", "loom_py.verbs.features:prepare"),
    "optimize": ("optimize_flow.py", "OptimizeFlow", "loom_py.verbs.optimize:prepare"),
    "validate": ("validate_flow.py", "ValidateFlow", "loom_py.verbs.validate:prepare"),
    "report": ("report_flow.py", "ReportFlow", "loom_py.verbs.report:prepare"),
}
WRITES = {
    "eda": "EdaFlow run: profile + leakage flags (reads the data object)",
    "features": "FeaturesFlow run: a NEW data object without eda's flagged columns",
    "optimize": "OptimizeFlow run: journal, leaderboard, best code + model (the seal left out)",
    "validate": "ValidateFlow run: the VERDICT on the sealed holdout",
    "report": "ReportFlow run: model card under .loom/artifacts/reports/",
}
PROVIDERS = ("anthropic", "openai", "offline")


# ---- options (launcher side: exit 2 before any run) ------------------------------------------------

def options_of(params: dict) -> dict:
    """The pipeline's options, normalized (what PipelineFlow stores and --resume reads back)."""
    def num(k, kind=float):
        v = params.get(k)
        if v in (None, ""):
            return None
        try:
            return kind(v)
        except (TypeError, ValueError):
            raise UsageError(f"--{k.replace('_', '-')} must be a number, got {v!r}")

    steps = num("steps", int)
    return {"dataset": params.get("dataset") or None, "target": params.get("target") or None,
            "goal": params.get("goal") or "Predict the target for each row.", "metric": params.get("metric") or None,
            "steps": 10 if steps is None else steps, "threshold": num("threshold"),
            "recipe": params.get("recipe") or "minimal", "sensitive": param_list(params.get("sensitive")),
            "time": params.get("time") or None, "group": params.get("group") or None,
            "model_provider": params.get("model_provider") or "anthropic", "model": params.get("model") or None,
            "budget_usd": num("budget_usd"), "seed": num("seed", int) or 0}


def check(opts: dict) -> dict:
    """Every check the stages' own prepare would make on the input data object, before any run exists.
    Returns what the gate shows (rows, columns, the metric spec). Raises UsageError."""
    from loom_py.runtime.data import load_frame
    from loom_py.stats.tabular import infer_task
    from loom_py.verbs import validate
    from loom_py.verbs.optimize import metric_spec
    from loom_py.verbs.optimize.seal import check_options

    if not opts["dataset"]:
        raise UsageError("--dataset is required: pass a data object pathspec (`loom datasets` lists them)")
    if not opts["target"]:
        raise UsageError("--target is required: the column to predict")
    if not opts["metric"]:
        raise UsageError('--metric is required: e.g. --metric "Maximize ROC-AUC on a held-out split."')
    if opts["model_provider"] not in PROVIDERS:
        raise UsageError(f"--model-provider {opts['model_provider']} is unknown: pick one of {', '.join(PROVIDERS)}")
    if opts["recipe"] not in ("minimal", "standard"):
        raise UsageError("--recipe must be minimal or standard")
    if not 1 <= opts["steps"] <= 500:
        raise UsageError("--steps must be between 1 and 500")
    spec = metric_spec.resolve(opts["metric"], None)
    df, info = load_frame(opts["dataset"])
    target = opts["target"]
    if target not in df.columns:
        raise UsageError(f"unknown target column '{target}': columns are {', '.join(map(str, list(df.columns)[:30]))}")
    task = infer_task(df[target].dropna())
    metric_spec.check_task(spec, task)
    check_options(df.columns, target, opts["time"], opts["group"], None)
    # validate's own option checks (sensitive columns, folds the rows allow, threshold): exit 2 now, not at stage 4
    validate.resolve_options(df, {"target": target, "metric": validate_metric(spec), "threshold": opts["threshold"],
                                  "time": opts["time"], "group": opts["group"], "sensitive": opts["sensitive"]})
    return {"rows": int(len(df)), "labeled_rows": int(df[target].notna().sum()), "columns": int(df.shape[1]),
            "task": task, "metric_spec": {k: spec[k] for k in ("metric", "label", "direction")},
            "content_hash": info.get("content_hash")}


def validate_metric(spec: dict) -> str | None:
    """The search's metric as validate names it (validate's default where it has no such metric)."""
    from loom_py.verbs import validate

    return spec["metric"] if spec["metric"] in validate.METRICS else None


def previous(pathspec: str) -> tuple[dict, list[dict]]:
    """(options, stage records) of an earlier pipeline, finished or not. The options are its parameters (the
    ``_parameters`` task is stored before any stage runs); the records are rebuilt from its stage runs, found by
    their tags ``pipeline:<id>`` + ``stage:<name>`` (a killed pipeline keeps every stage run that finished)."""
    from loom_py.runtime.data import client, resolve_run

    run = resolve_run(pathspec, ("PipelineFlow",), what="pipeline to resume", require_success=False)
    mf = client()
    try:
        opts = json.loads(mf.Step(f"{run.pathspec}/_parameters").task.data.options)
    except Exception:
        raise UsageError(f"{pathspec} has no stored options: run `loom pipeline` again without --resume")
    records = []
    for name in STAGES:
        r = stage_run(mf, FLOW_OF[name][1], run.id, name)
        if r is None:
            break
        records.append(record_of(name, {"ok": True, "pathspec": r.pathspec, "card_path": _card_path(r),
                                        **r.data.loom_result}, 0.0))
    return opts, records


def stage_run(mf, flow: str, pipeline_id: str, name: str):
    """The latest successful run of ``flow`` tagged as stage ``name`` of pipeline ``pipeline_id``, or None."""
    try:
        runs = [r for r in mf.Flow(flow).runs(f"pipeline:{pipeline_id}", f"stage:{name}") if r.successful]
    except Exception:
        return None
    return max(runs, key=lambda r: r.created_at) if runs else None


def _card_path(run):
    from loom_py.runtime.bridge import card_path_of

    try:
        return card_path_of(run)
    except Exception:
        return None


def reusable(records: list[dict]) -> dict:
    """name -> record for the stages a resume reuses: every stage that succeeded, up to the first that did not."""
    out = {}
    for r in records:
        if r.get("status") in ("OK", "WARN", "PASS") and r.get("pathspec"):
            out[r["name"]] = r
        else:
            break
    return out


def continuable(records: list[dict]) -> dict:
    """The interrupted search a resume continues (``loom run --resume``), if the first stage that did not succeed is
    an optimize stage stopped by Ctrl-C: {"pathspec", "nodes_finished"}; else {}."""
    reuse = reusable(records)
    nxt = records[len(reuse)] if len(records) > len(reuse) else None
    if nxt and nxt["name"] == "optimize" and nxt.get("status") == "INTERRUPTED" and nxt.get("pathspec"):
        return {"pathspec": nxt["pathspec"], "nodes_finished": int((nxt.get("key") or {}).get("nodes_finished") or 0)}
    return {}


def prepare(params: dict) -> dict:
    """Bridge hook for PipelineFlow: the options checked (UsageError → exit 2 before any run)."""
    if params.get("resume"):
        opts, records = previous(params["resume"])
        reuse = list(reusable(records))
    else:
        opts, reuse = options_of(params), []
    if not params.get("checked"):  # the CLI's preflight (describe) already made these checks on this input
        check(opts)
    return {"params": {"options": json.dumps(opts), "resume": params.get("resume") or ""},
            "inputs": [opts["dataset"]] + ([params["resume"]] if params.get("resume") else []), "reuse": reuse}


def describe(params: dict) -> dict:
    """The CLI's preflight (call mode, no run): the checks, the rows the gate shows, which stages a resume reuses."""
    if params.get("resume"):
        opts, records = previous(params["resume"])
        reuse = reusable(records)
        cont = continuable(records)
    else:
        opts, reuse, cont = options_of(params), {}, {}
    info = check(opts)
    return {"status": "OK", "summary": {**info, "options": opts, "reuse": list(reuse), "continues": cont or None,
                                        "writes": {s: WRITES[s] for s in STAGES}}}


# ---- the stages (inside PipelineFlow's steps) -------------------------------------------------------

class StageFailed(Exception):
    pass


def assert_previous(name: str, done: dict) -> None:
    """What a stage asserts of the stage before it (StageFailed names what is wrong)."""
    if name == "eda":
        return
    prev = STAGES[STAGES.index(name) - 1]
    r = done.get(prev)
    if r is None or r["status"] not in ("OK", "WARN", "PASS"):
        raise StageFailed(f"needs a successful {prev} stage")
    if name == "optimize":
        # leakage blocks features: every column eda flagged is gone from the features data object
        kept = [c for c in done["eda"]["key"].get("leakage_flags", []) if c in r["key"].get("columns", [])]
        if kept:
            raise StageFailed(f"{r['pathspec']} kept columns {done['eda']['pathspec']} flagged for leakage: {', '.join(kept)}")
    if name == "validate" and not r["key"].get("best"):
        raise StageFailed(f"{r['pathspec']} found no working solution")


def request(name: str, opts: dict, done: dict, pipeline_id: str, cont: dict | None = None) -> dict:
    """The verb's own request for this stage: the same params its CLI verb sends."""
    from loom_py.verbs.optimize import metric_spec

    flow, flow_name, prep = FLOW_OF[name]
    ds, tgt = opts["dataset"], opts["target"]
    if name == "eda":
        params = {"dataset": ds, "target": tgt, "time": opts["time"]}
    elif name == "features":
        params = {"dataset": ds, "target": tgt, "from": done["eda"]["pathspec"], "recipe": opts["recipe"]}
    elif name == "optimize":
        params = {"dataset": done["features"]["pathspec"], "goal": opts["goal"], "metric": opts["metric"], "target": tgt,
                  "steps": opts["steps"], "model_provider": opts["model_provider"], "model": opts["model"],
                  "budget_usd": opts["budget_usd"], "seed": opts["seed"], "time": opts["time"], "group": opts["group"]}
        if cont and cont.get("pathspec"):  # the search Ctrl-C stopped: continued, its candidates not paid for again
            params.update(resume=cont["pathspec"], steps=max(1, opts["steps"] - int(cont.get("nodes_finished") or 0)))
    elif name == "validate":
        spec = metric_spec.resolve(opts["metric"], None)
        params = {"dataset": done["features"]["pathspec"], "target": tgt, "metric": validate_metric(spec),
                  "threshold": opts["threshold"], "time": opts["time"], "group": opts["group"],
                  "sensitive": opts["sensitive"], "model": done["optimize"]["pathspec"], "bounds": {}}
    else:
        params = {"run": done["validate"]["pathspec"]}
    return {"mode": "flow", "flow": flow, "flow_name": flow_name, "prepare": prep,
            "params": {k: v for k, v in params.items() if v is not None},
            "flow_options": ["--tag", f"pipeline:{pipeline_id}", "--tag", f"stage:{name}"]}


def key_facts(name: str, reply: dict) -> dict:
    """What later stages assert and the card shows, from a stage's result."""
    s = reply.get("summary") or {}
    if name == "eda":
        return {"leakage_flags": [f["column"] for f in s.get("leakage_flags") or []]}
    if name == "features":
        return {"columns": [f["name"] for f in s.get("schema") or []],
                "dropped_for_leakage": [f["column"] for f in s.get("dropped_for_leakage") or []],
                "rows": s.get("rows")}
    if name == "optimize":
        nodes = s.get("nodes") or {}
        return {"best": s.get("best"), "seal": (s.get("seal") or {}).get("id"),
                "seal_rows_excluded": (s.get("seal") or {}).get("rows_excluded"), "stopped_because": s.get("stopped_because"),
                "nodes_finished": int(nodes.get("total") or 0) - int(nodes.get("interrupted") or 0)}
    if name == "validate":
        return {"holdout": s.get("holdout"), "seal": (s.get("seal") or {}).get("id"),
                "seal_untouched": (s.get("seal") or {}).get("untouched"), "reasons": s.get("reasons") or [],
                "cv_mean": (s.get("cv") or {}).get("mean")}
    return {"html_path": s.get("html_path"), "markdown_path": s.get("markdown_path")}


def record_of(name: str, reply: dict, seconds: float, reused_from: str | None = None) -> dict:
    ok = reply.get("ok", True)
    status = reply.get("status") or ("OK" if ok else "FAILED")
    if not ok:
        status = "FAILED"
    return {"name": name, "pathspec": reply.get("pathspec"), "status": status, "verdict": reply.get("verdict"),
            "exit_code": int(reply.get("exit_code") or 0), "seconds": round(seconds, 3),
            "card_path": reply.get("card_path"), "reused_from": reused_from, "key": key_facts(name, reply) if ok else {},
            "reason": None if ok and int(reply.get("exit_code") or 0) == 0 else
            (reply.get("message") or "; ".join((reply.get("summary") or {}).get("reasons") or [])
             or (status == "INTERRUPTED" and (reply.get("messages") or [None])[0]) or f"{name} ended {status}")}


def stage_ok(r: dict) -> bool:
    return r["status"] in ("OK", "WARN", "PASS") and r["exit_code"] == 0


def run_stage(name: str, opts: dict, records: list[dict], pipeline_id: str, reuse: dict, emit,
              reuse_from: str | None = None, cont: dict | None = None) -> list[dict]:
    """Run (or reuse, or skip) one stage; returns the records with this stage's appended."""
    from loom_py.runtime import bridge

    from loom_py.runtime import stop

    done = {r["name"]: r for r in records}
    interrupted = stop.requested() or any(r["status"] == "INTERRUPTED" for r in records)
    if interrupted or any(not stage_ok(r) for r in records):
        return records + [{"name": name, "pathspec": None, "status": "SKIPPED", "verdict": None, "exit_code": 0,
                           "seconds": 0.0, "card_path": None, "reused_from": None, "key": {},
                           "reason": "the pipeline was interrupted (Ctrl-C)" if interrupted else "an earlier stage failed"}]
    t0 = time.perf_counter()
    if name in reuse and _tag_reused(reuse[name]["pathspec"], pipeline_id, name):
        r = dict(reuse[name])
        r["reused_from"] = reuse_from
        r["seconds"] = 0.0
        emit("stage", stage=name, event="reused", pathspec=r["pathspec"], status=r["status"], verdict=r.get("verdict"))
        return records + [r]
    emit("stage", stage=name, event="start")
    try:
        assert_previous(name, done)
        req = request(name, opts, done, pipeline_id, cont)

        def relay(ev, _n=name):
            if ev.get("kind") in ("prepared",):
                return
            ev = dict(ev)
            kind = ev.pop("kind", "progress")
            emit(kind, stage=_n, **{k: v for k, v in ev.items() if k != "stage"})

        reply = bridge.run_flow(req, emit=relay)
    except StageFailed as e:
        reply = {"ok": False, "exit_code": 1, "status": "FAILED", "message": f"{name}: {e}"}
    except LoomError as e:
        reply = {"ok": False, "exit_code": e.exit_code, "status": "FAILED", "message": e.message}
    r = record_of(name, reply, time.perf_counter() - t0)
    emit("stage", stage=name, event="end", pathspec=r["pathspec"], status=r["status"], verdict=r["verdict"],
         seconds=r["seconds"], reason=r["reason"])
    return records + [r]


def _tag_reused(pathspec: str | None, pipeline_id: str, name: str) -> bool:
    """A reused stage run is still there and successful; it is tagged as this pipeline's stage too (so a resume of
    this pipeline finds it the same way)."""
    from loom_py.runtime.data import client

    try:
        run = client().Run(pathspec)
        if not run.successful:
            return False
        run.add_tags([f"pipeline:{pipeline_id}", f"stage:{name}"])
        return True
    except Exception:
        return False


def outcome(records: list[dict], opts: dict) -> dict:
    """The pipeline's result: VERDICT is validate's; the first stage that failed is named."""
    failed = next((r for r in records if not stage_ok(r) and r["status"] != "SKIPPED"), None)
    val = next((r for r in records if r["name"] == "validate"), None)
    interrupted = any(r["status"] == "INTERRUPTED" or "interrupted (Ctrl-C)" in (r.get("reason") or "") for r in records)
    verdict = None if interrupted else "FAIL" if failed else (val or {}).get("verdict")
    stages = [{k: r[k] for k in ("name", "pathspec", "status", "verdict", "seconds", "card_path", "reused_from", "reason")}
              for r in records]
    summary = {"verdict": verdict, "interrupted": interrupted, "dataset": opts["dataset"], "target": opts["target"], "stages": stages,
               "failed_stage": failed["name"] if failed else None,
               "reason": f"stage {failed['name']} ({failed['pathspec'] or 'no run'}): {failed['reason']}" if failed else
               ("interrupted (Ctrl-C) after stage " + ", ".join(r["name"] for r in records if stage_ok(r) and r["pathspec"])
                if interrupted else None),
               "seconds": round(sum(r["seconds"] for r in records), 3),
               "reused": [r["name"] for r in records if r.get("reused_from")],
               "search": (next((r for r in records if r["name"] == "optimize"), {}) or {}).get("key"),
               "validation": (val or {}).get("key"), "options": opts,
               "model_card": (next((r for r in records if r["name"] == "report"), {}) or {}).get("key", {}).get("html_path")}
    return summary
