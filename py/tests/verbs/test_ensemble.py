"""The greedy ensemble (Caruana 2004) and the table-aware drafts of the offline library."""

import pickle

import numpy as np
import pandas as pd
import pytest

from loom_py.verbs.optimize import ensemble, library, metric_spec, search
from loom_py.verbs.solution import module_from_code

SPECS = {t: metric_spec.parse_metric(t) for t in ("Minimize RMSE", "Minimize MAE", "Maximize ROC-AUC",
                                                  "Minimize log loss", "Maximize accuracy")}


def _case(text, seed, members=6, n=300):
    """Members = truth + independent noise of different sizes: averaging helps, and the best single is known."""
    rng = np.random.default_rng(seed)
    spec = SPECS[text]
    if spec["task"] == "regression":
        y = rng.normal(size=n) * 3
        preds = [y + rng.normal(scale=0.5 + j * 0.3, size=n) for j in range(members)]
        return spec, y, preds, None
    k = 2 if text == "Maximize ROC-AUC" else 3
    y = rng.integers(0, k, size=n)
    logits = np.eye(k)[y] * 2.0
    preds = []
    for j in range(members):
        z = logits + rng.normal(scale=1.0 + 0.4 * j, size=(n, k))
        p = np.exp(z - z.max(axis=1, keepdims=True))
        preds.append(p / p.sum(axis=1, keepdims=True))
    return spec, y, preds, list(range(k))


@pytest.mark.parametrize("text", list(SPECS))
@pytest.mark.parametrize("seed", range(6))
def test_never_worse_than_its_best_member_weights_sum_to_one_deterministic(text, seed):
    spec, y, preds, classes = _case(text, seed)
    groups = [np.arange(i, len(y), 3) for i in range(3)] if seed % 2 else None  # folds: mean of fold scores
    a = ensemble.select(preds, y, spec, spec["task"], classes, groups=groups)
    b = ensemble.select(preds, y, spec, spec["task"], classes, groups=groups)
    assert a == b
    singles = [ensemble._score(spec, spec["task"], y, p, classes, groups) for p in preds]
    best_single = min(singles) if spec["direction"] == "minimize" else max(singles)
    assert a["single"] == pytest.approx(best_single)
    assert not metric_spec.is_better(spec, best_single, a["score"])  # never worse on these rows
    assert sum(a["weights"].values()) == pytest.approx(1.0)
    assert all(0 < w <= 1 for w in a["weights"].values())
    # the reported score is the score of the weighted average
    comb = sum(preds[j] * w for j, w in a["weights"].items())
    assert ensemble._score(spec, spec["task"], y, comb, classes, groups) == pytest.approx(a["score"])


@pytest.mark.parametrize("text", ["Minimize RMSE", "Minimize log loss"])
def test_independent_errors_are_averaged(text):
    # equally good members with independent errors: the average is clearly better than any one of them
    spec, y, preds, classes = _case(text, 0, members=4)
    sel = ensemble.select(preds, y, spec, spec["task"], classes)
    assert len(sel["weights"]) >= 2
    gain = (sel["single"] - sel["score"]) / sel["single"]
    assert gain > 0.02, sel


def test_a_useless_member_gets_no_weight():
    spec, y, preds, _ = _case("Minimize RMSE", 1, members=3)
    junk = np.full_like(y, 1e3)
    sel = ensemble.select(preds + [junk], y, spec, "regression")
    assert 3 not in sel["weights"]


def _journal(preds, scores, task="regression", classes=None):
    out = []
    for i, (p, s) in enumerate(zip(preds, scores)):
        oof = ({"labels": p, "proba": None, "classes": None} if task == "regression" else
               {"labels": np.asarray(classes)[p.argmax(1)], "proba": p, "classes": np.asarray(classes)})
        out.append({"id": i + 1, "operator": "draft", "status": "ok", "score": s, "oof": oof, "code": f"# {i + 1}",
                    "model": f"m{i + 1}"})
    return out


def test_build_needs_two_usable_nodes_and_a_real_gain():
    spec, y, preds, _ = _case("Minimize RMSE", 2, members=3)
    j = _journal(preds[:1], [1.0])
    assert ensemble.build(j, spec, "regression", y) is None
    j = _journal([preds[0], preds[0]], [1.0, 1.0])  # two identical nodes: no mix beats the single one
    assert ensemble.build(j, spec, "regression", y) is None
    j = _journal(preds, [0.5, 0.6, 0.7])
    e = ensemble.build(j, spec, "regression", y)
    assert e is not None and set(e["members"]) <= {1, 2, 3} and abs(sum(e["weights"]) - 1) < 1e-5
    assert e["score"] < e["single"]


def test_classes_must_agree_to_be_averaged():
    spec, y, preds, classes = _case("Minimize log loss", 3, members=3)
    j = _journal(preds, [0.5, 0.6, 0.7], "classification", classes)
    j[1]["oof"]["classes"] = np.asarray(["a", "b", "c"])
    cands, cl = ensemble.candidates(j, spec, "classification")
    assert [n["id"] for n, _ in cands] == [1, 3] and cl == classes


def _table(n=400, seed=0, task="regression"):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                       "city": rng.choice([f"c{i}" for i in range(40)], size=n)})
    df.loc[rng.random(n) < 0.1, "city"] = None
    effect = {f"c{i}": (i % 5) for i in range(40)}
    base = df["a"] * 2 + df["city"].map(effect).fillna(0).astype(float)
    df["target"] = np.exp(1 + 0.5 * base + rng.normal(scale=0.3, size=n)) if task == "regression" else (base > 2).astype(int)
    return df


def test_rendered_ensemble_fits_predicts_pickles_like_any_solution():
    df = _table()
    X, y = df.drop(columns=["target"]), df["target"]
    codes = [library.render(f, "regression", library.DEFAULTS[f], plan="p", drop=[], seed=0) for f in ("linear_reg", "lgbm")]
    ens = {"members": [1, 2], "weights": [0.25, 0.75], "codes": codes, "models": ["Ridge", "LightGBM"]}
    code = ensemble.render(ens, "regression")
    m = module_from_code(code).make_model()
    m.fit(X.iloc[:300], y.iloc[:300])
    p = m.predict(X.iloc[300:])
    parts = []
    for c in codes:
        mm = module_from_code(c, name="member_check").make_model().fit(X.iloc[:300], y.iloc[:300])
        parts.append(mm.predict(X.iloc[300:]))
    assert np.allclose(p, 0.25 * parts[0] + 0.75 * parts[1])
    blob = pickle.dumps(m)
    module_from_code(code)  # what load_solution(fitted=True) does before unpickling
    assert np.allclose(pickle.loads(blob).predict(X.iloc[300:]), p)


def test_rendered_classifier_ensemble_soft_votes():
    df = _table(task="classification")
    X, y = df.drop(columns=["target"]), df["target"]
    codes = [library.render(f, "classification", library.DEFAULTS[f], plan="p", drop=[], seed=0) for f in ("rf", "lgbm")]
    code = ensemble.render({"members": [3, 4], "weights": [0.5, 0.5], "codes": codes, "models": ["RF", "LGBM"]},
                           "classification")
    m = module_from_code(code).make_model().fit(X.iloc[:300], y.iloc[:300])
    pr = m.predict_proba(X.iloc[300:])
    assert pr.shape == (100, 2) and np.allclose(pr.sum(1), 1) and list(m.classes_) == [0, 1]
    assert (m.predict(X.iloc[300:]) == m.classes_[pr.argmax(1)]).all()


def test_profile_and_starting_params_depend_on_the_table():
    df = _table()
    p = library.profile(df, "target", "regression", "rmse")
    assert p["rows"] == 400 and p["categorical"] == 1 and p["max_cardinality"] == 40 and p["log_target"]
    assert "lgbm_log" in library.families("regression", p) and "lgbm_log" not in library.families("regression")
    sym = df.assign(target=np.random.default_rng(0).normal(size=len(df)))
    assert not library.profile(sym, "target", "regression", "rmse")["log_target"]  # not positive, not skewed
    small, big = library.starting_params("lgbm", {"rows": 500}), library.starting_params("lgbm", {"rows": 50000})
    assert small["num_leaves"] < big["num_leaves"] and small["min_child_samples"] < big["min_child_samples"]
    assert library.starting_params("hgb", {"rows": 5000})["early_stopping"] is True
    assert library.starting_params("lgbm", None) == library.DEFAULTS["lgbm"]


def test_lightgbm_draft_splits_categories_natively_and_survives_unseen_ones():
    df = _table()
    prop = library.OfflineProposer("regression", "minimize", [], 0, metric="rmse",
                                   profile=library.profile(df, "target", "regression", "rmse"))
    journal = []
    nodes = []
    for i in range(prop.num_drafts):
        n = prop.draft(journal, i + 1)
        journal.append({"operator": "draft", "family": n["family"], "id": i + 1})
        nodes.append(n)
    fams = [n["family"] for n in nodes]
    assert fams[:3] == ["lgbm", "linear_reg", "lgbm_log"] and len(set(fams)) == len(fams)
    lg = next(n for n in nodes if n["family"] == "lgbm")
    assert "as_category" in lg["code"] and "'category'" in lg["code"]
    model = module_from_code(lg["code"]).make_model()
    X, y = df.drop(columns=["target"]), df["target"]
    model.fit(X, y)
    Xn = X.head(5).copy()
    Xn["city"] = ["never-seen", None, "c1", "c2", "c3"]
    assert np.isfinite(model.predict(Xn)).all()
    lgm = model.steps[-1][1]
    assert "city" in [lgm.feature_name_[i] for i in range(len(lgm.feature_name_))]
    assert lgm.booster_.dump_model()["pandas_categorical"]  # the category column was split natively
    log = next(n for n in nodes if n["family"] == "lgbm_log")
    ml = module_from_code(log["code"]).make_model().fit(X, y)
    assert (ml.predict(X) > 0).all()  # expm1 of a log-scale fit: positive like the target


def test_search_records_the_ensemble_as_a_node_and_it_is_deterministic(tmp_path):
    df = _table(n=400, seed=1)  # a linear part (Ridge's) and a non-linear one (the trees'): a mix helps
    noise = np.random.default_rng(5).normal(scale=0.5, size=len(df))
    df["target"] = 3 * df["a"] + np.sin(3 * df["b"]) * 2 + df["city"].fillna("c0").str[1:].astype(int).mod(5) + noise
    spec = metric_spec.parse_metric("Minimize RMSE")
    cfg = {"target": "target", "spec": spec, "goal": "g", "steps": 7, "provider": "offline", "seed": 0, "parallel": 2,
           "node_timeout": 60, "cv_below": 10}  # held-out selection: the ensemble is fitted in the sandbox
    a = search.run_search(df, cfg, workdir=str(tmp_path / "a"))
    b = search.run_search(df, cfg, workdir=str(tmp_path / "b"))
    ea = [n for n in a["journal"] if n["operator"] == "ensemble"]
    eb = [n for n in b["journal"] if n["operator"] == "ensemble"]
    assert len(ea) == 1 and ea[0]["code"] == eb[0]["code"] and ea[0]["weights"] == eb[0]["weights"]
    e = ea[0]
    assert e["status"] == "ok" and len(e["members"]) >= 2 and abs(sum(e["weights"]) - 1) < 1e-5
    assert e["score"] == pytest.approx(e["oof_score"], rel=1e-6)  # the sandbox fit reproduces the greedy score
    singles = [n["score"] for n in a["journal"] if n["operator"] != "ensemble" and n["status"] == "ok"]
    assert e["score"] <= min(singles)
    assert a["best_id"] == e["id"] and a["ensemble"]["chosen"]
    assert a["time"]["search_s"] > 0 and "ensemble_s" in a["time"]
    assert all("oof" not in n for n in a["journal"])
