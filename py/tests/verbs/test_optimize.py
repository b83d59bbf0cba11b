"""optimize: metric spec, scoring, code extraction, policy, memory, sandbox, and the offline search end to end."""

import random

import numpy as np
import pandas as pd
import pytest

from loom_py.runtime.errors import UsageError
from loom_py.verbs.optimize import library, llm, metric_spec, policy, sandbox, scoring, search


@pytest.mark.parametrize("text,metric,direction,frac", [
    ("Maximize ROC-AUC on a held-out split.", "roc_auc", "maximize", 0.2),
    ("maximise AUC", "roc_auc", "maximize", 0.2),
    ("PR-AUC on a 25% holdout", "pr_auc", "maximize", 0.25),
    ("average precision", "pr_auc", "maximize", 0.2),
    ("Minimize log loss", "log_loss", "minimize", 0.2),
    ("accuracy", "accuracy", "maximize", 0.2),
    ("balanced accuracy please", "balanced_accuracy", "maximize", 0.2),
    ("macro F1 score", "f1", "maximize", 0.2),
    ("Minimize RMSE on a 30% held-out split", "rmse", "minimize", 0.3),
    ("mean absolute error", "mae", "minimize", 0.2),
    ("Maximize R² ", "r2", "maximize", 0.2),
    ("r-squared, validation split 0.15", "r2", "maximize", 0.15),
])
def test_metric_spec_parses_common_phrasings(text, metric, direction, frac):
    spec = metric_spec.parse_metric(text)
    assert (spec["metric"], spec["direction"], spec["split"]["fraction"]) == (metric, direction, frac)


@pytest.mark.parametrize("text,needle", [
    ("make it good", "understood: ROC-AUC"),
    ("", "--metric is required"),
    ("Maximize RMSE", "can only be minimized"),
    ("Minimize accuracy", "can only be maximized"),
    ("ROC-AUC and RMSE", "more than one metric"),
    ("accuracy on a 90% holdout", "outside 0.05..0.5"),
])
def test_metric_spec_refuses_what_it_cannot_map(text, needle):
    with pytest.raises(UsageError) as e:
        metric_spec.parse_metric(text)
    assert needle in e.value.message


UNUSUAL = "Score by the area under the receiver operating characteristic curve, bigger is better"


@pytest.mark.parametrize("answer,metric,direction,frac", [
    ('{"metric": "roc_auc", "direction": "maximize", "holdout_fraction": null}', "roc_auc", "maximize", 0.2),
    ('{"metric": "roc_auc"}', "roc_auc", "maximize", 0.2),
    ('```json\n{"metric": "pr_auc", "direction": null, "holdout_fraction": 0.25}\n```', "pr_auc", "maximize", 0.25),
    ('{"metric": "log_loss", "direction": "minimize", "holdout_fraction": 0.1}', "log_loss", "minimize", 0.1),
    ('{"metric": "rmse", "direction": "minimize", "holdout_fraction": 0.5}', "rmse", "minimize", 0.5),
])
def test_model_mapping_inside_the_closed_set(answer, metric, direction, frac):
    spec = metric_spec.from_model(answer, UNUSUAL)
    assert (spec["metric"], spec["direction"], spec["split"]["fraction"]) == (metric, direction, frac)
    assert spec["source"] == "model" and spec["text"] == UNUSUAL
    assert spec["label"] == metric_spec.METRICS[metric]["label"]


@pytest.mark.parametrize("answer,needle", [
    ("roc_auc, maximize", "was not JSON"),
    ("", "was not JSON"),
    ('["roc_auc"]', "was not a JSON object"),
    ('{"metric": null}', "names no metric"),
    ('{"metric": "customer_happiness", "direction": "maximize"}', 'names "customer_happiness", which is not one of'),
    ('{"metric": 3}', "which is not one of"),
    ('{"metric": "roc_auc", "direction": "up"}', 'direction "up", not maximize or minimize'),
    ('{"metric": "roc_auc", "direction": "minimize"}', "can only be maximized"),
    ('{"metric": "rmse", "direction": "maximize"}', "can only be minimized"),
    ('{"metric": "roc_auc", "holdout_fraction": 0.9}', "holdout_fraction 0.9, outside 0.05..0.5"),
    ('{"metric": "roc_auc", "holdout_fraction": "20%"}', "outside 0.05..0.5"),
    ('{"metric": "roc_auc", "holdout_fraction": true}', "outside 0.05..0.5"),
    ('{"metric": "roc_auc", "threshold": 0.5}', "unknown keys: threshold"),
])
def test_model_mapping_outside_the_closed_set_is_refused_with_the_list(answer, needle):
    with pytest.raises(UsageError) as e:
        metric_spec.from_model(answer, UNUSUAL)
    assert needle in e.value.message
    if "can only be" not in needle:
        assert "understood: ROC-AUC" in e.value.message


def test_resolve_prefers_the_rules_and_needs_a_mapping_for_unusual_text():
    rules = metric_spec.resolve("Maximize ROC-AUC", {"answer": '{"metric": "accuracy"}', "model": "m"})
    assert (rules["metric"], rules["source"]) == ("roc_auc", "rules")  # a mapping never overrides the rules
    with pytest.raises(metric_spec.Unmapped):
        metric_spec.resolve(UNUSUAL)
    spec = metric_spec.resolve(UNUSUAL, '{"answer": "{\\"metric\\": \\"roc_auc\\"}", "model": "claude-x"}')
    assert (spec["metric"], spec["source"], spec["mapped_by"]) == ("roc_auc", "model", "claude-x")
    assert set(metric_spec.closed_set()["metrics"]) == set(metric_spec.METRICS)


def test_metric_task_mismatch_is_usage_error():
    with pytest.raises(UsageError, match="classification metric"):
        metric_spec.check_task(metric_spec.parse_metric("ROC-AUC"), "regression")


def test_direction_helpers():
    mx, mn = metric_spec.parse_metric("accuracy"), metric_spec.parse_metric("rmse")
    assert metric_spec.is_better(mx, 0.9, 0.8) and not metric_spec.is_better(mn, 0.9, 0.8)
    assert metric_spec.is_better(mn, 1.0, None) and not metric_spec.is_better(mn, None, 1.0)
    assert sorted([0.5, None, 0.9], key=metric_spec.sort_key(mx)) == [0.9, 0.5, None]


def test_scoring_matches_sklearn_and_tolerates_label_types():
    from sklearn.metrics import mean_squared_error, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.6 + rng.random(200) * 0.5, 0, 1)
    spec = metric_spec.parse_metric("roc auc")
    got = scoring.score(spec, y.astype(float), {"labels": y, "proba": np.c_[1 - p, p]}, classes=np.array([0, 1]))
    assert got == pytest.approx(roc_auc_score(y, p))
    acc = metric_spec.parse_metric("accuracy")
    assert scoring.score(acc, np.array(["1", "0", "1"]), {"labels": np.array([1.0, 0.0, 0.0])}) == pytest.approx(2 / 3)
    r = metric_spec.parse_metric("rmse")
    yt, yp = rng.random(50), rng.random(50)
    assert scoring.score(r, yt, {"labels": yp}) == pytest.approx(mean_squared_error(yt, yp) ** 0.5)
    with pytest.raises(scoring.ScoringError, match="needs predict_proba"):
        scoring.score(spec, y, {"labels": y})
    with pytest.raises(scoring.ScoringError, match="rows"):
        scoring.score(acc, y, {"labels": y[:10]})


@pytest.mark.parametrize("reply,ok,err", [
    ("Plan: logistic.\n```python\ndef make_model():\n    return 1\n```", True, None),
    ("I think we should use a forest.", False, "no code block"),
    ("```python\ndef make_model(:\n```", False, "invalid code: SyntaxError"),
    ("```python\nx = 1\n```", False, "no top-level make_model"),
    ("", False, "no text"),
])
def test_extract_turns_malformed_output_into_reasons(reply, ok, err):
    code, plan, error = llm.extract(reply)
    assert (code is not None) == ok
    assert (error is None) if ok else (err in error)


def _node(i, op="draft", status="ok", score=0.5, parent=None, family="rf"):
    return {"id": i, "operator": op, "status": status, "score": score, "parent": parent, "family": family,
            "plan": f"plan {i} " + "x" * 500, "model": family, "error": None if status == "ok" else "boom"}


def test_policy_drafts_then_debugs_or_improves():
    key = metric_spec.sort_key(metric_spec.parse_metric("accuracy"))
    rng = random.Random(0)
    assert policy.choose([_node(1)], key, rng) == ("draft", None)
    j = [_node(1, score=0.7, family="rf"), _node(2, score=0.9, family="lgbm"), _node(3, status="failed", score=None),
         _node(4, score=0.8, family="et"), _node(5, score=0.6, family="hgb")]

    class Always(random.Random):
        def random(self):
            return 0.0

    class Never(random.Random):
        def random(self):
            return 0.99

    op, parent = policy.choose(j, key, Always(0), policy="aide")
    assert (op, parent["id"]) == ("debug", 3)
    j2 = j + [_node(6, op="debug", status="failed", score=None, parent=3), _node(7, op="debug", status="failed", score=None, parent=6),
              _node(8, op="debug", status="failed", score=None, parent=7)]
    op, parent = policy.choose(j2, key, Always(0), policy="aide")
    assert op == "improve", "a debug chain of depth 3 is not debugged again"
    assert policy.choose(j, key, Never(0), policy="aide")[1]["id"] == 2
    picks = []
    jj = list(j)
    for i in range(4):
        op, parent = policy.choose(jj, key, Never(0), policy="topk", k=3)
        picks.append(parent["id"])
        jj.append(_node(10 + i, op="improve", score=0.1, parent=parent["id"], family=parent["family"]))
    assert picks[0] == 2 and set(picks) == {2, 4, 1}, picks


def test_memory_is_bounded():
    spec = metric_spec.parse_metric("accuracy")
    j = [_node(i, score=i / 100) for i in range(1, 60)] + [_node(100 + i, status="failed", score=None) for i in range(10)]
    text = llm.memory(j, spec, metric_spec.sort_key(spec))
    assert len(text) < 4000 and "node 59" in text and "lower-scoring solutions omitted" in text


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    tr = X.iloc[::2].copy()
    tr["target"] = y.iloc[::2].to_numpy()
    d = str(tmp_path_factory.mktemp("data"))
    sandbox.stage(d, tr, X.iloc[1::2], X.iloc[1::2], {"target": "target", "task": "classification"})
    return d, tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def zygote():
    z = sandbox.start_zygote()
    assert z is not None, "the pre-forked launcher must start here"
    yield z
    z.close()


GOOD = "from sklearn.linear_model import LogisticRegression\ndef make_model():\n    return LogisticRegression(max_iter=500)\n"


@pytest.mark.parametrize("name,code,reason", [
    ("good", GOOD, None),
    ("loop", "while True:\n    pass\n", "timed out"),
    ("memory", "x = []\nwhile True:\n    x.append(bytearray(10**8))\n", "memory limit exceeded"),
    ("socket", "import socket\nsocket.create_connection(('127.0.0.1', 9))\n", "network access refused"),
    ("write", "open('/tmp/loom-escape.txt', 'w').write('x')\n", "write outside the candidate directory refused"),
    ("spawn", "import subprocess\nsubprocess.run(['true'])\n", "starting processes refused"),
])
@pytest.mark.parametrize("launcher", ["process", "zygote"])
def test_sandbox_stops_what_it_must(staged, zygote, launcher, name, code, reason):
    data, runs = staged
    res = sandbox.run_candidate(code, str(runs / f"{name}-{launcher}"), data, timeout=10 if name == "memory" else 3, mem_mb=1024,
                                zygote=zygote if launcher == "zygote" else None)
    assert res["launcher"] == launcher
    if reason is None:
        assert res["error"] is None, res["output"]
        p = sandbox.load_predictions(str(runs / f"{name}-{launcher}"))
        assert p["val_proba"].shape == (75, 3)
    else:
        assert reason in res["error"], (res["error"], res["output"])
    import os
    assert not os.path.exists("/tmp/loom-escape.txt")


def test_sandbox_sees_no_labels_for_held_out_rows(staged):
    data, runs = staged
    code = ("import pandas as pd\nv = pd.read_feather('val_features.arrow')\nassert 'target' not in v.columns\n"
            "import os\nassert sorted(f for f in os.listdir('.') if not f.startswith(('tmp', 'output'))) == "
            "['solution.py', 'task.json', 'test_features.arrow', 'train.arrow', 'val_features.arrow'], os.listdir('.')\n" + GOOD)
    res = sandbox.run_candidate(code, str(runs / "peek"), data, timeout=10)
    assert res["error"] is None, res["output"]


def test_output_is_truncated_head_and_tail():
    text = "H" * 3000 + "M" * 50000 + "T" * 5000
    out = sandbox.truncate(text)
    assert out.startswith("H" * 2000) and out.endswith("T" * 4000) and "characters cut" in out and len(out) < 7000


def test_offline_code_renders_and_compiles_for_every_family():
    for task in ("classification", "regression"):
        for fam in library.families(task):
            code = library.render(fam, task, library.DEFAULTS[fam], plan="p", drop=["id"], seed=1)
            assert llm.extract(f"```python\n{code}```")[2] is None


def _friedman(n=400, seed=0):
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=n, noise=0.5, random_state=seed)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    df["color"] = np.where(X[:, 0] > 0.5, "red", "blue")
    df["target"] = y
    return df


def test_offline_search_improves_and_is_deterministic(tmp_path):
    df = _friedman()
    spec = metric_spec.parse_metric("Minimize RMSE on a held-out split")
    cfg = {"target": "target", "spec": spec, "goal": "g", "steps": 7, "provider": "offline", "seed": 3, "parallel": 2,
           "node_timeout": 60}
    events = []
    a = search.run_search(df, cfg, workdir=str(tmp_path / "a"), emit=lambda k, **kw: events.append((k, kw)))
    b = search.run_search(df, cfg, workdir=str(tmp_path / "b"))
    ea, eb = ([n for n in r["journal"] if n["operator"] == "ensemble"] for r in (a, b))
    assert [n["code"] for n in ea] == [n["code"] for n in eb]  # the ensemble too is deterministic for a seed
    ja, jb = ([n for n in r["journal"] if n["operator"] != "ensemble"] for r in (a, b))
    assert [n["status"] for n in ja] == ["ok"] * 7
    assert [n["code"] for n in ja] == [n["code"] for n in jb]
    assert [round(n["score"], 9) for n in ja] == [round(n["score"], 9) for n in jb]
    first = next(n["score"] for n in ja if n["model"] == "Ridge")  # the linear baseline draft
    best = min(n["score"] for n in ja)
    assert best < first * 0.9, (first, best)
    assert [n["operator"] for n in ja][:5] == ["draft"] * 5 and {n["operator"] for n in ja[5:]} <= {"improve", "debug"}
    boards = [kw for k, kw in events if k == "leaderboard"]
    assert len(boards) == 4 and boards[-1]["rows"][0]["score"] == best
    assert a["stopped_because"].startswith("steps")


def test_small_data_selects_by_cross_validation_threshold():
    assert search.selection_for(search.CV_BELOW - 1, {})["kind"] == "cv"
    assert search.selection_for(search.CV_BELOW, {})["kind"] == "holdout"
    assert search.selection_for(50, {"cv_below": 10})["kind"] == "holdout"
    assert search.selection_for(50, {"cv_folds": 3})["folds"] == 3


def test_cross_validation_one_sandboxed_fit_per_fold_no_held_out_labels(tmp_path):
    from sklearn.datasets import load_iris

    df = load_iris(as_frame=True).frame
    df.loc[140:, "target"] = np.nan  # 10 unlabeled rows: the test rows
    spec = metric_spec.parse_metric("Minimize log loss")
    cfg = {"target": "target", "spec": spec, "goal": "g", "steps": 2, "provider": "offline", "seed": 1, "parallel": 2,
           "node_timeout": 60}
    rec = search.run_search(df, cfg, workdir=str(tmp_path))
    assert rec["selection"]["kind"] == "cv" and rec["val_rows"] == 140
    seen = []
    for j in range(1, 6):
        d = tmp_path / "data" / f"fold-{j}"
        tr, va = pd.read_feather(d / "train.arrow"), pd.read_feather(d / "val_features.arrow")
        assert "target" not in va.columns and len(tr) + len(va) == 140
        seen += va.to_numpy().round(6).tolist()
        assert (tmp_path / "node-001" / f"fold-{j}" / "predictions.npz").exists()
    assert len(seen) == 140  # the held-out folds partition the labeled rows
    for n in rec["journal"]:
        assert n["status"] == "ok" and len(n["fold_scores"]) == 5
        assert abs(n["score"] - float(np.mean(n["fold_scores"]))) < 1e-6 and "oof" not in n
    p = sandbox.load_predictions(rec["best_dir"])
    assert len(p["test_labels"]) == 10 and p["test_proba"].shape == (10, 3)
