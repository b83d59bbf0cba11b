"""Files a flow's step writes into the workspace, carried by the run so they exist where the run is read.

A step that writes files under the workspace (report's model card, viz's PNGs, deploy's staged model, collab's
bundle, train's work dir) calls ``keep(self, path, ...)``: two artifacts go with the run,

* ``loom_workspace_index``: ``{"root": <the writer's workspace dir>, "cap_bytes": N, "files": [{"path": <relative
  to the workspace dir, "/"-separated>, "sha256": hex, "bytes": n, "stored": bool}]}`` (small), and
* ``loom_workspace_files``: ``{path: bytes}`` for the stored files.

Under ``--with kubernetes|batch`` the task's workspace is the container's; the artifacts are in the datastore. The
bridge calls ``materialize(run)`` after every run (and ``deploy --apply``, ``collab --send`` and ``loom open`` call it
for the run they read): it reads the index only, hashes the local files it names, and loads the bytes artifact only
when one is missing or differs; each file is written (atomically) only after its bytes hash to the recorded sha256.
On the machine that ran the task, every file is there with its hash and nothing is rewritten.

Bounded: at most ``LOOM_WORKSPACE_FILES_MAX_MB`` (default 256 MiB) of bytes per run are stored, files taken in
path order; a file past the cap is indexed (path, hash, size) with ``stored: false`` and not carried: materialize
names it in ``not_stored`` and the reader that needs it refuses in one line (deploy: "the staged plan is gone")."""

from __future__ import annotations

import hashlib
import os

from loom_py.runtime.data import sha256_file

INDEX = "loom_workspace_index"
FILES = "loom_workspace_files"
DEFAULT_CAP_MB = 256


def workspace_dir() -> str:
    return os.environ.get("LOOM_WORKSPACE_DIR") or os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL") or os.getcwd()


def cap_bytes() -> int:
    try:
        return int(float(os.environ.get("LOOM_WORKSPACE_FILES_MAX_MB") or DEFAULT_CAP_MB) * (1 << 20))
    except ValueError:
        return DEFAULT_CAP_MB << 20


def _files_under(path: str) -> list[str]:
    if os.path.isfile(path) and not os.path.islink(path):
        return [path]
    out = []
    for d, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(p)
    return out


def collect(paths, ws: str | None = None, cap: int | None = None) -> tuple[dict, dict]:
    """(index, {rel: bytes}) for the files at ``paths`` (files or directories under the workspace dir)."""
    root = ws or workspace_dir()  # as the flow spelled it (its result's paths start with it)
    ws = os.path.realpath(root)
    cap = cap_bytes() if cap is None else cap
    entries: dict[str, dict] = {}
    blobs: dict[str, bytes] = {}
    used = 0
    for p in paths:
        for f in _files_under(p):
            real = os.path.realpath(f)
            rel = os.path.relpath(real, ws)
            if rel.startswith("..") or os.path.isabs(rel):
                raise ValueError(f"{f} is not under the workspace {ws}")
            rel = rel.replace(os.sep, "/")
            with open(real, "rb") as fh:
                b = fh.read()
            stored = used + len(b) <= cap
            entries[rel] = {"path": rel, "sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b), "stored": stored}
            if stored:
                blobs[rel] = b
                used += len(b)
    return {"root": root, "cap_bytes": cap, "files": [entries[k] for k in sorted(entries)]}, blobs


def keep(flow, *paths) -> dict:
    """Inside a step: store the files at ``paths`` with the run (merged with what this task kept before)."""
    index, blobs = collect(paths)
    prior = getattr(flow, INDEX, None)
    if prior:  # a second call in the same task: merge (the new call wins on a path both name)
        merged = {e["path"]: e for e in prior["files"]}
        merged.update({e["path"]: e for e in index["files"]})
        index["files"] = [merged[k] for k in sorted(merged)]
        blobs = {**getattr(flow, FILES), **blobs}
    setattr(flow, INDEX, index)
    setattr(flow, FILES, blobs)
    return index


def index_of(run) -> dict | None:
    """The run's index, read from its data (the step's artifacts travel to ``end``); None if it kept no files."""
    try:
        return getattr(run.data, INDEX)
    except Exception:
        return None


def _local(ws: str, rel: str) -> str | None:
    """Where ``rel`` goes on this machine, or None if it would leave the workspace dir."""
    if not rel or rel.startswith("/") or "\\" in rel or any(part in ("", ".", "..") for part in rel.split("/")):
        return None
    full = os.path.join(ws, *rel.split("/"))
    real_ws = os.path.realpath(ws)
    if os.path.commonpath([real_ws, os.path.realpath(os.path.dirname(full))]) != real_ws:
        return None
    return full


def materialize(run, ws: str | None = None, index: dict | None = None, *, only_missing: bool = False) -> dict:
    """Bring the run's kept files into this machine's workspace where they are missing or differ (with
    ``only_missing``: where missing; a present file that differs is left for the caller's own check to refuse,
    as deploy --apply refuses a staged file changed since the plan).

    Returns ``{"files": n, "restored": [rel], "not_stored": [rel], "refused": [rel], "root": writer's dir,
    "ws": this dir}``; ``{"files": 0, ...}`` for a run that kept none."""
    ws = ws or workspace_dir()
    index = index if index is not None else index_of(run)
    out = {"files": 0, "restored": [], "not_stored": [], "refused": [], "root": None, "ws": ws}
    if not index:
        return out
    out["root"], out["files"] = index.get("root"), len(index.get("files") or [])
    todo = []
    for e in index.get("files") or []:
        dest = _local(ws, e["path"])
        if dest is None:
            out["refused"].append(e["path"])
            continue
        if os.path.lexists(dest) and (only_missing or (os.path.isfile(dest) and not os.path.islink(dest)
                                                         and os.path.getsize(dest) == e["bytes"]
                                                         and sha256_file(dest) == e["sha256"])):
            continue  # here already, the same bytes (or, only_missing, here at all): nothing is rewritten
        if not e.get("stored"):
            out["not_stored"].append(e["path"])
            continue
        todo.append((e, dest))
    if not todo:
        return out
    try:
        blobs = getattr(run.data, FILES)
    except Exception:
        out["not_stored"] += [e["path"] for e, _ in todo]
        return out
    for e, dest in todo:
        b = blobs.get(e["path"])
        if b is None or hashlib.sha256(b).hexdigest() != e["sha256"]:
            out["refused"].append(e["path"])  # the stored bytes are not the ones hashed: never written
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.islink(dest) or os.path.isdir(dest):
            out["refused"].append(e["path"])
            continue
        tmp = f"{dest}.{os.getpid()}.part"
        try:
            with open(tmp, "wb") as f:
                f.write(b)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        out["restored"].append(e["path"])
    return out


def _same(a: str, b: str) -> bool:
    return a == b or os.path.realpath(a) == os.path.realpath(b)


def local_path(path, root: str | None, ws: str | None = None):
    """A path the writer named (under its workspace dir ``root``) as the same file in this machine's workspace."""
    ws = ws or workspace_dir()
    if not isinstance(path, str) or not root or _same(root, ws):
        return path
    if path == root:
        return ws
    if path.startswith(root.rstrip("/") + "/"):
        return os.path.join(ws, path[len(root.rstrip("/")) + 1:])
    return path


def remap(obj, root: str | None, ws: str | None = None):
    """``obj`` (a run's result: nested dicts, lists, strings) with the writer's workspace paths as this machine's."""
    ws = ws or workspace_dir()
    if not root or _same(root, ws):
        return obj
    if isinstance(obj, str):
        return obj.replace(root.rstrip("/") + "/", ws.rstrip("/") + "/") if root.rstrip("/") + "/" in obj else local_path(obj, root, ws)
    if isinstance(obj, dict):
        return {k: remap(v, root, ws) for k, v in obj.items()}
    if isinstance(obj, list):
        return [remap(v, root, ws) for v in obj]
    return obj
