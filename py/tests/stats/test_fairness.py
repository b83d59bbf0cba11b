"""Per-slice results and parity gaps against hand-computed values."""

import numpy as np
import pytest

from loom_py.stats import fairness as F


def test_gaps_hand_computed():
    # group a: 4 rows, y=1 1 0 0, pred=1 1 1 0 -> selection .75, TPR 1.0, FPR .5
    # group b: 4 rows, y=1 1 0 0, pred=1 0 0 0 -> selection .25, TPR 0.5, FPR 0.0
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    pred = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    g = np.array(["a"] * 4 + ["b"] * 4)
    r = F.slice_report(y, pred, g, positive=1, min_group=1, n_boot=0, min_class=1)
    a, b = r["groups"]
    assert (a["selection_rate"], a["tpr"], a["fpr"]) == (0.75, 1.0, 0.5)
    assert (b["selection_rate"], b["tpr"], b["fpr"]) == (0.25, 0.5, 0.0)
    assert r["demographic_parity_difference"] == pytest.approx(0.5)
    assert r["demographic_parity_ratio"] == pytest.approx(1 / 3)
    assert r["equalized_odds_difference"] == pytest.approx(0.5)


def test_small_groups_are_named_not_hidden():
    y = np.array([1, 0] * 30 + [1, 1, 1])
    pred = y.copy()
    g = np.array(["big"] * 60 + ["tiny"] * 3)
    r = F.slice_report(y, pred, g, positive=1, min_group=30, n_boot=0)
    assert [t["group"] for t in r["too_small"]] == ["tiny"]
    assert {x["group"] for x in r["groups"]} == {"big", "tiny"}
    assert r["demographic_parity_difference"] is None and "note" in r


def test_bootstrap_separates_real_gap_from_noise():
    r = np.random.default_rng(0)
    n = 400
    g = np.array(["a", "b"] * (n // 2))
    y = (r.random(n) < 0.5).astype(int)
    fair_pred = np.where(r.random(n) < 0.85, y, 1 - y)
    biased = np.where(g == "a", 1, fair_pred)  # group a always selected
    lo_fair = F.slice_report(y, fair_pred, g, positive=1, seed=1)["bootstrap"]["demographic_parity_difference"]["lower"]
    lo_bias = F.slice_report(y, biased, g, positive=1, seed=1)["bootstrap"]["demographic_parity_difference"]["lower"]
    assert lo_fair < 0.1 < lo_bias


def test_regression_slices_report_metric_only():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 2.5, 3.0, 3.0])
    g = np.array(["a", "a", "b", "b"])
    r = F.slice_report(y, pred, g, metric_fn=lambda t, p: float(np.abs(t - p).mean()), metric_name="mae", min_group=1)
    assert [x["mae"] for x in r["groups"]] == [0.25, 0.5]
    assert r["metric_gap"] == pytest.approx(0.25) and r["demographic_parity_difference"] is None


def test_groups_with_few_positives_are_too_small_for_rates():
    y = np.array(([1] * 5 + [0] * 95) + ([1] * 30 + [0] * 70))
    pred = y.copy()
    g = np.array(["few"] * 100 + ["many"] * 100)
    r = F.slice_report(y, pred, g, positive=1, n_boot=0)
    assert r["too_small"] == [{"group": "few", "rows": 100, "reason": "5 positives < 10"}]
    assert r["assessable"] is False  # one group left to judge: no gap to compute
