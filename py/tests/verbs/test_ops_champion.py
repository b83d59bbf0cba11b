"""ops' prediction drift of a deployed model: scoring in the sandbox (model-written code never runs in this
process; the deployed estimator's own predictions come back), the compared outputs, their statistics equal to
Evidently's, and the rule's false-alarm / detection rates over generated cases (docs/decisions/0800)."""
import json
import os
import pickle
import sys

import numpy as np
import pandas as pd
import pytest

from loom_py.stats import drift
from loom_py.verbs import ops_champion as oc

SOLUTION = '''
import numpy as np

MARKER = {marker!r}
try:  # a side effect at import: it must happen (if anywhere) inside the sandbox, never in Loom's process
    with open(MARKER, "w") as f:
        f.write("the solution's code ran here")
except Exception:
    pass


class Logit:  # a model-written estimator: its pickle names solution.Logit
    def fit(self, X, y):
        self.classes_ = np.array(sorted(set(y)))
        self.mu_ = float(X["x0"].mean())
        return self

    def predict_proba(self, X):
        assert list(X.columns) == ["x0", "cat"], list(X.columns)  # only the features, in order: no target
        p = 1 / (1 + np.exp(-(X["x0"].to_numpy() - self.mu_ + (X["cat"] == "b").to_numpy())))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]


def make_model():
    return Logit()
'''


def _frame(n, seed, shift=0.0):
    g = np.random.default_rng(seed)
    df = pd.DataFrame({"x0": g.normal(shift, 1, n), "cat": g.choice(["a", "b"], n)})
    df["y"] = (g.random(n) < 1 / (1 + np.exp(-df["x0"]))).astype(int)
    return df


def _package(root, *, code=None, model_bytes, meta, code_tree=None):
    """A model directory laid out as `loom deploy` stages it (artifacts/ and code/)."""
    arts = os.path.join(root, "artifacts")
    os.makedirs(arts)
    with open(os.path.join(arts, "model.pkl"), "wb") as f:
        f.write(model_bytes)
    with open(os.path.join(arts, "loom.json"), "w") as f:
        json.dump(meta, f)
    if code is not None:
        with open(os.path.join(arts, "solution.py"), "w") as f:
            f.write(code)
    for rel, src in (code_tree or {}).items():
        p = os.path.join(root, "code", rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(src)
    return root


def test_a_model_written_champion_is_scored_only_in_the_sandbox(tmp_path):
    from loom_py.verbs.solution import SandboxedSolution

    marker = str(tmp_path / "ran-here")
    code = SOLUTION.format(marker=marker)
    train, ref, cur = _frame(400, 0), _frame(300, 1), _frame(200, 2, shift=1.0)
    sol = SandboxedSolution("test", code, timeout=120, mem_mb=2048)
    try:  # fitted and pickled inside the sandbox, as validate keeps a solution's scored model
        _labels, proba_ref, classes = sol.fit_predict("classification", train[["x0", "cat"]], train["y"], ref[["x0", "cat"]])
        blob = sol.last_model_bytes
    finally:
        sol.close()
    assert blob and classes == [0, 1]
    meta = {"task": "classification", "target": "y", "features": ["x0", "cat"], "classes": [0, 1]}
    model_dir = _package(str(tmp_path / "model"), code=code, model_bytes=blob, meta=meta)
    before = sys.modules.get("solution")  # another test of this session may have loaded one on purpose
    out = oc.score(model_dir, meta, ref, cur)  # the tables still hold the target y: it is not passed
    assert not os.path.exists(marker)  # the solution's code ran nowhere that could write here
    assert sys.modules.get("solution") is before  # nor was it imported into this process
    np.testing.assert_array_equal(out["reference"]["proba"], proba_ref)  # the deployed estimator's own output
    assert out["reference"]["proba"].shape == (300, 2) and out["current"]["proba"].shape == (200, 2)
    assert list(out["reference"]["prediction"]) == [classes[i] for i in proba_ref.argmax(1)]
    assert out["current"]["proba"][:, 1].mean() > out["reference"]["proba"][:, 1].mean() + 0.1
    series = oc.prediction_series(out)
    assert [(c, k) for c, k, _, _ in series] == [("prediction", "categorical"), ("proba_1", "numeric")]


def test_the_default_model_is_unpickled_with_its_packaged_code_in_the_sandbox(tmp_path):
    """Loom's default estimator names loom_py.stats.tabular's functions; the sandbox has no loom_py but the
    model's packaged code/ tree (as MLflow's code_paths)."""
    from loom_py.stats import tabular

    train, ref, cur = _frame(400, 3), _frame(250, 4), _frame(250, 5)
    X = train[["x0", "cat"]]
    est = tabular.default_model("classification", X).fit(X, train["y"])
    meta = {"task": "classification", "target": "y", "features": ["x0", "cat"], "classes": [0, 1]}
    pkg = os.path.dirname(tabular.__file__)
    tree = {"loom_py/__init__.py": "", "loom_py/stats/__init__.py": "",
            "loom_py/stats/tabular.py": open(os.path.join(pkg, "tabular.py")).read()}
    model_dir = _package(str(tmp_path / "model"), model_bytes=pickle.dumps(est), meta=meta, code_tree=tree)
    out = oc.score(model_dir, meta, ref, cur)
    np.testing.assert_allclose(out["reference"]["proba"], est.predict_proba(ref[["x0", "cat"]]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["current"]["proba"], est.predict_proba(cur[["x0", "cat"]]), rtol=0, atol=1e-12)


def test_a_model_that_fails_in_the_sandbox_is_a_value_error_not_a_crash(tmp_path):
    meta = {"task": "regression", "target": "y", "features": ["x0"], "classes": None}
    model_dir = _package(str(tmp_path / "model"), code="def make_model():\n    return None\n",
                         model_bytes=b"not a pickle", meta=meta)
    with pytest.raises(ValueError, match="failed in the sandbox"):
        oc.score(model_dir, meta, _frame(20, 0), _frame(20, 1))


def test_code_tree_packages_come_first_and_namespace_packages_are_filled_in(tmp_path):
    for rel in ("code/a/__init__.py", "code/a/b/c.py"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("X = 1\n")
    assert oc._code_modules(str(tmp_path)) == [("a", True, "X = 1\n"), ("a.b", True, ""), ("a.b.c", False, "X = 1\n")]


def test_probabilities_are_put_in_the_served_models_class_order():
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    np.testing.assert_array_equal(oc._align(p, np.array(["yes", "no"]), ["no", "yes"], 2), p[:, ::-1])
    np.testing.assert_array_equal(oc._align(p, np.array([0, 1]), [0, 1], 2), p)
    assert oc._align(p, np.array(["x", "y"]), ["no", "yes"], 2) is None
    assert oc._align(p, None, [0, 1, 2], 2) is None


def test_the_compared_outputs_per_task():
    g = np.random.default_rng(0)
    p3 = g.dirichlet([1, 1, 1], 50)
    multi = {"reference": {"prediction": np.array(list("abc") * 16 + ["a", "b"], dtype=object), "proba": p3},
             "current": {"prediction": np.array(list("abc") * 16 + ["a", "b"], dtype=object), "proba": p3},
             "classes": ["a", "b", "c"]}
    assert [(c, k) for c, k, _, _ in oc.prediction_series(multi)] == [
        ("prediction", "categorical"), ("proba_a", "numeric"), ("proba_b", "numeric"), ("proba_c", "numeric")]
    reg = {"reference": {"prediction": g.normal(size=50), "proba": None},
           "current": {"prediction": g.normal(size=50), "proba": None}, "classes": None}
    assert [(c, k) for c, k, _, _ in oc.prediction_series(reg)] == [("prediction", "numeric")]
    labels_only = {"reference": {"prediction": np.array([0, 1] * 25, dtype=object), "proba": None},
                   "current": {"prediction": np.array([0, 1] * 25, dtype=object), "proba": None}, "classes": [0, 1]}
    recs = oc.drift_of(oc.prediction_series(labels_only))
    assert [(r["column"], r["test"], r["drifted"]) for r in recs] == [("prediction", "z", False)]


def _logit_scores(df):
    """A fixed binary model's outputs on a generated table, as `score` returns them."""
    p = 1 / (1 + np.exp(-(1.2 * df["x0"].to_numpy() - 0.8 * df["x1"].to_numpy())))
    return {"prediction": np.where(p > 0.5, 1, 0).astype(object), "proba": np.column_stack([1 - p, p])}


def _tables(n, seed, shift):
    g = np.random.default_rng(seed)
    ref = pd.DataFrame({"x0": g.normal(0, 1, n), "x1": g.normal(0, 1, n)})
    cur = pd.DataFrame({"x0": g.normal(shift, 1, n), "x1": g.normal(0, 1, n)})
    return ref, cur


def test_prediction_statistics_equal_evidentlys():
    ev = pytest.importorskip("evidently")
    del ev
    from evidently.legacy.metrics import DataDriftTable
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report

    for n, shift in ((400, 0.0), (400, 0.3), (3000, 0.0), (3000, 0.3)):
        ref, cur = _tables(n, 7, shift)
        scored = {"reference": _logit_scores(ref), "current": _logit_scores(cur), "classes": [0, 1]}
        series = oc.prediction_series(scored)
        recs = {r["column"]: r for r in oc.drift_of(series)}
        r_df = pd.DataFrame({c: s.to_numpy() for c, _, s, _ in series})
        c_df = pd.DataFrame({c: s.to_numpy() for c, _, _, s in series})
        rep = Report(metrics=[DataDriftTable()])
        rep.run(reference_data=r_df, current_data=c_df, column_mapping=ColumnMapping(
            numerical_features=["proba_1"], categorical_features=["prediction"], target=None, prediction=None))
        got = rep.as_dict()["metrics"][0]["result"]["drift_by_columns"]
        for col, rec in recs.items():
            assert rec["drifted"] == got[col]["drift_detected"], (n, shift, col)
            assert rec["statistic"] == pytest.approx(got[col]["drift_score"], rel=1e-7, abs=1e-12), (n, shift, col)


RATE_CASES = 200


def _flag_rate(n, shift, cases=RATE_CASES):
    flagged = 0
    for seed in range(cases):
        ref, cur = _tables(n, 1000 + seed, shift)
        scored = {"reference": _logit_scores(ref), "current": _logit_scores(cur), "classes": [0, 1]}
        flagged += any(r["drifted"] for r in oc.drift_of(oc.prediction_series(scored)))
    return flagged / cases


@pytest.mark.parametrize("n,shift,lo,hi", [
    (500, 0.0, 0.0, 0.12),   # small reference: K-S on P(1) or the Z-test on the class, each at p < 0.05
    (500, 0.3, 0.80, 1.0),   # a 0.3-sd shift of the strongest feature
    (5000, 0.0, 0.0, 0.0),   # large reference: the distances at 0.1 never alarm on unchanged data
    (5000, 0.3, 0.95, 1.0),
])
def test_prediction_drift_flag_rates(n, shift, lo, hi):
    rate = _flag_rate(n, shift)
    print(f"prediction drift flagged, {n} rows per table, feature shift {shift} sd: {rate:.1%}")
    assert lo <= rate <= hi
