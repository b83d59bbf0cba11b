"""ops' pure pieces: the leaderboard's ranking (direction per metric) and the drift chart spec."""
import numpy as np
import pandas as pd

from loom_py.stats import drift
from loom_py.verbs import ops


def test_rank_best_first_within_each_metric_by_its_direction():
    rows = [{"metric": "roc_auc", "direction": "maximize", "score": 0.71, "when": "1"},
            {"metric": "rmse", "direction": "minimize", "score": 3.2, "when": "2"},
            {"metric": "roc_auc", "direction": "maximize", "score": 0.83, "when": "3"},
            {"metric": "rmse", "direction": "minimize", "score": 2.9, "when": "4"},
            {"metric": "roc_auc", "direction": "maximize", "score": float("nan"), "when": "5"},
            {"metric": "roc_auc", "direction": "maximize", "score": None, "when": "6"}]
    out, msgs = ops.rank(rows)
    assert [(r["metric"], r["score"], r["rank"]) for r in out] == [
        ("rmse", 2.9, 1), ("rmse", 3.2, 2), ("roc_auc", 0.83, 1), ("roc_auc", 0.71, 2)]
    assert msgs == ["2 metrics: ranked within each (rmse, roc_auc)"]


def test_drift_chart_shares_sum_to_one_per_table():
    g = np.random.default_rng(0)
    ref, cur = pd.Series(g.normal(size=2000), name="x"), pd.Series(g.normal(1, 1, size=1500), name="x")
    rec = drift.column_drift(ref, cur)
    spec = ops.drift_chart(ref, cur, rec)
    for t in ("reference", "current"):
        assert abs(sum(v["share"] for v in spec["data"]["values"] if v["table"] == t) - 1) < 0.02
    assert "DRIFT" in spec["title"]
    c_ref, c_cur = pd.Series(list("aab") * 100, name="c"), pd.Series(list("abq") * 100, name="c")
    spec = ops.drift_chart(c_ref, c_cur, drift.column_drift(c_ref, c_cur))
    assert {v["value"] for v in spec["data"]["values"]} == {"a", "b", "q"}
