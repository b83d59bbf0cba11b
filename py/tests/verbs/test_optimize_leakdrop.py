"""optimize's leak screen (verbs/optimize/leakdrop.py): the search drops what eda would flag."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from leakdata import clean, planted  # noqa: E402

from loom_py.verbs.optimize import leakdrop  # noqa: E402


@pytest.mark.parametrize("task,seed", [("classification", 0), ("regression", 1)])
def test_planted_leaks_are_dropped_with_a_message_naming_them(task, seed):
    df = planted(1200, seed, task)
    out, rec = leakdrop.screen(df, "target")
    assert {"noisy_copy", "score_exp", "closed_at"} <= set(rec["dropped"])
    assert not set(rec["dropped"]) & set(out.columns) and "target" in out.columns
    msg = leakdrop.messages(rec)[0]
    assert msg.startswith("dropped for leakage before the search:") and "noisy_copy (target_copy)" in msg


@pytest.mark.parametrize("f,seed", [(0.02, 2), (0.05, 3)])
def test_near_copy_in_the_blind_band_is_dropped(f, seed):
    df = clean(2000, seed)
    y = df["target"].to_numpy()
    flip = np.random.default_rng(seed).random(len(y)) < f
    df["status"] = np.where(np.where(flip, 1 - y, y) == 1, "closed", "open")
    out, rec = leakdrop.screen(df, "target")
    assert rec["dropped"] == ["status"] and "status" not in out.columns


def test_keep_leaky_searches_with_them_and_says_so():
    df = planted(800, 4)
    out, rec = leakdrop.screen(df, "target", keep_leaky=True)
    assert rec["keep_leaky"] and rec["dropped"] == [] and "noisy_copy" in out.columns
    assert "--keep-leaky: searched WITH" in leakdrop.messages(rec)[0]


@pytest.mark.parametrize("seed", [5, 6])
def test_clean_data_loses_nothing_and_carried_columns_are_never_inputs(seed):
    df = clean(1500, seed)
    out, rec = leakdrop.screen(df, "target", carried=["region"])
    assert rec["flags"] == [] and rec["carried_dropped"] == ["region"]
    assert list(out.columns) == [c for c in df.columns if c != "region"]
