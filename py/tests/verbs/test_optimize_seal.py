"""optimize leaves out the seal validate will hold out: same rows, same id, and none of them staged for a candidate."""

import glob
import os

import numpy as np
import pandas as pd
import pytest

from loom_py.runtime.errors import UsageError
from loom_py.stats import splits
from loom_py.stats.tabular import infer_task
from loom_py.verbs import validate
from loom_py.verbs.optimize import metric_spec, search
from loom_py.verbs.optimize.seal import exclude

HASH = "sha256:" + "ab" * 32


def _frame(n=1400, seed=0, kind="binary", unlabeled=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"row_id": np.arange(n) + 10_000, "x1": rng.normal(size=n), "x2": rng.normal(size=n),
                       "shop": rng.integers(0, 40, n).astype(str),
                       "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")})
    z = df.x1 + 0.5 * df.x2 + rng.normal(scale=0.7, size=n)
    df["target"] = (z > 0).astype(int) if kind == "binary" else z
    if unlabeled:
        df.loc[df.index[-unlabeled:], "target"] = np.nan
    return df


def _validate_holdout(df, time_col=None, group_col=None, holdout=0.2):
    """The rows validate seals, as row_ids, through validate's own options and seal."""
    params = {"target": "target", "time": time_col, "group": group_col, "holdout": holdout}
    opts = validate.resolve_options(df, params)
    s = validate.sealed(df, opts, HASH)
    assert s["seal"].seal_id == splits.seal_id_for(HASH, *validate.seal_key(params))
    return s["seal"].seal_id, set(s["df"]["row_id"].iloc[s["seal"].holdout])


@pytest.mark.parametrize("time_col,group_col,holdout,kind,unlabeled", [
    (None, None, None, "binary", 0),
    (None, None, 0.3, "regression", 25),
    ("day", None, None, "binary", 0),
    (None, "shop", None, "regression", 0),
    (None, "shop", 0.25, "binary", 30),
])
def test_search_excludes_exactly_validates_seal(time_col, group_col, holdout, kind, unlabeled):
    df = _frame(kind=kind, unlabeled=unlabeled)
    out, rec = exclude(df, "target", infer_task(df["target"]), HASH, time_col=time_col, group_col=group_col,
                       holdout=holdout)
    sid, sealed_ids = _validate_holdout(df, time_col, group_col, holdout or 0.2)
    assert rec["id"] == sid and rec["rows_excluded"] == len(sealed_ids) > 0
    assert not sealed_ids & set(out["row_id"])
    labeled_ids = set(df.loc[df["target"].notna(), "row_id"])
    assert set(out.loc[out["target"].notna(), "row_id"]) == labeled_ids - sealed_ids  # nothing else lost
    assert out["target"].isna().sum() == unlabeled == rec["rows_unlabeled"]  # unlabeled rows stay (the test rows)
    assert list(out.columns) == list(df.columns)


@pytest.mark.parametrize("n", [1400, 300])  # one held-out split / small data: 5-fold CV
def test_no_sealed_row_or_row_hash_reaches_the_sandbox(tmp_path, n):
    df = _frame(n=n, seed=n)
    out, rec = exclude(df, "target", "classification", HASH)
    _, sealed_ids = _validate_holdout(df)
    sealed_rows = df[df["row_id"].isin(sealed_ids)].drop(columns=["day"])
    spec = metric_spec.parse_metric("Maximize ROC-AUC on a held-out split.")
    cfg = {"target": "target", "spec": spec, "goal": "g", "steps": 1, "provider": "offline", "seed": 0, "parallel": 1,
           "node_timeout": 60}
    rec_s = search.run_search(out.drop(columns=["day"]), cfg, workdir=str(tmp_path))
    assert rec_s["journal"][0]["status"] == "ok"
    files = glob.glob(os.path.join(str(tmp_path), "**", "*.arrow"), recursive=True)
    assert files
    h_full = set(splits.row_hashes(sealed_rows).tolist())
    h_feat = set(splits.row_hashes(sealed_rows.drop(columns=["target"])).tolist())
    for f in files:
        staged = pd.read_feather(f)  # the staged tables (sandbox.stage: Arrow IPC)
        assert "row_id" in staged.columns
        assert not sealed_ids & set(staged["row_id"]), f
        h = splits.row_hashes(staged).tolist()
        assert not (h_full | h_feat) & set(h), f
    # the check can fail: a frame with the sealed rows in it is caught
    leaky = pd.concat([out, df[df["row_id"].isin(sealed_ids)]]).drop(columns=["day"])
    assert h_full & set(splits.row_hashes(leaky).tolist())


def test_bad_seal_options_are_usage_errors():
    df = _frame(n=200)
    for kw, needle in [({"time_col": "nope"}, "unknown --time"), ({"group_col": "target"}, "cannot be the target"),
                       ({"time_col": "day", "group_col": "shop"}, "not both"), ({"holdout": 0.9}, "between 0.05")]:
        with pytest.raises(UsageError) as e:
            exclude(df, "target", "classification", HASH, **kw)
        assert needle in e.value.message
