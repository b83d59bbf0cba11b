"""`loom train`: the model-builder seam.

A provider turns a request into a plan (cost, backbone, recipe, data reference), then builds (local) or
plans / launches (nemo), then reports metrics. Providers live in ``providers.py`` behind one interface;
budgets (GPU count x hours for nemo, sizes for the CPU stand-in) live in ``budgets.json``, which the
TypeScript gate reads too, so the cost shown at the gate and the cost recorded in the run are one number.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from functools import lru_cache

from loom_py.runtime.errors import UsageError

BUDGETS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "budgets.json")
STATUS_REFUSED = "REFUSED_NO_GPU_TARGET"
REFUSAL_HINT = "(set LOOM_GPU_TARGET, or use the CPU stand-in)"


@lru_cache(maxsize=1)
def budgets() -> dict:
    with open(BUDGETS_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def usd_text(usd: float) -> str:
    return f"~${usd:,.0f}" if usd >= 10 or float(usd).is_integer() else f"~${usd:.2f}"


def gpu_rate(value=None) -> float:
    raw = value if value not in (None, "") else os.environ.get("LOOM_GPU_HOURLY_USD")
    if raw in (None, ""):
        return float(budgets()["gpu_hourly_usd_default"])
    try:
        rate = float(raw)
    except (TypeError, ValueError):
        rate = -1.0
    if not rate >= 0 or rate != rate:
        raise UsageError(f"LOOM_GPU_HOURLY_USD={raw} is not a dollar rate: set it to a number such as 3.00")
    return rate


def cost_plan(budget: str, rate: float) -> dict:
    """The nemo cost plan for a budget: GPU count x hours = GPU-hours and dollars at ``rate``."""
    b = budgets()["nemo"][budget]
    gpu_hours = b["gpus"] * b["hours"]
    usd = round(gpu_hours * rate, 2)
    line = f"budget={budget}: {b['gpus']} GPU x {_num(b['hours'])} h = {_num(gpu_hours)} GPU-hours ({usd_text(usd)})"
    return {"gpus": b["gpus"], "hours": b["hours"], "gpu_hours": gpu_hours, "usd": usd, "rate_usd_per_gpu_hour": rate,
            "max_steps": b["max_steps"], "line": line}


@dataclass
class Request:
    dataset: str
    objective: str
    budget: str
    provider: str
    backbone: str | None = None
    entity: str | None = None
    time: str | None = None
    event: str | None = None
    launch: bool = False
    gpu_target: str | None = None
    gpu_hourly_usd: float | None = None

    @classmethod
    def from_params(cls, p: dict) -> "Request":
        b = budgets()
        provider = (p.get("provider") or os.environ.get("LOOM_MODEL_BUILDER_PROVIDER") or "nemo").strip().lower()
        if provider not in b["providers"]:
            raise UsageError(f"unknown provider '{provider}': use --provider {'|'.join(b['providers'])} "
                             "(or set LOOM_MODEL_BUILDER_PROVIDER)")
        objective = p.get("objective") or "next-event"
        if objective not in b["objectives"]:
            raise UsageError(f"unknown objective '{objective}': use --objective {'|'.join(b['objectives'])}")
        budget = p.get("budget") or "probe"
        if budget not in b["nemo"]:
            raise UsageError(f"unknown budget '{budget}': use --budget {'|'.join(b['nemo'])}")
        if not p.get("dataset"):
            raise UsageError("train needs a data object: pass --dataset IngestDataset/N (`loom datasets` lists them)")
        backbone = p.get("backbone") or None
        if backbone and not re.match(r"^[A-Za-z0-9_.-]+$", backbone):
            raise UsageError(f"--backbone '{backbone}' is not a recipe name (letters, digits, _ . -), e.g. llama32_1b")
        launch = p.get("launch") in (True, "true", "True", "1", 1)
        target = p.get("gpu_target")
        if target is None:
            target = os.environ.get("LOOM_GPU_TARGET")
        return cls(dataset=p["dataset"], objective=objective, budget=budget, provider=provider, backbone=backbone,
                   entity=p.get("entity") or None, time=p.get("time_col") or p.get("time") or None,
                   event=p.get("event") or None, launch=launch, gpu_target=(target or "").strip() or None,
                   gpu_hourly_usd=gpu_rate(p.get("gpu_hourly_usd")))

    def flow_params(self) -> dict:
        d = asdict(self)
        d["time_col"] = d.pop("time")
        return {k: v for k, v in d.items() if v is not None}

    def command(self, *, launch: bool) -> str:
        parts = [f"LOOM_GPU_TARGET={self.gpu_target}"] if self.gpu_target else []
        parts += ["loom train", f"--dataset {self.dataset}", f"--objective {self.objective}", f"--budget {self.budget}"]
        if self.provider != "nemo":
            parts.append(f"--provider {self.provider}")
        if self.backbone:
            parts.append(f"--backbone {self.backbone}")
        for flag, v in (("entity", self.entity), ("time", self.time), ("event", self.event)):
            if v:
                parts.append(f"--{flag} {v}")
        if launch:
            parts.append("--launch")
        return " ".join(parts)


def prepare(params: dict) -> dict:
    """Launcher-side checks (exit 2 before a run): provider refusals, the data object, its columns and
    sequences, and for --launch the Modal client and credentials."""
    from loom_py.runtime.data import load_frame
    from loom_py.verbs.train.providers import get_provider
    from loom_py.verbs.train.sequences import build_sequences, check_sequences, detect_columns

    req = Request.from_params(params)
    provider = get_provider(req.provider)
    provider.check(req)
    df, info = load_frame(req.dataset)
    cols = detect_columns(df, objective=req.objective, entity=req.entity, time=req.time, event=req.event)
    seqs = build_sequences(df, cols, provider.max_events(req))
    check_sequences(seqs, cols.event)
    req.entity, req.time, req.event = cols.entity, cols.time, cols.event
    provider.check_launch(req)
    return {"params": {**req.flow_params(), "column_notes": json.dumps(cols.notes)}, "inputs": [req.dataset]}
