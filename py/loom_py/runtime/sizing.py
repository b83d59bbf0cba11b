"""What a heavy step asks of remote compute (``@resources``), from the size of its data.

``size_for`` is pure: the kind of step, the data object's rows × columns and stored (Parquet) bytes as
recorded at ingest, how many fits run at once, and the environment's floors, caps and overrides give cores
and MiB. The bridge computes it in ``prepare`` (the verb's hook, before the run exists) and hands it to the
flow as Metaflow's own ``Config`` ``loom_resources``, which the flow's ``@resources(cpu=config_expr(...))``
reads; a flow run without it (``argo-workflows create`` on a bare flow file) gets ``DEFAULTS``, the static
sizes of decision 0900. Metaflow ignores ``@resources`` on local compute, so locally nothing changes but the
record: the config is an artifact of the run, and the summary and the card show it.

The estimate: a table takes ~8 bytes a cell in memory once loaded (numeric columns; Parquet compresses
them ~2-5×), so ``frame_mb = max(cells × 8, stored_bytes × 4) / MiB``. Each kind holds so many copies of it
at once (``COPIES``) on top of a base for the interpreter and its libraries; cores follow the fits that run
at the same time. Rounded up to 256 MiB, then clamped to the floors and caps.
"""

from __future__ import annotations

import math
import os

MiB = 1 << 20
DEFAULTS = {  # cpu cores, memory MiB when the data's size is unknown: decision 0900's static sizes
    "validate": (2, 8192),
    "optimize": (4, 16384),
    "round": (2, 8192),
    "features": (1, 8192),
    "train": (4, 16384),
}
BASE_MB = {"validate": 1024, "optimize": 1536, "round": 1024, "features": 1024, "train": 2048}
# LOOM_RESOURCES_MIN_CPU / LOOM_RESOURCES_MIN_MEMORY_MB: Metaflow's own @kubernetes / @batch defaults (1 cpu,
# 4096 MiB), which it takes as the larger of them and @resources: asking for less would change nothing there
FLOOR = (1, 4096)
CAP = (16, 61440)  # LOOM_RESOURCES_MAX_CPU / LOOM_RESOURCES_MAX_MEMORY_MB: a 16-core, 64 GiB node's allocatable share


def _copies(kind: str, parallel: int, folds: int, executor: str) -> float:
    """How many copies of the frame a step holds at its peak."""
    if kind == "validate":  # the frame, its model matrix, a CV fold's train/test split, the fitted model, calibration
        return 8
    if kind == "optimize":  # the frame, the seal, the staged files; the local pool's fits (parallel × folds) in the task
        return 4 + (3 * parallel * folds if executor == "local" else 0)
    if kind == "round":  # one candidate's folds at once, each its train split, model matrix and predictions
        return 3 * folds
    return 4


def _cores(kind: str, parallel: int, folds: int, executor: str, cells: int) -> int:
    if kind == "optimize":
        return parallel * folds if executor == "local" else 1  # the foreach's tasks fit elsewhere
    if kind == "round":
        return folds
    if kind == "validate":  # fits pinned to one thread; the sidecar overlaps them on larger data
        return 2 if cells >= 1_000_000 else 1
    return 1 + cells // 20_000_000


def _env_int(env, name: str):
    v = (env.get(name) or "").strip()
    if not v:
        return None
    try:
        return int(float(v))
    except ValueError:
        return None


def size_for(kind: str, *, rows: int | None = None, columns: int | None = None, stored_bytes: int | None = None,
             parallel: int = 1, folds: int = 1, executor: str = "local", env=None) -> dict:
    """{"cpu", "memory" (MiB), "basis", "rule"} for a step of ``kind`` on data of this size (pure)."""
    env = os.environ if env is None else env
    parallel, folds = max(1, int(parallel or 1)), max(1, int(folds or 1))
    lo = (_env_int(env, "LOOM_RESOURCES_MIN_CPU") or FLOOR[0], _env_int(env, "LOOM_RESOURCES_MIN_MEMORY_MB") or FLOOR[1])
    hi = (_env_int(env, "LOOM_RESOURCES_MAX_CPU") or CAP[0], _env_int(env, "LOOM_RESOURCES_MAX_MEMORY_MB") or CAP[1])
    cells = int(rows or 0) * int(columns or 0)
    basis = {"rows": rows, "columns": columns, "stored_bytes": stored_bytes, "parallel": parallel, "folds": folds,
             "executor": executor}
    if not cells and not stored_bytes:
        cpu, mem = DEFAULTS.get(kind, (1, 4096))
        rule = "data size unknown: the static size"
    else:
        frame_mb = max(cells * 8, int(stored_bytes or 0) * 4) / MiB
        copies = _copies(kind, parallel, folds, executor)
        cpu = _cores(kind, parallel, folds, executor, cells)
        mem = int(math.ceil((BASE_MB.get(kind, 1024) + copies * frame_mb) / 256.0) * 256)
        basis["frame_mb"] = round(frame_mb, 3)
        rule = f"{BASE_MB.get(kind, 1024)} MiB + {copies:g} x {frame_mb:.3g} MiB frame"
    cpu = max(lo[0], min(hi[0], int(cpu)))
    mem = max(lo[1], min(hi[1], int(mem)))
    pinned = {k: _env_int(env, v) for k, v in (("cpu", "LOOM_RESOURCES_CPU"), ("memory", "LOOM_RESOURCES_MEMORY_MB"))}
    if pinned["cpu"]:
        cpu, rule = max(1, pinned["cpu"]), rule + "; cpu from LOOM_RESOURCES_CPU"
    if pinned["memory"]:
        mem, rule = max(512, pinned["memory"]), rule + "; memory from LOOM_RESOURCES_MEMORY_MB"
    return {"cpu": cpu, "memory": mem, "basis": basis, "rule": rule}


def default_config(kind: str) -> str:
    """The flow's ``Config`` default (JSON): the static size, the environment's overrides applied."""
    import json

    return json.dumps(size_for(kind))


def describe(r: dict) -> str:
    """One line for a summary or card: '2 cpu, 4096 MiB (1024 MiB + 8 x 1.2 MiB frame)'."""
    return f"{r.get('cpu')} cpu, {r.get('memory')} MiB ({r.get('rule', '')})"
