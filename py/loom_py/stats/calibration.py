"""Calibration of predicted probabilities (classification).

* ECE: 15 equal-width bins on [0, 1] (bin k holds p in [k/15, (k+1)/15), the last bin also holds 1.0);
  ECE = sum_k (n_k / N) * |mean(y in k) - mean(p in k)|. Binary tasks use the positive class's
  probability against the 0/1 outcome; multiclass tasks use the top-label confidence against whether
  the top label was right (Guo et al. 2017).
* Brier score: mean squared error of the probability vector against the one-hot outcome (for binary,
  the usual mean (p - y)^2 of the positive class).
* Calibration slope: the logistic recalibration fit y ~ a + b * logit(p) (Cox 1958); intercept:
  calibration-in-the-large, y ~ a + offset(logit p). Perfect calibration is slope 1, intercept 0. Both
  come with standard errors, so ``judge`` fails a bound only when the 95% interval lies beyond it.
"""

from __future__ import annotations

import numpy as np

N_BINS = 15
EPS = 1e-6


def bin_index(p: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    p = np.asarray(p, dtype="float64")
    return np.clip(np.floor(p * n_bins).astype(int), 0, n_bins - 1)


def reliability(y01, p, n_bins: int = N_BINS) -> list[dict]:
    """Per bin: range, count, mean predicted, observed frequency (empty bins included with count 0)."""
    y01 = np.asarray(y01, dtype="float64")
    p = np.asarray(p, dtype="float64")
    b = bin_index(p, n_bins)
    out = []
    for k in range(n_bins):
        m = b == k
        n = int(m.sum())
        out.append({"bin": k, "lo": k / n_bins, "hi": (k + 1) / n_bins, "count": n,
                    "mean_predicted": float(p[m].mean()) if n else None,
                    "observed": float(y01[m].mean()) if n else None})
    return out


def ece(y01, p, n_bins: int = N_BINS) -> float:
    y01 = np.asarray(y01, dtype="float64")
    p = np.asarray(p, dtype="float64")
    if len(p) == 0:
        return float("nan")
    total = 0.0
    for r in reliability(y01, p, n_bins):
        if r["count"]:
            total += r["count"] / len(p) * abs(r["observed"] - r["mean_predicted"])
    return float(total)


def brier(onehot: np.ndarray, proba: np.ndarray) -> float:
    onehot = np.asarray(onehot, dtype="float64")
    proba = np.asarray(proba, dtype="float64")
    if proba.ndim == 1:
        return float(np.mean((proba - onehot) ** 2))
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def slope_intercept(y01, p) -> tuple[float | None, float | None]:
    """Logistic recalibration y ~ a + b*logit(p), unpenalized. None when the outcome has one class."""
    from sklearn.linear_model import LogisticRegression

    y01 = np.asarray(y01).astype(int)
    if len(np.unique(y01)) < 2:
        return None, None
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    z = np.log(p / (1 - p)).reshape(-1, 1)
    lr = LogisticRegression(penalty=None, solver="lbfgs", max_iter=1000)
    lr.fit(z, y01)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _logit(p):
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _newton(X, y, offset, iters: int = 50):
    """Unpenalized logistic regression by Newton's method: (coefficients, covariance) or (None, None)."""
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        eta = np.clip(X @ beta + offset, -30, 30)
        mu = 1 / (1 + np.exp(-eta))
        w = mu * (1 - mu)
        H = (X * w[:, None]).T @ X
        g = X.T @ (y - mu)
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            return None, None
        beta = beta + step
        if np.max(np.abs(step)) < 1e-8:
            break
    try:
        cov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return None, None
    if not np.all(np.diag(cov) > 0):
        return None, None
    if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 50:
        return None, None  # separation: the fit runs off
    return beta, cov


def recalibration(y01, p) -> dict:
    """Calibration slope (y ~ a + b·logit p) and calibration-in-the-large (y ~ a + offset logit p), each
    with its standard error (inverse Fisher information). Perfect calibration: slope 1, intercept 0."""
    y = np.asarray(y01, dtype="float64")
    z = _logit(p)
    out = {"slope": None, "slope_se": None, "intercept": None, "intercept_se": None}
    if len(np.unique(y)) < 2:
        return out
    beta, cov = _newton(np.column_stack([np.ones_like(z), z]), y, np.zeros_like(z))
    if beta is not None:
        out["slope"], out["slope_se"] = float(beta[1]), float(np.sqrt(cov[1, 1]))
    beta, cov = _newton(np.ones((len(z), 1)), y, z)
    if beta is not None:
        out["intercept"], out["intercept_se"] = float(beta[0]), float(np.sqrt(cov[0, 0]))
    return out


def judge(report: dict, *, max_ece: float, min_slope: float, max_slope: float, max_abs_intercept: float,
          min_rows: int, z: float = 1.96) -> dict:
    """Which calibration bounds failed. ECE is judged on its point estimate; the slope and the intercept on
    their 95% intervals (a bound fails only when the whole interval lies outside it), and only with at least
    ``min_rows`` rows (fewer: reported, not judged)."""
    failed, notes = [], []
    if report.get("ece") is not None and report["ece"] > max_ece:
        failed.append(f"ECE {report['ece']:.4g} > {max_ece:g}")
    slope, sse = report.get("slope"), report.get("slope_se")
    icpt, ise = report.get("intercept"), report.get("intercept_se")
    if report.get("rows", 0) < min_rows:
        notes.append(f"slope and intercept not judged: {report.get('rows', 0)} holdout rows < {min_rows}")
    else:
        if slope is not None and sse is not None:
            lo, hi = slope - z * sse, slope + z * sse
            if lo > max_slope:
                failed.append(f"slope {slope:.3g} (95% CI {lo:.3g}–{hi:.3g}) above {max_slope:g}: "
                              "probabilities too timid (squashed towards the base rate)")
            elif hi < min_slope:
                failed.append(f"slope {slope:.3g} (95% CI {lo:.3g}–{hi:.3g}) below {min_slope:g}: "
                              "probabilities too extreme (overconfident)")
        if icpt is not None and ise is not None:
            lo, hi = icpt - z * ise, icpt + z * ise
            if lo > max_abs_intercept or hi < -max_abs_intercept:
                failed.append(f"intercept {icpt:.3g} (95% CI {lo:.3g}–{hi:.3g}) outside ±{max_abs_intercept:g}: "
                              f"probabilities {'too low' if icpt > 0 else 'too high'} on average")
    return {"passed": not failed, "failed": failed, "notes": notes}


def calibration_report(y_true, proba: np.ndarray, classes: list, n_bins: int = N_BINS) -> dict:
    """Everything the summary and the reliability diagram need, for binary or multiclass."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype="float64")
    classes = list(classes)
    onehot = (y_true.reshape(-1, 1) == np.asarray(classes, dtype=object).reshape(1, -1)).astype(float)
    if len(classes) == 2:
        y01, p = onehot[:, 1], proba[:, 1]
        kind = f"positive class ({classes[1]})"
        b = brier(y01, p)
    else:
        top = proba.argmax(axis=1)
        p = proba.max(axis=1)
        y01 = (np.asarray(classes, dtype=object)[top] == y_true).astype(float)
        kind = "top-label confidence"
        b = brier(onehot, proba)
    rc = recalibration(y01, p)
    return {"ece": ece(y01, p, n_bins), "bins": n_bins, "ece_of": kind, "brier": b, **rc,
            "intercept_of": "calibration-in-the-large (slope fixed at 1)",
            "reliability": reliability(y01, p, n_bins), "rows": int(len(p))}


def reliability_figure(rel: list[dict], title: str = "Reliability diagram (holdout)"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect")
    pts = [r for r in rel if r["count"]]
    ax.plot([r["mean_predicted"] for r in pts], [r["observed"] for r in pts], marker="o", label="model")
    ax.bar([(r["lo"] + r["hi"]) / 2 for r in rel], [r["count"] / max(1, sum(x["count"] for x in rel)) for r in rel],
           width=1 / len(rel), alpha=0.2, color="C1", label="share of rows")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig
