"""The best solution of an optimize run as a scikit-learn-compatible estimator.

``load_solution("OptimizeFlow/N")`` returns an UNFITTED estimator built by re-running the run's best code
(``best_code`` defines ``make_model()``): call ``fit(X, y)`` / ``predict`` / ``predict_proba`` on raw
feature DataFrames, exactly what the search's sandbox did. ``load_solution(..., fitted=True)`` instead
returns the model fitted during the search (``best_model``, unpickled with the code's module registered).

``load_solution`` runs the code in the CALLING process: it is for a person's own Python session, never
for a Loom verb. Loom's own processes never import model-written code: ``validate --model`` (and anything
that fits or predicts with a search's solution) uses ``SandboxedSolution``, which fits and predicts through
the OS sandbox (the optimize search's runner, verbs/optimize/sandbox.py) with a protocol over files in the
candidate's directory: ``train.arrow`` (features + target), ``val_features.arrow`` (the rows to
predict), ``task.json`` in (bound read-only); ``predictions.npz`` (labels, probabilities, classes) out.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
import types

from loom_py.runtime import stop
from loom_py.runtime.errors import UsageError


def _best(pathspec: str):
    from loom_py.runtime.data import resolve_run

    run = resolve_run(pathspec, ("OptimizeFlow",), what="optimize run")
    d = run.data
    code = getattr(d, "best_code", None) if "best_code" in d else None
    if not code:
        raise UsageError(f"{pathspec} has no successful solution: run `loom run` again with more --steps")
    return run, code


def module_from_code(code: str, name: str = "solution") -> types.ModuleType:
    """Execute solution code as module ``name`` (registered in sys.modules so its classes pickle)."""
    mod = types.ModuleType(name)
    mod.__file__ = f"<{name}>"
    sys.modules[name] = mod
    exec(compile(code, f"<{name}>", "exec"), mod.__dict__)
    if not callable(getattr(mod, "make_model", None)):
        raise UsageError("the solution code defines no make_model(): it is not a Loom optimize solution")
    return mod


def load_solution(pathspec: str, *, fitted: bool = False):
    """An estimator for the best solution of ``pathspec`` (unfitted by default; see the module docstring)."""
    run, code = _best(pathspec)
    mod = module_from_code(code)
    if fitted:
        blob = run.data.best_model if "best_model" in run.data else None
        if not blob:
            raise UsageError(f"{pathspec} kept no fitted model (it could not be pickled): use load_solution(...) and fit it")
        return pickle.loads(blob)
    return mod.make_model()


def solution_info(pathspec: str) -> dict:
    """What validate needs besides the estimator: target, task, metric spec, the dataset it was searched on."""
    run, code = _best(pathspec)
    d = run.data
    return {"pathspec": pathspec, "dataset": d.search_config.get("dataset"), "target": d.target_column,
            "task": d.task, "metric_spec": d.metric_spec, "best": d.best_node, "code": code,
            "seal": (d.search_config or {}).get("seal"), "provider": (d.search_config or {}).get("provider")}


class SandboxedSolution:
    """The best solution of an optimize run, fitted and asked for predictions only inside the OS sandbox.

    ``fit_predict(task, X_train, y_train, X_predict)`` → (labels, probabilities or None, classes or None).
    One pre-forked sandbox launcher serves every fit of a validate run; ``close()`` ends it."""

    model_written = True

    def __init__(self, pathspec: str, code: str, *, timeout: float = 600.0, mem_mb: int = 4096):
        self.pathspec, self.code, self.timeout, self.mem_mb = pathspec, code, timeout, mem_mb
        self._zygote = None
        self._tmp = None
        self.last_model_bytes = None

    def calibrated(self, method: str) -> "SandboxedSolution":
        """The same solution with its ``make_model()`` wrapped in scikit-learn's CalibratedClassifierCV, as code
        the sandbox runs (validate --calibrate)."""
        if method not in ("sigmoid", "isotonic"):
            raise UsageError(f"--calibrate must be sigmoid or isotonic, got {method!r}")
        wrap = (f"\n\n# --- added by loom validate --calibrate {method} ---\n"
                "_loom_uncalibrated_make_model = make_model\n\n\n"
                "def make_model():\n"
                "    from sklearn.calibration import CalibratedClassifierCV\n\n"
                f"    return CalibratedClassifierCV(_loom_uncalibrated_make_model(), method={method!r}, cv=3)\n")
        return SandboxedSolution(self.pathspec, self.code + wrap, timeout=self.timeout, mem_mb=self.mem_mb)

    def isolation(self) -> dict:
        from loom_py.verbs.optimize import sandbox

        return sandbox.isolation()

    def fit_predict(self, task: str, X_train, y_train, X_predict):
        import numpy as np

        from loom_py.verbs.optimize import sandbox

        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="loom-solution-")
            os.makedirs(os.path.join(self._tmp, "data"))
            self._fits = 0
            # each fit's staged data lies under data/ (bound read-only into the launcher's sandbox: not copied)
            self._zygote = sandbox.start_zygote(self.mem_mb + 1024, data_root=os.path.join(self._tmp, "data"))
        target = "target" if "target" not in X_train.columns else "__loom_target__"
        shutil.rmtree(os.path.join(self._tmp, "data", str(self._fits)), ignore_errors=True)
        self._fits += 1
        data = os.path.join(self._tmp, "data", str(self._fits))
        train = X_train.reset_index(drop=True).copy()
        train[target] = np.asarray(y_train)
        X_p = X_predict.reset_index(drop=True)
        sandbox.stage(data, train, X_p, X_p.head(1), {"target": target, "task": task})
        out = os.path.join(self._tmp, "out")
        shutil.rmtree(out, ignore_errors=True)
        run = sandbox.Running(self.code, out, data, timeout=self.timeout, mem_mb=self.mem_mb, zygote=self._zygote)
        while not run.poll():  # Ctrl-C (a stop request) ends the fit in the sandbox: no process outlives it
            if stop.requested():
                self._end(run)
                raise stop.Stopped()
            time.sleep(0.005)
        res = run.wait()
        if res["error"]:
            raise UsageError(f"the solution of {self.pathspec} failed in the sandbox: {res['error']}"[:400])
        try:
            p = sandbox.load_predictions(out)
        except (OSError, ValueError, KeyError) as e:
            raise UsageError(f"the solution of {self.pathspec} wrote no readable predictions in the sandbox ({e})")
        mp = os.path.join(out, "model.pkl")  # the fitted model, pickled inside the sandbox (read as bytes only)
        self.last_model_bytes = open(mp, "rb").read() if os.path.isfile(mp) and not os.path.islink(mp) else None
        labels = p.get("val_labels")
        if labels is None or np.ndim(labels) != 1 or len(labels) != len(X_p):
            raise UsageError(f"the solution of {self.pathspec} predicted {np.shape(labels)} values for {len(X_p)} rows")
        proba = p.get("val_proba")
        classes = p.get("classes")
        if proba is not None and (np.ndim(proba) != 2 or len(proba) != len(X_p) or classes is None
                                  or np.shape(proba)[1] != len(classes)):
            proba = None
        return labels, proba, (list(classes) if classes is not None else None)

    def _end(self, run) -> None:
        """Kill a running fit and collect its directory (the zygote stays for ``close``)."""
        if run.proc is not None:
            try:
                os.killpg(run.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        else:
            run.zygote.kill(run.pid)
        run.wait()

    def close(self) -> None:
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def sandboxed_solution(pathspec: str, *, timeout: float = 600.0, mem_mb: int = 4096) -> SandboxedSolution:
    """The best solution of ``pathspec`` for fitting in the sandbox (nothing of its code runs here)."""
    _run, code = _best(pathspec)
    return SandboxedSolution(pathspec, code, timeout=timeout, mem_mb=mem_mb)
