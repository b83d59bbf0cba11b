"""Loom scores every candidate itself from the predictions it wrote; nothing is read from its output."""

from __future__ import annotations

import numpy as np


class ScoringError(Exception):
    pass


_LABEL_KINDS = "biufUS"  # bool, int, unsigned, float, str, bytes: what a label can be (npz carries no objects)


def check_predictions(p, rows: int | None, *, prefix: str = "val") -> dict:
    """The candidate's ``<prefix>_labels`` / ``<prefix>_proba`` / ``classes`` as Loom will use them, or a
    ScoringError saying what is wrong: a scalar, a 2-D label array, a wrong row count, non-numeric or non-finite
    probabilities, classes of an odd type. Whatever the candidate wrote, the search gets a failed node, never a
    crash."""
    if not isinstance(p, dict):
        raise ScoringError(f"predictions are a {type(p).__name__}, not named arrays")
    out = dict(p)
    labels = p.get(f"{prefix}_labels")
    if labels is None:
        raise ScoringError(f"no {prefix} predictions were written")
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    if labels.ndim != 1:
        raise ScoringError(f"predict() returned shape {labels.shape}: expected one value per row")
    if rows is not None and len(labels) != rows:
        raise ScoringError(f"predictions have {len(labels)} rows, expected {rows}")
    if labels.dtype.kind not in _LABEL_KINDS:
        raise ScoringError(f"predict() returned values of type {labels.dtype}: expected numbers or labels")
    out[f"{prefix}_labels"] = labels
    proba = p.get(f"{prefix}_proba")
    if proba is not None:
        proba = np.asarray(proba)
        if proba.dtype.kind not in "biuf":
            raise ScoringError(f"predict_proba returned values of type {proba.dtype}: expected numbers")
        if proba.ndim != 2 or proba.shape[0] != len(labels):
            raise ScoringError(f"predict_proba returned shape {proba.shape}, expected ({len(labels)}, n_classes)")
        out[f"{prefix}_proba"] = proba.astype(float)
    classes = p.get("classes")
    if classes is not None:
        classes = np.asarray(classes)
        if classes.ndim != 1 or classes.dtype.kind not in _LABEL_KINDS:
            raise ScoringError(f"classes_ has shape {classes.shape} and type {classes.dtype}: expected a list of labels")
        if proba is not None and len(classes) != proba.shape[1]:
            raise ScoringError(f"classes_ has {len(classes)} entries but predict_proba has {proba.shape[1]} columns")
        out["classes"] = classes
    return out


def score(spec: dict, y_true, pred: dict, classes=None) -> float:
    """``pred`` holds ``labels`` (n,) and, for classifiers that have it, ``proba`` (n, k) ordered as ``classes``."""
    from sklearn import metrics as M

    name = spec["metric"]
    y_true = np.asarray(y_true)
    labels = pred.get("labels")
    proba = pred.get("proba")
    if labels is None or len(labels) != len(y_true):
        raise ScoringError(f"predictions have {0 if labels is None else len(labels)} rows, expected {len(y_true)}")
    if spec["task"] == "regression":
        yp = np.asarray(labels, dtype=float)
        if not np.all(np.isfinite(yp)):
            raise ScoringError("predictions contain NaN or infinite values")
        if name == "rmse":
            return float(np.sqrt(M.mean_squared_error(y_true.astype(float), yp)))
        if name == "mae":
            return float(M.mean_absolute_error(y_true.astype(float), yp))
        if name == "r2":
            return float(M.r2_score(y_true.astype(float), yp))
        raise ScoringError(f"unknown regression metric {name}")
    if spec["needs_proba"]:
        if proba is None:
            raise ScoringError(f"{spec['label']} needs predict_proba, and this model has none")
        proba = np.asarray(proba, dtype=float)
        classes = list(classes) if classes is not None else None
        if proba.ndim != 2 or proba.shape[0] != len(y_true) or classes is None or proba.shape[1] != len(classes):
            raise ScoringError(f"predict_proba returned shape {proba.shape}, expected ({len(y_true)}, n_classes)")
        if not np.all(np.isfinite(proba)):
            raise ScoringError("probabilities contain NaN or infinite values")
        all_classes = sorted(set(map(_key, y_true)) | set(map(_key, classes)))
        idx = {c: i for i, c in enumerate(map(_key, classes))}
        full = np.zeros((len(y_true), len(all_classes)))
        for j, c in enumerate(all_classes):
            if c in idx:
                full[:, j] = proba[:, idx[c]]
        yk = np.array([all_classes.index(_key(v)) for v in y_true])
        if name == "log_loss":
            full = np.clip(full, 1e-15, 1.0)
            full = full / full.sum(axis=1, keepdims=True)
            return float(M.log_loss(yk, full, labels=list(range(len(all_classes)))))
        present = sorted(set(yk))
        if len(present) < 2:
            raise ScoringError("the held-out split has a single class; the metric is undefined")
        if len(all_classes) == 2:
            pos = full[:, 1]
            if name == "roc_auc":
                return float(M.roc_auc_score(yk, pos))
            return float(M.average_precision_score(yk, pos))
        if name == "roc_auc":
            sub = full[:, present]
            sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-15, None)
            return float(M.roc_auc_score(yk, sub, multi_class="ovr", labels=present))
        onehot = np.eye(len(all_classes))[yk]
        return float(M.average_precision_score(onehot[:, present], full[:, present], average="macro"))
    yp = np.array([_key(v) for v in labels])
    yt = np.array([_key(v) for v in y_true])
    if name == "accuracy":
        return float(M.accuracy_score(yt, yp))
    if name == "balanced_accuracy":
        return float(M.balanced_accuracy_score(yt, yp))
    if name == "f1":
        avg = "binary" if len(set(yt)) <= 2 and len(set(yt) | set(yp)) <= 2 else "macro"
        if avg == "binary":
            pos = positive_class(sorted(set(yt)))
            return float(M.f1_score(yt, yp, pos_label=pos, average="binary"))
        return float(M.f1_score(yt, yp, average="macro"))
    raise ScoringError(f"unknown classification metric {name}")


def _key(v):
    """Compare labels as strings of their natural value (1 and 1.0 and '1' agree)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    if isinstance(v, (np.integer,)):
        v = int(v)
    if isinstance(v, (np.bool_, bool)):
        v = int(v)
    return str(v)


def positive_class(sorted_classes):
    """The positive class of a binary target: 1/true/yes/positive when present, else the second sorted label."""
    for c in sorted_classes:
        if str(c).lower() in ("1", "true", "yes", "y", "positive", "pos"):
            return c
    return sorted_classes[-1]
