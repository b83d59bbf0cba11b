"""Whatever a candidate writes as predictions, scoring gives a failed node with a reason, never a crash that
ends the search (issue 21, item 9): scalars, 2-D labels, wrong row counts, odd dtypes, classes_ of odd types."""
import numpy as np
import pytest

from loom_py.verbs.optimize import scoring

N = 6
GOOD = {"val_labels": np.array([0, 1, 0, 1, 1, 0]), "val_proba": np.tile([0.4, 0.6], (N, 1)), "classes": np.array([0, 1])}


@pytest.mark.parametrize("preds,needle", [
    ({"val_labels": np.array(1)}, "one value per row"),                       # predict() returned a scalar
    ({"val_labels": np.zeros((N, 2))}, "one value per row"),
    ({"val_labels": np.zeros(N - 1)}, "expected 6"),
    ({"val_labels": np.zeros(N, dtype=complex)}, "type complex"),
    ({"val_labels": np.array(["2020-01-01"] * N, dtype="datetime64[D]")}, "type datetime64"),
    ({}, "no val predictions"),
    ({**GOOD, "val_proba": np.array(["a"] * (2 * N)).reshape(N, 2)}, "predict_proba returned values of type"),
    ({**GOOD, "val_proba": np.zeros(N)}, "predict_proba returned shape"),
    ({**GOOD, "classes": np.zeros((2, 2))}, "classes_ has shape"),
    ({**GOOD, "classes": np.array([0, 1, 2])}, "3 entries but predict_proba has 2"),
    ({**GOOD, "classes": np.array([1 + 2j, 3j])}, "classes_ has shape"),
    ("not a dict", "not named arrays"),
])
def test_odd_predictions_are_a_scoring_error_with_the_reason(preds, needle):
    with pytest.raises(scoring.ScoringError, match=needle):
        scoring.check_predictions(preds, N)


def test_good_predictions_pass_and_a_column_vector_of_labels_is_flattened():
    p = scoring.check_predictions({**GOOD, "val_labels": GOOD["val_labels"].reshape(N, 1)}, N)
    assert p["val_labels"].shape == (N,) and p["val_proba"].dtype == float
    spec = {"metric": "roc_auc", "task": "classification", "needs_proba": True, "label": "ROC-AUC"}
    assert 0 <= scoring.score(spec, GOOD["val_labels"], {"labels": p["val_labels"], "proba": p["val_proba"]}, classes=p["classes"]) <= 1


def test_record_result_turns_any_scoring_failure_into_a_failed_node():
    from loom_py.verbs.optimize import search

    spec = {"metric": "accuracy", "task": "classification", "needs_proba": False, "label": "accuracy"}
    fold = {"y": GOOD["val_labels"], "index": np.arange(N), "name": ""}
    for preds in ({"val_labels": np.array(3.0)}, {"val_labels": GOOD["val_labels"], "test_labels": np.zeros((2, 2))}, None):
        node = {"id": 1, "model": None, "timings": {}}
        res = {"error": None, "output": "", "wall_seconds": 0.1, "run": {}, "preds": preds}
        search._record_result(node, [res], [fold], spec)
        assert node["status"] == "failed" and node["error"].startswith("scoring:"), node
