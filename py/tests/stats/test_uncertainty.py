"""stats.uncertainty: the holdout's own sampling error, the holdout-vs-CV judgement and the baseline."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from loom_py.stats import uncertainty as U


@pytest.mark.parametrize("n,rate,seed", [(200, 0.5, 0), (400, 0.1, 1), (1000, 0.03, 2), (3000, 0.3, 3)])
def test_delong_auc_equals_sklearn_and_se_matches_bootstrap(n, rate, seed):
    r = np.random.default_rng(seed)
    y = r.random(n) < rate
    score = y * 0.8 + r.normal(size=n)
    auc, se = U.delong(y, score)
    assert auc == pytest.approx(roc_auc_score(y, score))
    boot = U.bootstrap_se(lambda idx: roc_auc_score(y[idx], score[idx]), n, seed=seed, n_boot=300, strata=y)
    assert se == pytest.approx(boot, rel=0.25)


@pytest.mark.parametrize("auc,pos,neg", [(0.7, 37, 363), (0.85, 100, 100), (0.6, 20, 980)])
def test_hanley_mcneil_matches_simulated_spread(auc, pos, neg):
    """The SE of an AUC of a given true value on a holdout of that size (binormal scores)."""
    from scipy.stats import norm

    d = np.sqrt(2) * norm.ppf(auc)  # binormal separation with that AUC
    r = np.random.default_rng(0)
    sims = [roc_auc_score(np.r_[np.ones(pos), np.zeros(neg)], np.r_[r.normal(d, 1, pos), r.normal(0, 1, neg)])
            for _ in range(400)]
    assert U.hanley_mcneil(auc, pos, neg) == pytest.approx(np.std(sims), rel=0.2)


def test_se_at_a_lucky_high_auc_uses_the_null_value():
    r = np.random.default_rng(0)
    y = np.r_[np.ones(37), np.zeros(363)].astype(int)
    p = np.clip(0.1 + 0.25 * y + r.normal(0, 0.15, 400), 0.001, 0.999)
    proba = np.c_[1 - p, p]
    at_obs = U.metric_se("roc_auc", y, proba=proba, classes=[0, 1])
    at_null = U.metric_se("roc_auc", y, proba=proba, classes=[0, 1], null=0.70)
    assert at_obs["method"] == "DeLong" and at_null["se"] > at_obs["se"]


@pytest.mark.parametrize("metric", ["accuracy", "mae", "rmse"])
def test_analytic_se_matches_bootstrap(metric):
    r = np.random.default_rng(5)
    n = 800
    if metric == "accuracy":
        y = r.integers(0, 2, n)
        pred = np.where(r.random(n) < 0.8, y, 1 - y)
        fn = lambda idx: np.mean(pred[idx] == y[idx])  # noqa: E731
    else:
        y = r.normal(size=n)
        pred = y + r.standard_t(4, n)
        fn = (lambda idx: np.mean(np.abs(pred[idx] - y[idx]))) if metric == "mae" else \
            (lambda idx: np.sqrt(np.mean((pred[idx] - y[idx]) ** 2)))
    se = U.metric_se(metric, y, pred=pred, classes=[0, 1] if metric == "accuracy" else None)["se"]
    assert se == pytest.approx(U.bootstrap_se(fn, n, n_boot=400), rel=0.2)


def test_holdout_vs_cv_false_alarm_rate_under_the_null():
    """Simulated null: the holdout and the folds measure the same true score with their own noise."""
    r = np.random.default_rng(1)
    alarms = 0
    trials = 4000
    for _ in range(trials):
        se_h = r.uniform(0.01, 0.06)
        folds = r.normal(0.75, se_h * np.sqrt(1.25), 5)  # each fold has ~1.25x the holdout's rows' noise
        hold = r.normal(0.75, se_h)
        j = U.holdout_vs_cv(hold - folds.mean(), se_h, folds.std(ddof=1), 5, floor=0.0)
        alarms += j["improbable"]
    assert alarms / trials <= 0.01


def test_holdout_vs_cv_flags_a_gap_beyond_noise_and_respects_the_floor():
    assert U.holdout_vs_cv(0.2, 0.03, 0.02, 5, floor=0.05)["improbable"]
    assert not U.holdout_vs_cv(0.065, 0.049, 0.016, 5, floor=0.05)["improbable"]  # the bundled example's case
    assert not U.holdout_vs_cv(0.01, 0.001, 0.001, 5, floor=0.05)["improbable"]  # tiny SE, gap under the floor


@pytest.mark.parametrize("metric,classes", [("roc_auc", [0, 1]), ("accuracy", [0, 1]), ("log_loss", [0, 1]),
                                            ("rmse", None), ("mae", None)])
def test_baseline_scores_are_the_trivial_model(metric, classes):
    r = np.random.default_rng(0)
    ytr = r.integers(0, 2, 100) if classes else r.normal(3, 1, 100)
    proba, pred = U.baseline_scores(metric, ytr, np.zeros(10), classes)
    if classes:
        assert np.allclose(proba, [[np.mean(ytr == 0), np.mean(ytr == 1)]] * 10)
        assert set(pred) == {int(np.mean(ytr == 1) > 0.5)}
    else:
        assert proba is None and np.allclose(pred, ytr.mean())


@pytest.mark.parametrize("metric", ["accuracy", "log_loss", "mae", "rmse", "r2"])
def test_paired_analytic_se_matches_the_paired_bootstrap(metric):
    from sklearn import metrics as M

    r = np.random.default_rng(7)
    n = 900
    if metric in ("accuracy", "log_loss"):
        classes = [0, 1]
        y = r.integers(0, 2, n)
        p = np.clip(0.5 + 0.3 * (2 * y - 1) + r.normal(0, 0.25, n), 0.02, 0.98)
        proba, pred = np.c_[1 - p, p], (p > 0.5).astype(int)
        b_proba, b_pred = U.baseline_scores(metric, y, y, classes)
        b_pred = b_pred.astype(int)
        fn = (lambda P, L, i: M.accuracy_score(y[i], L[i])) if metric == "accuracy" else \
            (lambda P, L, i: M.log_loss(y[i], P[i], labels=classes))
        hi = metric == "accuracy"
    else:
        classes, proba, b_proba = None, None, None
        y = r.normal(size=n)
        pred = y + r.normal(0, 0.6, n)
        _, b_pred = U.baseline_scores(metric, y, y)
        fn = {"mae": lambda P, L, i: M.mean_absolute_error(y[i], L[i]),
              "rmse": lambda P, L, i: np.sqrt(M.mean_squared_error(y[i], L[i])),
              "r2": lambda P, L, i: M.r2_score(y[i], L[i])}[metric]
        hi = metric == "r2"
    sign = 1 if hi else -1
    boot = U.bootstrap_se(lambda i: sign * (fn(proba, pred, i) - fn(b_proba, b_pred, i)), n, n_boot=400)
    se, _ = U.paired_improvement_se(metric, y, proba=proba, pred=pred, b_proba=b_proba, b_pred=b_pred, classes=classes)
    assert se == pytest.approx(boot, rel=0.25)
