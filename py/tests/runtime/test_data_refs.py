"""Which parameters the bridge treats as run references (resolved by runtime.data.resolve_ref)."""

import pytest

from loom_py.runtime import data
from loom_py.runtime.errors import UsageError


def test_an_llm_named_model_is_not_a_run(monkeypatch):
    monkeypatch.setattr(data, "resolve_ref", lambda *a, **k: pytest.fail("resolved"))
    p = {"model": "claude-sonnet-4-6", "goal": "x", "steps": 3}
    assert data.resolve_params(p, "OptimizeFlow") == p


def test_run_parameters_go_through_resolve_ref(monkeypatch):
    seen = []
    monkeypatch.setattr(data, "resolve_ref", lambda ref, flows, what: seen.append((ref, flows, what)) or f"Resolved/{ref}")
    out = data.resolve_params({"dataset": "churn", "model": "1796", "target": "y"}, "ValidateFlow")
    assert out == {"dataset": "Resolved/churn", "model": "Resolved/1796", "target": "y"}
    assert ("1796", ("OptimizeFlow",), "solution run") in seen


@pytest.mark.parametrize("ref", ["", "a/b/c", "Flow/"])
def test_malformed_refs_are_usage_errors(ref, monkeypatch, tmp_path):
    monkeypatch.setenv("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(tmp_path))
    with pytest.raises(UsageError):
        data.resolve_ref(ref, data.DATASET_FLOWS, what="data object")


@pytest.mark.parametrize("ref", ["EdaFlow/latest", "EDAFlow/latest", "edaflow/latest"])
def test_a_flow_name_in_another_case_finds_the_flow(ref, monkeypatch, tmp_path):
    for rid in ("17", "18"):
        (tmp_path / ".metaflow" / "EdaFlow" / rid).mkdir(parents=True)
    monkeypatch.setenv("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(tmp_path))
    monkeypatch.setattr(data, "_successful", lambda ps: ps == "EdaFlow/17")
    assert data.resolve_ref(ref, ("EdaFlow",), what="eda run") == "EdaFlow/17"


def test_an_unknown_flow_stays_unknown(monkeypatch, tmp_path):
    (tmp_path / ".metaflow" / "EdaFlow" / "17").mkdir(parents=True)
    monkeypatch.setenv("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(tmp_path))
    with pytest.raises(UsageError, match="no EdFlow runs"):
        data.resolve_ref("EdFlow/latest", ("EdaFlow",), what="eda run")
