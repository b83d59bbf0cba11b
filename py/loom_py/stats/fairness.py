"""Per-slice results and group-fairness gaps for ``--sensitive`` columns.

Per group of a sensitive column: rows, the task metric, and for binary classification the selection
rate P(pred = positive), TPR and FPR. Gaps are taken over the groups that can be judged:
* demographic-parity difference = max - min selection rate; ratio = min / max;
* equalized-odds difference = max(TPR range, FPR range) (Hardt et al. 2016; fairlearn's definition).
A group is *too small to judge* when it has fewer than ``min_group`` rows, or (binary) fewer than
``MIN_CLASS_ROWS`` positives or negatives (its TPR or FPR is undefined or noise). Such groups are listed by name, never dropped silently.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MIN_GROUP = 30
MIN_CLASS_ROWS = 10  # a group's TPR / FPR from fewer positives / negatives is noise (decision 0201)


def group_labels(s) -> np.ndarray:
    return s.astype("string").fillna("<missing>").to_numpy().astype(str)


def decision_threshold(score_pos, base_rate: float, *, given: float | None = None) -> dict:
    """The probability cut that turns scores into decisions for the parity gaps.

    Default: base-rate matching — the cut at which the share of positive decisions equals the positive
    rate of the training rows (label-free on the scored rows). A model whose probabilities never reach 0.5
    (a rare class, or squashed probabilities) then still makes positive decisions, so the gaps are about
    its ranking of the groups instead of a degenerate "no one is selected" (gap 0 everywhere)."""
    score_pos = np.asarray(score_pos, dtype="float64")
    if given is not None:
        t, how = float(given), "given with --decision-threshold"
    else:
        q = float(np.clip(1 - base_rate, 0, 1))
        t = float(np.quantile(score_pos, q)) if len(score_pos) else 0.5
        how = f"base-rate matching: positive decisions for the top {base_rate:.1%} of scores (the training positive rate)"
    return {"threshold": t, "how": how, "base_rate": float(base_rate),
            "positive_decision_share": float(np.mean(score_pos >= t)) if len(score_pos) else None}


def slice_report(y_true, y_pred, groups, *, positive=None, metric_fn=None, metric_name: str = "",
                 proba_pos=None, score_pos=None, min_group: int = DEFAULT_MIN_GROUP, n_boot: int = 200,
                 seed: int = 0, min_class: int = MIN_CLASS_ROWS) -> dict:
    """``y_pred``: predicted labels / decisions (classification) or values (regression); ``positive``: the
    positive class for binary classification (None otherwise); ``metric_fn(y, pred_or_proba)`` per group;
    ``score_pos``: the positive-class score (binary), for per-group ROC-AUC and its gap.

    Binary: the check is *not assessable* (``assessable`` False, with the reason) when a group large enough
    to judge has no positives (its TPR is undefined) or the decision is degenerate (no positive decisions in
    any group, or only positive ones) — a gap computed on such a decision says nothing about fairness. One
    group without positive decisions while others have some is a real gap, not a degenerate one."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    groups = np.asarray(groups).astype(str)
    binary = positive is not None
    rows, too_small = [], []
    for g in sorted(np.unique(groups)):
        m = groups == g
        n = int(m.sum())
        row: dict = {"group": g, "rows": n}
        if metric_fn is not None:
            try:
                score_input = proba_pos[m] if proba_pos is not None else y_pred[m]
                row[metric_name or "metric"] = float(metric_fn(y_true[m], score_input))
            except Exception:
                row[metric_name or "metric"] = None
        reason = None
        if binary:
            yt = y_true[m] == positive
            yp = y_pred[m] == positive
            pos, neg = int(yt.sum()), int((~yt).sum())
            row["selection_rate"] = float(yp.mean()) if n else None
            row["tpr"] = float((yp & yt).sum() / pos) if pos else None
            row["fpr"] = float((yp & ~yt).sum() / neg) if neg else None
            row["positives"] = pos
            row["positive_decisions"] = int(yp.sum())
            if score_pos is not None:
                from loom_py.stats.uncertainty import delong

                auc, se = delong(yt, np.asarray(score_pos)[m])
                row["auc"] = auc if auc == auc else None
                row["auc_se"] = se if se == se else None
            if pos == 0 or neg == 0:
                reason = "no positives" if pos == 0 else "no negatives"
            elif pos < min_class or neg < min_class:
                reason = f"{pos} positives < {min_class}" if pos < min_class else f"{neg} negatives < {min_class}"
        else:
            row["mean_prediction"] = float(np.mean(y_pred[m].astype(float))) if n and y_pred.dtype.kind in "fiub" else None
        if n < min_group:
            reason = f"{n} rows < {min_group}"
        row["judged"] = reason is None
        if reason:
            too_small.append({"group": g, "rows": n, "reason": reason})
        rows.append(row)
    judged = [r for r in rows if r["judged"]]
    out = {"groups": rows, "too_small": too_small, "min_group": min_group, "judged_groups": len(judged)}
    if binary:
        big = [r for r in rows if r["rows"] >= min_group]
        decided = sum(r["positive_decisions"] for r in rows)
        why = [f"group {r['group']} has no positives (its true-positive rate is undefined)"
               for r in big if r["positives"] == 0]
        if decided == 0:
            why.append("no group has a positive decision (the gaps of a decision that selects no one are 0 by construction)")
        elif decided == len(y_true):
            why.append("every row has a positive decision (the gaps are 0 by construction)")
        out["assessable"] = not why and len(judged) >= 2
        out["not_assessable_because"] = why or ([] if len(judged) >= 2 else ["fewer than two groups large enough to judge"])
        aucs = [r["auc"] for r in judged if r.get("auc") is not None]
        out["auc_gap"] = float(max(aucs) - min(aucs)) if len(aucs) >= 2 else None
    if binary and len(judged) >= 2:
        sr = [r["selection_rate"] for r in judged]
        tpr = [r["tpr"] for r in judged]
        fpr = [r["fpr"] for r in judged]
        out["demographic_parity_difference"] = float(max(sr) - min(sr))
        out["demographic_parity_ratio"] = float(min(sr) / max(sr)) if max(sr) > 0 else None
        out["equalized_odds_difference"] = float(max(max(tpr) - min(tpr), max(fpr) - min(fpr)))
        if n_boot:
            out["bootstrap"] = bootstrap_gaps(
                y_true, y_pred, groups, positive, [r["group"] for r in judged],
                (out["demographic_parity_difference"], out["equalized_odds_difference"]), n_boot=n_boot, seed=seed)
    else:
        out["demographic_parity_difference"] = None
        out["demographic_parity_ratio"] = None
        out["equalized_odds_difference"] = None
        if not binary:
            out["note"] = "parity gaps are defined for binary classification; per-group metric shown"
        else:
            out["note"] = "fewer than two groups large enough to judge: gaps not computed"
    metric_vals = [r.get(metric_name or "metric") for r in judged if r.get(metric_name or "metric") is not None]
    out["metric_gap"] = float(max(metric_vals) - min(metric_vals)) if len(metric_vals) >= 2 else None
    return out


def bootstrap_gaps(y_true, y_pred, groups, positive, judged: list[str], observed: tuple[float, float], *,
                   n_boot: int = 200, seed: int = 0, level: float = 0.95) -> dict:
    """One-sided bootstrap lower bounds (and two-sided intervals) for the parity gaps.

    Rows are resampled within each judged group (group sizes fixed), predictions held fixed. The
    verdict uses the lower bound: a gap counts as above its bound only when sampling noise cannot
    explain it (a 100-row group's selection rate alone wobbles by about ±0.1)."""
    y_true = np.asarray(y_true) == positive
    y_pred = np.asarray(y_pred) == positive
    groups = np.asarray(groups).astype(str)
    if len(judged) < 2:
        return {}
    rng = np.random.default_rng(seed)
    sr, tpr, fpr = [], [], []
    for g in judged:
        idx = np.flatnonzero(groups == g)
        draw = idx[rng.integers(0, len(idx), size=(n_boot, len(idx)))]
        yt, yp = y_true[draw], y_pred[draw]
        pos = yt.sum(1)
        neg = (~yt).sum(1)
        sr.append(yp.mean(1))
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr.append(np.where(pos > 0, (yp & yt).sum(1) / np.maximum(pos, 1), np.nan))
            fpr.append(np.where(neg > 0, (yp & ~yt).sum(1) / np.maximum(neg, 1), np.nan))
    sr, tpr, fpr = np.array(sr), np.array(tpr), np.array(fpr)
    dp = sr.max(0) - sr.min(0)
    eo = np.maximum(np.nanmax(tpr, 0) - np.nanmin(tpr, 0), np.nanmax(fpr, 0) - np.nanmin(fpr, 0))
    # basic (reverse-percentile) bootstrap: a max-minus-min gap is biased upward under resampling, and
    # the basic interval 2*observed - quantile corrects for that bias; percentile intervals do not
    obs_dp, obs_eo = observed
    a = 1 - level
    q = lambda v, p: float(np.nanquantile(v, p))  # noqa: E731
    basic = lambda o, v, p: max(0.0, 2 * o - q(v, p))  # noqa: E731
    return {"n_boot": n_boot, "level": level, "method": "basic bootstrap within groups",
            "demographic_parity_difference": {"lower": basic(obs_dp, dp, 1 - a),
                                              "interval": [basic(obs_dp, dp, 1 - a / 2), basic(obs_dp, dp, a / 2)]},
            "equalized_odds_difference": {"lower": basic(obs_eo, eo, 1 - a),
                                          "interval": [basic(obs_eo, eo, 1 - a / 2), basic(obs_eo, eo, a / 2)]}}
