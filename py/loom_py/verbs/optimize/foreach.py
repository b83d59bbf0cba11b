"""`--executor metaflow`: the candidates of a round as a Metaflow foreach (flows/optimize_round_flow.py).

The search loop (search.py) stays where it is — in OptimizeFlow's step — and hands each round to
``run_round``. The data every candidate may see (each fold's staged files) goes into the datastore **once
per search**: ``stage_data`` packs it into one deterministic zip and saves it in OptimizeRoundFlow's own
content-addressed store (Metaflow's ``ContentAddressedStore``, the one its artifacts live in: a local
directory or the S3 bucket, whichever the datastore is). A round's run gets only a small reference
(``data_ref``: key, sha256, size) and its candidates' code (an IncludeFile); each foreach task loads the blob
from the datastore by key and refuses it unless its sha1 and sha256 match the reference (``fetch_data``).
Nothing is read from the launching machine's disk in a task. ``LOOM_OPTIMIZE_WITH=kubernetes`` (or the CLI's
``--with``, as LOOM_METAFLOW_WITH) adds ``--with`` so the foreach fans out remotely. ``run_round`` reads each
task's result through the Client API and writes the predictions and fitted models back into the local node
directories, so scoring (always Loom's, in the parent) and the rest of the search are the same as with the
local pool.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import zipfile

from loom_py.runtime.errors import UsageError
from loom_py.verbs.optimize import sandbox

FLOW = "optimize_round_flow.py"
FLOW_NAME = "OptimizeRoundFlow"
REF_VERSION = 1
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same data packs to the same bytes (and key)
_STAGED: dict = {}  # {signature of the staged files: data reference}: one upload per search


def _flows_dir() -> str:
    return os.environ.get("LOOM_FLOWS_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "flows")


def _with_specs() -> list[str]:
    """The `--with` decorators of the round's run: LOOM_OPTIMIZE_WITH (comma-separated), else the CLI's own
    `--with` (LOOM_METAFLOW_WITH, space-separated), so `loom run --with kubernetes` fans the foreach out too."""
    own = [w.strip() for w in (os.environ.get("LOOM_OPTIMIZE_WITH") or "").split(",") if w.strip()]
    return own or (os.environ.get("LOOM_METAFLOW_WITH") or "").split()


# ---- the round's data, by reference -------------------------------------------------------------------

class DataRefError(UsageError):
    """A round's data reference that does not name the bytes it claims (or names nothing): refused."""


def pack(folds: list[dict]) -> tuple[bytes, list[str]]:
    """(zip bytes, fold names): member ``<i>/<file>`` is fold i's staged file; stored, not deflated (Parquet
    is compressed already), with fixed times, so equal data gives equal bytes."""
    buf = io.BytesIO()
    names = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for i, f in enumerate(folds):
            names.append(f["name"] or "")
            for n in sandbox.DATA_FILES:
                with open(os.path.join(f["data_dir"], n), "rb") as fh:
                    z.writestr(zipfile.ZipInfo(f"{i}/{n}", date_time=_ZIP_TIME), fh.read())
    return buf.getvalue(), names


def round_store(flow_datastore=None):
    """OptimizeRoundFlow's content-addressed store: ``flow_datastore`` (a task's own, in a round task) or the
    one Metaflow's configuration names (local directory or S3 root), as its runs will use it."""
    if flow_datastore is None:
        from metaflow.datastore import FlowDataStore
        from metaflow.plugins import DATASTORES

        from loom_py.runtime.data import datastore_root, datastore_type

        kind = datastore_type()  # from the environment the round's runs inherit
        impl = next((d for d in DATASTORES if d.TYPE == kind), None)
        if impl is None:
            raise UsageError(f"the {kind} datastore is not available to Metaflow here: run `loom doctor`")
        root = datastore_root()
        if kind == "local":
            root = os.path.join(root, impl.DATASTORE_DIR) if root else impl.get_datastore_root_from_config(lambda *a, **k: None)
        flow_datastore = FlowDataStore(FLOW_NAME, storage_impl=impl, ds_root=root)
    return flow_datastore.ca_store


def _signature(folds: list[dict]) -> tuple:
    sig = []
    for f in folds:
        for n in sandbox.DATA_FILES:
            st = os.stat(os.path.join(f["data_dir"], n))
            sig.append((f["name"] or "", os.path.abspath(f["data_dir"]), n, st.st_size, st.st_mtime_ns))
    return tuple(sig)


def stage_data(folds: list[dict], emit=lambda *a, **k: None) -> dict:
    """The search's data in the datastore, once: the reference every round passes (cached per staged files;
    the store itself skips a blob it already holds)."""
    sig = _signature(folds)
    if sig in _STAGED:
        return _STAGED[sig]
    blob, names = pack(folds)
    from loom_py.runtime.data import datastore_type

    key = round_store().save_blobs([blob], raw=True)[0].key
    ref = {"v": REF_VERSION, "datastore": datastore_type(), "key": key, "sha256": hashlib.sha256(blob).hexdigest(),
           "bytes": len(blob), "folds": names}
    _STAGED[sig] = ref
    emit("progress", message=f"the search's data ({len(blob) / 1e6:.2f} MB, {len(names)} fold(s)) is in the datastore "
                             f"once as {FLOW_NAME} blob {key[:12]}; each round passes only its reference")
    return ref


def check_ref(ref, store=None) -> dict:
    """The reference's shape (a round's start step): a dict naming a 40-hex key, a 64-hex sha256, a size;
    with ``store``, also that the blob it names is there (one metadata request, no bytes)."""
    if isinstance(ref, str):
        try:
            ref = json.loads(ref)
        except ValueError:
            raise DataRefError("the round's data reference is not JSON: refused")
    ok = (isinstance(ref, dict) and ref.get("v") == REF_VERSION and re.fullmatch(r"[0-9a-f]{40}", str(ref.get("key", "")))
          and re.fullmatch(r"[0-9a-f]{64}", str(ref.get("sha256", ""))) and isinstance(ref.get("bytes"), int)
          and isinstance(ref.get("folds"), list) and ref["folds"])
    if not ok:
        raise DataRefError("the round's data reference is malformed (key, sha256, bytes, folds): refused")
    if store is not None:
        path = store._storage_impl.path_join(store._prefix, ref["key"][:2], ref["key"])
        if not store._storage_impl.is_file([path])[0]:
            raise DataRefError(f"the round's data reference names blob {ref['key'][:12]}, which is not in the datastore: refused")
    return ref


def fetch_data(ref: dict, store) -> bytes:
    """The blob a reference names, from the datastore, verified: its sha1 is the key, its sha256 and size
    the reference's. Anything else is refused (DataRefError), never staged for a candidate."""
    ref = check_ref(ref, store)
    blob = next((b for _k, b in store.load_blobs([ref["key"]])), None)
    if blob is None:
        raise DataRefError(f"blob {ref['key'][:12]} of the round's data reference cannot be read: refused")
    got = hashlib.sha256(blob).hexdigest()
    if hashlib.sha1(blob).hexdigest() != ref["key"] or got != ref["sha256"] or len(blob) != ref["bytes"]:
        raise DataRefError(f"the round's data does not match its reference (sha256 {got[:12]} ≠ {ref['sha256'][:12]}, "
                           f"{len(blob)} ≠ {ref['bytes']} bytes): refused")
    return blob


def unpack(blob: bytes, ref: dict, root: str) -> dict:
    """{fold name: directory} of the read-only data files a verified blob holds, written under ``root``."""
    dirs = {}
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        for i, name in enumerate(ref["folds"]):
            d = os.path.join(root, "data", name or "holdout")
            os.makedirs(d, exist_ok=True)
            for n in sandbox.DATA_FILES:
                with open(os.path.join(d, n), "wb") as fh:
                    fh.write(z.read(f"{i}/{n}"))
                os.chmod(os.path.join(d, n), 0o444)
            dirs[name] = d
    return dirs


def round_resources(ref: dict, folds: int) -> dict:
    """What each candidate task asks of remote compute: its folds fit at once on the staged data."""
    from loom_py.runtime.sizing import size_for

    return size_for("round", stored_bytes=int(ref["bytes"]), folds=folds)


def run_round(to_run: list[dict], folds: list[dict], cfg: dict, deadline, node_timeout: float, emit, workdir: str) -> dict:
    """Run the round's candidates as OptimizeRoundFlow's foreach; {node id: [fold result, ...]} like the local pool."""
    import time

    ref = stage_data(folds, emit)
    cands = []
    for node in to_run:
        timeout = node_timeout
        if deadline:
            timeout = max(1.0, min(timeout, deadline - time.time()))
        cands.append({"id": node["id"], "code": node["code"], "timeout": timeout})
    payload = {"candidates": cands, "limits": {"mem_mb": int(cfg.get("mem_mb") or 4096)}}  # code only: the data is by reference
    with tempfile.TemporaryDirectory(prefix="loom-round-", dir=os.environ.get("LOOM_TMP") or None) as tmp:
        pfile, rid = os.path.join(tmp, "payload.pkl"), os.path.join(tmp, "run-id")
        with open(pfile, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        args = [sys.executable, os.path.join(_flows_dir(), FLOW), "--quiet", "--no-pylint",
                "--config-value", "loom_resources", json.dumps(round_resources(ref, len(folds)))]
        for w in _with_specs():
            args += ["--with", w]
        args += ["run", "--run-id-file", rid, "--payload", pfile, "--data_ref", json.dumps(ref, sort_keys=True)]
        if int(cfg.get("parallel") or 1) > 1:
            args += ["--max-workers", str(int(cfg["parallel"]))]
        t0 = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, cwd=os.environ.get("LOOM_WORKSPACE_DIR") or None)
        run_id = open(rid).read().strip() if os.path.exists(rid) else None
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not run_id:
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        tail = lines[-20:]
        from loom_py.runtime.events import parse_line

        said = [ev.get("message") for ev in map(parse_line, lines) if ev and ev.get("kind") == "error" and ev.get("message")]
        reason = f"the Metaflow foreach for this round failed (OptimizeRoundFlow/{run_id}): " + (
            said[-1] if said else tail[-1] if tail else f"exit {proc.returncode}")  # a step's own one line first
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


def run_candidate_task(cand: dict, ref: dict, store, limits: dict) -> dict:
    """Inside OptimizeRoundFlow's foreach task: fetch the round's data from the datastore by its reference
    (verified: ``fetch_data``), run every fold of this candidate in the sandbox (pre-forked launcher where it
    starts), return outputs, predictions and the fitted model as bytes, and the sha256 it verified."""
    import shutil

    from metaflow import current

    root = tempfile.mkdtemp(prefix=f"loom-cand-{cand['id']}-", dir=os.environ.get("LOOM_TMP") or None)
    zygote = None
    try:
        blob = fetch_data(ref, store)
        data_dirs = unpack(blob, ref, root)
        del blob
        # the task's unpacked folds are bound read-only into each candidate (as the local search does), not copied
        zygote = sandbox.start_zygote(data_root=os.path.join(root, "data"))
        running = []
        for fold, ddir in data_dirs.items():
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
        return {"id": cand["id"], "folds": folds, "data_sha256": ref["sha256"],  # what fetch_data verified
                "task": f"{current.flow_name}/{current.run_id}/{current.step_name}/{current.task_id}"}
    finally:
        if zygote is not None:
            zygote.close()
        shutil.rmtree(root, ignore_errors=True)
