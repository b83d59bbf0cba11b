"""The sidecar (work on the spare core) returns what the inline call returns, re-raises the child's
exception, survives a child that dies, and runs inline when switched off."""

import os
import signal

import numpy as np
import pandas as pd
import pytest

from loom_py.runtime import sidecar
from loom_py.verbs import validate
from loom_py.runtime.sidecar import Sidecar


def _square_sum(a, scale=1):
    return float((np.asarray(a) ** 2).sum() * scale), os.getpid()


def _boom(msg):
    raise ValueError(msg)


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


# these tests check the forked path; where Sidecar will not fork (one usable core, no os.fork, or
# LOOM_SIDECAR=0) it runs inline, which the inline tests below cover
needs_fork = pytest.mark.skipif(not sidecar.enabled(),
                                reason="the sidecar runs inline here (one usable core, no fork, or LOOM_SIDECAR=0)")


@needs_fork
def test_forked_result_equals_inline_and_ran_elsewhere():
    s = Sidecar(_square_sum, [1, 2, 3], scale=2)
    assert s.forked
    value, pid = s.result()
    assert value == 28.0 and pid != os.getpid()
    assert len(s.seconds) == 1 and s.seconds[0] >= 0


def _stages(parent):
    yield ("first", os.getpid() != parent)
    yield ("second", os.getpid() != parent)


def _stages_dying(parent):
    yield ("first", os.getpid() != parent)
    if os.getpid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    yield ("second", os.getpid() != parent)


@needs_fork
def test_generator_items_arrive_in_order_from_the_child():
    s = Sidecar(_stages, os.getpid())
    assert s.next() == ("first", True)
    assert s.next() == ("second", True)
    with pytest.raises(StopIteration):
        s.next()


@needs_fork
def test_a_child_that_dies_between_items_leaves_the_rest_to_the_parent():
    s = Sidecar(_stages_dying, os.getpid())
    assert s.next() == ("first", True)
    assert s.next() == ("second", False)  # redone here, after replaying the delivered item
    assert not s.forked


def test_generator_inline(monkeypatch):
    monkeypatch.setenv("LOOM_SIDECAR", "0")
    s = Sidecar(_stages, os.getpid())
    assert [s.next(), s.next()] == [("first", False), ("second", False)]


@needs_fork
def test_child_exception_is_raised_in_the_parent():
    s = Sidecar(_boom, "bad column")
    with pytest.raises(ValueError, match="bad column"):
        s.result()


@needs_fork
def test_a_child_that_dies_is_redone_inline(monkeypatch):
    calls = []

    def die_in_child_only(parent=os.getpid()):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        calls.append("inline")
        return "done here"

    s = Sidecar(die_in_child_only)
    assert s.result() == "done here" and calls == ["inline"] and not s.forked


def test_switched_off_runs_inline(monkeypatch):
    monkeypatch.setenv("LOOM_SIDECAR", "0")
    s = Sidecar(_square_sum, [3])
    assert not s.forked
    value, pid = s.result()
    assert value == 9.0 and pid == os.getpid()


@needs_fork
def test_cancel_kills_the_child():
    import time

    s = Sidecar(time.sleep, 30)
    pid = s._pid
    s.cancel()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _leaky(n=3000, seed=3):
    r = np.random.default_rng(seed)
    df = pd.DataFrame({"x": r.normal(size=n), "c": r.choice(["a", "b"], n)})
    df["y"] = (df.x + r.normal(size=n) > 0).astype(int)
    df["leak"] = df.y * 2.0 + r.normal(scale=0.01, size=n)
    df["row_id"] = np.arange(n)
    df.loc[n - 40:, ["x", "c", "leak", "row_id"]] = df.loc[:39, ["x", "c", "leak", "row_id"]].to_numpy()
    return df


@pytest.mark.parametrize("on", ["1", "0"])
def test_validate_data_checks_same_with_and_without_sidecar(monkeypatch, on):
    monkeypatch.setenv("LOOM_SIDECAR", on)
    expect_forked = sidecar.enabled()
    df = _leaky()
    opts = validate.resolve_options(df, {"target": "y", "folds": 3})
    s = validate.evaluate(df, opts, content_hash="sha256:side")["summary"]
    monkeypatch.setenv("LOOM_SIDECAR", "0")
    ref = validate.evaluate(df, opts, content_hash="sha256:side")["summary"]
    assert s["timings"]["leakage_on_spare_core"] == expect_forked
    assert s["leakage"] == ref["leakage"]
    assert {f["column"] for f in s["leakage"]["flags"]} >= {"leak", "row_id"}
    assert s["verdict"] == ref["verdict"] == "FAIL"
    assert s["reasons"] == ref["reasons"]
