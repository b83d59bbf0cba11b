import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from leakdata import PLANTED, clean, planted  # noqa: E402

from loom_py.verbs import features  # noqa: E402
from loom_py.runtime.errors import UsageError  # noqa: E402


def test_eda_flags_dropped_first_and_recorded():
    df = planted(800)
    flags = [{"column": "noisy_copy", "reason": "target_copy", "evidence": {"x": 1}},
             {"column": "row_id", "reason": "identifier", "evidence": {}}]
    out, manifest, rep = features.build(df, "target", "minimal", eda_flags=flags)
    assert [f["column"] for f in rep["dropped_for_leakage"]] == ["noisy_copy", "row_id"]
    assert rep["leakage_checked_by"] == "eda"
    used = {i for m in manifest for i in m["inputs"]}
    assert "noisy_copy" not in used and "row_id" not in used
    assert "score_exp" in used  # eda did not flag it, so it stays: the eda run is the authority


def test_own_checks_without_eda():
    out, manifest, rep = features.build(planted(800), "target", "minimal")
    assert {f["column"] for f in rep["dropped_for_leakage"]} == set(PLANTED)
    assert rep["leakage_checked_by"].startswith("features")


def test_minimal_recipe_columns_and_manifest():
    df = clean(600)
    df["const"] = 7
    out, manifest, rep = features.build(df, "target", "minimal")
    assert out.notna().all().all()
    assert {"region__north", "plan__pro", "signup__year", "signup__month", "city__rank"} <= set(out.columns)
    assert "signup" not in out.columns and "const" not in out.columns
    assert {"column": "const", "reason": "constant"} in rep["dropped"]
    assert [m["column"] for m in manifest] == list(out.columns)
    assert out["target"].tolist() == df["target"].tolist()
    assert all(out[c].dtype.kind in "biuf" for c in out.columns)


def test_standard_adds_target_free_transforms():
    df = clean(600)
    out, manifest, rep = features.build(df, "target", "standard")
    t = {m["column"]: m["transform"] for m in manifest}
    assert "visits__missing" in out.columns and out["visits__missing"].sum() == df["visits"].isna().sum()
    assert "income__log1p" in out.columns and "income" not in out.columns
    assert "city__freq" in out.columns and "frequency" in t["city__freq"]
    assert np.allclose(out["income__log1p"], np.log1p(df["income"]))
    # target-free: shuffling the target does not change any feature column
    df2 = df.copy()
    df2["target"] = np.random.default_rng(0).permutation(df2["target"].to_numpy())
    out2, _, _ = features.build(df2, "target", "standard", eda_flags=[])
    out1, _, _ = features.build(df, "target", "standard", eda_flags=[])
    pd.testing.assert_frame_equal(out1.drop(columns="target"), out2.drop(columns="target"))


def test_input_untouched_and_missing_target_rows_dropped():
    df = clean(300)
    df.loc[:9, "target"] = np.nan
    before = df.copy()
    out, _, rep = features.build(df, "target", "minimal", eda_flags=[])
    pd.testing.assert_frame_equal(df, before)
    assert len(out) == 290 and rep["rows_dropped_missing_target"] == 10


@pytest.mark.parametrize("kw,msg", [({"recipe": "fancy"}, "--recipe"), ({"target": "nope"}, "unknown target")])
def test_bad_input(kw, msg):
    args = {"target": "target", "recipe": "minimal", **kw}
    with pytest.raises(UsageError, match=msg):
        features.build(clean(100), args["target"], args["recipe"])


def test_nothing_left_is_usage_error():
    df = pd.DataFrame({"id": np.arange(50), "k": 1, "target": [0, 1] * 25})
    with pytest.raises(UsageError, match="no feature columns left"):
        features.build(df, "target", "minimal")


def test_sensitive_columns_are_carried_for_slicing_and_validate_slices_by_them():
    """The product page's chain: features one-hot encodes region; with --sensitive region the original
    column travels along (named in carried_columns), and validate slices by it without using it as input."""
    import numpy as np

    from loom_py.verbs import validate

    r = np.random.default_rng(0)
    n = 1200
    df = pd.DataFrame({"tenure": r.integers(1, 72, n), "region": r.choice(["north", "south", "east"], n),
                       "plan": r.choice(["a", "b"], n)})
    df["y"] = (r.random(n) < 1 / (1 + np.exp(0.05 * (df.tenure - 30)))).astype(int)
    out, manifest, report = features.build(df, "y", carry=["region"])
    assert report["carried_columns"] == ["region"] and "region__north" in out.columns
    assert (out["region"] == df["region"]).all()
    assert {"column": "region", "inputs": ["region"], "transform": "carried unchanged for slicing (not a model input)"} in manifest
    opts = validate.resolve_options(out, {"target": "y", "sensitive": ["region"], "carried": report["carried_columns"]})
    s = validate.evaluate(out, opts, content_hash="sha256:t")["summary"]
    assert set(g["group"] for g in s["fairness"]["region"]["groups"]) == {"north", "south", "east"}
    # without carrying, validate says how to get it
    out2, _, _ = features.build(df, "y")
    with pytest.raises(UsageError) as e:
        validate.resolve_options(out2, {"target": "y", "sensitive": ["region"]})
    assert "--sensitive region" in e.value.message


def test_carrying_an_unknown_or_target_column_is_refused():
    df = pd.DataFrame({"a": range(50), "b": ["x", "y"] * 25, "y": [0, 1] * 25})
    with pytest.raises(UsageError):
        features.build(df, "y", carry=["nope"])
    with pytest.raises(UsageError):
        features.build(df, "y", carry=["y"])
