"""Ctrl-C as a stop request (runtime/stop.py): the block that does not poll ends within the poll interval,
a block that ends first is left alone, and validate's folds stop with what finished recorded."""

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

from loom_py.runtime import flowkit, stop


@pytest.fixture
def stop_file(tmp_path, monkeypatch):
    p = str(tmp_path / "stop")
    monkeypatch.setenv("LOOM_STOP_FILE", p)
    return p


def test_stoppable_ends_a_sleep_soon_after_the_request(stop_file):
    threading.Timer(0.2, lambda: open(stop_file, "w").close()).start()
    t0 = time.perf_counter()
    with pytest.raises(stop.Stopped):
        with stop.stoppable(poll=0.01):
            while True:
                time.sleep(10)  # a signal interrupts the sleep
    assert time.perf_counter() - t0 < 2.0


def test_stoppable_ends_a_python_loop(stop_file):
    threading.Timer(0.2, lambda: open(stop_file, "w").close()).start()
    n = 0
    with pytest.raises(stop.Stopped):
        with stop.stoppable(poll=0.01):
            while True:
                n += 1
    assert n > 0


def test_a_block_that_finishes_is_left_alone_and_a_late_signal_is_harmless(stop_file):
    with stop.stoppable(poll=0.01):
        x = sum(range(1000))
    assert x == 499500
    os.kill(os.getpid(), signal.SIGUSR2)  # the handler stays installed: no block active, nothing happens
    time.sleep(0.05)


def test_without_a_stop_file_named_nothing_is_watched(monkeypatch):
    monkeypatch.delenv("LOOM_STOP_FILE", raising=False)
    assert not stop.requested()
    with stop.stoppable():
        pass


def test_check_raises_once_requested(stop_file):
    stop.check()
    open(stop_file, "w").close()
    with pytest.raises(stop.Stopped):
        stop.check()


def data(n=3000, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 6))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    df["y"] = (X[:, 0] + X[:, 1] * X[:, 2] + r.normal(size=n) > 0).astype(int)
    return df


@pytest.mark.parametrize("at", [1, 3])
def test_validate_stops_at_a_fold_and_records_the_finished_ones(stop_file, at):
    from loom_py.verbs import validate

    flowkit.pin_threads(1)
    df = data()
    opts = validate.resolve_options(df, {"target": "y", "folds": 5})

    def say(msg):  # the person presses Ctrl-C as fold `at` starts
        if msg.startswith(f"fold {at}/"):
            open(stop_file, "w").close()

    with pytest.raises(stop.Stopped) as e:
        validate.evaluate(df, opts, content_hash="sha256:test", progress=say)
    done = e.value.done
    assert done["folds"] == 5
    # fold `at` was running (ended by the signal) or had just finished (then the next fold's check stopped it)
    assert len(done["per_fold"]) in (at - 1, at)
    assert done["stopped_at"] in (f"fold {at}/5", f"fold {at + 1}/5")
    assert all(r["value"] is not None for r in done["per_fold"])
    rec = validate.interrupted(done, opts, "IngestDataset/1", {"label": "d", "rows": len(df)}, "m", "default")
    assert rec["summary"]["folds_finished"] == len(done["per_fold"])
    assert rec["summary"]["holdout_scored"] is False
    assert rec["next"][0].startswith("loom validate --dataset IngestDataset/1 --target y")
