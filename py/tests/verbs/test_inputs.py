"""Inputs that used to end in an internal error (issue 21): nested Parquet cells, ±inf and empty targets
in validate's / the search's data preparation and in viz, and a wide table's plots capped. Generated
frames, table-style; no Metaflow runs (the built binary's path is test/integration/inputs.test.ts)."""

import os
import re

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from loom_py.runtime.errors import UsageError  # noqa: E402
from loom_py.stats.tabular import infinite_to_missing, model_frame, nested_columns, nested_in_schema  # noqa: E402
from loom_py.verbs import validate, viz  # noqa: E402


def base(n=300, seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(size=n)
    return pd.DataFrame({"x": x, "z": r.normal(size=n), "y": (x + r.normal(size=n) > 0).astype(int)}), r


def with_list(df, r):
    df["tags"] = [list(r.choice(["a", "b", "c"], i % 3)) for i in range(len(df))]
    return df


def with_struct(df, r):
    df["meta"] = [{"k": int(i % 4), "s": "v"} for i in range(len(df))]
    return df


def with_array(df, r):  # what pyarrow's to_pandas gives for a Parquet list column
    df["vec"] = [np.arange(i % 3) for i in range(len(df))]
    return df


def with_inf(df, r):
    df.loc[::7, "x"] = np.inf
    df.loc[::11, "z"] = -np.inf
    df.loc[::5, "z"] = np.nan
    return df


def parquet_round_trip(df, r, tmp):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.Table.from_pandas(with_struct(with_list(df, r), r), preserve_index=False)
    pq.write_table(t, tmp)
    return pq.read_table(tmp).to_pandas()


# ---- the frame-level preparation (stats.tabular.model_frame) ------------------------------------------

@pytest.mark.parametrize("make, dropped, note", [
    (with_list, ["tags"], r"left out 1 nested \(list\) column\(s\) .*: tags"),
    (with_struct, ["meta"], r"left out 1 nested \(struct\) column\(s\) .*: meta"),
    (with_array, ["vec"], r"left out 1 nested \(list\) column\(s\) .*: vec"),
    (lambda d, r: with_struct(with_list(d, r), r), ["tags", "meta"], r"left out 2 nested \(list/struct\) column\(s\) .*: tags, meta"),
    (with_inf, [], r"treated 65 ±inf value\(s\) as missing: x \(43\), z \(22\)"),  # 300/7; 300/11 less 300/55
])
def test_model_frame_leaves_out_nested_and_counts_inf(make, dropped, note):
    df, r = base()
    df = make(df, r)
    out, notes = model_frame(df, "y")
    assert not set(dropped) & set(out.columns)
    assert set(out.columns) == set(df.columns) - set(dropped)
    assert len(notes) == 1 and re.search(note, notes[0]), notes
    num = out.select_dtypes("number").to_numpy(dtype="float64")
    assert not np.isinf(num).any()
    assert int(out.isna().sum().sum()) == int(df.select_dtypes("number").isna().sum().sum()) + (65 if make is with_inf else 0)


def test_model_frame_counts_match_the_data():
    df, r = base(1000, 3)
    flips = r.random(df.shape[0]) < 0.1
    df.loc[flips, "x"] = np.where(r.random(flips.sum()) < 0.5, np.inf, -np.inf)
    _, counts = infinite_to_missing(df)
    assert counts == {"x": int(flips.sum())}


def test_a_clean_frame_is_returned_as_it_is():
    df, _ = base()
    out, notes = model_frame(df, "y")
    assert out is df and notes == []


def test_named_nested_columns_become_json_text():
    df, r = base()
    df = with_list(df, r)
    out, notes = model_frame(df, "y", keep=["tags"])
    assert "tags" in out.columns and out["tags"].map(type).eq(str).all()
    assert out["tags"].nunique() >= 2  # hashable now
    assert any("JSON text" in n for n in notes)


@pytest.mark.parametrize("make, target, match", [
    (with_struct, "meta", r"target 'meta' holds nested values \(struct cells\)"),
    (with_list, "tags", r"target 'tags' holds nested values \(list cells\)"),
    (lambda d, r: d.assign(y=np.nan), "y", r"target 'y' has no values \(all 300 rows missing\)"),
    (lambda d, r: d.assign(y=np.inf), "y", r"target 'y' has no values \(all 300 rows missing, 300 of them ±inf\)"),
])
def test_unusable_targets_are_one_line_refusals(make, target, match):
    df, r = base()
    with pytest.raises(UsageError, match=match):
        model_frame(make(df, r), target)


def test_parquet_nested_columns_are_detected_after_a_round_trip(tmp_path):
    import pyarrow.parquet as pq

    from loom_py.runtime.data import schema_of

    df, r = base()
    back = parquet_round_trip(df, r, str(tmp_path / "n.parquet"))
    assert nested_columns(back) == {"tags": "list", "meta": "struct"}
    # the launcher reads the same from the data object's schema artifact, without loading the data
    assert nested_in_schema(schema_of(pq.read_table(str(tmp_path / "n.parquet")))) == ["tags", "meta"]


def test_a_target_with_only_nested_columns_beside_it_is_refused():
    df, r = base()
    df = with_struct(with_list(df[["y"]].copy(), r), r)
    with pytest.raises(UsageError, match=r"every column but the target 'y' is nested \(list/struct\): tags, meta"):
        model_frame(df, "y")


# ---- validate: the data preparation feeds the checks and the model ----------------------------------------

@pytest.mark.parametrize("case", ["nested", "inf"])
def test_validate_evaluates_what_used_to_crash(case, tmp_path):
    df, r = base(400, 1)
    df = parquet_round_trip(df, r, str(tmp_path / "n.parquet")) if case == "nested" else with_inf(df, r)
    params = {"target": "y", "folds": 3}
    df2, notes = validate.prepared_frame(df, params)
    opts = validate.resolve_options(df2, params)
    s = validate.evaluate(df2, opts, content_hash="sha256:test")["summary"]
    assert s["verdict"] in ("PASS", "FAIL")
    assert 0.5 < s["holdout"]["value"] <= 1.0  # x carries the signal in both cases
    assert notes and ("nested" in notes[0] if case == "nested" else "±inf" in notes[0])


def test_validate_launcher_refuses_an_all_missing_target():
    df, _ = base()
    df["y"] = np.where(np.arange(len(df)) % 2, np.inf, np.nan)
    with pytest.raises(UsageError, match="has no values"):
        validate.prepared_frame(df[["y"]], {"target": "y"})


# ---- viz: never a failed plot, and a wide table's plots capped -----------------------------------------

@pytest.mark.parametrize("make, kinds, names, note", [
    (with_inf, ["distributions", "correlation", "target"],
     ["distributions_1", "correlation", "target", "features_vs_target"], "±inf"),
    (lambda d, r: d.assign(y=np.nan), ["distributions", "correlation", "target"],
     ["distributions_1", "correlation"], "target 'y' has no values"),
    (lambda d, r: with_struct(with_list(d, r), r), ["distributions", "target"],
     ["distributions_1", "target", "features_vs_target"], None),
])
def test_viz_renders_awkward_frames(make, kinds, names, note):
    df, r = base()
    figs, notes = viz.render_all(make(df, r), kinds, target="y")
    assert [n for n, _ in figs] == names
    assert (note is None and notes == []) or any(note in n for n in notes)


def wide(n_cols, n=300, seed=0):
    r = np.random.default_rng(seed)
    df = pd.DataFrame(r.normal(size=(n, n_cols)), columns=[f"n{i}" for i in range(n_cols)])
    df["const"] = 1.0
    df["y"] = (df[f"n{n_cols // 2}"] + df[f"n{n_cols - 1}"] + 0.3 * r.normal(size=n) > 0).astype(int)
    return df


def test_rank_puts_the_planted_signal_first_and_constants_last():
    df = wide(200)
    cols = [c for c in df.columns if c != "y"]
    ranked = viz.rank_columns(df, cols, "y")
    assert set(ranked[:2]) == {"n100", "n199"}
    assert ranked[-1] == "const"
    assert viz.rank_columns(df, cols)[-1] == "const"  # without a target: by spread


@pytest.mark.parametrize("n_cols", [10, 47, 300])
def test_a_wide_table_draws_a_bounded_number_of_figures(n_cols):
    df = wide(n_cols)
    figs, notes = viz.render_all(df, ["distributions", "correlation", "target"], target="y")
    n_dist = sum(n.startswith("distributions_") for n, _ in figs)
    plotted = n_cols + 1  # the constant is plotted too
    assert n_dist == min(viz.MAX_DISTRIBUTION_FIGURES, -(-plotted // viz.MAX_PANELS))
    left = plotted - viz.MAX_PANELS * viz.MAX_DISTRIBUTION_FIGURES
    if left > 0:
        assert any(f"{left} left out" in n for n in notes), notes
        heat = dict(figs)["correlation"]
        assert "n150" in [t.get_text() for t in heat.axes[0].get_xticklabels()]  # the signal made the cut
    else:
        assert not any("left out" in n for n in notes)
    import matplotlib.pyplot as plt

    plt.close("all")
