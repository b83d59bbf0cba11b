"""The offline proposer: keyless and deterministic for a seed.

Drafts come from a built-in library of strong tabular solutions (regularized linear model, random forest,
extra trees, histogram gradient boosting, LightGBM — each with sound preprocessing); ``improve`` is a
real hyperparameter search — Optuna's TPE, rebuilt from the journal's trials of that family each time,
so it is stateless, resumable and deterministic; ``debug`` retries a failed family with safe settings.
Every proposal is a self-contained ``solution.py`` defining ``make_model()``, exactly what an LLM writes.
"""

from __future__ import annotations

import json

# family -> search space: name -> (kind, low, high[, log])   kinds: int | float
SPACES = {
    "linear": {"C": ("float", 1e-3, 100.0, True)},
    "linear_reg": {"alpha": ("float", 1e-3, 300.0, True)},
    "rf": {"n_estimators": ("int", 100, 500, True), "max_features": ("float", 0.1, 1.0, False),
           "min_samples_leaf": ("int", 1, 20, True)},
    "et": {"n_estimators": ("int", 100, 500, True), "max_features": ("float", 0.1, 1.0, False),
           "min_samples_leaf": ("int", 1, 20, True)},
    "hgb": {"max_iter": ("int", 50, 800, True), "learning_rate": ("float", 0.01, 0.3, True),
            "max_leaf_nodes": ("int", 7, 127, True), "min_samples_leaf": ("int", 5, 100, True),
            "l2_regularization": ("float", 1e-4, 10.0, True)},
    "lgbm_log": {"n_estimators": ("int", 50, 1000, True), "learning_rate": ("float", 0.01, 0.3, True),
                 "num_leaves": ("int", 7, 127, True), "min_child_samples": ("int", 5, 100, True),
                 "subsample": ("float", 0.5, 1.0, False), "colsample_bytree": ("float", 0.3, 1.0, False),
                 "reg_lambda": ("float", 1e-3, 10.0, True)},
    "lgbm": {"n_estimators": ("int", 50, 1000, True), "learning_rate": ("float", 0.01, 0.3, True),
             "num_leaves": ("int", 7, 127, True), "min_child_samples": ("int", 5, 100, True),
             "subsample": ("float", 0.5, 1.0, False), "colsample_bytree": ("float", 0.3, 1.0, False),
             "reg_lambda": ("float", 1e-3, 10.0, True)},
}
# sklearn scorer for the inner cross-validation of the linear drafts, by Loom metric (None: the estimator's default)
INNER_SCORING = {"log_loss": "neg_log_loss", "accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy",
                 "f1": "f1_macro", "roc_auc": "roc_auc_ovr", "pr_auc": None}
DEFAULTS = {
    "linear": {"C": 1.0},
    "linear_reg": {"alpha": 1.0},
    "rf": {"n_estimators": 200, "max_features": 0.3, "min_samples_leaf": 1},
    "et": {"n_estimators": 200, "max_features": 0.5, "min_samples_leaf": 1},
    "hgb": {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 1e-4},
    "lgbm": {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
             "subsample": 1.0, "colsample_bytree": 0.8, "reg_lambda": 1e-3},
}
SAFE = {  # what `debug` falls back to: small and quick
    "linear": {"C": 1.0}, "linear_reg": {"alpha": 1.0},
    "rf": {"n_estimators": 100, "max_features": 0.3, "min_samples_leaf": 5},
    "et": {"n_estimators": 100, "max_features": 0.3, "min_samples_leaf": 5},
    "hgb": {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 20, "l2_regularization": 1.0},
    "lgbm": {"n_estimators": 100, "learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 20,
             "subsample": 1.0, "colsample_bytree": 0.8, "reg_lambda": 1.0},
}
SAFE["lgbm_log"] = dict(SAFE["lgbm"])
DEFAULTS["lgbm_log"] = dict(DEFAULTS["lgbm"])
NAMES = {"linear": "LogisticRegression", "linear_reg": "Ridge", "rf": "RandomForest", "et": "ExtraTrees",
         "hgb": "HistGradientBoosting", "lgbm": "LightGBM", "lgbm_log": "LightGBM(log target)"}
# draft order: LightGBM first (strong and cheap: a short --time-limit has a good node within seconds), then the
# self-tuning linear baseline, then the other families
DRAFT_ORDER = ["lgbm", "linear", "lgbm_log", "hgb", "et", "rf"]
# families whose code also carries these settings, kept by `improve` (TPE tunes only the SPACES entries)
CARRIED = ("early_stopping",)

PREAMBLE = '''"""{plan}"""
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

DROP = {drop!r}  # identifier / free-text columns: no signal a tabular model can use
SEED = {seed}
warnings.filterwarnings("ignore", message="X does not have valid feature names")


def prepare(X):
    """Drop DROP, datetimes -> days since epoch, categorical-like columns -> str (missing stays missing)."""
    X = X.drop(columns=[c for c in DROP if c in X.columns])
    X = X.copy()
    for c in X.columns:
        s = X[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            X[c] = (s - pd.Timestamp("1970-01-01", tz=getattr(s.dt, "tz", None))).dt.total_seconds() / 86400.0
        elif pd.api.types.is_bool_dtype(s):
            X[c] = s.astype(float)
        elif not pd.api.types.is_numeric_dtype(s):
            X[c] = s.map(lambda v: np.nan if pd.isna(v) else str(v)).astype(object)
    return X


def as_category(X):
    """Non-numeric columns -> pandas categories: LightGBM splits on them natively (at predict it maps them onto
    the categories it was fitted on; unseen ones count as missing)."""
    X = X.copy()
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            X[c] = X[c].astype("category")
    return X


def preprocessor(kind):
    if kind == "category":
        return make_pipeline(FunctionTransformer(prepare), FunctionTransformer(as_category))
    numeric = make_column_selector(dtype_include="number")
    categorical = make_column_selector(dtype_exclude="number")
    if kind == "onehot":
        num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        cat = make_pipeline(SimpleImputer(strategy="constant", fill_value="__missing__"),
                            OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=30,
                                          sparse_output=False))
    else:  # trees: no scaling, ordinal codes for categories
        num = "passthrough" if kind == "native" else SimpleImputer(strategy="median")
        cat = make_pipeline(SimpleImputer(strategy="constant", fill_value="__missing__"),
                            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1))
    return make_pipeline(FunctionTransformer(prepare),
                         ColumnTransformer([("num", num, numeric), ("cat", cat, categorical)], verbose_feature_names_out=False))

'''

BODIES = {
    ("linear", "classification"): ("from sklearn.linear_model import LogisticRegression",
                                   "LogisticRegression(C={C!r}, max_iter=2000)", "onehot"),
    ("linear_reg", "regression"): ("from sklearn.linear_model import Ridge", "Ridge(alpha={alpha!r})", "onehot"),
    # the linear drafts choose their regularization by an inner cross-validation on the training rows only
    ("linear_cv", "classification"): ("from sklearn.linear_model import LogisticRegressionCV",
                                      "LogisticRegressionCV(Cs=np.logspace(-3, 3, 13), cv={cv!r}, scoring={scoring!r}, max_iter=2000)",
                                      "onehot"),
    ("linear_reg_cv", "regression"): ("from sklearn.linear_model import RidgeCV", "RidgeCV(alphas=np.logspace(-3, 3, 13))",
                                      "onehot"),
    ("rf", "classification"): ("from sklearn.ensemble import RandomForestClassifier",
                               "RandomForestClassifier(n_estimators={n_estimators!r}, max_features={max_features!r}, "
                               "min_samples_leaf={min_samples_leaf!r}, n_jobs=1, random_state=SEED)", "impute"),
    ("rf", "regression"): ("from sklearn.ensemble import RandomForestRegressor",
                           "RandomForestRegressor(n_estimators={n_estimators!r}, max_features={max_features!r}, "
                           "min_samples_leaf={min_samples_leaf!r}, n_jobs=1, random_state=SEED)", "impute"),
    ("et", "classification"): ("from sklearn.ensemble import ExtraTreesClassifier",
                               "ExtraTreesClassifier(n_estimators={n_estimators!r}, max_features={max_features!r}, "
                               "min_samples_leaf={min_samples_leaf!r}, n_jobs=1, random_state=SEED)", "impute"),
    ("et", "regression"): ("from sklearn.ensemble import ExtraTreesRegressor",
                           "ExtraTreesRegressor(n_estimators={n_estimators!r}, max_features={max_features!r}, "
                           "min_samples_leaf={min_samples_leaf!r}, n_jobs=1, random_state=SEED)", "impute"),
    ("hgb", "classification"): ("from sklearn.ensemble import HistGradientBoostingClassifier",
                                "HistGradientBoostingClassifier(max_iter={max_iter!r}, learning_rate={learning_rate!r}, "
                                "max_leaf_nodes={max_leaf_nodes!r}, min_samples_leaf={min_samples_leaf!r}, "
                                "l2_regularization={l2_regularization!r}, early_stopping={early_stopping!r}, "
                                "validation_fraction=0.1, n_iter_no_change=20, random_state=SEED)", "native"),
    ("hgb", "regression"): ("from sklearn.ensemble import HistGradientBoostingRegressor",
                            "HistGradientBoostingRegressor(max_iter={max_iter!r}, learning_rate={learning_rate!r}, "
                                "max_leaf_nodes={max_leaf_nodes!r}, min_samples_leaf={min_samples_leaf!r}, "
                                "l2_regularization={l2_regularization!r}, early_stopping={early_stopping!r}, "
                                "validation_fraction=0.1, n_iter_no_change=20, random_state=SEED)", "native"),
    ("lgbm", "classification"): ("from lightgbm import LGBMClassifier",
                                 "LGBMClassifier(n_estimators={n_estimators!r}, learning_rate={learning_rate!r}, "
                                 "num_leaves={num_leaves!r}, min_child_samples={min_child_samples!r}, subsample={subsample!r}, "
                                 "subsample_freq=1, colsample_bytree={colsample_bytree!r}, reg_lambda={reg_lambda!r}, "
                                 "n_jobs=1, random_state=SEED, verbose=-1)", "category"),
    ("lgbm", "regression"): ("from lightgbm import LGBMRegressor",
                             "LGBMRegressor(n_estimators={n_estimators!r}, learning_rate={learning_rate!r}, "
                             "num_leaves={num_leaves!r}, min_child_samples={min_child_samples!r}, subsample={subsample!r}, "
                             "subsample_freq=1, colsample_bytree={colsample_bytree!r}, reg_lambda={reg_lambda!r}, "
                             "n_jobs=1, random_state=SEED, verbose=-1)", "category"),
    # skewed positive targets: fit on log1p(y), predict expm1 (selection on the spec's own metric decides if it helps)
    ("lgbm_log", "regression"): ("from lightgbm import LGBMRegressor\nfrom sklearn.compose import TransformedTargetRegressor",
                                 "TransformedTargetRegressor(regressor=LGBMRegressor(n_estimators={n_estimators!r}, "
                                 "learning_rate={learning_rate!r}, num_leaves={num_leaves!r}, "
                                 "min_child_samples={min_child_samples!r}, subsample={subsample!r}, subsample_freq=1, "
                                 "colsample_bytree={colsample_bytree!r}, reg_lambda={reg_lambda!r}, n_jobs=1, "
                                 "random_state=SEED, verbose=-1), func=np.log1p, inverse_func=np.expm1)", "category"),
}


def families(task: str, profile: dict | None = None) -> list[str]:
    out = [("linear" if task == "classification" else "linear_reg") if f == "linear" else f for f in DRAFT_ORDER]
    if task != "regression" or not (profile or {}).get("log_target"):
        out.remove("lgbm_log")
    return out


LOG_SKEW = 1.0  # skewness of a positive regression target above which a log-target draft is added


def profile(train, target: str, task: str, metric: str | None = None) -> dict:
    """What the drafts' starting settings depend on: rows, categorical columns and their cardinality, and (regression)
    whether the target is positive and skewed enough for a log-target draft."""
    import numpy as np
    import pandas as pd

    X = train.drop(columns=[target])
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    out = {"rows": int(len(train)), "columns": int(X.shape[1]), "categorical": len(cats),
           "max_cardinality": int(max([X[c].nunique() for c in cats] or [0])), "log_target": False}
    if task == "regression":
        y = pd.to_numeric(train[target], errors="coerce").dropna().to_numpy(dtype=float)
        if len(y) > 2 and y.min() >= 0 and y.std() > 0:
            skew = float(np.mean(((y - y.mean()) / y.std()) ** 3))
            out["skew"] = round(skew, 3)
            out["log_target"] = bool(skew > LOG_SKEW and metric in ("rmse", "mae", "r2", None))
    return out


def starting_params(fam: str, prof: dict | None) -> dict:
    """Data-dependent starting hyperparameters: gradient boosting's leaves, leaf size, learning rate and rounds by
    the number of rows; histogram boosting with early stopping on an inner 10% split."""
    params = dict(DEFAULTS[fam])
    n = int((prof or {}).get("rows") or 0)
    if not n:
        return params
    if fam in ("lgbm", "lgbm_log"):
        params.update(num_leaves=15 if n < 2000 else 31 if n < 20000 else 63,
                      min_child_samples=int(min(50, max(5, n // 200))),
                      learning_rate=0.03 if n < 2000 else 0.05, n_estimators=400 if n < 20000 else 600,
                      subsample=0.8, colsample_bytree=0.8, reg_lambda=1.0)
    elif fam == "hgb":
        params.update(max_iter=1000, learning_rate=0.05 if n < 20000 else 0.1, early_stopping=n >= 1000,
                      max_leaf_nodes=15 if n < 2000 else 31, min_samples_leaf=int(min(50, max(5, n // 200))))
    elif fam in ("rf", "et"):
        params.update(min_samples_leaf=1 if n < 20000 else 2)
    return params


def render(family: str, task: str, params: dict, *, plan: str, drop: list[str], seed: int) -> str:
    body = family
    if family in ("linear", "linear_reg") and params.get("auto"):  # the draft: regularization by inner CV
        body, params = family + "_cv", {"scoring": params.get("scoring"), "cv": params.get("cv") or 5}
    imp, ctor, prep = BODIES[(body, task)]
    p = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in params.items()}
    if family == "hgb":
        p.setdefault("early_stopping", False)
    return (PREAMBLE.format(plan=plan.replace('"""', "'''"), drop=list(drop), seed=seed) + imp + "\n\n\n"
            + "def make_model():\n"
            + f"    return make_pipeline(preprocessor({prep!r}), {ctor.format(**p)})\n")


def _distributions(family: str):
    from optuna.distributions import FloatDistribution, IntDistribution

    out = {}
    for k, spec in SPACES[family].items():
        kind, lo, hi, log = spec
        out[k] = IntDistribution(lo, hi, log=log) if kind == "int" else FloatDistribution(lo, hi, log=log)
    return out


def tpe_params(family: str, history: list[tuple[dict, float]], *, direction: str, seed: int) -> dict:
    """Next parameters for ``family`` given (params, score) history, by Optuna's TPE (deterministic for seed)."""
    import optuna

    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    dists = _distributions(family)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=3, multivariate=True, warn_independent_sampling=False)
    study = optuna.create_study(direction=direction, sampler=sampler)
    seen = set()
    for params, value in history:
        ps = {k: params[k] for k in dists if k in params}
        if len(ps) != len(dists) or value is None:
            continue
        try:
            study.add_trial(optuna.trial.create_trial(params=ps, distributions=dists, value=float(value)))
            seen.add(json.dumps(ps, sort_keys=True))
        except ValueError:
            continue
    for _ in range(5):  # avoid proposing a configuration already tried
        trial = study.ask(dists)
        params = dict(trial.params)
        if json.dumps(params, sort_keys=True) not in seen:
            return params
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return params


class OfflineProposer:
    """Same interface as the LLM proposers: ``propose(op, parent, ctx) -> dict(plan, code, family, params, ...)``."""

    kind = "offline"

    def __init__(self, task: str, direction: str, drop: list[str], seed: int, metric: str | None = None,
                 profile: dict | None = None):
        self.task, self.direction, self.drop, self.seed, self.metric = task, direction, drop, seed, metric
        self.profile = profile
        self.num_drafts = len(families(task, profile))

    def draft(self, journal: list[dict], index: int) -> dict:
        fams = families(self.task, self.profile)
        drafted = [n.get("family") for n in journal if n["operator"] == "draft"]
        remaining = [f for f in fams if f not in drafted] or fams
        ahead = max(0, index - 1 - len(journal))  # drafts proposed earlier in this round (parallel > 1), not yet run
        fam = remaining[ahead % len(remaining)]
        params = starting_params(fam, self.profile)
        how = "settings chosen for its rows" if self.profile else "its standard settings"
        plan = f"Draft: {NAMES[fam]} with {how} and sound preprocessing ({_fmt(params)})."
        if fam in ("lgbm", "lgbm_log"):
            plan = plan[:-1] + "; categorical columns split on natively."
        if fam == "lgbm_log":
            plan = plan[:-1] + f"; fitted on log1p(target) (target skewness {self.profile.get('skew')})."
        if fam in ("linear", "linear_reg"):
            inner = 5 if int((self.profile or {}).get("rows") or 0) < 2000 else 3  # the inner CV's cost grows with rows
            params = {"auto": True, "scoring": INNER_SCORING.get(self.metric) if fam == "linear" else None, "cv": inner}
            plan = (f"Draft: {NAMES[fam]} with sound preprocessing, its regularization chosen by a {inner}-fold "
                    "cross-validation on the training rows.")
        return self._node(fam, params, plan)

    def improve(self, journal: list[dict], parent: dict, index: int) -> dict:
        fam = parent["family"]
        hist = [(n["params"], n["score"]) for n in journal if n.get("family") == fam and n.get("score") is not None]
        params = tpe_params(fam, hist, direction=self.direction, seed=self.seed * 100003 + index)
        params.update({k: parent["params"][k] for k in CARRIED if k in (parent.get("params") or {})})
        changed = {k: v for k, v in params.items() if parent["params"].get(k) != v}
        plan = (f"Improve node {parent['id']} ({NAMES[fam]}): one TPE step over its hyperparameters, "
                f"trying {_fmt(changed)}.")
        return self._node(fam, params, plan)

    def debug(self, journal: list[dict], parent: dict, index: int) -> dict:
        fam = parent.get("family") or families(self.task, self.profile)[0]
        params = dict(SAFE[fam])
        plan = f"Debug node {parent['id']} (failed: {(parent.get('error') or '')[:120]}): retry {NAMES[fam]} with small, safe settings."
        return self._node(fam, params, plan)

    def _node(self, fam, params, plan):
        code = render(fam, self.task, params, plan=plan, drop=self.drop, seed=self.seed)
        return {"plan": plan, "code": code, "family": fam, "params": params, "model": NAMES[fam],
                "tokens": {"input": 0, "output": 0}, "usd": 0.0}


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "same settings"
