"""loom deploy: promote a validated model into an MLflow model registry, and roll the alias back.

Three modes, each a DeployFlow run (the run is Loom's record; MLflow keeps no alias history):

* ``plan`` (default): asserts the ValidateFlow run succeeded with VERDICT PASS, and stages under
  ``.loom/artifacts/deploy/<run id>/`` an MLflow pyfunc model (signature and a schema-made input example)
  holding the exact estimator validate scored, the solution code, and ``manifest.json`` (sha256 of every
  staged file, lineage, what ``--apply`` will change, the rollback that undoes it). Nothing in the registry
  is touched; the alias's current holder comes from Loom's record while the registry file is unchanged
  since Loom's last move of it (``recorded_holder``), else from MLflow.
* ``apply``: re-verifies the staged files against the manifest and the manifest against the plan run, then,
  under a workspace lock, registers a model version, moves the alias (MLflow aliases, not stages) and tags
  the version with Loom's lineage. A journal file per apply (``.loom/deploy/journal/``) is rewritten
  atomically at each step (started → registered → moved), so an apply killed half-way is visible to
  ``loom doctor`` and the alias is never left pointing at nothing (the move is one registry update).
* ``rollback`` (plan or apply): replays the recorded moves of NAME@ALIAS (promotions push a version,
  rollbacks pop one) and moves the alias to the version before the current one; refused at the first.

Model-written code: an optimize search's best solution is code a language model wrote. Loom's processes
never import or unpickle it here: the plan copies validate's pickled bytes and the code into the model's
artifacts and hashes them; only MLflow's serving/loading processes execute them (pyfunc_model.py). The
one file Loom's process does execute while saving the model is pyfunc_model.py itself (MLflow runs a
"model from code" file to find its model object), which is Loom's own code and imports only MLflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time

from loom_py.runtime.errors import DomainError, UsageError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ALIAS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
TARGETS = ("mlflow",)
EXPERIMENT = "loom-deploy"
MANIFEST = "manifest.json"
HERE = os.path.dirname(os.path.abspath(__file__))


# ---- where things live ----------------------------------------------------------------------------

def ws_dir() -> str:
    return os.environ.get("LOOM_WORKSPACE_DIR") or os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL") or os.getcwd()


def stage_dir(run_id) -> str:
    return os.path.join(ws_dir(), "artifacts", "deploy", str(run_id))


def journal_dir() -> str:
    return os.path.join(ws_dir(), "deploy", "journal")


def registry_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else a SQLite registry inside the workspace (works offline)."""
    uri = (os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    if uri:
        return uri
    return "sqlite:///" + os.path.join(ws_dir(), "mlflow", "mlflow.db")


def _local_db(uri: str) -> str | None:
    return uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None


def quiet_mlflow() -> None:
    """Telemetry off and MLflow's chatter down, before mlflow is imported."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def warm_imports() -> None:
    """What a DeployFlow task needs, imported once by the bridge's warm image while the run starts (the task
    waits for it). ``LOOM_DEPLOY_MODE`` (set by the CLI for the run) narrows it to the mode's own work; unset
    (another caller), everything."""
    quiet_mlflow()
    mode = os.environ.get("LOOM_DEPLOY_MODE") or ""
    if mode == "rollback":  # the plan of a rollback reads Loom's record; MLflow only if the registry changed
        return
    import mlflow  # noqa: F401
    from mlflow import MlflowClient  # noqa: F401

    if mode in ("", "plan"):
        import mlflow.pyfunc  # noqa: F401
        from mlflow.models import ModelSignature  # noqa: F401

        # save_model checks the pinned requirements against MLflow's map of modules to distributions (a scan
        # of every installed package's metadata, 0.2-0.5 s here); built here, the forked task inherits it
        try:
            from mlflow.utils import requirements_utils

            requirements_utils._init_modules_to_packages_map()
        except Exception:  # an MLflow without it: save_model builds it itself
            pass
    if mode in ("", "apply", "rollback_apply"):
        # the SQLite stores (SQLAlchemy, Alembic and, through it, Mako and Pygments): ~0.6 s of imports that
        # only a registry read or write needs; a plan reads the alias holder from Loom's record when it can
        import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def client(uri: str):
    quiet_mlflow()
    import logging
    import warnings

    from mlflow import MlflowClient

    warnings.filterwarnings("ignore", module="mlflow")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    db = _local_db(uri)
    if db:
        os.makedirs(os.path.dirname(db), exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def sha256_file(path: str) -> str:
    """The manifest's form of a file's hash: ``sha256:<hex>``."""
    from loom_py.runtime.data import sha256_file as hex_of

    return "sha256:" + hex_of(path)


def sha256_bytes(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def staged_files(root: str) -> list[str]:
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), root)
            if rel != MANIFEST:
                out.append(rel)
    return sorted(out)


# ---- the verb's input ------------------------------------------------------------------------------

def _check_name_alias(params: dict) -> tuple[str | None, str]:
    name, alias = params.get("name") or None, params.get("alias") or "champion"
    if name and not NAME_RE.match(name):
        raise UsageError(f"--name '{name}' is not a model name: letters, digits, _ . - (up to 100), e.g. churn-model")
    if not ALIAS_RE.match(alias) or alias.lower() == "latest" or re.match(r"^v\d+$", alias):
        raise UsageError(f"--alias '{alias}' is not an MLflow alias: letters, digits, _ - (not 'latest' or v<N>), e.g. champion")
    target = params.get("target") or "mlflow"
    if target not in TARGETS:
        raise UsageError(f"--target '{target}' is not a deploy target: use --target mlflow (an MLflow model registry)")
    return name, alias


def default_name(dataset_label: str | None, target: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{dataset_label or 'model'}-{target}").strip("-.") or "model"
    return base[:100]


def validate_stage(pathspec: str) -> str:
    """The ValidateFlow run that ``pathspec`` names: itself, or a pipeline's validate stage (exit 1 when the
    pipeline stopped before validate ran)."""
    from loom_py.runtime.data import resolve_run

    run = resolve_run(pathspec, ("ValidateFlow", "PipelineFlow"), what="validate run (or pipeline)")
    if run.pathspec.split("/")[0] != "PipelineFlow":
        return run.pathspec
    res = run.data.loom_result if "loom_result" in run.data else {}
    stages = (res.get("summary") or {}).get("stages") or []
    st = next((x for x in stages if x.get("name") == "validate"), None)
    if not st or not st.get("pathspec"):
        stop = next((x for x in stages if x.get("status") not in ("OK", "PASS", "WARN", "SKIPPED")), None)
        why = f"it stopped at its {stop['name']} stage ({stop.get('reason') or stop.get('status')})" if stop else "it has no validate stage"
        raise DomainError(f"deploy refused: {run.pathspec} has no validate result to promote: {why}", status="REFUSED",
                          summary={"mode": "plan", "validate": None, "verdict": res.get("verdict"), "reasons": [why]})
    return st["pathspec"]


def validated(pathspec: str) -> dict:
    """The ValidateFlow run's facts deploy needs; exit 2 for a wrong flow or unknown run, exit 1 (refused)
    for VERDICT FAIL."""
    from loom_py.runtime.data import resolve_run

    run = resolve_run(pathspec, ("ValidateFlow",), what="validate run")
    d = run.data
    if "validation" not in d:
        raise UsageError(f"{pathspec} holds no validation summary: rerun `loom validate`")
    s = d.validation
    if s.get("verdict") != "PASS":
        reasons = "; ".join(s.get("reasons") or []) or "no reason recorded"
        raise DomainError(f"deploy refused: validate VERDICT {s.get('verdict')}: {reasons}", status="REFUSED",
                          summary={"mode": "plan", "validate": pathspec, "verdict": s.get("verdict"),
                                   "reasons": s.get("reasons") or []})
    if "scored_model" not in d or d.scored_model is None:
        why = d.scored_model_error if "scored_model_error" in d and d.scored_model_error else \
            "it was validated before validate kept its fitted model"
        raise UsageError(f"{pathspec} kept no fitted model to deploy ({why}): rerun `loom validate` with the same flags")
    return {"run": run, "summary": s}


def prepare(params: dict) -> dict:
    """Bridge hook: refuse bad input before anything is written; the flow's parameters."""
    p = _prepare(params)
    fp = dict(p["params"])
    fp["model_name"], fp["model_alias"] = fp.pop("name"), fp.pop("alias")
    return {"params": fp, "inputs": p["inputs"]}


def _prepare(params: dict) -> dict:
    mode = params.get("mode") or "plan"
    name, alias = _check_name_alias(params)
    uri = registry_uri()
    base = {"mode": mode, "alias": alias, "target": params.get("target") or "mlflow", "registry": uri}
    if mode in ("rollback", "rollback_apply"):
        if not name:
            raise UsageError("--rollback needs the registered model's name, e.g. `loom deploy --rollback churn-model`")
        return {"params": {**base, "name": name}, "inputs": []}
    v = params.get("validate")
    if not v:
        raise UsageError("deploy needs --validate ValidateFlow/N (a PASS verdict) or --rollback NAME")
    v = validate_stage(v)  # a PipelineFlow run stands for its validate stage
    facts = validated(v)
    s = facts["summary"]
    name = name or default_name(s["dataset"].get("label"), s["target"])
    out = {**base, "name": name, "validate": v}
    if mode == "apply":
        plan = find_plan(v, name, alias, uri)
        verify_plan(plan)
        out["plan"] = plan.pathspec
    return {"params": out, "inputs": [v, s["dataset"]["pathspec"]]}


# ---- plan ------------------------------------------------------------------------------------------

_MLFLOW_TYPES = {"i": "long", "u": "long", "f": "double", "b": "boolean", "M": "datetime"}


def _col_type(dtype) -> str:
    return _MLFLOW_TYPES.get(getattr(dtype, "kind", "O"), "string")


def _example_value(t: str):
    return {"long": 0, "double": 0.0, "boolean": False, "datetime": "1970-01-01T00:00:00", "string": ""}[t]


def _requirements(code: str | None) -> list[str]:
    """What the serving environment needs, pinned to this environment's versions (MLflow would otherwise
    load the model in a subprocess to guess them). Solution imports are read with ast, never executed."""
    import ast
    from importlib import metadata

    dists = {"mlflow-skinny", "scikit-learn", "pandas", "numpy", "scipy", "cloudpickle"}
    if code:
        try:
            mods = {n.names[0].name.split(".")[0] for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Import)}
            mods |= {(n.module or "").split(".")[0] for n in ast.walk(ast.parse(code)) if isinstance(n, ast.ImportFrom) and n.level == 0}
        except SyntaxError:
            mods = set()
        by_mod = _modules_to_distributions()
        for m in mods:
            dists.update(by_mod.get(m, []))
    out = []
    for dname in sorted(dists, key=str.lower):
        try:
            out.append(f"{dname}=={metadata.version(dname)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _modules_to_distributions() -> dict:
    """Top-level module → distributions: MLflow's own map when it can give it (save_model builds it anyway,
    and the warm image already has), else importlib.metadata's (the same scan)."""
    try:
        from mlflow.utils import requirements_utils

        requirements_utils._init_modules_to_packages_map()
        if isinstance(requirements_utils._MODULES_TO_PACKAGES, dict):
            return requirements_utils._MODULES_TO_PACKAGES
    except Exception:
        pass
    from importlib import metadata

    return metadata.packages_distributions()


def stage(run_id, params: dict) -> dict:
    """Write the staged model, code and manifest; return the plan (the DeployFlow run's record)."""
    from loom_py.runtime.data import dataset_info, load_frame, resolve_run

    v = params["validate"]
    facts = validated(v)
    vrun, s = facts["run"], facts["summary"]
    model_bytes = vrun.data.scored_model
    ds = s["dataset"]["pathspec"]
    df, info = load_frame(ds)  # dtypes as validate saw them (schema only: no row leaves the datastore)
    target, task = s["target"], s["task"]
    features = [c for c in df.columns if c != target]
    classes = s.get("classes") if task == "classification" else None
    model_is_solution = s["model"]["source"] not in ("default", None)
    code = None
    if model_is_solution:
        from loom_py.verbs.solution import solution_info  # reads the code as text; never executes it

        code = solution_info(s["model"]["source"])["code"]

    root = stage_dir(run_id)
    if os.path.exists(root):
        shutil.rmtree(root)
    work = os.path.join(root, ".work")
    os.makedirs(os.path.join(work, "code", "loom_py", "stats"))
    with open(os.path.join(work, "model.pkl"), "wb") as f:
        f.write(model_bytes)
    meta = {"task": task, "target": target, "features": features, "classes": classes,
            "validate": v, "model": s["model"], "model_written_code": model_is_solution}
    with open(os.path.join(work, "loom.json"), "w") as f:
        json.dump(meta, f, indent=1, default=str)
    artifacts = {"model": os.path.join(work, "model.pkl"), "loom": os.path.join(work, "loom.json")}
    if code:
        with open(os.path.join(work, "solution.py"), "w") as f:
            f.write(code)
        artifacts["solution"] = os.path.join(work, "solution.py")
    # the default model's pickle names loom_py.stats.tabular's functions: ship that one module
    pkg = os.path.join(work, "code", "loom_py")
    for rel in ("__init__.py", os.path.join("stats", "__init__.py")):
        open(os.path.join(pkg, rel), "w").close()
    from loom_py.stats import tabular

    shutil.copy(tabular.__file__, os.path.join(pkg, "stats", "tabular.py"))

    quiet_mlflow()
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    types = {c: _col_type(df[c].dtype) for c in features}
    ins = Schema([ColSpec(types[c], c, required=not bool(df[c].isna().any())) for c in features])
    if task == "classification":
        ptype = _col_type(pd.Series(classes).infer_objects().dtype)
        outs = Schema([ColSpec(ptype, "prediction")] + [ColSpec("double", f"proba_{c}") for c in classes])
    else:
        outs = Schema([ColSpec("double", "prediction")])
    example = pd.DataFrame({c: [_example_value(types[c])] for c in features})
    if any(t == "datetime" for t in types.values()):
        for c in features:
            if types[c] == "datetime":
                example[c] = pd.to_datetime(example[c])
    reqs = _requirements(code)
    model_dir = os.path.join(root, "model")
    mlflow.pyfunc.save_model(model_dir, python_model=os.path.join(HERE, "pyfunc_model.py"), artifacts=artifacts,
                             code_paths=[pkg], signature=ModelSignature(inputs=ins, outputs=outs),
                             input_example=example, pip_requirements=reqs)
    shutil.rmtree(work)

    uri, name, alias = params["registry"], params["name"], params["alias"]
    holder = current_holder(uri, name, alias, create=False, exact=False)
    dinfo = dataset_info(resolve_run(ds))
    lineage = [v, ds] + [x for x in _lineage_chain(dinfo.get("lineage") or {}) if x not in (v, ds)]
    apply_cmd = f"loom deploy --validate {v} --name {name} --alias {alias} --apply"
    rollback = (f"loom deploy --rollback {name} --alias {alias} --apply (moves {name}@{alias} back to version {holder})"
                if holder else f"none needed: {name}@{alias} is new; undo by deleting the alias in MLflow "
                               f"(MlflowClient().delete_registered_model_alias('{name}', '{alias}'))")
    files = {rel: sha256_file(os.path.join(root, rel)) for rel in staged_files(root)}
    manifest = {
        "loom_manifest": 1,
        "plan": f"DeployFlow/{run_id}",
        "validate": v,
        "verdict": s["verdict"],
        "metric": s["metric"], "threshold": (s.get("thresholds") or {}).get("threshold"),
        "holdout": s["holdout"], "cv_mean": s["cv"].get("mean"),
        "seal_id": s["seal"]["id"], "seal_rows_hash": s["seal"]["rows_hash"],
        "dataset": {"pathspec": ds, "content_hash": info.get("content_hash"), "label": info.get("label")},
        "model": {**s["model"], "sha256": sha256_bytes(model_bytes), "task": task, "target": target,
                  "features": features, "classes": classes,
                  "model_written_code": model_is_solution,
                  "code_note": ("the model is an optimize search's best solution: code a language model wrote. Loom "
                                "never imports or unpickles it here; only MLflow's serving/loading processes run it "
                                "(model/artifacts/solution.py, model/artifacts/model.pkl)") if model_is_solution else
                               "the model is Loom's default estimator (scikit-learn); no model-written code"},
        "lineage": lineage,
        "target": {"kind": params.get("target") or "mlflow", "registry": uri},
        "apply_will": {"registry": uri, "model_name": name, "alias": alias,
                       "alias_from": holder, "alias_to": "the new version --apply registers",
                       "command": apply_cmd},
        "rollback": rollback,
        "input_example": "one row made from the schema (zeros and empty strings): no data rows are staged",
        "requirements": reqs,
        "files": files,
    }
    mpath = os.path.join(root, MANIFEST)
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=1, default=str)
    return {"manifest": manifest, "manifest_sha256": sha256_file(mpath), "stage_dir": root, "apply_command": apply_cmd}


def _lineage_chain(lineage: dict) -> list[str]:
    out = []
    for k in ("parent", "parents", "dataset", "source_run", "inputs"):
        x = lineage.get(k)
        for p in (x if isinstance(x, list) else [x]):
            if isinstance(p, str) and "/" in p:
                out.append(p)
    return out


# ---- apply: verify, lock, register, move ------------------------------------------------------------

def find_plan(validate: str, name: str, alias: str, uri: str):
    """The newest successful DeployFlow plan for this validate run, model name, alias and registry."""
    from loom_py.runtime.data import client

    mf = client()
    try:
        runs = list(mf.Flow("DeployFlow").runs())
    except Exception:
        runs = []
    for r in runs:  # newest first
        try:
            if not r.successful or "staged_plan" not in r.data:
                continue
            p = r.data.staged_plan
        except Exception:
            continue
        a = p["manifest"]["apply_will"]
        if p["manifest"]["validate"] == validate and a["model_name"] == name and a["alias"] == alias and a["registry"] == uri:
            return r
    raise UsageError(f"no staged deploy plan for {validate} as {name}@{alias}: run "
                     f"`loom deploy --validate {validate} --name {name} --alias {alias}` first")


def verify_plan(run) -> dict:
    """The staged files are the ones the plan hashed (exit 2 otherwise: plan again). The stage is this
    workspace's ``artifacts/deploy/<plan id>/``: where the plan's task ran elsewhere (a remote container) or the
    directory is gone, it is first brought back from the plan run's kept files (runtime/wsfiles.py), which only
    writes bytes whose sha256 matches what the plan's task recorded, and only files that are missing (one
    changed here is left, and refused below); the manifest check then holds for it as for a stage written here."""
    from loom_py.runtime import wsfiles

    p = dict(run.data.staged_plan)
    root = stage_dir(run.id)
    wsfiles.materialize(run, only_missing=True)
    p["stage_dir"] = root
    mpath = os.path.join(root, MANIFEST)
    fix = f"plan again (`loom deploy --validate {p['manifest']['validate']}`) and apply that plan"
    if not os.path.exists(mpath):
        raise UsageError(f"the staged plan {run.pathspec} is gone ({mpath} is missing): {fix}")
    if sha256_file(mpath) != p["manifest_sha256"]:
        raise UsageError(f"the staged manifest of {run.pathspec} changed since the plan (sha256 mismatch): refused; {fix}")
    with open(mpath) as f:
        files = json.load(f)["files"]
    now = staged_files(root)
    extra = sorted(set(now) - set(files))
    if extra:
        raise UsageError(f"the staged plan {run.pathspec} has files the plan did not hash ({', '.join(extra[:3])}): refused; {fix}")
    for rel, h in files.items():
        full = os.path.join(root, rel)
        if not os.path.exists(full) or sha256_file(full) != h:
            raise UsageError(f"staged file {rel} of {run.pathspec} changed since the plan (sha256 mismatch): refused; {fix}")
    return p


class Lock:
    """An exclusive lock on the workspace's deploy state (racing applies run one after the other)."""

    def __init__(self):
        d = os.path.join(ws_dir(), "deploy")
        os.makedirs(d, exist_ok=True)
        self.path = os.path.join(d, "deploy.lock")

    def __enter__(self):
        import fcntl

        self.f = open(self.path, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def write_journal(entry: dict) -> None:
    """Atomic rewrite (tmp + rename): a reader sees the old state or the new one."""
    os.makedirs(journal_dir(), exist_ok=True)
    path = os.path.join(journal_dir(), entry["run"].replace("/", "-") + ".json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(entry, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def journals() -> list[dict]:
    d = journal_dir()
    out = []
    if not os.path.isdir(d):
        return out
    for n in os.listdir(d):
        if n.endswith(".json"):
            try:
                with open(os.path.join(d, n)) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                continue
    return sorted(out, key=lambda e: e.get("when_ns", 0))


def registry_stamp(uri: str) -> dict | None:
    """What identifies the committed state of a local SQLite registry: SQLite's file change counter (the file
    format's header, offset 24: incremented by every transaction that writes the file), with the file's size
    and inode. None when the file cannot vouch for "nothing was committed since": not a local SQLite file, a
    WAL or rollback journal beside it (a write in progress, or WAL mode, where the counter is not kept), or a
    header whose counter is not current (offset 92 differs)."""
    db = _local_db(uri)
    if not db or os.path.exists(db + "-wal") or os.path.exists(db + "-journal"):
        return None
    try:
        with open(db, "rb") as f:
            head = f.read(100)
            st = os.fstat(f.fileno())
    except OSError:
        return None
    if len(head) < 100 or head[:16] != b"SQLite format 3\x00" or head[24:28] != head[92:96]:
        return None
    return {"change_counter": int.from_bytes(head[24:28], "big"), "size": st.st_size, "inode": st.st_ino}


def _stamp_if_alone(before: dict | None, after: dict | None, commits: int) -> dict | None:
    """The registry's stamp after a move, kept only when the counter went up by exactly the move's own commits
    (nobody else committed in between: then the alias is where this move put it as long as the stamp holds)."""
    if before and after and after["change_counter"] == before["change_counter"] + commits:
        return after
    return None


def recorded_holder(uri: str, name: str, alias: str) -> tuple[bool, int | None]:
    """(known, version): the version Loom's last move of NAME@ALIAS left the alias at, known only while the
    registry file is provably unchanged since that move (its stamp, recorded in the move's journal entry,
    still holds: no version, alias or tag was committed since, by Loom or anyone). Answers without MLflow,
    whose SQLite store costs ~0.6 s of imports here."""
    moves = history(uri, name, alias)
    if not moves or not moves[-1].get("registry_stamp"):
        return False, None
    now = registry_stamp(uri)
    if now is None or now != moves[-1]["registry_stamp"]:
        return False, None
    return True, moves[-1]["to"]


def current_holder(uri: str, name: str, alias: str, *, create: bool = True, exact: bool = True) -> int | None:
    """The version NAME@ALIAS points at in the registry (None: no such alias). ``exact=False`` (a plan, the
    gate's preview) takes Loom's record when the registry file is unchanged since Loom's last move of it
    (``recorded_holder``); an apply, under the lock, always asks the registry."""
    db = _local_db(uri)
    if not create and db and not os.path.exists(db):
        return None
    if not exact:
        known, version = recorded_holder(uri, name, alias)
        if known:
            return version
    c = client(uri)
    try:
        return int(c.get_model_version_by_alias(name, alias).version)
    except Exception:
        return None


def _who() -> str:
    return os.environ.get("METAFLOW_USER") or os.environ.get("USER") or "loom"


def _experiment(c, uri: str) -> str:
    exp = c.get_experiment_by_name(EXPERIMENT)
    if exp:
        return exp.experiment_id
    loc = None
    if _local_db(uri):
        from pathlib import Path

        loc = Path(os.path.join(ws_dir(), "mlflow", "artifacts")).as_uri()
    try:
        return c.create_experiment(EXPERIMENT, artifact_location=loc)
    except Exception:  # created meanwhile by another process
        return c.get_experiment_by_name(EXPERIMENT).experiment_id


def apply(run_pathspec: str, params: dict) -> dict:
    from loom_py.runtime.data import resolve_run

    plan_run = resolve_run(params["plan"], ("DeployFlow",), what="deploy plan")
    p = verify_plan(plan_run)
    m = p["manifest"]
    uri, name, alias = params["registry"], params["name"], params["alias"]
    c = client(uri)
    with Lock():
        verify_plan(plan_run)  # again, now that no other apply can run
        holder = current_holder(uri, name, alias)
        entry = {"run": run_pathspec, "plan": params["plan"], "state": "started", "why": "promote",
                 "registry": uri, "name": name, "alias": alias, "from": holder, "to": None,
                 "validate": m["validate"], "who": _who(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "when_ns": time.time_ns()}
        write_journal(entry)
        exp = _experiment(c, uri)
        r = c.create_run(exp, run_name=f"loom {params['plan']} -> {name}@{alias}",
                         tags={"loom.validate": m["validate"], "loom.plan": params["plan"], "loom.deploy": run_pathspec})
        c.log_artifacts(r.info.run_id, os.path.join(p["stage_dir"], "model"), "model")
        c.log_artifact(r.info.run_id, os.path.join(p["stage_dir"], MANIFEST))
        c.set_terminated(r.info.run_id)
        try:
            c.create_registered_model(name, description="registered by loom deploy", tags={"loom.managed": "true"})
        except Exception:
            pass  # exists
        tags = {"loom.validate": m["validate"], "loom.plan": params["plan"], "loom.deploy": run_pathspec,
                "loom.manifest_sha256": p["manifest_sha256"], "loom.model_sha256": m["model"]["sha256"],
                "loom.data_content_hash": str(m["dataset"]["content_hash"]), "loom.seal_id": m["seal_id"],
                "loom.holdout": f"{m['holdout']['metric']}={m['holdout']['value']}",
                "loom.previous_alias_holder": "none" if holder is None else str(holder),
                "loom.model_written_code": str(m["model"]["model_written_code"]).lower()}
        mv = c.create_model_version(name, source=f"{r.info.artifact_uri}/model", run_id=r.info.run_id, tags=tags,
                                    description=f"validated by {m['validate']} ({m['holdout']['metric']} {m['holdout']['value']})")
        version = int(mv.version)
        entry.update(state="registered", to=version)
        write_journal(entry)
        pause = os.environ.get("LOOM_DEPLOY_FAULT_PAUSE_S")  # fault injection for the kill -9 test
        if pause:
            time.sleep(float(pause))
        before = registry_stamp(uri)
        c.set_registered_model_alias(name, alias, str(version))  # one registry update: old holder or new
        entry.update(state="moved", moved_ns=time.time_ns(), registry_stamp=_stamp_if_alone(before, registry_stamp(uri), 1))
        write_journal(entry)
    move = {k: entry[k] for k in ("why", "registry", "name", "alias", "from", "to", "who", "when", "validate", "plan")}
    return {"move": move, "version": version, "model_uri": f"models:/{name}@{alias}",
            "source": f"{r.info.artifact_uri}/model", "mlflow_run": r.info.run_id}


# ---- rollback ---------------------------------------------------------------------------------------

def history(uri: str, name: str, alias: str) -> list[dict]:
    """The completed moves of NAME@ALIAS in this registry, oldest first (Loom's record)."""
    return [e for e in journals() if e.get("state") == "moved" and e.get("registry") == uri
            and e.get("name") == name and e.get("alias") == alias]


def holders(moves: list[dict]) -> list[int]:
    """Replay: a promotion pushes its version, a rollback pops one. Pure."""
    stack: list[int] = []
    for mv in moves:
        if mv["why"] == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(mv["to"])
    return stack


def deployed_aliases() -> list[dict]:
    """What each alias Loom moved points at now, from Loom's record of moves (no registry call): one row per
    registry, model and alias, with the last move and whether an apply since then never finished. For `loom ops`."""
    done = sorted((e for e in journals() if e.get("state") == "moved"), key=lambda e: e.get("when_ns") or 0)
    rows: dict = {}
    for e in done:
        rows.setdefault((e.get("registry"), e.get("name"), e.get("alias")), []).append(e)
    out = []
    for (uri, name, alias), moves in sorted(rows.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        last = moves[-1]
        stack = holders(moves)
        pending = [e for e in journals() if e.get("state") != "moved" and e.get("registry") == uri
                   and e.get("name") == name and e.get("alias") == alias and (e.get("when_ns") or 0) > (last.get("when_ns") or 0)]
        out.append({"registry": uri, "name": name, "alias": alias, "version": stack[-1] if stack else last.get("to"),
                    "last_move": {"run": last.get("run"), "from": last.get("from"), "to": last.get("to"),
                                  "why": last.get("why"), "when": last.get("when")},
                    "moves": len(moves), "interrupted_since": [e.get("run") for e in pending]})
    return out


def rollback_target(uri: str, name: str, alias: str, *, exact: bool = False) -> dict:
    moves = history(uri, name, alias)
    stack = holders(moves)
    now = current_holder(uri, name, alias, create=False, exact=exact)
    if not moves:
        raise UsageError(f"Loom has no record of moving {name}@{alias} in {uri}: nothing to roll back "
                         "(`loom deploy --validate ValidateFlow/N --name NAME --apply` promotes a version)")
    if stack and now != stack[-1]:
        raise DomainError(f"rollback refused: {name}@{alias} is version {now} in the registry, but Loom's last move "
                          f"left it at {stack[-1]}: it was moved outside Loom; move it with MLflow directly",
                          status="REFUSED", summary={"mode": "rollback", "name": name, "alias": alias, "current": now})
    if len(stack) < 2:
        raise DomainError(f"rollback refused: {name}@{alias} is at version {now}, the first version Loom promoted "
                          "there: there is no earlier version to roll back to", status="REFUSED",
                          summary={"mode": "rollback", "name": name, "alias": alias, "current": now})
    return {"from": stack[-1], "to": stack[-2], "moves": len(moves)}


def rollback_apply(run_pathspec: str, params: dict) -> dict:
    uri, name, alias = params["registry"], params["name"], params["alias"]
    c = client(uri)
    with Lock():
        t = rollback_target(uri, name, alias, exact=True)
        entry = {"run": run_pathspec, "plan": None, "state": "started", "why": "rollback", "registry": uri,
                 "name": name, "alias": alias, "from": t["from"], "to": t["to"], "validate": None, "who": _who(),
                 "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "when_ns": time.time_ns()}
        write_journal(entry)
        before = registry_stamp(uri)
        c.set_registered_model_alias(name, alias, str(t["to"]))
        c.set_model_version_tag(name, str(t["to"]), "loom.rolled_back_from", str(t["from"]))
        entry.update(state="moved", moved_ns=time.time_ns(), registry_stamp=_stamp_if_alone(before, registry_stamp(uri), 2))
        write_journal(entry)
    return {"move": {k: entry[k] for k in ("why", "registry", "name", "alias", "from", "to", "who", "when")},
            "version": t["to"], "model_uri": f"models:/{name}@{alias}"}


def check(params: dict) -> dict:
    """The CLI's preflight for --apply (a bridge call, nothing written): the staged plan verifies, or the
    rollback has somewhere to go, before the gate asks anyone anything."""
    mode = params.get("mode")
    prep = _prepare(params)
    if mode == "rollback_apply":
        pp = prep["params"]
        t = rollback_target(pp["registry"], pp["name"], pp["alias"])
        return {"status": "CHECKED", "summary": {"mode": mode, "name": pp["name"], "alias": pp["alias"],
                                                 "registry": pp["registry"], **t}}
    pp = prep["params"]
    from loom_py.runtime.data import resolve_run

    m = resolve_run(pp["plan"], ("DeployFlow",)).data.staged_plan["manifest"]
    return {"status": "CHECKED", "summary": {
        "mode": mode, "plan": pp["plan"], "name": pp["name"], "alias": pp["alias"], "registry": pp["registry"],
        "alias_from": current_holder(pp["registry"], pp["name"], pp["alias"], create=False, exact=False),
        "model_written_code": bool(m["model"]["model_written_code"]), "model": m["model"]["name"]}}


def serve_command(name: str, alias: str, uri: str) -> str:
    """MLflow's own serving command for the alias, with Loom's environment first on PATH (MLflow starts
    uvicorn by name) and the workspace registry when MLFLOW_TRACKING_URI is not set."""
    import sys

    env = f"PATH={os.path.dirname(sys.executable)}:$PATH MLFLOW_DISABLE_TELEMETRY=true "
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        env += f"MLFLOW_TRACKING_URI={uri} "
    return f"{env}mlflow models serve -m models:/{name}@{alias} --env-manager local -p 5000"


def journal_report() -> dict:
    """For doctor: applies that started and never finished (killed), with what the registry shows."""
    out = []
    for e in journals():
        if e.get("state") != "moved":
            out.append(e)
    return {"status": "OK", "summary": {"interrupted": out}}
