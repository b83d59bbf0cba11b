"""The best solution of an optimize run as a scikit-learn-compatible estimator.

``load_solution("OptimizeFlow/N")`` returns an UNFITTED estimator built by re-running the run's best code
(``best_code`` defines ``make_model()``): call ``fit(X, y)`` / ``predict`` / ``predict_proba`` on raw
feature DataFrames, exactly what the search's sandbox did. ``load_solution(..., fitted=True)`` instead
returns the model fitted during the search (``best_model``, unpickled with the code's module registered).

The code runs in this process (it is code this workspace's own search produced and scored); it is the
consumer of ``validate --model`` and later ``deploy``.
"""

from __future__ import annotations

import pickle
import sys
import types

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
            "seal": (d.search_config or {}).get("seal")}
