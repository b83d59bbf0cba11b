"""Calibration of predicted probabilities (classification).

* ECE: 15 equal-width bins on [0, 1] (bin k holds p in [k/15, (k+1)/15), the last bin also holds 1.0);
  ECE = sum_k (n_k / N) * |mean(y in k) - mean(p in k)|. Binary tasks use the positive class's
  probability against the 0/1 outcome; multiclass tasks use the top-label confidence against whether
  the top label was right (Guo et al. 2017).
* Brier score: mean squared error of the probability vector against the one-hot outcome (for binary,
  the usual mean (p - y)^2 of the positive class).
* Calibration slope and intercept: the logistic recalibration fit y ~ a + b * logit(p) (Cox 1958);
  perfect calibration is slope 1, intercept 0.
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
    slope, intercept = slope_intercept(y01, p)
    return {"ece": ece(y01, p, n_bins), "bins": n_bins, "ece_of": kind, "brier": b, "slope": slope,
            "intercept": intercept, "reliability": reliability(y01, p, n_bins), "rows": int(len(p))}


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
