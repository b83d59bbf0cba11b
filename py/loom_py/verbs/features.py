"""features: engineer a NEW data object, leakage-aware.

Order of work: (1) drop every column flagged for leakage (by the asserted eda run with ``--from``, else
by running the same checks here), (2) the recipe. Every transform is target-free (statistics computed
from the feature columns only), so nothing is fitted on the target outside cross-validation folds; the
target passes through unchanged.

Recipes
- ``minimal``: drop constants and identifiers (and free text), impute missing values (median for
  numerics, the most frequent value for booleans, a "(missing)" level for categoricals), one-hot encode
  low-cardinality categoricals (<= 20 levels; levels under 1% grouped as "other"), ordinal-encode
  higher-cardinality ones by frequency rank, expand datetimes into year/month/day/dayofweek(/hour).
- ``standard``: ``minimal`` plus missing-indicator columns (before imputation), log1p of skewed
  non-negative numerics (|skew| > 1, replacing the column), frequency encoding of high-cardinality
  categoricals (instead of the ordinal code).

The manifest lists, for each output column, the input columns and the transform it came from.
"""

from __future__ import annotations

import re

from loom_py.stats import leakage
from loom_py.runtime.errors import UsageError, did_you_mean

RECIPES = ("minimal", "standard")
LOW_CARDINALITY = 20
RARE_SHARE = 0.01
SKEW = 1.0


def _name(*parts) -> str:
    s = "__".join(str(p) for p in parts)
    return re.sub(r"[^0-9A-Za-z_.=-]+", "_", s)[:120]


def leakage_drops(df, target, task=None, time_col=None, eda_flags=None) -> tuple[list[dict], str]:
    """(flags to drop, where they came from)."""
    if eda_flags is not None:
        return [f for f in eda_flags if f.get("column") in df.columns and f.get("column") != target], "eda"
    if target:
        return leakage.find_leaks(df, target, task, time_col), "features (own checks: no --from eda run)"
    return leakage.identifier_columns(df), "features (own checks, identifiers only: no --target)"


def build(df, target: str | None = None, recipe: str = "minimal", *, task: str | None = None,
          time_col: str | None = None, eda_flags: list[dict] | None = None, carry: list[str] | None = None):
    """(features DataFrame, manifest, report). ``eda_flags``: the asserted eda run's leakage flags.
    ``carry``: columns kept unchanged under their own names for slicing (``validate --sensitive``); the
    report's ``carried_columns`` names them, and validate and the search never use them as model inputs."""
    import numpy as np
    import pandas as pd

    from loom_py.stats.tabular import semantic_type

    if recipe not in RECIPES:
        raise UsageError(f"--recipe must be one of {', '.join(RECIPES)}, not '{recipe}'")
    if target is not None and target not in df.columns:
        raise UsageError(f"unknown target column '{target}'{did_you_mean(target, df.columns)}: columns are {', '.join(map(str, list(df.columns)[:30]))}")
    from loom_py.stats.tabular import hashable_frame

    df = hashable_frame(df)
    flags, flag_source = leakage_drops(df, target, task, time_col, eda_flags)
    dropped_leak = [{"column": f["column"], "reason": f["reason"], "evidence": f.get("evidence", {})} for f in flags]
    leak_cols = {f["column"] for f in flags}
    work = df.drop(columns=[c for c in df.columns if c in leak_cols])
    rows_in = len(work)
    if target is not None:
        work = work[work[target].notna()]
    if len(work) == 0:
        raise UsageError("no rows left after dropping rows with a missing target: check --target")
    feats = [c for c in work.columns if c != target]
    out: dict[str, object] = {}
    manifest: list[dict] = []
    dropped: list[dict] = []
    standard = recipe == "standard"

    def add(name, values, inputs, transform):
        name = _name(name)
        while name in out or name == target:
            name = name + "_"
        out[name] = values
        manifest.append({"column": name, "inputs": list(inputs), "transform": transform})

    for c in feats:
        s = work[c]
        nn = s.dropna()
        st = semantic_type(s, str(c))
        if nn.nunique() <= 1:
            dropped.append({"column": str(c), "reason": "constant"})
            continue
        if st == "identifier":
            dropped.append({"column": str(c), "reason": "identifier"})
            continue
        if st == "text":
            dropped.append({"column": str(c), "reason": "free text (not encoded by this recipe)"})
            continue
        miss = s.isna()
        if standard and miss.any():
            add(_name(c, "missing"), miss.astype("int8").to_numpy(), [c], "missing indicator")
        if st == "boolean":
            v = s.map(lambda x: x in (True, 1, "1", "true", "True")).where(s.notna())
            mode = bool(v.dropna().mode().iloc[0])
            add(c, v.fillna(mode).astype("int8").to_numpy(), [c], f"boolean as 0/1, missing -> most frequent ({int(mode)})")
        elif st == "numeric":
            x = pd.to_numeric(s, errors="coerce").astype("float64")
            med = float(x.median())
            x = x.fillna(med)
            sk = float(x.skew()) if len(x) > 2 else 0.0
            if standard and x.min() >= 0 and sk == sk and abs(sk) > SKEW:
                add(_name(c, "log1p"), np.log1p(x.to_numpy()), [c], f"median impute ({med:.6g}) then log1p (skew {sk:.2f})")
            else:
                add(c, x.to_numpy(), [c], f"median impute ({med:.6g})" if miss.any() else "passthrough")
        elif st == "datetime":
            d = pd.to_datetime(s, errors="coerce", format="mixed") if not pd.api.types.is_datetime64_any_dtype(s) else s
            if getattr(d.dt, "tz", None) is not None:
                d = d.dt.tz_convert("UTC").dt.tz_localize(None)
            parts = {"year": d.dt.year, "month": d.dt.month, "day": d.dt.day, "dayofweek": d.dt.dayofweek}
            if (d.dt.hour.fillna(0) != 0).any():
                parts["hour"] = d.dt.hour
            for p, vals in parts.items():
                vals = vals.astype("float64")
                med = float(vals.median()) if vals.notna().any() else 0.0
                add(_name(c, p), vals.fillna(med).to_numpy(), [c], f"datetime part {p}, median impute")
        else:  # categorical
            cat = s.astype("object").where(s.notna(), "(missing)").astype(str)
            vc = cat.value_counts()
            if len(vc) <= LOW_CARDINALITY:
                keep = [k for k, n in vc.items() if n / len(cat) >= RARE_SHARE]
                rare = [k for k in vc.index if k not in keep]
                for k in keep:
                    add(_name(c, k), (cat == k).astype("int8").to_numpy(), [c], f"one-hot level '{k}'")
                if rare:
                    add(_name(c, "other"), cat.isin(rare).astype("int8").to_numpy(), [c],
                        f"one-hot of {len(rare)} rare level(s) (< {RARE_SHARE:.0%} of rows)")
            elif standard:
                freq = cat.map(vc / len(cat)).astype("float64")
                add(_name(c, "freq"), freq.to_numpy(), [c], f"frequency encoding ({len(vc)} levels; target-free)")
            else:
                rank = {k: i for i, k in enumerate(vc.index)}
                add(_name(c, "rank"), cat.map(rank).astype("int64").to_numpy(), [c],
                    f"ordinal code by frequency rank ({len(vc)} levels; target-free)")
    if not out:
        raise UsageError("no feature columns left after dropping leaks, constants and identifiers: "
                         "check the data object with `loom eda`")
    res = pd.DataFrame(out, index=work.index)
    carried = []
    for c in carry or []:
        if c not in df.columns:
            raise UsageError(f"unknown --sensitive column '{c}': columns are {', '.join(map(str, list(df.columns)[:30]))}")
        if c == target:
            raise UsageError("--sensitive cannot be the target column")
        if c in res.columns:  # a passthrough feature of that name: already there, and already an input
            if c in leak_cols:
                res = res.drop(columns=[c])
            else:
                continue
        res[c] = df.loc[work.index, c].to_numpy()
        carried.append(str(c))
        manifest.append({"column": str(c), "inputs": [str(c)], "transform": "carried unchanged for slicing (not a model input)"})
    if target is not None:
        res[target] = work[target].to_numpy()
        manifest.append({"column": target, "inputs": [target], "transform": "target (passthrough, untouched)"})
    res = res.reset_index(drop=True)
    report = {
        "recipe": recipe,
        "dropped_for_leakage": dropped_leak,
        "leakage_checked_by": flag_source,
        "dropped": dropped,
        "rows_in": rows_in, "rows_out": len(res),
        "rows_dropped_missing_target": rows_in - len(work),
        "columns_in": int(df.shape[1]), "columns_out": int(res.shape[1]),
        "target": target,
        "target_free": True,
        "carried_columns": carried,
        "notes": ["every transform is target-free (no statistic fitted on the target)",
                  "imputation and encoding statistics are computed on the whole table (unsupervised)"],
    }
    return res, manifest, report


# ---- bridge hook ----------------------------------------------------------------------------------

def assert_eda_run(from_run: str, dataset: str, target: str | None):
    """The EdaFlow run behind --from: successful, profiled this data object (and this target)."""
    from loom_py.runtime.data import resolve_run

    run = resolve_run(from_run, ("EdaFlow",), what="eda run")
    d = run.data
    profiled = getattr(d, "profiled_dataset", None) if "profiled_dataset" in d else None
    if profiled is None or "leakage_flags" not in d:
        raise UsageError(f"{from_run} holds no eda profile: run `loom eda --dataset {dataset}` and pass its run")
    if profiled != dataset:
        raise UsageError(f"{from_run} profiled {profiled}, not {dataset}: run `loom eda --dataset {dataset}"
                         + (f" --target {target}" if target else "") + "` and pass that run to --from")
    eda_target = getattr(d, "eda_target", None) if "eda_target" in d else None
    if target and eda_target and target != eda_target:
        raise UsageError(f"{from_run} checked leakage against target '{eda_target}', not '{target}': "
                         f"pass --target {eda_target} or rerun `loom eda --dataset {dataset} --target {target}`")
    return run, eda_target


def prepare(params: dict) -> dict:
    from loom_py.runtime.data import resolve_dataset
    from loom_py.runtime.data import check_columns, light_info, read_column
    from loom_py.verbs.eda import TASKS, check_target_column

    ds = params.get("dataset")
    if not ds:
        raise UsageError("--dataset is required: pass a data object pathspec (see `loom datasets`)")
    recipe = params.get("recipe") or "minimal"
    if recipe not in RECIPES:
        raise UsageError(f"--recipe must be one of {', '.join(RECIPES)}, not '{recipe}'")
    run = resolve_dataset(ds)
    info = light_info(run)
    target = params.get("target") or None
    from_run = params.get("from") or params.get("from_run") or None
    time_col = params.get("time") or params.get("time_column") or None
    task = params.get("task") or None
    if task and task not in TASKS:
        raise UsageError(f"--task must be classification or regression, not '{task}'")
    inputs = [ds]
    if from_run:
        _, eda_target = assert_eda_run(from_run, ds, target)
        target = target or eda_target
        inputs.append(from_run)
    check_columns(info, ds, target=target, time=time_col)
    if not info.get("rows"):
        raise UsageError(f"{ds} has no rows: ingest a non-empty table")
    if target:
        check_target_column(read_column(run, target), target, task)
    import json

    from loom_py.runtime.flowkit import param_list

    carry = param_list(params.get("sensitive"))
    for c in carry:
        check_columns(info, ds, sensitive=c)
        if c == target:
            raise UsageError("--sensitive cannot be the target column")
    return {"params": {"dataset": ds, "target": target or "", "from_run": from_run or "", "recipe": recipe,
                       "time_column": time_col or "", "task": task or "", "sensitive": json.dumps(carry)},
            "inputs": inputs}
