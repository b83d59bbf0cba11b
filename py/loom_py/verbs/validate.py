"""validate: the rigorous VERDICT that gates promotion.

``prepare(params)`` (launcher, before any run) checks the input and refuses bad input with one line.
``evaluate(df, opts, ...)`` (inside ValidateFlow) does the work on a plain DataFrame:

1. the sealed holdout (``splits.carve_holdout``): derived from the data object's content hash and the
   split choices; its rows never enter cross-validation;
2. cross-validation on the remaining rows: purged K-fold with embargo (``--time``), group K-fold
   (``--group``), stratified K-fold (classification) or K-fold (regression);
3. one fit on all CV rows, scored once on the holdout;
4. calibration (classification), per-slice / fairness (``--sensitive``), leakage
   (``leakage.find_leaks`` on the CV rows, duplicated rows between CV data and holdout, a holdout
   score implausibly above CV);
5. the VERDICT: PASS only when every check passes; otherwise FAIL with one reason per failed check.
"""

from __future__ import annotations

import contextlib
import json
import math
import time

import numpy as np

from loom_py.runtime import stop
from loom_py.runtime.errors import UsageError, did_you_mean
from loom_py.runtime.flowkit import param_list

# metric -> (task, higher is better, uses probabilities)
METRICS = {
    "roc_auc": ("classification", True, True),
    "log_loss": ("classification", False, True),
    "accuracy": ("classification", True, False),
    "f1": ("classification", True, False),
    "pr_auc": ("classification", True, True),
    "rmse": ("regression", False, False),
    "mae": ("regression", False, False),
    "r2": ("regression", True, False),
}
DEFAULT_METRIC = {"classification": "roc_auc", "regression": "rmse"}
BOUNDED_SCORE = {"roc_auc", "accuracy", "f1", "pr_auc", "r2"}

# defaults for the verdict's bounds (all overridable; all written in summary.thresholds)
DEFAULT_BOUNDS = {
    "cv_tolerance": None,           # None: 0.05 for bounded scores, 10% of |CV mean| for errors / log loss
    "z_leak": 3.0,                  # holdout vs CV: the gap must exceed this many combined standard errors
    "z_baseline": 1.96,             # the model must beat the trivial baseline by this many standard errors
    "max_ece": 0.10,
    "min_slope": 0.8,               # calibration slope bounds (logistic recalibration), judged on its 95% CI
    "max_slope": 1.25,
    "max_abs_intercept": 0.5,       # calibration-in-the-large (log-odds), judged on its 95% CI
    "min_calibration_rows": 200,    # fewer holdout rows: slope/intercept reported, not judged
    "max_dp_diff": 0.10,
    "max_eo_diff": 0.10,
    "min_group": 30,
    "max_duplicate_share": 0.01,    # share of holdout rows that also occur (whole row) in the CV data
}
DEFAULT_FOLDS = 5
CALIBRATE = ("sigmoid", "isotonic")  # --calibrate: scikit-learn's CalibratedClassifierCV around the model


# ---- metrics ---------------------------------------------------------------------------------------

def score(metric: str, y_true, proba=None, pred=None, classes=None) -> float:
    from sklearn import metrics as M

    y_true = np.asarray(y_true)
    if metric == "rmse":
        return float(np.sqrt(M.mean_squared_error(y_true, pred)))
    if metric == "mae":
        return float(M.mean_absolute_error(y_true, pred))
    if metric == "r2":
        return float(M.r2_score(y_true, pred))
    classes = list(classes)
    binary = len(classes) == 2
    if pred is not None and y_true.dtype.kind in "biuf" and np.asarray(pred).dtype == object:
        pred = np.asarray(pred).astype(y_true.dtype)  # one predicted class as objects reads as "unknown" to sklearn
    if metric == "accuracy":
        return float(M.accuracy_score(y_true, pred))
    if metric == "f1":
        if binary:
            return float(M.f1_score(y_true, pred, pos_label=classes[1]))
        return float(M.f1_score(y_true, pred, average="macro", labels=classes))
    if metric == "log_loss":
        return float(M.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=classes))
    if metric == "roc_auc":
        if binary:
            return float(M.roc_auc_score(y_true == classes[1], proba[:, 1]))
        present = [i for i, c in enumerate(classes) if (y_true == c).any()]
        p = proba[:, present]
        p = p / p.sum(1, keepdims=True)
        return float(M.roc_auc_score(y_true, p, multi_class="ovr", average="macro",
                                     labels=[classes[i] for i in present]))
    if metric == "pr_auc":
        if binary:
            return float(M.average_precision_score(y_true == classes[1], proba[:, 1]))
        onehot = (y_true.reshape(-1, 1) == np.asarray(classes, dtype=object).reshape(1, -1))
        keep = onehot.any(0)
        return float(M.average_precision_score(onehot[:, keep], proba[:, keep], average="macro"))
    raise ValueError(metric)


def better(metric: str, a: float, b: float) -> bool:
    """a is better than b."""
    return a > b if METRICS[metric][1] else a < b


def _proba_full(est, X, classes) -> np.ndarray:
    """predict_proba with columns aligned to ``classes`` (a fold may miss a rare class)."""
    p = np.asarray(est.predict_proba(X), dtype="float64")
    est_classes = list(getattr(est, "classes_", classes))
    if est_classes == list(classes):
        return p
    out = np.zeros((len(p), len(classes)))
    pos = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(est_classes):
        out[:, pos[c]] = p[:, j]
    return out


# ---- input checks (launcher side, exit 2) ----------------------------------------------------------

def bound_overrides(params: dict) -> dict:
    """Bounds given as ``bounds`` (dict or JSON) and/or as top-level keys named like DEFAULT_BOUNDS."""
    over = params.get("bounds") or {}
    if isinstance(over, str):
        try:
            over = json.loads(over or "{}")
        except ValueError:
            raise UsageError(f"bounds must be a JSON object, got {over!r}")
    over = dict(over)
    for k in DEFAULT_BOUNDS:
        if params.get(k) not in (None, ""):
            over[k] = params[k]
    out = {}
    for k, v in over.items():
        if v is None:
            continue
        if k not in DEFAULT_BOUNDS:
            raise UsageError(f"unknown bound '{k}': use {', '.join(DEFAULT_BOUNDS)}")
        try:
            out[k] = int(v) if k in ("min_group", "min_calibration_rows") else float(v)
        except (TypeError, ValueError):
            raise UsageError(f"bound {k} must be a number, got {v!r}")
    return out


def seal_key(params: dict) -> tuple:
    """(target, time column, group column, holdout share): what the seal's id depends on, normalized as
    ``resolve_options`` resolves them (the step computes the seal's id before the data is loaded)."""
    from loom_py.stats import splits

    return (params.get("target"), params.get("time") or None, params.get("group") or None,
            float(params.get("holdout") or splits.DEFAULT_HOLDOUT))


def resolve_options(df, params: dict, columns: list[str] | None = None) -> dict:
    """Check every option against the frame; return the resolved options. Raises UsageError.

    ``columns``: every column of the data object, when ``df`` holds only the columns the options name
    (the launcher reads just those; see ``prepare``)."""
    import pandas as pd

    from loom_py.stats import splits
    from loom_py.stats.tabular import infer_task

    cols = list(df.columns) if columns is None else list(columns)
    listing = ", ".join(map(str, cols[:30])) + (" …" if len(cols) > 30 else "")
    target = params.get("target")
    if not target:
        raise UsageError("validate needs --target COL (the column to predict)")
    if target not in cols:
        raise UsageError(f"unknown target column '{target}'{did_you_mean(target, cols)}: columns are {listing}")
    y = df[target].dropna()
    if len(y) == 0:
        raise UsageError(f"target '{target}' has no values: pick another --target")
    if y.nunique() < 2:
        raise UsageError(f"target '{target}' is constant ({y.iloc[0]!r}): nothing to predict; pick another --target")
    task = params.get("task") or infer_task(df[target])
    n_classes = int(y.nunique()) if task == "classification" else 0
    metric = params.get("metric") or DEFAULT_METRIC[task]
    if metric not in METRICS:
        raise UsageError(f"unknown --metric '{metric}': use one of {', '.join(METRICS)}")
    if METRICS[metric][0] != task:
        fits = ", ".join(m for m, v in METRICS.items() if v[0] == task)
        raise UsageError(f"--metric {metric} is for {METRICS[metric][0]}, but '{target}' is a {task} target: use {fits}")
    for flag, col in (("--time", params.get("time")), ("--group", params.get("group"))):
        if col and col not in cols:
            raise UsageError(f"unknown {flag} column '{col}'{did_you_mean(col, cols)}: columns are {listing}")
        if col and col == target:
            raise UsageError(f"{flag} cannot be the target column")
    _, time_col, group_col, holdout = seal_key(params)
    if time_col and group_col:
        raise UsageError("pass --time or --group, not both (purged K-fold orders by time; group K-fold by entity)")
    if params.get("horizon") not in (None, "", 0, "0") and not time_col:
        raise UsageError("--horizon needs --time COL (the label horizon is measured along the time column)")
    sensitive = param_list(params.get("sensitive"))
    for s in sensitive:
        if s not in cols:
            encoded = [c for c in cols if str(c).startswith(f"{s}__")]
            if encoded:
                raise UsageError(f"--sensitive {s} was encoded by features into {', '.join(encoded[:4])}"
                                 f"{' …' if len(encoded) > 4 else ''}: rerun `loom features` with --sensitive {s} "
                                 "to carry the original column (kept for slicing, not a model input)")
            raise UsageError(f"unknown --sensitive column '{s}'{did_you_mean(s, cols)}: columns are {listing}")
        if s == target:
            raise UsageError("--sensitive cannot be the target column")
        if df[s].astype("string").fillna("<missing>").nunique() < 2:
            raise UsageError(f"--sensitive {s} has a single group: per-group results need at least two")
    try:
        folds = int(params.get("folds") or DEFAULT_FOLDS)
    except (TypeError, ValueError):
        raise UsageError(f"--folds must be a whole number, got {params.get('folds')!r}")
    if folds < 2:
        raise UsageError(f"--folds must be at least 2, got {folds}")
    try:
        seed = int(params.get("seed") or 0)
    except (TypeError, ValueError):
        raise UsageError(f"--seed must be a whole number, got {params.get('seed')!r}")
    if not 0.05 <= holdout <= 0.5:
        raise UsageError(f"--holdout must be a share between 0.05 and 0.5, got {holdout}")
    embargo = params.get("embargo")
    embargo = splits.DEFAULT_EMBARGO if embargo in (None, "") else float(embargo)
    if not 0 <= embargo <= 0.2:
        raise UsageError(f"--embargo must be a share of rows between 0 and 0.2, got {embargo}")
    threshold = params.get("threshold")
    if threshold not in (None, ""):
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise UsageError(f"--threshold must be a number, got {threshold!r}")
    else:
        threshold = None
    decision = params.get("decision_threshold")
    if decision not in (None, ""):
        try:
            decision = float(decision)
        except (TypeError, ValueError):
            raise UsageError(f"--decision-threshold must be a probability between 0 and 1, got {decision!r}")
        if not 0 < decision < 1:
            raise UsageError(f"--decision-threshold must be a probability between 0 and 1 (exclusive), got {decision:g}")
    else:
        decision = None
    calibrate = params.get("calibrate") or None
    if calibrate and calibrate not in CALIBRATE:
        raise UsageError(f"--calibrate must be one of {', '.join(CALIBRATE)}, got {calibrate!r}")
    if calibrate and task != "classification":
        raise UsageError(f"--calibrate wraps a classifier; '{target}' is a {task} target")
    carried = [c for c in param_list(params.get("carried")) if c in cols and c != target]
    bounds = dict(DEFAULT_BOUNDS)
    over = bound_overrides(params)
    for k, v in over.items():
        if v is None:
            continue
        bounds[k] = v
    t0 = None
    kind = None
    horizon = 0.0
    if time_col:
        t0, kind = splits.time_values(df[time_col])
        if t0 is None or np.isnan(t0[df[target].notna().to_numpy()]).any():
            raise UsageError(f"--time {time_col} does not parse as dates or numbers on every row: pick an ordering column")
        try:
            horizon = splits.horizon_value(params.get("horizon"), kind)
        except ValueError as e:
            raise UsageError(str(e))
        if horizon < 0:
            raise UsageError("--horizon must not be negative")
    # folds against what the rows allow (on the rows left for CV: all rows less the holdout share)
    n = int(df[target].notna().sum())
    n_cv = n - int(round(holdout * n))
    if time_col:
        scheme = "purged_kfold"
        allowed = n_cv // 2
    elif group_col:
        scheme = "group_kfold"
        allowed = int(df[group_col].nunique() * (1 - holdout))
    elif task == "classification":
        scheme = "stratified_kfold"
        allowed = int(y.value_counts().min() * (1 - holdout))
    else:
        scheme = "kfold"
        allowed = n_cv
    if folds > allowed:
        what = {"group_kfold": f"groups of {group_col}", "stratified_kfold": "rows in the rarest class"}.get(scheme, "rows")
        raise UsageError(f"--folds {folds} is more than the data allows ({allowed} from the {what} left after the "
                         f"holdout): use --folds {max(2, min(allowed, DEFAULT_FOLDS))} or fewer")
    if allowed < 2:
        raise UsageError(f"too few rows to cross-validate '{target}' ({n} rows with a target)")
    return {"target": target, "task": task, "n_classes": n_classes, "metric": metric, "time": time_col,
            "group": group_col, "horizon": horizon, "horizon_text": str(params.get("horizon") or 0),
            "time_kind": kind, "sensitive": sensitive, "folds": folds, "seed": seed, "holdout": holdout,
            "embargo": embargo, "threshold": threshold, "bounds": bounds, "scheme": scheme,
            "model": params.get("model") or None, "decision_threshold": decision, "calibrate": calibrate,
            "carried": carried}


def prepare(params: dict) -> dict:
    """Bridge hook: assert the data object, check the options (UsageError → exit 2), hand the flow its params."""
    ds = params.get("dataset")
    if params.get("model") and (not ds or not params.get("target")):
        # `loom validate --model OptimizeFlow/N`: the data object and target come from the search
        from loom_py.verbs.solution import solution_info

        searched = solution_info(params["model"])
        ds = ds or searched.get("dataset")
        params = {**params, "dataset": ds, "target": params.get("target") or searched.get("target")}
    if not ds:
        raise UsageError("validate needs --dataset (a label or IngestDataset/N; `loom datasets` lists them)")
    df, columns = option_columns(ds, params)
    opts = resolve_options(df, params, columns)
    if opts["model"]:
        model_factory(opts["model"], opts["target"])  # refuses an unusable --model before anything is written
    flow_params = {
        "dataset": ds, "target": opts["target"], "metric": opts["metric"],
        "threshold": "" if opts["threshold"] is None else repr(opts["threshold"]),
        "time": opts["time"] or "", "horizon": opts["horizon_text"] if opts["time"] else "",
        "group": opts["group"] or "", "sensitive": json.dumps(opts["sensitive"]), "folds": opts["folds"],
        "model": opts["model"] or "", "seed": opts["seed"], "holdout": opts["holdout"],
        "embargo": opts["embargo"], "bounds": json.dumps(bound_overrides(params)),
        "decision_threshold": "" if opts["decision_threshold"] is None else repr(opts["decision_threshold"]),
        "calibrate": opts["calibrate"] or "",
    }
    inputs = [ds] + ([opts["model"]] if opts["model"] else [])
    from loom_py.runtime.data import size_basis
    from loom_py.runtime.sizing import size_for

    resources = size_for("validate", **size_basis(ds), folds=int(opts["folds"] or 1))  # @resources of the fit step
    return {"params": flow_params, "inputs": inputs, "config": {"loom_resources": resources}}


def rerun_command(dataset: str, opts: dict, **extra) -> str:
    """The `loom validate` command that reruns this evaluation with ``extra`` options added."""
    parts = ["loom validate", f"--dataset {dataset}", f"--target {opts['target']}"]
    for flag, key in (("--metric", "metric"), ("--time", "time"), ("--group", "group"), ("--model", "model"),
                      ("--threshold", "threshold"), ("--decision-threshold", "decision_threshold")):
        if opts.get(key) not in (None, ""):
            parts.append(f"{flag} {opts[key]:g}" if isinstance(opts[key], float) else f"{flag} {opts[key]}")
    parts += [f"--sensitive {c}" for c in opts.get("sensitive") or []]
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in extra.items()]
    return " ".join(parts)


def interrupted(done: dict, opts: dict, dataset: str, info: dict, model_name: str, model_source: str) -> dict:
    """What an interrupted validate records (Ctrl-C: the running fold ended): the folds that finished, where it
    stopped, and the command that runs the evaluation again. The sealed holdout was not scored, so the run is
    no look at it. Returns {summary, messages, next}."""
    per_fold = list(done.get("per_fold") or [])
    n = int(done.get("folds") or 0)
    summary = {"interrupted": True, "verdict": None, "stopped_at": done.get("stopped_at"),
               "folds_finished": len(per_fold), "cv": {"scheme": done.get("scheme"), "folds": n, "per_fold": per_fold},
               "dataset": {"pathspec": dataset, "label": info.get("label"), "rows": info.get("rows"),
                           "content_hash": info.get("content_hash")},
               "target": opts["target"], "task": opts["task"], "metric": opts["metric"],
               "model": {"name": model_name, "source": model_source}, "holdout_scored": False}
    extra = {}
    if opts.get("folds") not in (None, DEFAULT_FOLDS):
        extra["folds"] = opts["folds"]
    if opts.get("seed"):
        extra["seed"] = opts["seed"]
    if opts.get("calibrate"):
        extra["calibrate"] = opts["calibrate"]
    if opts.get("time") and opts.get("horizon_text"):
        extra["horizon"] = opts["horizon_text"]
    msg = (f"interrupted at {done.get('stopped_at')}: {len(per_fold)} of {n} folds finished; the sealed holdout "
           "was not scored, so this run is not a look at it")
    again = rerun_command(dataset, opts, **extra)
    # what deploy and report say of this run: no verdict, and why
    summary["reasons"] = [f"interrupted (Ctrl-C) at {done.get('stopped_at')}, before a verdict: run `{again}`"]
    return {"summary": summary, "messages": [msg], "next": [again]}


def option_columns(ds: str, params: dict):
    """(frame of only the columns the options name, every column name) for the launcher's checks.

    The checks look at the target, time, group and sensitive columns only; reading just those (Parquet
    column projection) instead of the whole table keeps prepare's cost flat in the width and size of the
    data (the step loads the whole table anyway)."""
    import io

    from loom_py.runtime.data import load_frame, resolve_dataset

    run = resolve_dataset(ds)
    try:
        names = [f["name"] for f in run.data.schema] if "schema" in run.data else []
    except Exception:
        names = []
    if not names:  # an older data object without a schema artifact: read it all
        df, _ = load_frame(ds)
        return prepared_frame(df, params)[0], list(df.columns)
    from loom_py.stats.tabular import nested_in_schema, nothing_left

    nested = nested_in_schema(run.data.schema)
    target = params.get("target")
    if target in names and nested and not [c for c in names if c != target and c not in nested]:
        raise UsageError(nothing_left(target, nested))
    wanted = [params.get("target"), params.get("time"), params.get("group")] + param_list(params.get("sensitive"))
    needed = list(dict.fromkeys(c for c in wanted if c and c in names))
    try:
        import pyarrow.parquet as pq

        from loom_py.runtime.data import verified_bytes

        table = pq.ParquetFile(io.BytesIO(verified_bytes(run))).read(columns=needed)
        df = table.to_pandas()
    except UsageError:
        raise
    except Exception as e:
        raise UsageError(f"could not read {ds} from the datastore ({type(e).__name__}): it looks damaged; run `loom doctor`")
    return prepared_frame(df, params)[0], names


def prepared_frame(df, params: dict):
    """(frame, notes): the data object as the model and the checks take it — nested columns left out
    (or JSON text when an option names them), ±inf as missing (``stats.tabular.model_frame``)."""
    from loom_py.stats.tabular import model_frame

    named = [params.get("time"), params.get("group")] + param_list(params.get("sensitive"))
    target = params.get("target")
    return model_frame(df, target if target in df.columns else None, keep=[c for c in named if c])


# ---- the model ---------------------------------------------------------------------------------------

def model_factory(model: str | None, target: str | None = None):
    """(factory(task, X, seed) -> unfitted estimator, name, source). ``model``: an OptimizeFlow run
    pathspec (its best solution, through ``loom_py.verbs.solution``) or None for the default model."""
    from loom_py.stats import tabular

    if not model:
        return tabular.default_model, tabular.DEFAULT_MODEL_NAME, "default"
    from loom_py.verbs.solution import sandboxed_solution, solution_info

    info = solution_info(model)
    if target and info.get("target") and info["target"] != target:
        raise UsageError(f"{model} was searched for target '{info['target']}', not '{target}': "
                         f"pass --target {info['target']} or another --model")
    # model-written code: fitted and asked for predictions in the OS sandbox only, never imported here
    if info.get("provider") not in (None, "offline"):
        from loom_py.verbs.optimize import sandbox

        if sandbox.os_sandbox() is None:
            raise UsageError(f"{model}'s solution was written by a model ({info['provider']}) and there is no OS sandbox "
                             f"here to run it in: {sandbox.install_hint()}")
    solution = sandboxed_solution(model)
    best = info.get("best") or {}
    tag = best.get("id") if isinstance(best, dict) else None
    final = best.get("model") if isinstance(best, dict) else None
    name = f"best solution of {model}" + (f" (node {tag})" if tag is not None else "") + (f": {final}" if final else "")
    return solution, name, model


def calibrated(factory, method: str):
    """``--calibrate``: the model wrapped in scikit-learn's CalibratedClassifierCV (3 internal folds, so
    the calibration map is fitted on rows the wrapped model did not train on). A model-written solution is
    wrapped inside the sandbox: its ``make_model`` is wrapped in the code it runs, nothing runs here."""
    if getattr(factory, "model_written", False):
        return factory.calibrated(method)

    def make(task, X, seed, _f=factory):
        from sklearn.calibration import CalibratedClassifierCV

        return CalibratedClassifierCV(_f(task, X, seed), method=method, cv=3)

    return make


# ---- evaluation ------------------------------------------------------------------------------------

class _Clock:
    def __init__(self):
        self.fit = 0.0
        self.holdout_model = None  # the estimator the holdout was scored with (deploy packages it)
        self.holdout_model_bytes = None  # … or, for model-written code, its pickle from the sandbox (never loaded here)

    def timed(self, fn, *a):
        t = time.perf_counter()
        out = fn(*a)
        self.fit += time.perf_counter() - t
        return out


def _fit_predict_sandboxed(clock, solution, task, X_tr, y_tr, X_te, classes):
    """A model-written solution: fit and predict in the OS sandbox; probabilities aligned to ``classes``."""
    t = time.perf_counter()
    labels, proba, est_classes = solution.fit_predict(task, X_tr, y_tr, X_te)
    clock.fit += time.perf_counter() - t
    if task != "classification":
        return None, np.asarray(labels, dtype="float64")
    if proba is None:  # a label-only model: its probabilities are 0/1
        labels = np.asarray(labels, dtype=object)
        return (labels.reshape(-1, 1) == np.asarray(classes, dtype=object).reshape(1, -1)).astype(float), labels
    p = np.asarray(proba, dtype="float64")
    # predictions.npz stores object labels as strings: match the classes by their text
    pos = {str(c): i for i, c in enumerate(classes)}
    full = np.zeros((len(p), len(classes)))
    for j, c in enumerate(est_classes):
        if str(c) in pos:
            full[:, pos[str(c)]] = p[:, j]
    return full, np.asarray(classes, dtype=object)[full.argmax(1)]


def _fit_predict(clock, factory, task, X_tr, y_tr, X_te, seed, classes, keep: bool = False):
    if getattr(factory, "model_written", False):
        out = _fit_predict_sandboxed(clock, factory, task, X_tr, y_tr, X_te, classes)
        if keep:  # the fitted model as the sandbox pickled it: bytes deploy packages, never unpickled here
            clock.holdout_model_bytes = factory.last_model_bytes
        return out
    est = factory(task, X_tr, seed)
    clock.timed(est.fit, X_tr, y_tr)
    if keep:
        clock.holdout_model = est
    if task == "classification":
        if not hasattr(est, "predict_proba"):  # a label-only model: its probabilities are 0/1
            labels = np.asarray(clock.timed(est.predict, X_te), dtype=object)
            proba = (labels.reshape(-1, 1) == np.asarray(classes, dtype=object).reshape(1, -1)).astype(float)
            return proba, labels
        proba = clock.timed(_proba_full, est, X_te, classes)
        pred = np.asarray(classes, dtype=object)[proba.argmax(1)]
        return proba, pred
    return None, np.asarray(clock.timed(est.predict, X_te), dtype="float64")


def _metric_of(metric, y, proba, pred, classes):
    try:
        return score(metric, y, proba=proba, pred=pred, classes=classes)
    except ValueError:
        return float("nan")


def _cloning(factory, task, X_cv, seed):
    """Build the estimator once (its column typing sees the CV rows, never the holdout) and hand out
    unfitted clones: the same model for every fit, without re-typing the columns six times."""
    from sklearn.base import clone

    proto = factory(task, X_cv, seed)

    def make(task_, X_, seed_, _p=proto):
        try:
            return clone(_p)
        except Exception:
            return factory(task_, X_, seed_)

    return make


def tolerance(metric: str, cv_mean: float, bounds: dict) -> float:
    """The practical floor of the holdout-vs-CV tolerance (the statistical part is in
    ``uncertainty.holdout_vs_cv``): ``cv_tolerance`` or 0.05 for bounded scores, 10% of |CV mean| for errors."""
    base = bounds.get("cv_tolerance")
    if base is None:
        base = 0.05 if metric in BOUNDED_SCORE else 0.10 * abs(cv_mean)
    return float(base)


def vals_of(cv: dict) -> list[float]:
    return [r["value"] for r in cv["per_fold"] if r["value"] is not None]


def data_checks(df, cv_pos, holdout_pos, target, task, *, time_col=None, group_col=None, seed=0,
                max_duplicate_share=0.01, carried=None) -> dict:
    """The checks that need only the data and the seal: single-column leakage on the CV rows, and holdout
    rows duplicated in the CV data. Pure (runs inline or in the sidecar with the same result). Carried
    columns (not model inputs) are left out of both."""
    from loom_py.stats import leakage, splits

    carried = [c for c in carried or [] if c in df.columns]
    cv_frame = df.iloc[cv_pos].drop(columns=carried)
    flags = leakage.find_leaks(cv_frame, target, task, time_col=time_col, seed=seed)
    skip = {c for c in (time_col, group_col) if c}
    flags = [f for f in flags if not (f["column"] in skip and f["reason"] == "identifier")]
    h_cv = splits.row_hashes(cv_frame)
    h_h = splits.row_hashes(df.iloc[holdout_pos].drop(columns=carried))
    dup_mask = np.isin(h_h, h_cv)
    dup_share = float(dup_mask.mean()) if len(h_h) else 0.0
    duplicates = {"holdout_rows_in_cv": int(dup_mask.sum()), "share": dup_share, "max_share": max_duplicate_share,
                  "flagged": dup_share > max_duplicate_share}
    return {"flags": flags, "duplicates": duplicates, "rows_used": int(len(cv_frame)),
            "sampled": leakage.sampled(cv_frame)}


def cv_positions(seal, t0_all, opts) -> tuple:
    """The rows cross-validation uses, in its order: the sealed rows left out; with a time column, ordered
    by time and purged of rows whose label interval reaches into the holdout. (positions, t0, t1, purged)."""
    from loom_py.stats import splits

    cv_pos = seal.cv
    if not opts["time"]:
        return cv_pos, None, None, 0
    order = np.argsort(t0_all[cv_pos], kind="mergesort")
    cv_pos = cv_pos[order]
    t0 = t0_all[cv_pos]
    t1 = t0 + opts["horizon"]
    keep = splits.purge_before_holdout(t0, t1, t0_all[seal.holdout].min())
    return cv_pos[keep], t0[keep], t1[keep], int((~keep).sum())


def _evaluate_models(df, opts, seal, cv_rows, *, factory, say, clock):
    """Cross-validation, the holdout fit, calibration and per-slice results (the model work)."""
    import pandas as pd

    from loom_py.stats import calibration, fairness, splits

    target, task, metric, seed, bounds = opts["target"], opts["task"], opts["metric"], opts["seed"], opts["bounds"]
    # carried columns (a features object's original sensitive columns) are for slicing, never model inputs
    X_all = df.drop(columns=[target] + [c for c in opts.get("carried") or [] if c in df.columns])
    y_all = df[target].to_numpy()
    classes = sorted(pd.unique(y_all).tolist(), key=lambda v: (str(type(v)), v)) if task == "classification" else None

    # ---- cross-validation -------------------------------------------------------------------
    cv_pos, t0, t1, purged_before_holdout = cv_rows
    if opts["time"]:
        embargo_rows = int(math.ceil(opts["embargo"] * len(cv_pos)))
        folds = splits.purged_kfold(t0, t1, opts["folds"], embargo_rows)
        scheme = "purged_kfold"
    elif opts["group"]:
        g = df[opts["group"]].astype("string").fillna("<NA>").to_numpy()[cv_pos]
        folds = splits.group_kfold(g, opts["folds"], seed, y=y_all[cv_pos] if task == "classification" else None)
        scheme = "stratified_group_kfold" if task == "classification" else "group_kfold"
        embargo_rows = 0
    elif task == "classification":
        folds = splits.stratified_kfold(y_all[cv_pos], opts["folds"], seed)
        scheme = "stratified_kfold"
        embargo_rows = 0
    else:
        folds = splits.plain_kfold(len(cv_pos), opts["folds"], seed)
        scheme = "kfold"
        embargo_rows = 0
    X_cv, y_cv = X_all.iloc[cv_pos].reset_index(drop=True), y_all[cv_pos]
    model_written = getattr(factory, "model_written", False)
    if not model_written:
        factory = _cloning(factory, task, X_cv, seed)
    per_fold = []
    done = {"scheme": scheme, "folds": len(folds), "per_fold": per_fold, "stopped_at": "before fold 1"}
    X_h, y_h = X_all.iloc[seal.holdout].reset_index(drop=True), y_all[seal.holdout]
    # Ctrl-C (a stop request, runtime/stop.py) ends the running fit: an in-process fit through ``stoppable``, a
    # model-written one in the sandbox by its own poll (SandboxedSolution); what finished is kept in ``done``
    try:
        with (contextlib.nullcontext() if model_written else stop.stoppable()):
            for i, f in enumerate(folds):
                done["stopped_at"] = f"fold {i + 1}/{len(folds)}"
                stop.check()
                say(f"fold {i + 1}/{len(folds)}: fitting on {len(f.train)} rows, testing on {len(f.test)}")
                if len(f.train) == 0:
                    per_fold.append({"fold": i + 1, "train_rows": 0, "test_rows": int(len(f.test)), "value": None,
                                     "purged": f.purged, "embargoed": f.embargoed})
                    continue
                proba, pred = _fit_predict(clock, factory, task, X_cv.iloc[f.train], y_cv[f.train], X_cv.iloc[f.test],
                                           seed, classes)
                v = _metric_of(metric, y_cv[f.test], proba, pred, classes)
                per_fold.append({"fold": i + 1, "train_rows": int(len(f.train)), "test_rows": int(len(f.test)),
                                 "value": v if v == v else None, "purged": f.purged, "embargoed": f.embargoed})
            done["stopped_at"] = "the holdout fit"
            stop.check()
            say(f"holdout: fitting on {len(cv_pos)} CV rows, scoring {len(seal.holdout)} sealed rows")
            proba_h, pred_h = _fit_predict(clock, factory, task, X_cv, y_cv, X_h, seed, classes, keep=True)
    except stop.Stopped as e:
        e.done = done
        raise
    vals = [r["value"] for r in per_fold if r["value"] is not None]
    cv_mean = float(np.mean(vals)) if vals else float("nan")
    cv_std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    cv = {"scheme": scheme, "folds": len(folds), "metric": metric, "per_fold": per_fold, "mean": cv_mean,
          "std": cv_std, "rows": int(len(cv_pos)), "purged": int(sum(f.purged for f in folds)),
          "embargoed": int(sum(f.embargoed for f in folds))}
    if scheme == "purged_kfold":
        cv.update({"time": opts["time"], "horizon": opts["horizon_text"], "embargo_rows": embargo_rows,
                   "embargo_share": opts["embargo"], "purged_before_holdout": purged_before_holdout})
    if opts["group"]:
        cv["group"] = opts["group"]

    # ---- holdout ----------------------------------------------------------------------------
    hold_value = _metric_of(metric, y_h, proba_h, pred_h, classes)
    holdout = {"metric": metric, "value": hold_value, "rows": int(len(seal.holdout))}
    say("holdout uncertainty and the trivial baseline")
    holdout.update(holdout_uncertainty(metric, y_h, proba_h, pred_h, classes, y_cv, seed, null=cv_mean))

    # ---- calibration ------------------------------------------------------------------------
    calib = None
    if task == "classification":
        calib = calibration.calibration_report(y_h, proba_h, classes)

    # ---- fairness ---------------------------------------------------------------------------
    fair = None
    if opts["sensitive"]:
        fair = {}
        binary = task == "classification" and len(classes) == 2
        mfn = (lambda yt, inp: score(metric, yt, proba=inp if METRICS[metric][2] else None,
                                     pred=inp if not METRICS[metric][2] else None, classes=classes))
        decision = None
        if binary:
            decision = fairness.decision_threshold(proba_h[:, 1], float(np.mean(y_cv == classes[1])),
                                                   given=opts.get("decision_threshold"))
            decided = np.where(proba_h[:, 1] >= decision["threshold"], classes[1], classes[0]).astype(object)
        for s in opts["sensitive"]:
            groups = fairness.group_labels(df[s].iloc[seal.holdout])
            fair[s] = fairness.slice_report(
                y_h, decided if binary else pred_h, groups, positive=classes[1] if binary else None, metric_fn=mfn,
                metric_name=metric, proba_pos=proba_h if METRICS[metric][2] else None,
                score_pos=proba_h[:, 1] if binary else None,
                min_group=int(bounds["min_group"]), seed=seed)
            if decision is not None:
                fair[s]["decision"] = decision

    return cv, holdout, calib, fair, proba_h, pred_h, classes


def holdout_uncertainty(metric, y_h, proba_h, pred_h, classes, y_cv, seed, null=None) -> dict:
    """The holdout score's standard error (DeLong / binomial / delta method / bootstrap) and the paired
    comparison with the trivial baseline fitted on the CV rows (class frequencies or the mean)."""
    import warnings

    from loom_py.stats import uncertainty

    def at(idx, proba, pred):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return score(metric, y_h[idx], proba=None if proba is None else proba[idx], pred=pred[idx], classes=classes)

    se = uncertainty.metric_se(metric, y_h, proba=proba_h, pred=pred_h, classes=classes, seed=seed, null=null,
                               score_fn=lambda idx: at(idx, proba_h, pred_h))
    b_proba, b_pred = uncertainty.baseline_scores(metric, y_cv, y_h, classes)
    strata = y_h if classes is not None else None
    analytic = uncertainty.paired_improvement_se(metric, y_h, proba=proba_h, pred=pred_h, b_proba=b_proba,
                                                 b_pred=b_pred, classes=classes, model_se=se["se"])
    try:
        vs = uncertainty.versus_baseline(lambda idx: (at(idx, proba_h, pred_h), at(idx, b_proba, b_pred)), len(y_h),
                                         METRICS[metric][1], strata=strata, seed=seed, analytic=analytic)
    except ValueError:
        vs = None
    what = "class frequencies of the CV rows, label the majority class" if classes is not None else "mean of the CV rows"
    if vs is not None:
        vs["what"] = what
    return {"se": se["se"], "se_method": se["method"], "baseline": vs}


def sealed(df, opts: dict, content_hash: str) -> dict:
    """The rows with a target, the sealed holdout and the CV rows in their order (pure: the same data
    object always gives the same seal; runs inline or in the sidecar)."""
    from loom_py.stats import splits

    target = opts["target"]
    notes = []
    n_all = len(df)
    df = df[df[target].notna()].reset_index(drop=True)
    if len(df) < n_all:
        notes.append(f"{n_all - len(df)} rows without a target value were left out")
    t0_all = None
    if opts["time"]:
        t0_all, _ = splits.time_values(df[opts["time"]])
    seal = splits.carve_holdout(df, target, opts["task"], content_hash=content_hash, time_col=opts["time"],
                                group_col=opts["group"], fraction=opts["holdout"], t0=t0_all)
    return {"df": df, "notes": notes, "t0_all": t0_all, "seal": seal, "cv_rows": cv_positions(seal, t0_all, opts)}


def _checks_of(s: dict, opts: dict) -> dict:
    return data_checks(s["df"], s["cv_rows"][0], s["seal"].holdout, opts["target"], opts["task"],
                       time_col=opts["time"], group_col=opts["group"], seed=opts["seed"],
                       max_duplicate_share=opts["bounds"]["max_duplicate_share"], carried=opts.get("carried"))


def staged(dataset: str, params: dict):
    """ValidateFlow's data work, in the order the step needs it, for a sidecar (or inline): first the data
    object loaded, its options resolved and the seal carved; then the data checks. Meanwhile the step
    imports the model library and fits."""
    from loom_py.runtime.data import load_frame

    df, info = load_frame(dataset)
    df, notes = prepared_frame(df, params)
    opts = resolve_options(df, {**params, "carried": info.get("carried_columns") or []})
    s = sealed(df, opts, info["content_hash"])
    s["notes"] = notes + s["notes"]
    yield {"info": info, "opts": opts, **s}
    yield _checks_of(s, opts)


def data_imports() -> None:
    """What loading the data object needs (pandas, pyarrow's Parquet reader). The step imports them before
    it forks the sidecar, so the two processes share one copy: scikit-learn imports pandas too, and
    importing it on both sides cost ~0.45 s of CPU twice."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401


def warm_imports() -> None:
    """What the default model and the CV need from scikit-learn (the step imports them while the sidecar
    loads and seals the data)."""
    import sklearn.compose  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    import sklearn.impute  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import sklearn.preprocessing  # noqa: F401


def evaluate(df, opts: dict, *, content_hash: str, factory=None, model_name: str | None = None,
             model_source: str = "default", earlier_evaluations: int = 0, progress=None,
             staged_data: tuple | None = None) -> dict:
    """Everything validate reports, as a dict (the flow stores it and renders the card).

    ``staged_data`` = (the first item of ``staged``, the sidecar that delivers its data checks) when the
    flow has already loaded and sealed the data on the spare core; otherwise the seal is carved here and
    the data checks start on the spare core now."""
    from loom_py.stats import calibration, leakage, uncertainty
    from loom_py.runtime.sidecar import Sidecar

    t_start = time.perf_counter()
    say = progress or (lambda m: None)
    clock = _Clock()
    if factory is None:
        from loom_py.stats.tabular import DEFAULT_MODEL_NAME, default_model

        factory, model_name = default_model, DEFAULT_MODEL_NAME
    target, task, metric, seed = opts["target"], opts["task"], opts["metric"], opts["seed"]
    bounds = opts["bounds"]
    if staged_data is None:
        s = sealed(df, opts, content_hash)
        # The data checks (leakage statistics, row hashes) need only the data and the seal: they run on the
        # spare core while the models fit (sidecar.py; inline where there is none), same result either way.
        side = Sidecar(_checks_of, s, opts)
    else:
        s, side = staged_data
    df, notes, seal, cv_rows = s["df"], list(s["notes"]), s["seal"], s["cv_rows"]
    try:
        out = _evaluate_models(df, opts, seal, cv_rows, factory=factory, say=say, clock=clock)
    except BaseException:
        side.cancel()
        raise
    cv, holdout, calib, fair, proba_h, pred_h, classes = out
    cv_mean, cv_std, hold_value = cv["mean"], cv["std"], holdout["value"]

    # ---- leakage ----------------------------------------------------------------------------
    say("leakage checks")
    t_leak = time.perf_counter()
    checks_out = side.next()
    leak_wait = time.perf_counter() - t_leak
    flags, duplicates = checks_out["flags"], checks_out["duplicates"]
    dup_share = duplicates["share"]
    floor = tolerance(metric, cv_mean, bounds)
    gap = (hold_value - cv_mean) if METRICS[metric][1] else (cv_mean - hold_value)  # > 0: holdout better
    judged = uncertainty.holdout_vs_cv(gap, holdout.get("se", float("nan")), cv_std, len(vals_of(cv)),
                                       floor=floor, z=float(bounds["z_leak"]))
    tol = judged["tolerance"]
    agreement = {"cv_mean": cv_mean, "holdout": hold_value, "gap_in_holdout_favour": gap, "tolerance": tol,
                 "within": bool(abs(gap) <= tol) if gap == gap else False, **judged}
    above = judged["improbable"]
    leak = {"flags": flags, "duplicates": duplicates, "holdout_above_cv": above,
            "found": bool(flags or duplicates["flagged"] or above), "rows_used": checks_out["rows_used"],
            "sampled": checks_out["sampled"]}

    # ---- verdict ----------------------------------------------------------------------------
    checks, reasons = [], []

    def check(name, passed, detail, status=None):
        checks.append({"check": name, "passed": bool(passed), "detail": detail,
                       "status": status or ("passed" if passed else "failed")})
        if not passed:
            reasons.append(detail)

    fmt = lambda v: "n/a" if v is None or v != v else f"{v:.4g}"  # noqa: E731
    if opts["threshold"] is not None:
        ok = hold_value == hold_value and not better(metric, opts["threshold"], hold_value)
        rel = ">=" if METRICS[metric][1] else "<="
        check("threshold", ok, f"holdout {metric} {fmt(hold_value)} {'meets' if ok else 'misses'} the bar "
                               f"({rel} {opts['threshold']:g})")
    base = holdout.get("baseline")
    if base is not None:
        need = float(bounds["z_baseline"]) * (base["se"] if base["se"] == base["se"] else 0.0)
        ok = bool(base["improvement"] == base["improvement"] and base["improvement"] > need and base["improvement"] > 0)
        base.update({"required": need, "beats": ok, "z": float(bounds["z_baseline"])})
        check("baseline", ok, f"holdout {metric} {fmt(hold_value)} {'beats' if ok else 'does not beat'} the trivial "
                              f"baseline ({base['what']}: {fmt(base['baseline'])}) by more than its uncertainty "
                              f"(improvement {fmt(base['improvement'])}, needed > {fmt(need)} = "
                              f"{bounds['z_baseline']:g} × SE {fmt(base['se'])})")
    for f in flags:
        ev = f.get("evidence", {})
        what = ", ".join(f"{k}={v}" for k, v in ev.items() if k in ("metric", "score", "unique_share", "pearson",
                                                                    "spearman", "correlation_ratio", "cramers_v",
                                                                    "missingness_score", "share_after",
                                                                    "rest_score", "conditional_entropy"))
        check(f"leakage:{f['column']}", False, f"leakage: column '{f['column']}' is {f['reason']}"
                                                + (f" ({what})" if what else ""))
    check("leakage:duplicates", not duplicates["flagged"],
          f"leakage: {duplicates['holdout_rows_in_cv']} holdout rows ({dup_share:.1%}) also occur in the CV data "
          f"(bound {bounds['max_duplicate_share']:.1%})")
    unc = (f"holdout SE {fmt(judged['holdout_se'])} ({holdout.get('se_method')}), CV-mean SE {fmt(judged['cv_mean_se'])}; "
           f"tolerance max({fmt(floor)}, {judged['z']:g} × {fmt(judged['combined_se'])}) = {fmt(tol)}")
    if above:
        check("leakage:holdout_above_cv", False,
              f"leakage: holdout {metric} {fmt(hold_value)} is implausibly better than CV {fmt(cv_mean)} "
              f"(by {fmt(gap)} > tolerance {fmt(tol)}; {unc})")
    else:
        check("cv_holdout_agreement", agreement["within"],
              f"holdout {metric} {fmt(hold_value)} and CV {fmt(cv_mean)} ± {fmt(cv_std)} "
              f"{'agree' if agreement['within'] else 'disagree'} (gap {fmt(abs(gap) if gap == gap else None)}, "
              f"tolerance {fmt(tol)}; {unc})")
    if calib is not None:
        cj = calibration.judge(calib, max_ece=bounds["max_ece"], min_slope=bounds["min_slope"],
                               max_slope=bounds["max_slope"], max_abs_intercept=bounds["max_abs_intercept"],
                               min_rows=int(bounds["min_calibration_rows"]))
        calib["judged"] = cj
        notes += cj["notes"]
        check("calibration", cj["passed"],
              ("calibration: " + "; ".join(cj["failed"])) if cj["failed"] else
              f"calibration: ECE {fmt(calib['ece'])} <= {bounds['max_ece']:g}, slope {fmt(calib['slope'])}, "
              f"intercept {fmt(calib['intercept'])} within bounds")
    if fair:
        for s, fr in fair.items():
            boot = fr.get("bootstrap") or {}
            dec = fr.get("decision") or {}
            at = f" at decision threshold {fmt(dec.get('threshold'))}" if dec else ""
            if fr.get("assessable") is False:
                check(f"fairness:{s}", False, f"fairness on {s}: not assessable{at}: "
                                              + "; ".join(fr["not_assessable_because"]), status="not assessable")
                continue
            for key, label, bound in (("demographic_parity_difference", "demographic-parity difference", "max_dp_diff"),
                                      ("equalized_odds_difference", "equalized-odds difference", "max_eo_diff")):
                v = fr.get(key)
                if v is None:
                    continue
                lower = (boot.get(key) or {}).get("lower", v)
                ok = lower <= bounds[bound]
                check(f"fairness:{s}:{bound}", ok,
                      f"fairness on {s}: {label} {fmt(v)} (95% lower bound {fmt(lower)}) "
                      f"{'within' if ok else 'above'} {bounds[bound]:g}{at}")
            if fr["too_small"]:
                notes.append(f"{s}: groups too small to judge: "
                             + ", ".join(f"{g['group']} ({g['reason']})" for g in fr["too_small"]))
    verdict = "PASS" if not reasons else "FAIL"
    thresholds = {"threshold": opts["threshold"], "metric_direction": "higher" if METRICS[metric][1] else "lower",
                  "fairness_rule": "a parity gap fails when its one-sided 95% bootstrap lower bound exceeds the bound",
                  "cv_tolerance": tol, "cv_tolerance_rule": "max(cv_tolerance or default, z_leak × sqrt(holdout SE² + "
                  "(CV std / sqrt(folds))²)); default floor 0.05 for bounded scores, 10% of |CV mean| for errors",
                  "baseline_rule": "the holdout must beat the trivial baseline (training class frequencies / mean) by more "
                  "than z_baseline × its paired-bootstrap SE",
                  **{k: v for k, v in bounds.items() if k != "cv_tolerance"},
                  "leakage_single_feature_auc": leakage.THRESHOLD_AUC, "leakage_single_feature_r2": leakage.THRESHOLD_R2}
    if task != "classification":
        thresholds.pop("max_ece", None)
    total = time.perf_counter() - t_start
    summary = {
        "verdict": verdict, "target": target, "task": task, "classes": classes if task == "classification" else None,
        "metric": metric, "model": {"name": model_name, "source": model_source},
        "seal": {"id": seal.seal_id, "how": seal.info["how"], "fraction": opts["holdout"], "rows": int(len(seal.holdout)),
                 "rows_hash": seal.rows_hash, "evaluations": earlier_evaluations + 1},
        "cv": cv, "holdout": holdout, "agreement": agreement, "calibration": calib, "fairness": fair,
        "leakage": leak, "reasons": reasons, "checks": checks, "thresholds": thresholds, "notes": notes,
        "rows": int(len(df)), "seed": seed,
        "timings": {"total_s": round(total, 3), "model_fit_predict_s": round(clock.fit, 3),
                    "leakage_s": round(side.seconds[-1], 3), "leakage_wait_s": round(leak_wait, 3),
                    "leakage_on_spare_core": side.forked, "loom_own_s": round(total - clock.fit, 3)},
    }
    return {"summary": summary, "seal": seal, "proba_holdout": proba_h, "pred_holdout": pred_h,
            "holdout_model": clock.holdout_model, "holdout_model_bytes": clock.holdout_model_bytes}
