"""report's pure logic: lineage walk and order, the card's sections, Markdown → HTML."""

from loom_py.verbs import report


def fake_nodes():
    ing = {"pathspec": "IngestDataset/1", "flow": "IngestDataset", "created": "2024-01-01T00:00:01", "status": "OK",
           "verdict": None, "summary": {}, "messages": [], "inputs": [], "params": {},
           "dataset": {"label": "raw", "rows": 100, "n_columns": 5, "content_hash": "sha256:aa", "source": {"path": "/x.csv"}}}
    eda = {"pathspec": "EdaFlow/2", "flow": "EdaFlow", "created": "2024-01-01T00:00:02", "status": "WARN", "verdict": None,
           "summary": {"leakage_flags": [{"column": "leak", "reason": "target_copy"}]}, "messages": ["1 leakage flag"],
           "inputs": ["IngestDataset/1"], "params": {"target": "y"}}
    feat = {"pathspec": "FeaturesFlow/3", "flow": "FeaturesFlow", "created": "2024-01-01T00:00:03", "status": "OK",
            "verdict": None, "summary": {"dropped_for_leakage": [{"column": "leak", "reason": "target_copy"}]},
            "messages": [], "inputs": ["IngestDataset/1", "EdaFlow/2"], "params": {"recipe": "minimal"},
            "dataset": {"label": "feat", "rows": 100, "n_columns": 4, "content_hash": "sha256:bb", "source": {"kind": "features"}}}
    opt = {"pathspec": "OptimizeFlow/4", "flow": "OptimizeFlow", "created": "2024-01-01T00:00:04", "status": "OK",
           "verdict": None, "summary": {}, "messages": [], "inputs": ["FeaturesFlow/3"],
           "params": {"goal": "predict churn", "steps": 5, "metric": "Maximize AUC"}}
    val = {"pathspec": "ValidateFlow/5", "flow": "ValidateFlow", "created": "2024-01-01T00:00:05", "status": "FAIL",
           "verdict": "FAIL", "messages": [], "inputs": ["FeaturesFlow/3", "OptimizeFlow/4"], "params": {},
           "summary": {"verdict": "FAIL", "target": "y", "task": "classification", "metric": "roc_auc",
                       "model": {"name": "best solution of OptimizeFlow/4", "source": "OptimizeFlow/4"},
                       "cv": {"scheme": "stratified_kfold", "folds": 5, "mean": 0.8, "std": 0.02, "per_fold": []},
                       "holdout": {"metric": "roc_auc", "value": 0.7, "rows": 20},
                       "seal": {"id": "seal-1", "rows": 20, "how": "stratified by target", "rows_hash": "sha256:cc",
                                "evaluations": 3},
                       "reasons": ["holdout roc_auc 0.7 misses the bar (>= 0.9)"], "thresholds": {"threshold": 0.9},
                       "calibration": {"ece": 0.05, "bins": 15, "brier": 0.1, "slope": 1.0, "intercept": 0.0, "ece_of": "p"},
                       "fairness": None, "leakage": {"found": False, "duplicates": {"holdout_rows_in_cv": 0},
                                                     "holdout_above_cv": False},
                       "dataset": {"pathspec": "FeaturesFlow/3", "content_hash": "sha256:bb"}}}
    return {n["pathspec"]: n for n in (ing, eda, feat, opt, val)}


def test_walk_follows_inputs_and_marks_missing():
    nodes = fake_nodes()
    nodes["ValidateFlow/5"]["inputs"].append("EdaFlow/404")
    seen = report.walk(["ValidateFlow/5"], read=lambda p: nodes.get(p))
    assert set(seen) == set(nodes) | {"EdaFlow/404"}
    assert seen["EdaFlow/404"]["status"] == "MISSING"


def test_order_is_upstream_first():
    order = [n["pathspec"] for n in report.order(fake_nodes())]
    assert order.index("IngestDataset/1") < order.index("EdaFlow/2") < order.index("FeaturesFlow/3")
    assert order.index("OptimizeFlow/4") < order.index("ValidateFlow/5")
    assert order[-1] == "ValidateFlow/5"


def test_card_sections_filled_and_caveats():
    card = report.build_card(fake_nodes(), "ValidateFlow/5")
    md = card["markdown"]
    assert "goal (from `--goal`): predict churn" in md
    assert "dropped for leakage: leak (target_copy)" in md
    assert "evaluated 3 times" in md
    assert card["unfilled"] == ["Factors", "Ethical considerations"]
    assert [c["pathspec"] for c in card["caveats"]] == ["EdaFlow/2", "ValidateFlow/5"]
    assert "misses the bar" in " ".join(card["caveats"][1]["items"])
    assert card["metrics"]["holdout"] == 0.7 and card["validate"] == "ValidateFlow/5"


def test_card_without_validate_says_what_is_missing():
    nodes = {k: v for k, v in fake_nodes().items() if k == "IngestDataset/1"}
    card = report.build_card(nodes, "IngestDataset/1")
    assert "Metrics" in card["unfilled"] and "Model details" in card["unfilled"]
    assert card["metrics"] is None


def test_html_renders_tables_lists_and_escapes():
    html = report.to_html("# T <x>\n\n- a `code`\n  - sub\n\n| a | b |\n|---|---|\n| 1 | x\\|y |\n\npara **bold**")
    assert "<h1>T &lt;x&gt;</h1>" in html
    assert "<li>a <code>code</code></li>" in html and "<li class='sub'>sub</li>" in html
    assert "<td>x|y</td>" in html and "<strong>bold</strong>" in html


def test_caveats_of_a_pass_reach_the_verdict_line_the_caveats_and_the_html():
    """A PASS with a caveat in its messages (the search saw the sealed rows) must not read as a plain PASS."""
    nodes = fake_nodes()
    val = nodes["ValidateFlow/5"]
    caveat = "OptimizeFlow/4 chose its solution by scoring on its own split of FeaturesFlow/3: the holdout is optimistic"
    val.update(status="OK", verdict="PASS", messages=[caveat])
    val["summary"].update(verdict="PASS", reasons=[])
    nodes["FeaturesFlow/3"]["messages"] = ["no --from eda run: leakage checks were run here"]
    card = report.build_card(nodes, "ValidateFlow/5")
    md = card["markdown"]
    assert "**VERDICT: PASS, with 1 caveat** from `ValidateFlow/5`" in md
    assert f"- caveat: {caveat}" in md
    by = {c["pathspec"]: c for c in card["caveats"]}
    assert caveat in by["ValidateFlow/5"]["items"] and by["ValidateFlow/5"]["status"] == "PASS"
    assert "no --from eda run: leakage checks were run here" in by["FeaturesFlow/3"]["items"]
    assert card["metrics"]["caveats"] == [caveat]
    page = report.to_html(md)
    assert "VERDICT: PASS, with 1 caveat" in page and "the holdout is optimistic" in page


def test_card_shows_the_fairness_decision_the_baseline_and_failed_calibration_bounds():
    nodes = fake_nodes()
    vs = nodes["ValidateFlow/5"]["summary"]
    vs["holdout"]["baseline"] = {"what": "class frequencies of the CV rows", "baseline": 0.5, "improvement": 0.2,
                                 "required": 0.06, "beats": True}
    vs["calibration"]["judged"] = {"failed": ["slope 3.1 (95% CI 2.5–3.7) above 1.25: probabilities too timid"]}
    vs["fairness"] = {"region": {"groups": [{"group": "north", "rows": 40, "roc_auc": 0.6, "auc": 0.6, "judged": True}],
                                 "too_small": [], "decision": {"threshold": 0.21, "how": "base-rate matching"},
                                 "auc_gap": 0.27, "assessable": False,
                                 "not_assessable_because": ["group south has no positives"],
                                 "demographic_parity_difference": None, "demographic_parity_ratio": None,
                                 "equalized_odds_difference": None}}
    md = report.build_card(nodes, "ValidateFlow/5")["markdown"]
    assert "Decisions at threshold 0.21 (base-rate matching); per-group ROC-AUC gap 0.27" in md
    assert "**Not assessable**: group south has no positives" in md
    assert "failed: slope 3.1" in md and "trivial baseline (class frequencies of the CV rows): 0.5" in md
    assert "| group | rows | roc_auc | auc |" in md
