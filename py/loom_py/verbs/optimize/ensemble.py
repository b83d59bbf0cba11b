"""Greedy forward-selection ensembles (Caruana et al., 2004) over the search's out-of-sample predictions.

After the search, the nodes' out-of-fold (cross-validated selection) or held-out predictions are combined: start
from the best single node, then repeatedly add — with replacement — the node whose inclusion gives the best score
of the averaged predictions, by the spec's own metric (Loom's scorer). The best prefix is kept, so on those rows
the ensemble is never worse than its best member. Weights are the selection counts / rounds. Ties go to the
better-ranked node, so the result is deterministic for a journal.

The ensemble is a solution like any other: ``render`` writes a ``solution.py`` whose ``make_model()`` returns a
scikit-learn ``VotingClassifier`` (soft voting) / ``VotingRegressor`` over the members' own ``make_model()``,
each member's code executed as its own module (registered in ``sys.modules`` so the fitted model pickles).
"""

from __future__ import annotations

import numpy as np

from loom_py.verbs.optimize import metric_spec, scoring

ROUNDS = 25
MIN_GAIN = 1e-6  # relative: a smaller gain over the best single node is not worth the ensemble's fit
POOL = 20  # at most this many of the best nodes are candidates (and keep their out-of-sample predictions)


def prune(journal: list[dict], spec: dict, keep: int = POOL) -> None:
    """Drop the out-of-sample predictions of every node outside the best ``keep`` (bounded memory)."""
    key = metric_spec.sort_key(spec)
    ok = sorted([n for n in journal if n["status"] == "ok" and n.get("oof") is not None],
                key=lambda n: (key(n["score"]), n["id"]))
    for n in ok[keep:]:
        n.pop("oof", None)


def _combine(task, preds, counts):
    tot = sum(counts.values())
    return sum(preds[j] * (c / tot) for j, c in counts.items())


def _score1(spec, task, y, combined, classes):
    if task == "regression":
        return scoring.score(spec, y, {"labels": combined})
    labels = np.asarray(classes)[np.argmax(combined, axis=1)]
    return scoring.score(spec, y, {"labels": labels, "proba": combined}, classes=classes)


def _score(spec, task, y, combined, classes, groups=None):
    """The metric as the search scores a node: the mean over the folds' rows (``groups``), else over all rows."""
    if not groups:
        return _score1(spec, task, y, combined, classes)
    return float(np.mean([_score1(spec, task, y[g], combined[g], classes) for g in groups]))


def candidates(journal: list[dict], spec: dict, task: str, pool: int = POOL) -> tuple[list[dict], list, object]:
    """The best ``pool`` ok nodes whose out-of-sample predictions can be averaged (regression: values; classification:
    probabilities over one class order), best first; and that class order."""
    key = metric_spec.sort_key(spec)
    ok = sorted([n for n in journal if n["status"] == "ok" and n.get("oof") is not None and n.get("operator") != "ensemble"],
                key=lambda n: (key(n["score"]), n["id"]))
    out, classes = [], None
    for n in ok:
        o = n["oof"]
        if task == "regression":
            p = np.asarray(o["labels"], dtype=float)
        else:
            if o.get("proba") is None or o.get("classes") is None:
                continue
            if classes is None:
                classes = list(o["classes"])
            if list(o["classes"]) != classes:
                continue
            p = np.asarray(o["proba"], dtype=float)
        if not np.all(np.isfinite(p)):
            continue
        out.append((n, p))
        if len(out) >= pool:
            break
    return out, classes


def select(preds: list[np.ndarray], y, spec: dict, task: str, classes=None, rounds: int = ROUNDS, groups=None) -> dict:
    """Caruana's greedy forward selection with replacement over ``preds`` (best single first in the list).
    Returns {"counts": {index: times chosen}, "weights": {index: weight}, "score": its score, "single": the best
    single member's score, "trace": score after each round}. ``groups``: the folds' row indices; a score is then the mean over the folds,
    exactly as the search scores a cross-validated node."""
    better = lambda a, b: metric_spec.is_better(spec, a, b)  # noqa: E731
    y = np.asarray(y)
    singles = [_score(spec, task, y, p, classes, groups) for p in preds]
    first = 0
    for j, s in enumerate(singles):
        if better(s, singles[first]):
            first = j
    counts = {first: 1}
    best_counts, best_score, trace = dict(counts), singles[first], [singles[first]]
    for _ in range(rounds - 1):
        pick, pick_score = None, None
        for j in range(len(preds)):
            trial = dict(counts)
            trial[j] = trial.get(j, 0) + 1
            s = _score(spec, task, y, _combine(task, preds, trial), classes, groups)
            if pick is None or better(s, pick_score):
                pick, pick_score = j, s
        counts[pick] = counts.get(pick, 0) + 1
        trace.append(pick_score)
        if better(pick_score, best_score):
            best_counts, best_score = dict(counts), pick_score
    tot = sum(best_counts.values())
    return {"counts": best_counts, "weights": {j: c / tot for j, c in sorted(best_counts.items())},
            "score": float(best_score), "single": float(singles[first]), "trace": [float(t) for t in trace]}


def build(journal: list[dict], spec: dict, task: str, y, rounds: int = ROUNDS, groups=None) -> dict | None:
    """The ensemble over the journal's nodes, or None when fewer than two nodes qualify or no mix beats the best
    single node on the out-of-sample rows. Returns {members: [node ids], weights: [...], score, single, oof}."""
    cands, classes = candidates(journal, spec, task)
    if len(cands) < 2:
        return None
    preds = [p for _, p in cands]
    sel = select(preds, y, spec, task, classes, rounds, groups)
    gain = abs(sel["score"] - sel["single"])
    if (len(sel["weights"]) < 2 or not metric_spec.is_better(spec, sel["score"], sel["single"])
            or gain <= MIN_GAIN * max(abs(sel["single"]), 1e-12)):  # float noise of mixing near-identical nodes
        return None
    members = [cands[j][0] for j in sel["weights"]]
    weights = [round(w, 6) for w in sel["weights"].values()]
    combined = _combine(task, preds, sel["counts"])
    fold_scores = [round(_score1(spec, task, np.asarray(y)[g], combined[g], classes), 6) for g in groups] if groups else None
    if task == "regression":
        oof = {"labels": combined, "proba": None, "classes": None}
    else:
        oof = {"labels": np.asarray(classes)[np.argmax(combined, axis=1)], "proba": combined, "classes": np.asarray(classes)}
    return {"members": [m["id"] for m in members], "weights": weights, "codes": [m["code"] for m in members],
            "models": [m.get("model") or "?" for m in members], "score": sel["score"], "single": sel["single"],
            "trace": sel["trace"], "oof": oof, "fold_scores": fold_scores}


TEMPLATE = '''"""{plan}"""
import sys
import types

from sklearn.ensemble import {voter}

MEMBERS = {members!r}  # node ids
WEIGHTS = {weights!r}
CODES = {codes!r}  # each member's own solution.py


def _member(i):
    """Member i's make_model, its code executed as module loom_member_<node> (registered so its fit pickles)."""
    name = f"loom_member_{{MEMBERS[i]}}"
    mod = sys.modules.get(name)
    if mod is None or getattr(mod, "__loom_code__", None) != CODES[i]:
        mod = types.ModuleType(name)
        mod.__loom_code__ = CODES[i]
        sys.modules[name] = mod
        exec(compile(CODES[i], f"<node {{MEMBERS[i]}}>", "exec"), mod.__dict__)
    return mod.make_model


for _i in range(len(MEMBERS)):  # at import, so unpickling a fitted ensemble finds every member's classes
    _member(_i)


def make_model():
    return {voter}([(f"node_{{m}}", _member(i)()) for i, m in enumerate(MEMBERS)], weights=WEIGHTS{extra})
'''


def render(ens: dict, task: str) -> str:
    parts = " + ".join(f"node {m} ({name}) x{w:.2f}" for m, name, w in zip(ens["members"], ens["models"], ens["weights"]))
    plan = (f"Ensemble: greedy forward selection (Caruana 2004) over the nodes' out-of-sample predictions, scored by "
            f"the spec's metric: {parts}.")
    voter = "VotingClassifier" if task == "classification" else "VotingRegressor"
    return TEMPLATE.format(plan=plan.replace('"""', "'''"), voter=voter, members=list(ens["members"]),
                           weights=list(ens["weights"]), codes=list(ens["codes"]),
                           extra=', voting="soft"' if task == "classification" else "")


def label(ens: dict) -> str:
    return "Ensemble(" + " + ".join(f"{name}×{w:.2f}" for name, w in zip(ens["models"], ens["weights"])) + ")"
