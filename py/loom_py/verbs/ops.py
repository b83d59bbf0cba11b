"""`loom ops`: run health, the leaderboard, and a drift check of a current data object vs a reference.

Health and the leaderboard read the datastore through the Client API without creating a run (bridge
"call" mode, like ``datasets``); the drift check is a run (``OpsFlow``) whose step calls
``loom_py.stats.drift``.

Health, per flow: runs succeeded, failed, running and never finished. A run is *failed* when one of its
tasks finished with ``_task_ok`` False (Metaflow records it with the exception); *running* when it is
unfinished and a live process of this machine runs that flow in this workspace (``/proc``: the flow's
file in the command line, the workspace as its working directory); otherwise it *never finished* (its
process was killed). The one line of a failure is the Loom error event the step printed (the actionable
line), else the recorded exception, else the last error line of the task's stderr.
"""

from __future__ import annotations

import os
import re
import statistics

from loom_py.runtime.data import client, datastore_root, remote_datastore_bytes, require_datastore
from loom_py.runtime.errors import UsageError

RUNS_PER_FLOW = 200  # the newest runs of each flow that health reads
LAST_FAILURES = 10


# ---- health -------------------------------------------------------------------------------------------

def _dir_size(path: str) -> int:
    total = 0
    for base, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(base, f)).st_size
            except OSError:
                pass
    return total


def _live_flows(root: str) -> set[str]:
    """Flow class names that a live process of this machine is running with ``root`` as its cwd."""
    live: set[str] = set()
    if not os.path.isdir("/proc"):
        return live
    root = os.path.realpath(root)
    seen_files: dict[str, list[str]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) != root:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        for a in argv:
            if a.endswith(".py") and os.path.isfile(a):
                if a not in seen_files:
                    try:
                        with open(a, errors="replace") as fh:
                            seen_files[a] = re.findall(r"^class (\w+)\(", fh.read(), re.M)
                    except OSError:
                        seen_files[a] = []
                live.update(seen_files[a])
    return live


def _one_line(task) -> str:
    """Why a task failed, in one line (never a traceback)."""
    from loom_py.runtime import events

    try:
        for line in reversed((task.stdout or "").splitlines()):
            ev = events.parse_line(line)
            if ev and ev.get("kind") == "error" and ev.get("message"):
                return str(ev["message"])[:300]
    except Exception:
        pass
    try:
        exc = task["_exception"].data  # a MetaflowExceptionWrapper: type, exception (str), stacktrace
        if isinstance(exc, dict):
            t, m = exc.get("type"), exc.get("exception") or exc.get("message")
        else:
            t, m = getattr(exc, "type", None), getattr(exc, "exception", None)
        if t or m:
            t = str(t or "").rsplit(".", 1)[-1]
            m = next((l.strip() for l in str(m or "").splitlines() if l.strip()), "")
            return f"{t}: {m}".strip(": ")[:300]
    except Exception:
        pass
    try:
        lines = [l.strip() for l in (task.stderr or "").splitlines() if l.strip()]
        for l in reversed(lines):
            if ("Error" in l or "Exception" in l) and not l.startswith(("Traceback", "File ")):
                return l[:300]
        return lines[-1][:300] if lines else "no output recorded"
    except Exception:
        return "no output recorded"


def _classify(run, live: set[str]) -> tuple[str, str | None]:
    """(succeeded | failed | running | never_finished, the failure's one line)."""
    if run.successful:
        return "succeeded", None
    failed_task = None
    for step in run:
        for task in step:
            try:
                ok = task["_task_ok"].data
            except KeyError:
                continue
            except Exception:
                continue
            if ok is False:
                failed_task = task
                break
        if failed_task:
            break
    if failed_task is not None:
        return "failed", f"step {failed_task.pathspec.split('/')[2]}: {_one_line(failed_task)}"
    if run.pathspec.split("/")[0] in live:
        return "running", None
    return "never_finished", None


def _iso(t) -> str | None:
    return t.isoformat() if t else None


def health(params: dict) -> dict:
    root = require_datastore()
    # the workspace on this machine: local metadata, the artifacts, the launchers' cwd (root is s3://… on s3)
    here = os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL") or root
    mf = client()
    live = _live_flows(here)
    flows, failures, unfinished = [], [], []
    try:
        all_flows = sorted(mf.Metaflow(), key=lambda f: f.id)
    except Exception:
        all_flows = []
    for fl in all_flows:
        counts = {"succeeded": 0, "failed": 0, "running": 0, "never_finished": 0}
        durations, last = [], None
        latest_state = None
        runs = []
        try:
            for i, r in enumerate(fl.runs()):
                if i >= RUNS_PER_FLOW:
                    break
                runs.append(r)
        except Exception:
            continue
        for r in runs:  # newest first
            try:
                state, why = _classify(r, live)
            except Exception as e:
                state, why = "failed", f"unreadable run ({type(e).__name__})"
            counts[state] += 1
            latest_state = latest_state or state
            if state == "succeeded":
                try:
                    d = (r.finished_at - r.created_at).total_seconds()
                    durations.append(d)
                    last = d if last is None else last
                except Exception:
                    pass
            elif state == "failed":
                failures.append({"pathspec": r.pathspec, "created": _iso(r.created_at), "why": why})
            elif state == "never_finished":
                unfinished.append({"pathspec": r.pathspec, "created": _iso(r.created_at)})
        flows.append({"flow": fl.id, "runs": len(runs), **counts,
                      "latest": latest_state,
                      "median_seconds": round(statistics.median(durations), 3) if durations else None,
                      "last_seconds": round(last, 3) if last is not None else None})
    failures.sort(key=lambda f: f["created"] or "", reverse=True)
    unfinished.sort(key=lambda f: f["created"] or "", reverse=True)
    attention = []
    for f in flows:
        if f["latest"] == "failed":
            attention.append(f"{f['flow']}: the latest run failed")
    if unfinished:
        attention.append(f"{len(unfinished)} run(s) started but never finished (a killed process): "
                         + ", ".join(u["pathspec"] for u in unfinished[:5]))
    size = {"metaflow_bytes": _dir_size(os.path.join(here, ".metaflow")),
            "artifacts_bytes": _dir_size(os.path.join(here, "artifacts"))}
    size["metaflow_bytes"] += remote_datastore_bytes() or 0  # an s3 datastore: the bucket's share (decision 0900)
    size["total_bytes"] = size["metaflow_bytes"] + size["artifacts_bytes"]
    from loom_py.verbs.deploy import deployed_aliases

    try:
        deployed = deployed_aliases()
    except Exception as e:  # an unreadable record is reported, never a crash
        deployed, attention = [], attention + [f"deploy record unreadable: {type(e).__name__}"]
    for d in deployed:
        if d["interrupted_since"]:
            attention.append(f"{d['name']}@{d['alias']}: an apply since version {d['version']} never finished "
                             f"({', '.join(d['interrupted_since'][:3])}); `loom doctor` says what happened")
    status = "ATTENTION" if attention else "HEALTHY"
    summary = {"mode": "health", "flows": flows, "last_failures": failures[:LAST_FAILURES],
               "never_finished": unfinished, "attention": attention, "datastore": size,
               "deployed": deployed}
    nxt = ["loom doctor"] if attention else []
    return {"status": status, "verdict": status, "exit_code": 1 if attention else 0, "summary": summary,
            "messages": attention, "next": nxt}


# ---- recent runs (`loom runs`) ----------------------------------------------------------------------------

RUNS_DEFAULT_LIMIT = 20
_DATA_OBJECT_FLOWS = ("IngestDataset", "FeaturesFlow")


def recent_runs(params: dict) -> dict:
    """The newest runs of every flow in this workspace (or of ``flow``), newest first: status (succeeded, failed,
    running, interrupted — a finished run whose step stopped on Ctrl-C — or never finished), verdict, the data
    object's label and the age. Read-only; health's classification of a run (``_classify``)."""
    import datetime

    from loom_py.runtime.errors import did_you_mean

    require_datastore()
    root = datastore_root()
    mf = client()
    try:
        limit = int(params.get("limit") or RUNS_DEFAULT_LIMIT)
    except (TypeError, ValueError):
        raise UsageError(f"--limit must be a whole number, got {params.get('limit')!r}")
    if limit < 1:
        raise UsageError(f"--limit must be 1 or more, got {limit}")
    try:
        names = sorted(f.id for f in mf.Metaflow())
    except Exception:
        names = []
    want = params.get("flow") or None
    if want:
        # a verb's word names its flow too: validate → ValidateFlow, ingest → IngestDataset, run → OptimizeFlow
        alias = {"run": "OptimizeFlow", "optimize": "OptimizeFlow"}
        for n in names:
            low = n.lower()
            for key in (low, low.removesuffix("flow"), low.removesuffix("dataset")):
                alias.setdefault(key, n)
        want = want if want in names else alias.get(want.lower(), want)
        if want not in names:
            raise UsageError(f"no {want} runs in this workspace{did_you_mean(want, names)}"
                             + (f": flows here are {', '.join(names)}" if names else ": nothing has run yet"))
        names = [want]
    newest = []  # (created, run) — the newest `limit` of each flow, then the newest `limit` of them all
    for name in names:
        try:
            for i, r in enumerate(mf.Flow(name).runs()):
                if i >= limit:
                    break
                newest.append((r.created_at, r))
        except Exception:
            continue
    newest.sort(key=lambda x: x[0] or datetime.datetime.min, reverse=True)
    live = _live_flows(root)
    labels: dict[str, str | None] = {}

    def label_of(pathspec):
        if pathspec not in labels:
            try:
                d = mf.Run(pathspec).data
                labels[pathspec] = str(d.label) if "label" in d and d.label else None
            except Exception:
                labels[pathspec] = None
        return labels[pathspec]

    rows = []
    for created, r in newest[:limit]:
        try:
            state, why = _classify(r, live)
        except Exception as e:
            state, why = "failed", f"unreadable run ({type(e).__name__})"
        verdict, loom_status, label = None, None, None
        flow = r.pathspec.split("/")[0]
        if state == "succeeded":
            try:
                res = r.data.loom_result
                verdict, loom_status = res.get("verdict"), res.get("status")
                if loom_status == "INTERRUPTED":
                    state = "interrupted"
                ds = next((p for p in res.get("inputs") or [] if p.split("/")[0] in _DATA_OBJECT_FLOWS), None)
                label = label_of(r.pathspec) if flow in _DATA_OBJECT_FLOWS else (label_of(ds) if ds else None)
            except Exception:
                pass
        age = None
        if created is not None:  # the Client's times are naive local time (from the epoch milliseconds)
            now = datetime.datetime.now(created.tzinfo) if created.tzinfo else datetime.datetime.now()
            age = max(0.0, round((now - created).total_seconds(), 1))
        rows.append({"pathspec": r.pathspec, "flow": flow, "status": state, "verdict": verdict,
                     "result": loom_status, "label": label, "created": _iso(created), "age_seconds": age, "why": why})
    nxt = [f"loom open {rows[0]['pathspec']}"] if rows else ["loom ingest --source FILE"]
    return {"status": "OK", "summary": {"count": len(rows), "limit": limit, "flow": want, "runs": rows},
            "next": nxt}


# ---- leaderboard ----------------------------------------------------------------------------------------

def _runs_of(mf, flow: str):
    try:
        return [r for r in mf.Flow(flow).runs() if r.successful]
    except Exception:
        return []


def leaderboard(params: dict) -> dict:
    require_datastore()
    mf = client()
    want_ds, want_metric = params.get("dataset") or None, params.get("metric") or None
    rows = []
    for r in _runs_of(mf, "OptimizeFlow"):
        try:
            res = r.data.loom_result
        except Exception:
            continue
        s = res.get("summary") or {}
        best = s.get("best")
        if not best:
            continue
        spec = s.get("metric_spec") or {}
        rows.append({"kind": "search", "pathspec": r.pathspec, "dataset": (res.get("inputs") or [None])[0],
                     "metric": spec.get("metric"), "direction": spec.get("direction"),
                     "score": best.get("score"), "node": best.get("node"), "model": best.get("model"),
                     "when": _iso(r.created_at)})
    for r in _runs_of(mf, "ValidateFlow"):
        try:
            res = r.data.loom_result
        except Exception:
            continue
        s = res.get("summary") or {}
        ho = (s.get("holdout") or {}).get("value")
        if ho is None:
            continue
        ds = s.get("dataset") or {}
        rows.append({"kind": "validate", "pathspec": r.pathspec,
                     "dataset": ds.get("pathspec") if isinstance(ds, dict) else ds,
                     "metric": s.get("metric"), "direction": (s.get("thresholds") or {}).get("metric_direction"),
                     "score": ho, "node": None, "model": (s.get("model") or {}).get("name"),
                     "when": _iso(r.created_at), "verdict": res.get("verdict")})
    if want_ds:
        rows = [x for x in rows if x["dataset"] == want_ds]
    if want_metric:
        m = want_metric.lower()
        rows = [x for x in rows if m in str(x["metric"] or "").lower()]

    rows, msgs = rank(rows)
    summary = {"mode": "leaderboard", "dataset": want_ds, "metric": want_metric, "rows": rows}
    nxt = [] if rows else ["loom run --dataset PATHSPEC --goal ... --metric ..."]
    return {"status": "OK", "summary": summary, "messages": msgs, "next": nxt}


def rank(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """Best first within each metric (its direction: minimize → ascending), rank 1.. per metric."""
    rows = [x for x in rows if isinstance(x.get("score"), (int, float)) and x["score"] == x["score"]]

    def key(x):
        lower = str(x.get("direction") or "").startswith(("min", "lower"))
        return (str(x["metric"]), x["score"] if lower else -x["score"], x.get("when") or "")
    rows.sort(key=key)
    seen: dict[str, int] = {}
    for x in rows:
        seen[str(x["metric"])] = seen.get(str(x["metric"]), 0) + 1
        x["rank"] = seen[str(x["metric"])]
    metrics = sorted(seen)
    msgs = [] if len(metrics) <= 1 else [f"{len(metrics)} metrics: ranked within each ({', '.join(metrics)})"]
    return rows, msgs


# ---- drift (OpsFlow) -----------------------------------------------------------------------------------

def prepare(params: dict) -> dict:
    from loom_py.runtime.data import light_info, resolve_dataset

    cur, ref = params.get("dataset") or "", params.get("reference") or ""
    if not cur or not ref:
        raise UsageError("the drift check needs both --dataset CURRENT and --reference REFERENCE (data object pathspecs)")
    if cur == ref:
        raise UsageError("--dataset and --reference are the same data object: pass the current data and the reference it is compared with")
    require_datastore()
    info = {}
    for flag, p in (("dataset", cur), ("reference", ref)):
        info[flag] = light_info(resolve_dataset(p))
    cols = params.get("columns") or []
    if isinstance(cols, str):
        cols = [c for c in re.split(r"[,\s]+", cols) if c]
    names = {k: [f["name"] for f in v["schema"]] for k, v in info.items()}
    want = list(cols) + ([params["target"]] if params.get("target") else [])
    if want:
        miss_ref = [c for c in want if c not in names["reference"]]
        miss_cur = [c for c in want if c not in names["dataset"]]
    else:
        miss_ref = [c for c in names["dataset"] if c not in names["reference"]]
        miss_cur = [c for c in names["reference"] if c not in names["dataset"]]
    if miss_ref or miss_cur:
        parts = []
        if miss_ref:
            parts.append(f"not in the reference {ref}: " + ", ".join(miss_ref[:20]))
        if miss_cur:
            parts.append(f"not in the current {cur}: " + ", ".join(miss_cur[:20]))
        raise UsageError("the schemas do not line up: " + "; ".join(parts)
                         + ("" if want else "; pass --columns to compare the shared ones"))
    types = {k: {f["name"]: str(f.get("type", "")) for f in v["schema"]} for k, v in info.items()}
    numeric = lambda t: bool(re.match(r"^(u?int\d*|float\d*|double|halffloat|decimal)", t))  # noqa: E731
    shared = want or [c for c in names["reference"] if c in names["dataset"]]
    bad = [c for c in shared if numeric(types["reference"][c]) != numeric(types["dataset"][c])
           and "null" not in (types["reference"][c], types["dataset"][c])]
    if bad:
        raise UsageError("columns numeric in one table and not in the other: "
                         + ", ".join(f"{c} ({types['reference'][c]} in the reference, {types['dataset'][c]} now)" for c in bad[:10])
                         + " (fix their types, or leave them out with --columns)")
    from loom_py.verbs import ops_champion

    champion = ops_champion.resolve(params, types, {"dataset": cur, "reference": ref})
    return {"params": {"dataset": cur, "reference": ref, "columns": ",".join(cols), "target": params.get("target") or "",
                       **champion},
            "inputs": [cur, ref]}


def drift_summary(res: dict, current: str, reference: str, info_cur: dict, info_ref: dict,
                  prediction: dict | None = None) -> dict:
    """The drift check's summary; ``prediction``: the deployed champion's prediction drift
    (``ops_champion.assess``), whose drift alone also makes the verdict DRIFT."""
    from loom_py.verbs import ops_champion

    tgt = res["target"]
    pred = prediction or ops_champion.not_assessed(ops_champion.NOT_DEPLOYED)
    drift_verdict = res["dataset_drift"] or bool(tgt and tgt["drifted"]) or bool(pred["drifted"])
    reasons = []
    if res["dataset_drift"]:
        reasons.append(f"{res['drifted']} of {res['tested']} columns drifted (share {res['drifted_share']:.2f} ≥ "
                       f"{res['drift_share_threshold']})")
    if tgt and tgt["drifted"]:
        reasons.append(f"the target {tgt['column']} drifted ({tgt['test_name']} {tgt['statistic']:.4g})")
    if pred["drifted"]:
        m = pred["model"]
        what = "; ".join(f"{r['column']} {r['test_name']} {r['statistic']:.4g}" for r in pred["columns"] if r["drifted"])
        reasons.append(f"the predictions of the deployed {m['name']}@{m['alias']} (version {m['version']}) drifted ({what})")
    return {"mode": "drift", "verdict": "DRIFT" if drift_verdict else "NO_DRIFT",
            "current": {"pathspec": current, "rows": res["current_rows"], "content_hash": info_cur.get("content_hash")},
            "reference": {"pathspec": reference, "rows": res["reference_rows"], "content_hash": info_ref.get("content_hash")},
            "columns": res["columns"], "tested": res["tested"], "drifted": res["drifted"],
            "drifted_share": res["drifted_share"], "drift_share_threshold": res["drift_share_threshold"],
            "dataset_drift": res["dataset_drift"], "target": tgt, "missing_changed": res["missing_changed"],
            "new_categories": res["new_categories"], "reasons": reasons,
            "drifted_columns": [r["column"] for r in res["columns"] if r["drifted"]],
            "prediction_drift": pred}


def verdict_reason(s: dict) -> str:
    """The verdict's one-line reason: what drifted (columns, the target, the deployed model's predictions)."""
    if s["reasons"]:
        return "; ".join(s["reasons"])
    p = s["prediction_drift"]
    checked = "columns, target" if s["target"] else "columns"
    return f"no drift in the {checked}" + (" or the deployed model's predictions" if p["assessed"] else "")


def prediction_line(p: dict) -> str:
    """One line on the deployed champion's prediction drift (card header)."""
    if not p["assessed"]:
        return f"prediction drift: {p['reason']}"
    m = p["model"]
    what = ", ".join(f"{r['column']} {'DRIFT' if r['drifted'] else 'no drift'}" for r in p["columns"] if r["test"])
    return f"prediction drift of the deployed {m['name']}@{m['alias']} (version {m['version']}): {what}"


def drift_chart(ref_s, cur_s, rec: dict) -> dict:
    """Reference vs current distribution of one column as a Vega-Lite spec (shares per bin or value)."""
    import numpy as np

    from loom_py.runtime import charts

    title = f"{charts.short(rec['column'], 40)}: {rec['test_name']} {rec['statistic']:.3g} ({'DRIFT' if rec['drifted'] else 'no drift'})"
    values = []
    if rec["kind"] == "numeric":
        u = ref_s.to_numpy(dtype="float64", na_value=np.nan)
        v = cur_s.to_numpy(dtype="float64", na_value=np.nan)
        u, v = u[np.isfinite(u)], v[np.isfinite(v)]
        both = np.concatenate([u, v])
        lo, hi = np.quantile(both, [0.005, 0.995]) if len(both) else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, 31)
        for name, a in (("reference", u), ("current", v)):
            cnt = np.histogram(np.clip(a, lo, hi), edges)[0] / max(1, len(a))
            values += [{"table": name, "from": float(edges[i]), "to": float(edges[i + 1]), "share": float(c)}
                       for i, c in enumerate(cnt)]
        enc = {"x": {"field": "from", "type": "quantitative", "title": charts.short(rec["column"])},
               "x2": {"field": "to"}, "y": {"field": "share", "type": "quantitative", "title": "share of rows",
                                            "stack": None},
               "color": {"field": "table", "type": "nominal"}, "opacity": {"value": 0.55}}
        mark = "bar"
    else:
        rc = charts.top_counts(ref_s, 12)
        cc = cur_s.astype("object").where(cur_s.notna(), "(missing)").astype(str).value_counts()
        keys = list(rc.index) + [k for k in cc.index[:12] if k not in rc.index][:4]
        for name, s, vc in (("reference", ref_s, rc), ("current", cur_s, cc)):
            n = max(1, len(s))
            values += [{"table": name, "value": charts.short(k, 24), "share": float(vc.get(k, 0)) / n} for k in keys]
        enc = {"x": {"field": "value", "type": "nominal", "title": charts.short(rec["column"]), "sort": None},
               "xOffset": {"field": "table"}, "y": {"field": "share", "type": "quantitative", "title": "share of rows"},
               "color": {"field": "table", "type": "nominal"}}
        mark = "bar"
    return {"$schema": charts.VEGA_SCHEMA, "title": title, "width": 380, "data": {"values": values},
            "mark": mark, "encoding": enc}
