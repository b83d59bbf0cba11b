"""The MLflow pyfunc wrapper of a model Loom deploys (an MLflow "model from code" file).

``loom deploy`` copies this file into the staged model as its code; MLflow's own processes (``mlflow models
serve``, ``mlflow.pyfunc.load_model``) execute it. Loom's processes never do: the plan and the apply only
copy bytes and hash them.

Artifacts (in the model's ``artifacts/``):
* ``model.pkl``: the estimator validate fitted on the cross-validation rows and scored the sealed holdout
  with, pickled by validate (``scored_model``);
* ``solution.py`` (when the model is an optimize search's best solution): the model-written code that
  defines its classes; it is executed as module ``solution`` before the pickle is read, exactly as
  validate's process had it.
* ``loom.json``: task, target, feature columns in order, classes.

``predict`` takes the feature columns (the target is not an input) and returns one row per input row:
``prediction`` and, for classification, ``proba_<class>`` for each class in validate's order. Imports
nothing from Loom (the default model's pickle needs ``loom_py.stats.tabular``, shipped in ``code/``)."""

import json
import pickle
import sys
import types

import mlflow
from mlflow.pyfunc import PythonModel


class LoomModel(PythonModel):
    def load_context(self, context):
        arts = context.artifacts
        with open(arts["loom"]) as f:
            self.meta = json.load(f)
        if "solution" in arts:
            with open(arts["solution"]) as f:
                code = f.read()
            mod = types.ModuleType("solution")
            mod.__file__ = "<solution>"
            sys.modules["solution"] = mod
            exec(compile(code, "<solution>", "exec"), mod.__dict__)
        with open(arts["model"], "rb") as f:
            self.est = pickle.load(f)

    def predict(self, context, model_input, params=None):
        import numpy as np
        import pandas as pd

        X = model_input[self.meta["features"]]
        if self.meta["task"] != "classification":
            return pd.DataFrame({"prediction": np.asarray(self.est.predict(X), dtype="float64")})
        classes = self.meta["classes"]
        if hasattr(self.est, "predict_proba"):
            p = np.asarray(self.est.predict_proba(X), dtype="float64")
            est_classes = [c.item() if hasattr(c, "item") else c for c in getattr(self.est, "classes_", classes)]
            if est_classes != list(classes):  # align to validate's class order (as validate's _proba_full)
                out = np.zeros((len(p), len(classes)))
                pos = {c: i for i, c in enumerate(classes)}
                for j, c in enumerate(est_classes):
                    out[:, pos[c]] = p[:, j]
                p = out
            pred = np.asarray(classes, dtype=object)[p.argmax(1)]
        else:  # a label-only model: its probabilities are 0/1
            pred = np.asarray(self.est.predict(X), dtype=object)
            p = (pred.reshape(-1, 1) == np.asarray(classes, dtype=object).reshape(1, -1)).astype(float)
        frame = {"prediction": pd.Series(list(pred)).infer_objects()}
        for i, c in enumerate(classes):
            frame[f"proba_{c}"] = p[:, i]
        return pd.DataFrame(frame)


mlflow.models.set_model(LoomModel())
