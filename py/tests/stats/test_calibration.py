"""Calibration: ECE against a hand-worked example, Brier, slope/intercept on known miscalibration."""

import numpy as np
import pytest

from loom_py.stats import calibration as C


def test_ece_hand_worked():
    # 15 equal-width bins of width 1/15:
    #   bin 1  (0.0667-0.1333): p=.10,.10  y=0,1  -> |0.5-0.10| * 2/5 = 0.160
    #   bin 6  (0.4000-0.4667): p=.45      y=0    -> |0.0-0.45| * 1/5 = 0.090
    #   bin 12 (0.8000-0.8667): p=.82      y=1    -> |1.0-0.82| * 1/5 = 0.036
    #   bin 14 (0.9333-1.0000): p=.95      y=1    -> |1.0-0.95| * 1/5 = 0.010
    p = [0.10, 0.10, 0.45, 0.82, 0.95]
    y = [0, 1, 0, 1, 1]
    assert C.ece(y, p) == pytest.approx(0.296)
    # Brier: (.01 + .81 + .2025 + .0324 + .0025) / 5
    assert C.brier(np.array(y), np.array(p)) == pytest.approx(1.0574 / 5)
    rel = C.reliability(y, p)
    assert [r["count"] for r in rel if r["count"]] == [2, 1, 1, 1]
    assert len(rel) == 15 and rel[1]["observed"] == 0.5


def test_ece_uses_15_bins_not_10():
    # 0.61 and 0.69 share a 10-bin (0.6-0.7) but not a 15-bin (0.6-0.667 | 0.667-0.733)
    p, y = [0.61, 0.69], [1, 0]
    assert C.ece(y, p) == pytest.approx((0.39 + 0.69) / 2)
    assert C.ece(y, p, n_bins=10) == pytest.approx(abs(0.5 - 0.65))


def test_bin_edges_and_one():
    assert list(C.bin_index(np.array([0.0, 1 / 15 + 1e-9, 0.999, 1.0]))) == [0, 1, 14, 14]


@pytest.mark.parametrize("power,slope", [(1.0, 1.0), (2.0, 0.5), (0.5, 2.0)])
def test_slope_recovers_known_miscalibration(power, slope):
    r = np.random.default_rng(0)
    p_true = r.uniform(0.02, 0.98, 40000)
    y = (r.random(len(p_true)) < p_true).astype(int)
    z = np.log(p_true / (1 - p_true)) * power  # predicted logits scaled: slope 1/power recovers truth
    p = 1 / (1 + np.exp(-z))
    b, a = C.slope_intercept(y, p)
    assert b == pytest.approx(slope, abs=0.08)
    assert a == pytest.approx(0.0, abs=0.08)


def test_report_binary_and_multiclass():
    y = np.array(["a", "b", "b", "a"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    rep = C.calibration_report(y, proba, ["a", "b"])
    assert rep["ece_of"].startswith("positive class") and rep["rows"] == 4
    assert rep["ece"] == pytest.approx(C.ece([0, 1, 1, 0], proba[:, 1]))
    y3 = np.array([0, 1, 2, 2])
    p3 = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.5, 0.2, 0.3], [0.1, 0.1, 0.8]])
    rep3 = C.calibration_report(y3, p3, [0, 1, 2])
    # top-label confidences .8 .6 .5 .8, correct 1 1 0 1
    assert rep3["ece"] == pytest.approx(C.ece([1, 1, 0, 1], [0.8, 0.6, 0.5, 0.8]))
    assert rep3["brier"] == pytest.approx(np.mean(np.sum((p3 - np.eye(3)[y3]) ** 2, axis=1)))
