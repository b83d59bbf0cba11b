"""pipeline's own logic on plain records: what a stage asserts, what a resume reuses, the result it builds."""

import pytest

from loom_py.runtime.errors import UsageError
from loom_py.verbs import pipeline as P


def rec(name, status="OK", verdict=None, exit_code=0, key=None, pathspec=None):
    flow = P.FLOW_OF[name][1]
    return {"name": name, "pathspec": pathspec if pathspec is not None else f"{flow}/1", "status": status,
            "verdict": verdict, "exit_code": exit_code, "seconds": 1.0, "card_path": None, "reused_from": None,
            "key": key or {}, "reason": None if exit_code == 0 else "why"}


def test_options_normalized_and_numbers_checked():
    o = P.options_of({"dataset": "IngestDataset/1", "target": "y", "metric": "auc", "steps": "3", "threshold": "0.8",
                      "sensitive": '["a", "b"]'})
    assert (o["steps"], o["threshold"], o["sensitive"], o["recipe"], o["model_provider"]) == (3, 0.8, ["a", "b"], "minimal", "anthropic")
    with pytest.raises(UsageError) as e:
        P.options_of({"threshold": "high"})
    assert "--threshold must be a number" in e.value.message


def test_each_stage_asserts_the_one_before():
    eda = rec("eda", "WARN", key={"leakage_flags": ["leak"]})
    P.assert_previous("features", {"eda": eda})
    with pytest.raises(P.StageFailed, match="needs a successful eda"):
        P.assert_previous("features", {"eda": rec("eda", "FAILED", exit_code=1)})
    kept = rec("features", key={"columns": ["a", "leak", "y"]})
    with pytest.raises(P.StageFailed, match="kept columns EdaFlow/1 flagged for leakage: leak"):
        P.assert_previous("optimize", {"eda": eda, "features": kept})
    P.assert_previous("optimize", {"eda": eda, "features": rec("features", key={"columns": ["a", "y"]})})
    with pytest.raises(P.StageFailed, match="no working solution"):
        P.assert_previous("validate", {"optimize": rec("optimize", key={"best": None})})
    with pytest.raises(P.StageFailed, match="needs a successful validate"):
        P.assert_previous("report", {"validate": rec("validate", "FAIL", "FAIL", exit_code=1)})


def test_resume_reuses_the_successes_up_to_the_first_failure():
    recs = [rec("eda", "WARN"), rec("features"), rec("optimize", "FAILED", exit_code=1, pathspec=None), rec("validate")]
    assert list(P.reusable(recs)) == ["eda", "features"]
    assert list(P.reusable([rec("eda", "FAILED", exit_code=1)])) == []


def test_stage_requests_chain_the_runs_and_tag_them():
    o = P.options_of({"dataset": "IngestDataset/1", "target": "y", "metric": "Maximize ROC-AUC", "time": "day",
                      "model_provider": "offline", "threshold": 0.7})
    done = {"eda": rec("eda"), "features": rec("features"), "optimize": rec("optimize"), "validate": rec("validate")}
    r = P.request("features", o, done, "42")
    assert r["params"]["from"] == "EdaFlow/1" and r["flow_options"] == ["--tag", "pipeline:42", "--tag", "stage:features"]
    opt = P.request("optimize", o, done, "42")["params"]
    assert (opt["dataset"], opt["time"], opt["steps"]) == ("FeaturesFlow/1", "day", 10)  # the seal validate will use
    val = P.request("validate", o, done, "42")["params"]
    assert (val["dataset"], val["model"], val["metric"], val["threshold"], val["time"]) == \
        ("FeaturesFlow/1", "OptimizeFlow/1", "roc_auc", 0.7, "day")
    assert P.request("report", o, done, "42")["params"] == {"run": "ValidateFlow/1"}


def test_outcome_names_the_first_failed_stage_and_skips_the_rest():
    recs = [rec("eda"), rec("features"), rec("optimize"), rec("validate", "FAIL", "FAIL", exit_code=1)]
    recs.append(P.run_stage("report", {}, recs, "1", {}, lambda *a, **k: None)[-1])
    assert recs[-1]["status"] == "SKIPPED"
    s = P.outcome(recs, {"dataset": "IngestDataset/1", "target": "y"})
    assert (s["verdict"], s["failed_stage"]) == ("FAIL", "validate")
    assert s["reason"] == "stage validate (ValidateFlow/1): why"
    ok = P.outcome([rec("eda"), rec("features"), rec("optimize"), rec("validate", verdict="PASS"), rec("report")],
                   {"dataset": "IngestDataset/1", "target": "y"})
    assert (ok["verdict"], ok["failed_stage"], [x["name"] for x in ok["stages"]]) == ("PASS", None, list(P.STAGES))


def test_a_stop_request_skips_the_stages_left_and_the_result_is_interrupted(tmp_path, monkeypatch):
    stop_file = tmp_path / "stop"
    monkeypatch.setenv("LOOM_STOP_FILE", str(stop_file))
    records = [rec("eda", "WARN")]
    stop_file.write_text("")  # Ctrl-C while eda ran: eda finished; nothing after it starts
    for name in P.STAGES[1:]:
        records = P.run_stage(name, {}, records, "9", {}, lambda *a, **k: None)
    assert [r["status"] for r in records] == ["WARN", "SKIPPED", "SKIPPED", "SKIPPED", "SKIPPED"]
    assert all(r["reason"] == "the pipeline was interrupted (Ctrl-C)" for r in records[1:])
    s = P.outcome(records, {"dataset": "IngestDataset/1", "target": "y"})
    assert s["interrupted"] is True and s["verdict"] is None and s["failed_stage"] is None
    assert s["reason"] == "interrupted (Ctrl-C) after stage eda"


def test_an_interrupted_search_is_continued_by_the_resume():
    stopped = rec("optimize", "INTERRUPTED", exit_code=1, key={"nodes_finished": 2}, pathspec="OptimizeFlow/7")
    records = [rec("eda"), rec("features"), stopped]
    assert list(P.reusable(records)) == ["eda", "features"]
    cont = P.continuable(records)
    assert cont == {"pathspec": "OptimizeFlow/7", "nodes_finished": 2}
    opts = P.options_of({"dataset": "IngestDataset/1", "target": "y", "metric": "auc", "steps": "5",
                         "model_provider": "offline"})
    done = {r["name"]: r for r in records}
    req = P.request("optimize", opts, done, "9", cont)
    assert req["params"]["resume"] == "OptimizeFlow/7" and req["params"]["steps"] == 3
    assert "resume" not in P.request("optimize", opts, done, "9")["params"]
    # a stage that failed (not interrupted) is run again, not continued
    assert P.continuable([rec("eda"), rec("features"), rec("optimize", "FAILED", exit_code=1)]) == {}
    s = P.outcome(records + [rec("validate", "SKIPPED")], opts)
    assert s["interrupted"] is True and s["failed_stage"] == "optimize" and s["verdict"] is None
