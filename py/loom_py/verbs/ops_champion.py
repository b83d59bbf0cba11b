"""Prediction drift of the deployed champion for ``loom ops --dataset CURRENT --reference REFERENCE``.

Where the workspace's MLflow registry (the one ``loom deploy`` moves aliases in: ``MLFLOW_TRACKING_URI``,
else ``.loom/mlflow/mlflow.db``) has a model with the ``champion`` alias (``--model NAME`` / ``--alias``
choose another), both tables are scored with that model and its predictions compared with the statistics
the column drift uses (``loom_py.stats.drift``: the predicted probability or value as a numeric column,
the predicted class as a categorical one).

Model-written code never runs in Loom's processes. A champion is the estimator validate fitted (pickled
inside the sandbox when it is a search's solution) plus, for a solution, the code a language model wrote.
Loom reads the packaged model's files as bytes only, checks them against the sha256 that ``loom deploy``
recorded (the version's ``loom.manifest_sha256`` tag and the manifest's per-file hashes), and hands them
to the optimize search's OS sandbox (``verbs/optimize/sandbox.py``, as ``validate --model`` does with
``SandboxedSolution``): the candidate code there is the champion's own ``solution.py`` with a
``make_model()`` appended whose ``fit`` only unpickles the deployed estimator, so the sandbox's usual
protocol (predict the validation and test features, write ``predictions.npz``) scores the reference and
the current table in one sandboxed process. What comes back is arrays of numbers and labels; the class
order and the predicted class follow the served model (``verbs/deploy/pyfunc_model.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

from loom_py.runtime.errors import UsageError

DEFAULT_ALIAS = "champion"
NOT_DEPLOYED = "no deployed champion"
SANDBOX_TIMEOUT_S = 600.0
SANDBOX_MEM_MB = 4096

_NUMERIC_ARROW = re.compile(r"^(u?int\d*|float\d*|double|halffloat|decimal)")


def not_assessed(reason: str, model: dict | None = None) -> dict:
    return {"assessed": False, "reason": f"not assessed: {reason}", "model": model, "columns": [],
            "drifted": False, "drifted_columns": [], "rows": None}


# ---- which model (prepare: before anything is written) ----------------------------------------------

def _registry_exists(uri: str) -> bool:
    db = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None  # deploy's default registry: a local file
    return not db or os.path.exists(db)


def _candidates(c, name: str | None, alias: str) -> list[tuple[str, int]]:
    """(model name, version) of every registered model whose ``alias`` is set (only ``name``'s, if given)."""
    if name:
        try:
            rm = c.get_registered_model(name)
        except Exception:
            names = [m.name for m in _all_models(c)]
            from loom_py.runtime.errors import did_you_mean

            raise UsageError(f"--model {name}: no registered model of that name in the registry"
                             f"{did_you_mean(name, names)}" + (f" (registered: {', '.join(names[:10])})" if names else ""))
        aliases = dict(rm.aliases or {})
        if alias not in aliases:
            have = ", ".join(f"@{a}" for a in sorted(aliases)) or "none"
            raise UsageError(f"--model {name} has no @{alias} alias in the registry (its aliases: {have}): "
                             f"pass --alias with one of them, or move it with `loom deploy --validate ValidateFlow/N --name {name} --alias {alias} --apply`")
        return [(name, int(aliases[alias]))]
    return [(m.name, int(m.aliases[alias])) for m in _all_models(c) if alias in (m.aliases or {})]


def _all_models(c) -> list:
    out, token = [], None
    while True:
        page = c.search_registered_models(max_results=200, page_token=token)
        out += list(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def _client(uri: str):
    from loom_py.verbs import deploy

    # a registry server that does not answer: a short wait, not MLflow's minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    return deploy.client(uri)


def _download(uri: str, artifact_uri: str, dst: str) -> str | None:
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # no progress bars on the verb's stderr
    import mlflow.artifacts

    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=dst, tracking_uri=uri)
    except Exception:
        return None


def _meta(uri: str, source: str) -> tuple[dict | None, dict | None]:
    """The packaged model's loom.json and signature inputs ({name: type}), read as data (no code runs)."""
    tmp = tempfile.mkdtemp(prefix="loom-ops-meta-")
    try:
        p = _download(uri, source.rstrip("/") + "/artifacts/loom.json", tmp)
        meta = json.load(open(p)) if p and os.path.isfile(p) else None
        sig = None
        q = _download(uri, source.rstrip("/") + "/MLmodel", tmp)
        if q and os.path.isfile(q):
            import yaml

            with open(q) as f:
                mlmodel = yaml.safe_load(f) or {}
            inputs = (mlmodel.get("signature") or {}).get("inputs")
            if inputs:
                sig = {col["name"]: str(col.get("type")) for col in json.loads(inputs) if "name" in col}
        return meta, sig
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _compatible(sig_type: str | None, arrow_type: str) -> bool:
    t = arrow_type.lower()
    if sig_type is None or t == "null":
        return True
    if sig_type in ("double", "float", "long", "integer"):
        return bool(_NUMERIC_ARROW.match(t))
    if sig_type == "boolean":
        return t.startswith("bool")
    if sig_type == "string":
        return "string" in t or t.startswith(("utf8", "dictionary"))
    if sig_type == "datetime":
        return t.startswith(("timestamp", "date"))
    return True


def resolve(params: dict, schemas: dict[str, dict[str, str]], labels: dict[str, str]) -> dict:
    """The flow's champion parameters (``model_name``, ``model_alias``, ``model_version``, ``registry``; all
    empty when there is none to score, with ``prediction_note`` saying why). ``schemas``: per flag
    (dataset, reference) the column → Arrow type of that table. UsageError (exit 2) when the chosen model
    cannot be found or its feature columns are not in both tables."""
    from loom_py.verbs import deploy

    name = (params.get("model") or "").strip() or None
    alias = (params.get("alias") or "").strip() or None
    explicit = bool(name or alias)
    alias = alias or DEFAULT_ALIAS
    if name and not deploy.NAME_RE.match(name):
        raise UsageError(f"--model '{name}' is not a registered model name: letters, digits, _ . - (e.g. churn-model)")
    if not deploy.ALIAS_RE.match(alias):
        raise UsageError(f"--alias '{alias}' is not an MLflow alias: letters, digits, _ - (e.g. champion)")
    none = {"model_name": "", "model_alias": "", "model_version": "", "registry": "", "prediction_note": NOT_DEPLOYED}
    uri = deploy.registry_uri()
    if not _registry_exists(uri):  # read-only: never create the workspace's registry
        if explicit:
            raise UsageError(f"no MLflow registry in this workspace yet ({uri}): --model/--alias choose a deployed model; "
                             "deploy one with `loom deploy --validate ValidateFlow/N --apply`, or set MLFLOW_TRACKING_URI")
        return none
    c = _client(uri)
    try:
        found = _candidates(c, name, alias)
    except UsageError:
        raise
    except Exception as e:  # an unreachable registry: the column drift still runs
        if explicit:
            raise UsageError(f"the MLflow registry {uri} cannot be read ({type(e).__name__}): check MLFLOW_TRACKING_URI")
        return {**none, "prediction_note": f"the MLflow registry {uri} cannot be read ({type(e).__name__})"}
    if not found:
        if explicit:
            raise UsageError(f"no registered model has the @{alias} alias in {uri}: `loom ops` lists the deployed aliases")
        return none
    if len(found) > 1:
        listed = ", ".join(f"{n}@{alias} (version {v})" for n, v in sorted(found))
        raise UsageError(f"{len(found)} models have the @{alias} alias ({listed}): pass --model NAME to choose the one "
                         "whose prediction drift to check")
    mname, version = found[0]
    try:
        meta, sig = _meta(uri, c.get_model_version(mname, str(version)).source)
    except Exception:  # unreadable or malformed files: not a model Loom can score
        meta, sig = None, None
    out = {"model_name": mname, "model_alias": alias, "model_version": str(version), "registry": uri, "prediction_note": ""}
    if not meta or not meta.get("features"):
        why = f"{mname}@{alias} (version {version}) was not packaged by `loom deploy` (no artifacts/loom.json): it is not scored"
        if explicit:
            raise UsageError(why)
        return {**none, "prediction_note": why}
    features = list(meta["features"])
    for flag in ("dataset", "reference"):
        cols = schemas[flag]
        missing = [f for f in features if f not in cols]
        if missing:
            raise UsageError(f"the deployed model {mname}@{alias} (version {version}) needs feature columns that the "
                             f"{'current' if flag == 'dataset' else 'reference'} table {labels[flag]} does not have: "
                             + ", ".join(missing[:20]) + " (pass --model NAME for another model)")
        bad = [f for f in features if not _compatible((sig or {}).get(f), cols[f])]
        if bad:
            raise UsageError(f"columns whose type does not fit the deployed model {mname}@{alias}'s input signature in "
                             f"{labels[flag]}: " + ", ".join(f"{f} ({cols[f]}, the model takes {(sig or {}).get(f)})" for f in bad[:10]))
    return out


# ---- the packaged files, checked ----------------------------------------------------------------------

def fetch(uri: str, name: str, version: str, dst: str) -> tuple[str, dict, dict]:
    """Download the model version's files into ``dst``; (model dir, loom.json, the version's facts). The files
    must be the ones ``loom deploy`` hashed (a UsageError-free ValueError names the first that is not)."""
    from loom_py.verbs import deploy

    c = _client(uri)
    mv = c.get_model_version(name, version)
    tags = dict(mv.tags or {})
    src = mv.source.rstrip("/")
    model_dir = _download(uri, src, os.path.join(dst, "model"))
    if not model_dir or not os.path.isdir(model_dir):
        raise ValueError(f"the files of {name} version {version} could not be read from {src}")
    facts = {"source": src, "validate": tags.get("loom.validate"), "deploy": tags.get("loom.deploy"),
             "model_written_code": tags.get("loom.model_written_code") == "true", "verified": False}
    want = tags.get("loom.manifest_sha256")
    if want:
        mpath = _download(uri, src.rsplit("/", 1)[0] + "/" + deploy.MANIFEST, dst)
        if not mpath or deploy.sha256_file(mpath) != want:
            raise ValueError("its manifest does not match the sha256 loom deploy recorded on the version")
        files = {k[len("model/"):]: v for k, v in json.load(open(mpath))["files"].items() if k.startswith("model/")}
        now = deploy.staged_files(model_dir)
        for rel in now:
            if rel not in files and rel.startswith(("artifacts/", "code/")):
                raise ValueError(f"model/{rel} is a file the deploy manifest did not hash")
        for rel, h in files.items():
            p = os.path.join(model_dir, rel)
            if not os.path.isfile(p) or deploy.sha256_file(p) != h:
                raise ValueError(f"model/{rel} does not match the sha256 in the deploy manifest")
        facts["verified"] = True
    with open(os.path.join(model_dir, "artifacts", "loom.json")) as f:
        meta = json.load(f)
    return model_dir, meta, facts


# ---- scoring inside the sandbox ----------------------------------------------------------------------

_WRAP = '''

# --- added by loom ops: the deployed estimator, unpickled here inside the sandbox; fit() fits nothing ---
_LOOM_CODE = {code!r}
_LOOM_MODEL = {model!r}


def _loom_deployed_modules():
    import sys as _sys
    import types as _types

    for _name, _pkg, _src in _LOOM_CODE:  # the packaged code/ files (loom_py.stats.tabular for the default model)
        if _name in _sys.modules:
            continue
        _m = _types.ModuleType(_name)
        _m.__file__ = "<" + _name + ">"
        if _pkg:
            _m.__path__ = []
        _sys.modules[_name] = _m
        _parent, _, _leaf = _name.rpartition(".")
        if _parent in _sys.modules:
            setattr(_sys.modules[_parent], _leaf, _m)
        if _src:
            exec(compile(_src, _m.__file__, "exec"), _m.__dict__)


class _LoomDeployed:
    def fit(self, X, y=None):
        import base64
        import pickle

        _loom_deployed_modules()
        self._est = pickle.loads(base64.b64decode(_LOOM_MODEL))
        if hasattr(self._est, "classes_"):
            self.classes_ = self._est.classes_
        return self

    def predict(self, X):
        # a classifier's labels from its probabilities (Loom takes argmax of them, as the served model does):
        # one pass over the rows instead of two, the probabilities kept for the predict_proba that follows
        if hasattr(self._est, "classes_") and hasattr(self._est, "predict_proba"):
            import numpy as np

            try:
                p = np.asarray(self._est.predict_proba(X))
            except Exception:
                p = None
            if p is not None and p.ndim == 2 and p.shape[1] == len(self._est.classes_):
                self._last = (X, p)
                return np.asarray(self._est.classes_)[p.argmax(1)]
        return self._est.predict(X)

    def predict_proba(self, X):
        last = getattr(self, "_last", None)
        if last is not None and last[0] is X:
            self._last = None
            return last[1]
        return self._est.predict_proba(X)

    def __reduce__(self):  # what the sandbox pickles back: nothing of the deployed model
        return (make_model, ())


def make_model():
    return _LoomDeployed()
'''


def _code_modules(model_dir: str) -> list[tuple[str, bool, str]]:
    """The packaged ``code/`` tree (MLflow's code_paths) as (module name, is a package, source), packages first."""
    root = os.path.join(model_dir, "code")
    mods: dict[str, tuple[bool, str]] = {}
    for base, _dirs, files in os.walk(root):
        for f in files:
            if not f.endswith(".py"):
                continue
            parts = os.path.relpath(os.path.join(base, f), root)[:-3].split(os.sep)
            pkg = parts[-1] == "__init__"
            if pkg:
                parts = parts[:-1]
            if not parts:
                continue
            with open(os.path.join(base, f)) as fh:
                mods[".".join(parts)] = (pkg, fh.read())
    for name in list(mods):  # a directory without __init__.py is a namespace package
        parts = name.split(".")
        for i in range(1, len(parts)):
            mods.setdefault(".".join(parts[:i]), (True, ""))
    return [(n, *mods[n]) for n in sorted(mods, key=lambda n: (n.count("."), n))]


def sandbox_code(model_dir: str) -> str:
    """The candidate code the sandbox runs: the champion's solution.py (when it is one) + the wrapper."""
    import base64

    arts = os.path.join(model_dir, "artifacts")
    sol = os.path.join(arts, "solution.py")
    head = open(sol).read() if os.path.isfile(sol) else "# the deployed model is Loom's default estimator: no solution code\n"
    with open(os.path.join(arts, "model.pkl"), "rb") as f:
        blob = base64.b64encode(f.read()).decode("ascii")
    return head + _WRAP.format(code=_code_modules(model_dir), model=blob)


def score(model_dir: str, meta: dict, ref_X, cur_X, *, timeout: float = SANDBOX_TIMEOUT_S,
          mem_mb: int = SANDBOX_MEM_MB) -> dict:
    """Predictions of the packaged model on ``ref_X`` and ``cur_X`` (feature frames), computed in one sandboxed
    process: {"reference": {"prediction": array, "proba": (n, k) array or None}, "current": {...},
    "classes": list or None, "isolation": dict, "wall_seconds": float}. ValueError when the model fails there."""
    import numpy as np

    from loom_py.verbs.optimize import sandbox

    features = list(meta["features"])
    task = meta.get("task") or "regression"
    ref_X, cur_X = ref_X[features].reset_index(drop=True), cur_X[features].reset_index(drop=True)
    target = "__loom_target__"
    while target in features:
        target += "_"
    train = ref_X.head(1).copy()
    train[target] = 0  # the protocol's training table; the deployed model's fit() ignores it
    tmp = tempfile.mkdtemp(prefix="loom-ops-score-")
    try:
        data = os.path.join(tmp, "data")
        sandbox.stage(data, train, ref_X, cur_X, {"target": target, "task": task})
        out = os.path.join(tmp, "out")
        res = sandbox.run_candidate(sandbox_code(model_dir), out, data, timeout=timeout, mem_mb=mem_mb)
        if res["error"]:
            raise ValueError(f"it failed in the sandbox: {res['error']}"[:400])
        try:
            p = sandbox.load_predictions(out)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"it wrote no readable predictions in the sandbox ({e})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    classes = list(meta.get("classes") or []) if task == "classification" else None
    sides = {}
    for side, key, n in (("reference", "val", len(ref_X)), ("current", "test", len(cur_X))):
        labels = p.get(f"{key}_labels")
        if labels is None or np.ndim(labels) != 1 or len(labels) != n:
            raise ValueError(f"it predicted {np.shape(labels)} values for the {n} rows of the {side} table")
        proba = p.get(f"{key}_proba") if classes else None
        if proba is not None:
            proba = _align(np.asarray(proba, dtype="float64"), p.get("classes"), classes, n)
        if classes and proba is not None:
            pred = np.asarray(classes, dtype=object)[proba.argmax(1)]  # as the served model predicts
        elif classes:
            pred = np.asarray(labels, dtype=object)
        else:
            pred = np.asarray(labels, dtype="float64")
        sides[side] = {"prediction": pred, "proba": proba}
    run = res.get("run") or {}
    timings = {k: round(float(run[k]), 3) for k in ("import_seconds", "fit_seconds", "predict_seconds", "total_seconds")
               if isinstance(run.get(k), (int, float))}  # fit = unpickling the deployed model
    return {**sides, "classes": classes, "isolation": sandbox.isolation(), "wall_seconds": round(res["wall_seconds"], 3),
            "timings": timings}


def _align(proba, est_classes, classes: list, n: int):
    """The estimator's probability columns in validate's class order (as pyfunc_model.py); None if unusable."""
    import numpy as np

    if np.ndim(proba) != 2 or len(proba) != n:
        return None
    if est_classes is None:
        return proba if proba.shape[1] == len(classes) else None
    est = [str(c) for c in np.asarray(est_classes).tolist()]
    if est == [str(c) for c in classes]:
        return proba
    pos = {str(c): i for i, c in enumerate(classes)}
    if proba.shape[1] != len(est) or any(c not in pos for c in est):
        return None
    out = np.zeros((n, len(classes)))
    for j, c in enumerate(est):
        out[:, pos[c]] = proba[:, j]
    return out


# ---- the drift of the predictions ---------------------------------------------------------------------

def prediction_series(scored: dict) -> list[tuple[str, str, object, object]]:
    """(column, kind, reference series, current series) for each prediction output that is compared: the
    predicted class (categorical) and the probability of the positive class (binary) or of each class
    (multiclass), numeric; for regression the predicted value (numeric)."""
    import pandas as pd

    ref, cur, classes = scored["reference"], scored["current"], scored["classes"]
    if not classes:
        return [("prediction", "numeric", pd.Series(ref["prediction"], name="prediction", dtype="float64"),
                 pd.Series(cur["prediction"], name="prediction", dtype="float64"))]
    out = [("prediction", "categorical", pd.Series([str(x) for x in ref["prediction"]], name="prediction", dtype="object"),
            pd.Series([str(x) for x in cur["prediction"]], name="prediction", dtype="object"))]
    if ref["proba"] is not None and cur["proba"] is not None:
        which = [len(classes) - 1] if len(classes) == 2 else range(len(classes))  # binary: classes[1], validate's positive
        for i in which:
            col = f"proba_{classes[i]}"
            out.append((col, "numeric", pd.Series(ref["proba"][:, i], name=col), pd.Series(cur["proba"][:, i], name=col)))
    return out


def drift_of(series: list[tuple[str, str, object, object]]) -> list[dict]:
    from loom_py.stats import drift

    return [drift.column_drift(r, c, kind) for _col, kind, r, c in series]


def assess(ref_df, cur_df, params: dict) -> tuple[dict, list]:
    """For OpsFlow: (the summary's prediction_drift, the compared series for the card's charts)."""
    name, alias, version, uri = (params.get(k) or "" for k in ("model_name", "model_alias", "model_version", "registry"))
    if not name:
        return not_assessed(params.get("prediction_note") or NOT_DEPLOYED), []
    model = {"name": name, "alias": alias, "version": int(version), "registry": uri, "task": None,
             "target": None, "features": [], "validate": None, "model_written_code": None, "verified": False,
             "sandbox": None}
    tmp = tempfile.mkdtemp(prefix="loom-ops-model-")
    try:
        try:
            model_dir, meta, facts = fetch(uri, name, version, tmp)
        except (ValueError, OSError, KeyError) as e:
            return not_assessed(f"the files of {name}@{alias} (version {version}) were not scored: {e}", model), []
        except Exception as e:  # the registry stopped answering between prepare and the step
            return not_assessed(f"{name}@{alias} (version {version}) could not be read from {uri} ({type(e).__name__})", model), []
        model.update(task=meta.get("task"), target=meta.get("target"), features=list(meta["features"]),
                     validate=facts["validate"], model_written_code=facts["model_written_code"], verified=facts["verified"])
        try:
            scored = score(model_dir, meta, ref_df, cur_df)
        except ValueError as e:
            return not_assessed(f"{name}@{alias} (version {version}) could not score the tables: {e}", model), []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    model["sandbox"] = {"os_sandbox": scored["isolation"].get("os_sandbox"), "wall_seconds": scored["wall_seconds"]}
    series = prediction_series(scored)
    recs = drift_of(series)
    drifted = [r["column"] for r in recs if r["drifted"]]
    return {"assessed": True, "reason": None, "model": model, "columns": recs, "drifted": bool(drifted),
            "drifted_columns": drifted, "rows": {"reference": int(len(ref_df)), "current": int(len(cur_df))}}, series
