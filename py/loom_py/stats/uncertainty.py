"""How uncertain a score measured on a finite sample is, and whether it beats a trivial baseline.

* ROC-AUC (binary): DeLong's variance (DeLong, DeLong & Clarke-Pearson 1988; the fast midrank form of
  Sun & Xu 2014) — the structural components of positives and negatives.
* accuracy: the binomial standard error sqrt(p (1 - p) / n).
* MAE: sd(|e|) / sqrt(n); RMSE: the delta method on the mean squared error, sd(e²) / (2 RMSE sqrt(n));
  R²: the delta method on 1 − MSE/var(y); log loss: sd of the per-row losses / sqrt(n).
* anything else (multiclass AUC, PR-AUC, F1): a seeded, stratified bootstrap of the rows.

``holdout_vs_cv`` judges a sealed holdout score against the cross-validation mean: under "no leakage" the
two differ by the holdout's own sampling error and the CV mean's (fold spread / sqrt(folds)), so the gap
is called improbable only beyond ``z`` combined standard errors (and beyond a practical floor).
``versus_baseline`` judges a model against the trivial baseline (the training class frequencies / mean)
with a paired bootstrap of the difference on the same holdout rows.
"""

from __future__ import annotations

import math

import numpy as np

Z_LEAK = 3.0        # one-sided: 0.13% nominal under normality; measured false-alarm rate in decision 0201
Z_BASELINE = 1.96   # one-sided 97.5%: a model must beat the trivial baseline by more than this many SE
N_BOOT = 200


def _midrank(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def delong(positive, score) -> tuple[float, float]:
    """(AUC, its DeLong standard error) for a binary outcome. nan when a class is absent."""
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype="float64")
    x, y = score[positive], score[~positive]
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        return float("nan"), float("nan")
    tx, ty, tz = _midrank(x), _midrank(y), _midrank(np.concatenate([x, y]))
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v01 = (tz[:m] - tx) / n          # per positive: share of negatives scored below it
    v10 = 1.0 - (tz[m:] - ty) / m    # per negative: share of positives scored above it
    s01 = np.var(v01, ddof=1) if m > 1 else 0.0
    s10 = np.var(v10, ddof=1) if n > 1 else 0.0
    return float(auc), float(math.sqrt(max(s01 / m + s10 / n, 0.0)))


def bootstrap_se(fn, n: int, *, seed: int = 0, n_boot: int = N_BOOT, strata=None) -> float:
    """Standard error of ``fn(idx)`` over bootstrap resamples of ``range(n)`` (within ``strata`` when given,
    so a resample keeps every class). Failed or nan resamples are skipped."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    vals = []
    for _ in range(n_boot):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        try:
            v = float(fn(idx))
        except Exception:
            continue
        if v == v:
            vals.append(v)
    return float(np.std(vals, ddof=1)) if len(vals) > 10 else float("nan")


def hanley_mcneil(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC of value ``auc`` on ``n_pos`` positives and ``n_neg`` negatives
    (Hanley & McNeil 1982): the SE a holdout of that size has when its true AUC is ``auc``."""
    if not (auc == auc) or n_pos < 1 or n_neg < 1:
        return float("nan")
    a = min(max(auc, 0.0), 1.0)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return float(math.sqrt(max(var, 0.0)))


def metric_se(metric: str, y_true, *, proba=None, pred=None, classes=None, score_fn=None, seed: int = 0,
              null: float | None = None) -> dict:
    """{"se", "method"} of a holdout metric. ``score_fn(idx) -> value`` on a subset of rows is the
    bootstrap's fallback (the caller's metric, so this module needs no verb).

    ``null``: the value the metric would have under the hypothesis being tested (the CV mean). An AUC's
    or an accuracy's SE shrinks as the value grows, so the SE measured at a lucky, high holdout value
    understates the noise; for those two the SE is the larger of the one at the observed value and the
    one at ``null`` (Hanley-McNeil / binomial)."""
    y_true = np.asarray(y_true)
    n = len(y_true)
    if n < 2:
        return {"se": float("nan"), "method": "too few rows"}
    ok_null = null is not None and null == null
    if metric == "roc_auc" and classes is not None and len(classes) == 2 and proba is not None:
        pos = y_true == classes[1]
        _, se = delong(pos, np.asarray(proba)[:, 1])
        if ok_null:
            se0 = hanley_mcneil(null, int(pos.sum()), int((~pos).sum()))
            if se0 == se0 and (se != se or se0 > se):
                return {"se": se0, "method": "Hanley-McNeil at the CV mean (larger than DeLong's)"}
        return {"se": se, "method": "DeLong"}
    if metric == "accuracy" and pred is not None:
        p = float(np.mean(np.asarray(pred) == y_true))
        if ok_null and 0 <= null <= 1:
            p = p if p * (1 - p) >= null * (1 - null) else float(null)
        return {"se": math.sqrt(p * (1 - p) / n), "method": "binomial"}
    if metric in ("mae", "rmse") and pred is not None:
        e = np.asarray(pred, dtype="float64") - y_true.astype("float64")
        if metric == "mae":
            return {"se": float(np.std(np.abs(e), ddof=1) / math.sqrt(n)), "method": "sd(|error|)/sqrt(n)"}
        rmse = float(np.sqrt(np.mean(e * e)))
        se = float(np.std(e * e, ddof=1) / math.sqrt(n)) / (2 * rmse) if rmse > 0 else 0.0
        return {"se": se, "method": "delta method on the mean squared error"}
    if metric == "r2" and pred is not None:
        yf = y_true.astype("float64")
        e, c = np.asarray(pred, dtype="float64") - yf, yf - yf.mean()
        A, B = float(np.mean(c * c)), float(np.mean(e * e))  # R² = 1 − B/A
        if A > 0:
            g = (B / (A * A)) * c * c - e * e / A
            return {"se": float(np.std(g, ddof=1) / math.sqrt(n)), "method": "delta method on 1 − MSE/var(y)"}
    if metric == "log_loss" and proba is not None and classes is not None:
        ll = _row_log_loss(y_true, proba, classes)
        return {"se": float(np.std(ll, ddof=1) / math.sqrt(n)), "method": "sd(per-row log loss)/sqrt(n)"}
    if score_fn is None:
        return {"se": float("nan"), "method": "none"}
    strata = y_true if classes is not None else None
    return {"se": bootstrap_se(score_fn, n, seed=seed, strata=strata), "method": f"bootstrap ({N_BOOT} resamples)"}


def _row_log_loss(y_true, proba, classes) -> np.ndarray:
    idx = {c: i for i, c in enumerate(classes)}
    col = np.array([idx.get(v, 0) for v in y_true.tolist()])
    p = np.clip(np.asarray(proba, dtype="float64"), 1e-15, 1)
    p = p / p.sum(1, keepdims=True)
    return -np.log(p[np.arange(len(col)), col])


def paired_improvement_se(metric: str, y_true, *, proba=None, pred=None, b_proba=None, b_pred=None, classes=None,
                          model_se: float | None = None) -> tuple[float, str] | None:
    """Standard error of (model − baseline) on the same rows, without resampling, where the metric is a mean
    of per-row terms (accuracy, log loss, MAE; RMSE and R² by the delta method) or the baseline is constant
    in the score (ROC-AUC: the baseline's AUC is 0.5 on any rows, so the model's AUC SE is the answer).
    None: use the paired bootstrap."""
    y = np.asarray(y_true)
    n = len(y)
    if n < 2:
        return None
    sq = math.sqrt(n)
    if metric == "roc_auc" and classes is not None and len(classes) == 2 and model_se is not None and model_se == model_se:
        return float(model_se), "the model's AUC SE (the baseline's AUC is 0.5 on any rows)"
    if metric == "accuracy" and pred is not None and b_pred is not None:
        d = (np.asarray(pred) == y).astype(float) - (np.asarray(b_pred) == y).astype(float)
        return float(np.std(d, ddof=1) / sq), "sd(per-row difference)/sqrt(n)"
    if metric == "log_loss" and proba is not None and b_proba is not None and classes is not None:
        d = _row_log_loss(y, b_proba, classes) - _row_log_loss(y, proba, classes)
        return float(np.std(d, ddof=1) / sq), "sd(per-row difference)/sqrt(n)"
    if metric in ("mae", "rmse", "r2") and pred is not None and b_pred is not None:
        yf = y.astype("float64")
        em, eb = np.asarray(pred, dtype="float64") - yf, np.asarray(b_pred, dtype="float64") - yf
        if metric == "mae":
            d = np.abs(eb) - np.abs(em)
            return float(np.std(d, ddof=1) / sq), "sd(per-row difference)/sqrt(n)"
        if metric == "rmse":
            rm, rb = math.sqrt(np.mean(em * em)), math.sqrt(np.mean(eb * eb))
            if rm <= 0 or rb <= 0:
                return None
            g = eb * eb / (2 * rb) - em * em / (2 * rm)
            return float(np.std(g, ddof=1) / sq), "delta method on the per-row squared errors"
        A, B = float(np.mean(eb * eb)), float(np.mean(em * em))  # R² − R²_baseline ≈ 1 − B/A
        if A <= 0:
            return None
        g = (B / (A * A)) * eb * eb - em * em / A
        return float(np.std(g, ddof=1) / sq), "delta method on the per-row squared errors"
    return None


def holdout_vs_cv(gap: float, holdout_se: float, cv_std: float, folds: int, *, floor: float,
                  z: float = Z_LEAK) -> dict:
    """Is the holdout's lead over CV (``gap`` > 0: holdout better) improbable under no leakage?

    Combined standard error: sqrt(holdout SE² + (CV std / sqrt(folds))²). The tolerance is
    max(floor, z × combined SE): the floor keeps a real but tiny gap on a huge holdout (a model fit on
    all CV rows is a little better than the fold models) from reading as leakage."""
    se_cv = (cv_std or 0.0) / math.sqrt(max(folds, 1))
    hs = holdout_se if holdout_se == holdout_se else 0.0
    se = math.sqrt(hs * hs + se_cv * se_cv)
    tol = max(floor, z * se)
    zscore = gap / se if se > 0 and gap == gap else (float("inf") if gap == gap and gap > 0 else 0.0)
    return {"combined_se": se, "holdout_se": holdout_se, "cv_mean_se": se_cv, "z": z, "tolerance": tol,
            "floor": floor, "z_score": zscore, "improbable": bool(gap == gap and gap > tol)}


def baseline_scores(metric: str, y_train, y_test, classes=None):
    """(baseline probabilities or None, baseline predictions): the trivial model fitted on ``y_train`` —
    the training class frequencies (its label: the majority class) or the training mean."""
    y_train = np.asarray(y_train)
    n = len(y_test)
    if classes is None:
        mu = float(np.mean(y_train.astype("float64")))
        return None, np.full(n, mu)
    freq = np.array([(y_train == c).mean() for c in classes], dtype="float64")
    proba = np.tile(freq, (n, 1))
    pred = np.asarray(classes, dtype=object)[np.full(n, int(freq.argmax()))]
    return proba, pred


def versus_baseline(score_fn, n: int, higher_is_better: bool, *, strata=None, seed: int = 0,
                    z: float = Z_BASELINE, analytic: tuple[float, str] | None = None) -> dict:
    """Paired comparison of the model with the baseline on the same rows. ``score_fn(idx) -> (model, baseline)``.

    improvement = model − baseline in the metric's better direction; passes when improvement > z × SE. The SE
    is ``analytic`` (``paired_improvement_se``) when given, else the paired bootstrap of the improvement."""
    all_idx = np.arange(n)
    m, b = score_fn(all_idx)
    sign = 1.0 if higher_is_better else -1.0
    imp = sign * (m - b)
    if analytic is not None:
        se, method = analytic
    else:
        se = bootstrap_se(lambda idx: sign * np.subtract(*score_fn(idx)), n, seed=seed, strata=strata)
        method = f"paired bootstrap ({N_BOOT} resamples)"
    se_v = se if se == se else 0.0
    return {"model": float(m), "baseline": float(b), "improvement": float(imp), "se": se, "z": z,
            "required": z * se_v, "beats": bool(imp == imp and imp > z * se_v and imp > 0), "method": method}
