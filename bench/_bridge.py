"""Run a Loom bridge request the way the CLI does (one Python process, real Metaflow run) and time it."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def env(ws: str, flows_dir: str | None = None) -> dict:
    e = dict(os.environ)
    e.update({"METAFLOW_USER": "loom", "METAFLOW_DEFAULT_METADATA": "local", "METAFLOW_DEFAULT_DATASTORE": "local",
              "METAFLOW_DATASTORE_SYSROOT_LOCAL": os.path.join(ws, ".loom"), "LOOM_WORKSPACE_DIR": os.path.join(ws, ".loom"),
              "LOOM_TMP": os.path.join(ws, ".loom", "tmp"), "PYTHONPATH": os.path.join(ROOT, "py"),
              "LOOM_FLOWS_DIR": flows_dir or os.path.join(ROOT, "flows"), "MPLBACKEND": "Agg"})
    return e


LAST_CPU = [0.0]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bridge(ws: str, req: dict, flows_dir: str | None = None) -> tuple[dict, float]:
    """(result, wall seconds); LAST_CPU[0] holds the CPU seconds of every process the request ran."""
    os.makedirs(os.path.join(ws, ".loom"), exist_ok=True)
    c0 = _children_cpu()
    t = time.perf_counter()
    p = subprocess.run([PY, "-m", "loom_py.runtime.bridge"], input=json.dumps(req), capture_output=True, text=True,
                       env=env(ws, flows_dir), cwd=ws)
    wall = time.perf_counter() - t
    LAST_CPU[0] = _children_cpu() - c0
    out = json.loads(p.stdout)
    if not out.get("ok"):
        raise SystemExit(f"bridge failed: {out.get('message')}\n{p.stderr[-2000:]}")
    return out, wall


def children_maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
