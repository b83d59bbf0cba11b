import os
import sys

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, os.path.dirname(__file__))
from leakdata import clean  # noqa: E402

from loom_py.verbs import viz  # noqa: E402


def test_top_counts_groups_the_rest():
    import pandas as pd

    s = pd.Series([f"c{i % 40}" for i in range(400)] + [None] * 5)
    vc = viz.top_counts(s, 10)
    assert len(vc) == 11 and vc.sum() == 405 and "(other)" in vc.index


@pytest.mark.parametrize("kind,names", [("distributions", ["distributions_1"]), ("correlation", ["correlation"]),
                                        ("target", ["target", "features_vs_target"])])
def test_render_and_save(tmp_path, kind, names):
    df = clean(400)
    figs = viz.render(kind, df, target="target")
    assert [n for n, _ in figs] == names
    for _, f in figs:
        for ax in f.axes:
            if ax.get_visible() and ax.has_data() and not ax.get_label() == "<colorbar>":
                assert ax.get_xlabel() or ax.get_ylabel()
    paths = viz.save(figs, str(tmp_path))
    assert all(os.path.getsize(p) > 1000 for p in paths)


def test_association_matrix_methods():
    import numpy as np

    df = clean(400)
    df["age2"] = df["age"] * 2 + 1
    m = viz.association_matrix(df, ["age", "age2", "region", "plan"])
    assert m[0, 1] == pytest.approx(1.0) and np.allclose(m, m.T) and (m >= 0).all() and (m <= 1).all()


def test_leaderboard_sort_and_fig():
    lb = [{"node": 1, "score": 0.7, "model": "a", "status": "ok"}, {"node": 2, "score": 0.9, "model": "b", "status": "ok"},
          {"node": 3, "score": None, "model": "c", "status": "failed"}]
    s = viz.sort_leaderboard(lb)
    assert [r["node"] for r in s] == [2, 1, 3]
    assert [r["node"] for r in viz.sort_leaderboard(lb, higher_is_better=False)][:2] == [1, 2]
    fig = viz.leaderboard_fig(s)
    assert fig.axes[0].get_xlabel() == "score"


def test_many_categories_are_capped():
    import pandas as pd

    df = pd.DataFrame({"cat": [f"level_{i}" for i in range(500)] * 2, "target": [0, 1] * 500})
    fig = viz.distributions_fig(df, ["cat"])
    assert len(fig.axes[0].get_yticklabels()) <= 11


def test_leaderboard_rank_and_direction():
    lb = [{"rank": 2, "node": 5, "score": 0.30, "model": "a", "status": "ok"},
          {"rank": 1, "node": 7, "score": 0.25, "model": "b", "status": "ok"},
          {"rank": 3, "node": 9, "score": None, "model": "c", "status": "failed"}]
    assert [r["node"] for r in viz.sort_leaderboard(lb)] == [7, 5, 9]  # the producer's rank wins (RMSE: lower first)

    class D(dict):
        def __getattr__(self, k):
            return self[k]

    assert viz.leaderboard_direction(D(metric_spec={"direction": "minimize", "label": "RMSE"})) == (False, "RMSE")
    assert viz.leaderboard_direction(D(direction="max")) == (True, "score")
    assert viz.leaderboard_direction(D()) == (True, "score")
