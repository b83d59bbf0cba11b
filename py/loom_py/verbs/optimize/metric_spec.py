"""The metric is the spec: ``--metric`` text → a formal spec (metric, direction, split).

Parsed deterministically for the common phrasings (``source: "rules"``). Text the rules cannot map raises
:class:`Unmapped` (a UsageError listing what is understood). When a key is present the CLI asks the model to map
the text onto the same closed set (:func:`closed_set`) and hands its raw answer back; :func:`from_model` validates
it (``source: "model"``) or refuses with the same listing. :func:`resolve` is the one entry point.
"""

from __future__ import annotations

import json
import re

from loom_py.runtime.errors import UsageError

# name -> (aliases (regex, matched on lower-cased text), natural direction, needs probabilities, task)
METRICS: dict[str, dict] = {
    "roc_auc": {"re": r"\broc[\s_-]*auc\b|\bauc[\s_-]*roc\b|\bauroc\b|area under the roc|\bauc\b(?![\s_-]*pr)", "direction": "maximize",
                "proba": True, "task": "classification", "label": "ROC-AUC"},
    "pr_auc": {"re": r"\bpr[\s_-]*auc\b|\bauc[\s_-]*pr\b|\bauprc\b|average precision|precision[\s-]*recall auc", "direction": "maximize",
               "proba": True, "task": "classification", "label": "PR-AUC (average precision)"},
    "log_loss": {"re": r"\blog[\s_-]*loss\b|\blogloss\b|cross[\s-]*entropy|\bnll\b", "direction": "minimize", "proba": True,
                 "task": "classification", "label": "log loss"},
    "balanced_accuracy": {"re": r"balanced[\s_-]*accuracy", "direction": "maximize", "proba": False,
                          "task": "classification", "label": "balanced accuracy"},
    "accuracy": {"re": r"\baccuracy\b|\bacc\b", "direction": "maximize", "proba": False, "task": "classification",
                 "label": "accuracy"},
    "f1": {"re": r"\bf1\b|\bf[\s-]*score\b|\bf-1\b", "direction": "maximize", "proba": False, "task": "classification",
           "label": "F1"},
    "rmse": {"re": r"\brmse\b|root[\s-]*mean[\s-]*squared[\s-]*error", "direction": "minimize", "proba": False,
             "task": "regression", "label": "RMSE"},
    "mae": {"re": r"\bmae\b|mean[\s-]*absolute[\s-]*error", "direction": "minimize", "proba": False,
            "task": "regression", "label": "MAE"},
    "r2": {"re": r"\br2\b|\br²|\br\^2|r-squared|r squared|coefficient of determination", "direction": "maximize",
           "proba": False, "task": "regression", "label": "R²"},
}
ORDER = ["balanced_accuracy", "pr_auc", "roc_auc", "log_loss", "accuracy", "f1", "rmse", "mae", "r2"]

UNDERSTOOD = ("ROC-AUC, PR-AUC (average precision), accuracy, balanced accuracy, F1, log loss, RMSE, MAE, R²; "
              "optional 'maximize'/'minimize' and a split such as 'on a held-out split' or 'on a 25% holdout'")


class Unmapped(UsageError):
    """The rules found no metric in the text (the only refusal the model fallback may rescue)."""


def parse_metric(text: str) -> dict:
    """Deterministic parse. Returns the spec dict or raises UsageError listing what is understood."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"--metric is required: say which metric to optimize, e.g. \"Maximize ROC-AUC on a held-out split.\" (understood: {UNDERSTOOD})")
    t = text.lower()
    found = [m for m in ORDER if re.search(METRICS[m]["re"], t)]
    if "balanced_accuracy" in found and "accuracy" in found:
        found.remove("accuracy")
    if "pr_auc" in found and "roc_auc" in found and not re.search(r"\broc|auroc", t):
        found.remove("roc_auc")  # the bare "auc" inside "PR-AUC"
    if not found:
        raise Unmapped(f"cannot map --metric \"{text}\" to a metric Loom computes itself; understood: {UNDERSTOOD}")
    if len(found) > 1:
        raise UsageError(f"--metric \"{text}\" names more than one metric ({', '.join(METRICS[m]['label'] for m in found)}): name exactly one")
    name = found[0]
    m = METRICS[name]
    said = None
    if re.search(r"\b(maximi[sz]e|maximi[sz]ing|higher is better|max)\b", t):
        said = "maximize"
    if re.search(r"\b(minimi[sz]e|minimi[sz]ing|lower is better|min)\b", t):
        said = "minimize" if said is None else "conflict"
    if said == "conflict":
        raise UsageError(f"--metric \"{text}\" says both maximize and minimize: say one")
    if said and said != m["direction"]:
        raise UsageError(f"--metric \"{text}\": {m['label']} is {'higher' if m['direction'] == 'maximize' else 'lower'}-is-better, "
                         f"so it can only be {m['direction']}d")
    split = parse_split(t)
    return {"metric": name, "label": m["label"], "direction": m["direction"], "needs_proba": m["proba"],
            "task": m["task"], "split": split, "source": "rules", "text": text}


FRACTION_RANGE = (0.05, 0.5)


def closed_set() -> dict:
    """What the model may answer with: the metric names (with label, direction, task) and the fraction range."""
    return {"metrics": {k: {"label": METRICS[k]["label"], "direction": METRICS[k]["direction"], "task": METRICS[k]["task"]}
                        for k in ORDER},
            "directions": ["maximize", "minimize"], "holdout_fraction": list(FRACTION_RANGE)}


def _model_refusal(text: str, why: str) -> UsageError:
    return UsageError(f"cannot map --metric \"{text}\" to a metric Loom computes itself (the model's mapping {why}); "
                      f"understood: {UNDERSTOOD}")


def from_model(answer: str, text: str) -> dict:
    """Validate the model's raw answer (strict JSON: {"metric", "direction", "holdout_fraction"}) against the
    closed set. Returns the spec (``source: "model"``) or raises a UsageError listing what is understood."""
    raw = (answer or "").strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", raw, re.S)
    if fence:
        raw = fence.group(1)
    try:
        obj = json.loads(raw)
    except (ValueError, TypeError):
        raise _model_refusal(text, "was not JSON") from None
    if not isinstance(obj, dict):
        raise _model_refusal(text, "was not a JSON object")
    extra = sorted(set(obj) - {"metric", "direction", "holdout_fraction"})
    if extra:
        raise _model_refusal(text, f"has unknown keys: {', '.join(map(str, extra))}")
    name = obj.get("metric")
    if name is None:
        raise _model_refusal(text, "names no metric")
    if not isinstance(name, str) or name not in METRICS:
        raise _model_refusal(text, f"names {json.dumps(name)}, which is not one of {', '.join(ORDER)}")
    m = METRICS[name]
    direction = obj.get("direction")
    if direction is not None and direction not in ("maximize", "minimize"):
        raise _model_refusal(text, f"has direction {json.dumps(direction)}, not maximize or minimize")
    if direction is not None and direction != m["direction"]:
        raise UsageError(f"--metric \"{text}\" (mapped by the model to {m['label']}, {direction}): {m['label']} is "
                         f"{'higher' if m['direction'] == 'maximize' else 'lower'}-is-better, so it can only be {m['direction']}d")
    frac = obj.get("holdout_fraction")
    if frac is None:
        frac = 0.2
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not FRACTION_RANGE[0] <= float(frac) <= FRACTION_RANGE[1]:
        raise _model_refusal(text, f"has holdout_fraction {json.dumps(frac)}, outside {FRACTION_RANGE[0]}..{FRACTION_RANGE[1]}")
    split = parse_split(text.lower())  # keeps the cross-validation note; the fraction is the model's
    split["fraction"] = float(frac)
    return {"metric": name, "label": m["label"], "direction": m["direction"], "needs_proba": m["proba"],
            "task": m["task"], "split": split, "source": "model", "text": text}


def resolve(text: str, mapping=None) -> dict:
    """The spec for ``--metric`` text: the rules first; the model's mapping (JSON string or dict with
    ``answer``, from the CLI) only when the rules cannot map the text."""
    try:
        return parse_metric(text)
    except Unmapped:
        if not mapping:
            raise
    m = json.loads(mapping) if isinstance(mapping, str) else dict(mapping)
    spec = from_model(m.get("answer") or "", text)
    spec["mapped_by"] = m.get("model")
    return spec


def parse_split(t: str) -> dict:
    frac = 0.2
    mo = re.search(r"(\d{1,2}(?:\.\d+)?)\s*%\s*(?:held[\s-]*out|hold[\s-]*out|validation|valid|test|split)", t)
    if mo:
        frac = float(mo.group(1)) / 100.0
    else:
        mo = re.search(r"(?:held[\s-]*out|hold[\s-]*out|validation|split)[^0-9]{0,20}(0?\.\d+)", t)
        if mo:
            frac = float(mo.group(1))
    if not 0.05 <= frac <= 0.5:
        raise UsageError(f"the held-out fraction {frac:.2f} is outside 0.05..0.5: pick e.g. 'on a 20% holdout'")
    notes = []
    if re.search(r"cross[\s-]*validation|\bk[\s-]*fold|\bcv\b|\d+[\s-]*fold", t):
        notes.append("the search scores on one held-out split; run `loom validate --model OptimizeFlow/N` for cross-validation")
    return {"kind": "holdout", "fraction": frac, "stratified": True, "notes": notes}


def check_task(spec: dict, task: str, n_classes: int | None = None) -> None:
    if spec["task"] != task:
        raise UsageError(f"{spec['label']} is a {spec['task']} metric but the target looks like {task}: "
                         f"pick a {task} metric or another --target")


def is_better(spec: dict, a, b) -> bool:
    """True when score a is strictly better than score b (None is worst)."""
    if a is None:
        return False
    if b is None:
        return True
    return a > b if spec["direction"] == "maximize" else a < b


def sort_key(spec: dict):
    """Key for sorting scores best-first (None last)."""
    sign = -1.0 if spec["direction"] == "maximize" else 1.0
    return lambda s: (s is None, sign * s if s is not None else 0.0)
