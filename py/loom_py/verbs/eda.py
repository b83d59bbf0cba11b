"""eda: profile a data object — shape, semantic dtypes, missingness, duplicates, target balance, top
associations, ydata-style alerts and leakage flags. ``profile(df, ...)`` is pure (tested on plain
DataFrames); EdaFlow loads, calls, records and renders.
"""

from __future__ import annotations

from loom_py.stats import leakage
from loom_py.stats.tabular import hashable_frame
from loom_py.runtime.data import check_columns, light_info, read_column
from loom_py.runtime.errors import UsageError, did_you_mean

CORR_SAMPLE = 100_000      # rows used for associations (Spearman ranks, Cramér's V, correlation ratio)
TOP_N = 10
TASKS = ("classification", "regression")

# alert thresholds (in the spirit of ydata-profiling's defaults)
ALERTS = {
    "constant": "one distinct non-missing value",
    "all_unique": "every non-missing value distinct (and not a float measurement)",
    "high_cardinality": 50,           # distinct categories
    "missing": 0.2,                   # share of rows missing
    "skewed": 3.0,                    # |sample skewness| of a numeric column
    "imbalance": 0.5,                 # 1 - normalized entropy of a categorical column (or class target)
    "high_correlation": 0.9,          # feature–feature association
}


def _sample(df, n: int, seed: int = 0):
    return df if len(df) <= n else df.sample(n=n, random_state=seed)


def imbalance(counts) -> float:
    """1 - normalized entropy (0 = balanced, 1 = one category)."""
    import numpy as np

    p = np.asarray(counts, dtype=float)
    p = p[p > 0]
    if len(p) < 2:
        return 1.0 if len(p) == 1 else 0.0
    p = p / p.sum()
    return float(1 - (-(p * np.log(p)).sum()) / np.log(len(p)))


def column_types(df, sample=None, nunique: dict | None = None) -> dict:
    """Semantic type per column. With ``sample`` (a row sample of ``df``) the type is read from the
    sample, except for non-float columns that are unique on the sample: those are typed on every row
    (identifier detection needs the whole column)."""
    import pandas as pd

    from loom_py.stats.tabular import semantic_type

    if sample is None or len(sample) == len(df):
        return {str(c): semantic_type(df[c], str(c)) for c in df.columns}
    out = {}
    for c in df.columns:
        sc = sample[c].dropna()
        full = (not pd.api.types.is_float_dtype(df[c]) and len(sc) and sc.nunique() == len(sc))
        out[str(c)] = semantic_type(df[c] if full else sample[c], str(c))
    return out


def target_balance(y, task: str) -> dict:
    import pandas as pd

    nn = y.dropna()
    if task == "classification":
        vc = nn.astype(str).value_counts()
        return {"task": task, "classes": {str(k): int(v) for k, v in vc.items()}, "n_classes": int(len(vc)),
                "imbalance_ratio": float(vc.max() / vc.min()) if len(vc) else None,
                "minority_share": float(vc.min() / vc.sum()) if len(vc) else None,
                "missing": int(y.isna().sum())}
    v = pd.to_numeric(nn, errors="coerce").dropna()
    q = v.quantile([0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    return {"task": task, "mean": float(v.mean()), "std": float(v.std()), "skew": float(v.skew()) if len(v) > 2 else None,
            "quantiles": {f"p{int(k * 100)}": float(x) for k, x in q.items()}, "missing": int(y.isna().sum())}


class _Cols:
    """Per-column arrays computed once for all pairs: values, ranks (numeric), bin codes (categorical)."""

    def __init__(self, d):
        self.d = d
        self._num, self._rank, self._codes = {}, {}, {}

    def num(self, c):
        import pandas as pd

        if c not in self._num:
            self._num[c] = pd.to_numeric(self.d[c], errors="coerce").to_numpy(dtype="float64")
        return self._num[c]

    def rank(self, c):
        import pandas as pd

        if c not in self._rank:
            self._rank[c] = pd.Series(self.num(c)).rank().to_numpy()
        return self._rank[c]

    def codes(self, c):
        from loom_py.stats.leakage import bin_codes

        if c not in self._codes:
            self._codes[c] = bin_codes(self.d[c])
        return self._codes[c]


def _assoc(cols: "_Cols", a, b, ta: str, tb: str):
    """(value, method) for a pair of columns given their kinds ('num' or 'cat')."""
    import numpy as np

    from loom_py.stats.leakage import cramers_v_corrected, correlation_ratio, pearson

    if ta == "num" and tb == "num":
        x, y = cols.num(a), cols.num(b)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 3 or x[ok].std() == 0 or y[ok].std() == 0:
            return None, None
        if ok.all():
            p = pearson(x, y)
            sp = pearson(cols.rank(a), cols.rank(b))
        else:
            p = pearson(x[ok], y[ok])
            # Spearman from each column's ranks (ties averaged; ranks over the column's own non-missing rows)
            sp = pearson(cols.rank(a)[ok], cols.rank(b)[ok])
        return (p, "pearson") if abs(p) >= abs(sp) else (sp, "spearman")
    if ta == "cat" and tb == "cat":
        ca, na = cols.codes(a)
        cb, nb = cols.codes(b)
        if na < 2 or nb < 2:
            return None, None
        return cramers_v_corrected(ca, cb), "cramers_v"
    cat, num = (a, b) if ta == "cat" else (b, a)
    x = cols.num(num)
    ok = np.isfinite(x)
    codes, n = cols.codes(cat)
    if ok.sum() < 3 or n < 2:
        return None, None
    return float(np.sqrt(correlation_ratio(codes[ok], x[ok]))), "correlation_ratio"


def _kind(st: str) -> str | None:
    return {"numeric": "num", "boolean": "num", "categorical": "cat"}.get(st)


def correlations(df, types: dict, target: str | None, task: str | None, sample=None) -> dict:
    """Feature–target and feature–feature associations with the method per pair type."""
    d = sample if sample is not None else _sample(df, CORR_SAMPLE)
    d = d if len(d) <= CORR_SAMPLE else d.iloc[:CORR_SAMPLE]
    cols = _Cols(d)
    feats = [c for c in d.columns if c != target and _kind(types[str(c)])]
    with_target = []
    if target:
        tk = "cat" if task == "classification" else "num"
        for c in feats:
            v, m = _assoc(cols, c, target, _kind(types[str(c)]), tk)
            if v is not None and v == v:
                with_target.append({"column": str(c), "value": round(v, 4), "method": m})
        with_target.sort(key=lambda r: -abs(r["value"]))
    pairs = []
    use = feats[:40]
    for i, a in enumerate(use):
        for b in use[i + 1:]:
            v, m = _assoc(cols, a, b, _kind(types[str(a)]), _kind(types[str(b)]))
            if v is not None and v == v:
                pairs.append({"a": str(a), "b": str(b), "value": round(v, 4), "method": m})
    pairs.sort(key=lambda r: -abs(r["value"]))
    return {"with_target": with_target[:TOP_N], "feature_pairs": pairs[:TOP_N], "all_with_target": with_target,
            "all_pairs": pairs,
            "methods": {"numeric-numeric": "Pearson or Spearman (the stronger, signed)",
                        "categorical-categorical": "Cramér's V (bias-corrected)",
                        "numeric-categorical": "correlation ratio (eta)"},
            "rows_used": len(d), "sampled": len(d) < len(df)}


def alerts(df, types: dict, target: str | None, task: str | None, balance: dict | None, pairs: list[dict],
           nuniques: dict | None = None, missing: dict | None = None) -> list[dict]:
    import pandas as pd

    out = []
    n = len(df)
    for c in df.columns:
        s = df[c]
        st = types[str(c)]
        nn = s.dropna()
        nunique = int(nuniques[c]) if nuniques is not None else int(nn.nunique())
        miss = (missing[c] / n if missing is not None else float(s.isna().mean())) if n else 0.0
        if nunique <= 1:
            out.append({"column": str(c), "alert": "constant", "value": nunique, "threshold": ALERTS["constant"]})
            continue
        if nunique == len(nn) and len(nn) >= 20 and not pd.api.types.is_float_dtype(s) and c != target:
            out.append({"column": str(c), "alert": "all_unique", "value": nunique, "threshold": ALERTS["all_unique"]})
        if st == "categorical" and nunique > ALERTS["high_cardinality"]:
            out.append({"column": str(c), "alert": "high_cardinality", "value": nunique, "threshold": ALERTS["high_cardinality"]})
        if miss > ALERTS["missing"]:
            out.append({"column": str(c), "alert": "missing", "value": round(miss, 4), "threshold": ALERTS["missing"]})
        if st == "numeric" and len(nn) > 2:
            sk = float(pd.to_numeric(nn, errors="coerce").skew())
            if sk == sk and abs(sk) > ALERTS["skewed"]:
                out.append({"column": str(c), "alert": "skewed", "value": round(sk, 3), "threshold": ALERTS["skewed"]})
        if st in ("categorical", "boolean") and c != target:
            imb = imbalance(nn.value_counts().to_numpy())
            if imb > ALERTS["imbalance"]:
                out.append({"column": str(c), "alert": "imbalance", "value": round(imb, 3), "threshold": ALERTS["imbalance"]})
    if balance and balance.get("task") == "classification" and balance.get("classes"):
        imb = imbalance(list(balance["classes"].values()))
        if imb > ALERTS["imbalance"]:
            out.append({"column": str(target), "alert": "imbalance", "value": round(imb, 3), "threshold": ALERTS["imbalance"],
                        "note": f"class imbalance ratio {balance['imbalance_ratio']:.1f}"})
    for p in pairs:
        if abs(p["value"]) >= ALERTS["high_correlation"]:
            out.append({"column": f"{p['a']} ~ {p['b']}", "alert": "high_correlation", "value": p["value"],
                        "method": p["method"], "threshold": ALERTS["high_correlation"]})
    return out


def duplicate_rows(df) -> int:
    import pandas as pd

    if len(df) == 0:
        return 0
    try:
        h = pd.util.hash_pandas_object(df, index=False)
    except TypeError:  # unhashable cells (lists): fall back to their text
        h = pd.util.hash_pandas_object(df.astype(str), index=False)
    return int(h.duplicated().sum())


def validate_target(y, target: str, task: str | None = None) -> str:
    """The task for a usable target, else UsageError (all missing, one class, non-numeric regression)."""
    import pandas as pd

    from loom_py.stats.tabular import infer_task

    nn = y.dropna()
    if len(nn) == 0:
        raise UsageError(f"target column '{target}' is entirely missing: choose another --target")
    if nn.nunique() < 2:
        raise UsageError(f"target column '{target}' has a single value ({nn.iloc[0]!r}): choose another --target")
    if task and task not in TASKS:
        raise UsageError(f"--task must be classification or regression, not '{task}'")
    task = task or infer_task(y)
    if task == "regression" and not pd.api.types.is_numeric_dtype(nn):
        raise UsageError(f"target column '{target}' is not numeric, so it cannot be a regression target: use --task classification")
    return task


def profile(df, target: str | None = None, task: str | None = None, time_col: str | None = None, *, seed: int = 0) -> dict:
    """The eda summary for a DataFrame (without plots)."""
    if target is not None and target not in df.columns:
        raise UsageError(f"unknown target column '{target}'{did_you_mean(target, df.columns)}: columns are {', '.join(map(str, list(df.columns)[:30]))}")
    if time_col is not None and time_col not in df.columns:
        raise UsageError(f"unknown time column '{time_col}'{did_you_mean(time_col, df.columns)}: columns are {', '.join(map(str, list(df.columns)[:30]))}")
    if len(df) == 0:
        raise UsageError("the data object has no rows: ingest a non-empty table")
    df = hashable_frame(df)
    if target is not None:
        task = validate_target(df[target], target, task)
    else:
        task = None
    n = len(df)
    big = df if n <= leakage.SAMPLE_ROWS else df.sample(n=leakage.SAMPLE_ROWS, random_state=seed)
    nunique = {c: int(df[c].nunique()) for c in df.columns}
    types = column_types(df, big, nunique)
    na = df.isna()
    miss_counts = na.sum()
    dtypes = [{"column": str(c), "dtype": str(df[c].dtype), "semantic_type": types[str(c)],
               "missing": int(miss_counts[c]), "unique": nunique[c]} for c in df.columns]
    missingness = {"overall_share": float(miss_counts.sum() / (n * max(df.shape[1], 1))),
                   "rows_with_missing": int(na.any(axis=1).sum()),
                   "columns": {str(c): round(float(miss_counts[c] / n), 6) for c in df.columns}}
    del na
    balance = target_balance(df[target], task) if target else None
    corr = correlations(df, types, target, task, sample=big)
    if target:
        flags = leakage.find_leaks(df, target, task, time_col, seed=seed)
    else:
        flags = leakage.identifier_columns(df)
    al = alerts(df, types, target, task, balance, corr["all_pairs"], nuniques=nunique,
                missing={c: int(miss_counts[c]) for c in df.columns})
    sampling = []
    if len(big) < n:
        sampling.append(f"semantic types read from a seeded sample of {len(big):,} of {n:,} rows "
                        "(columns unique on the sample typed on every row)")
    if corr["sampled"]:
        sampling.append(f"associations computed on a seeded sample of {corr['rows_used']:,} of {n:,} rows")
    if target and leakage.sampled(df):
        sampling.append(f"leakage statistics computed on a seeded sample of {leakage.SAMPLE_ROWS:,} of {n:,} rows")
    return {
        "shape": {"rows": n, "columns": int(df.shape[1])},
        "target": target, "task": task, "time_column": time_col,
        "dtypes": dtypes,
        "semantic_types": {t: sum(1 for v in types.values() if v == t) for t in sorted(set(types.values()))},
        "missingness": missingness,
        "duplicate_rows": duplicate_rows(df),
        "target_balance": balance,
        "top_correlations": {"with_target": corr["with_target"], "feature_pairs": corr["feature_pairs"],
                             "methods": corr["methods"]},
        "alerts": al,
        "leakage_flags": flags,
        "sampling": sampling,
        "thresholds": {"alerts": ALERTS,
                       "leakage": {"single_feature_roc_auc": leakage.THRESHOLD_AUC, "single_feature_r2": leakage.THRESHOLD_R2,
                                   "target_copy_corr": leakage.COPY_CORR, "target_copy_eta2": leakage.COPY_ETA2,
                                   "target_copy_cramers_v": leakage.COPY_CRAMERS_V,
                                   "missingness_roc_auc": leakage.MISSING_AUC, "after_prediction_share": leakage.AFTER_SHARE,
                                   "dominant_roc_auc": leakage.DOMINANT_AUC, "dominant_r2": leakage.DOMINANT_R2,
                                   "dominant_margin_roc_auc": leakage.DOMINANT_MARGIN_AUC,
                                   "dominant_margin_r2": leakage.DOMINANT_MARGIN_R2,
                                   "near_deterministic_entropy": leakage.NEAR_DET_ENTROPY}},
    }


def card_charts(df, summary: dict) -> list[dict]:
    """Vega-Lite specs of the card's plots (missingness, target balance, top correlations)."""
    from loom_py.runtime import charts as C

    specs = [C.vega_missingness(summary["missingness"]["columns"])]
    t = summary.get("target")
    if t:
        specs.append(C.vega_target(df[t], summary["task"], t))
        if summary["top_correlations"]["with_target"]:
            specs.append(C.vega_associations(summary["top_correlations"]["with_target"]))
    return specs


# ---- bridge hook ----------------------------------------------------------------------------------

def check_target_column(col, target: str, task: str | None = None) -> None:
    """``validate_target`` for a pyarrow column, without importing pandas (the launcher stays light)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if task and task not in TASKS:
        raise UsageError(f"--task must be classification or regression, not '{task}'")
    nn = col.drop_null()
    if pa.types.is_floating(nn.type):
        nn = nn.filter(pc.invert(pc.is_nan(nn)))
    if len(nn) == 0:
        raise UsageError(f"target column '{target}' is entirely missing: choose another --target")
    if pc.count_distinct(nn).as_py() < 2:
        raise UsageError(f"target column '{target}' has a single value ({nn[0].as_py()!r}): choose another --target")
    numeric = pa.types.is_integer(nn.type) or pa.types.is_floating(nn.type) or pa.types.is_boolean(nn.type) \
        or pa.types.is_decimal(nn.type)
    if task == "regression" and not numeric:
        raise UsageError(f"target column '{target}' is not numeric, so it cannot be a regression target: use --task classification")


def prepare(params: dict) -> dict:
    """Assert the data object and columns before the run (exit 2, nothing written)."""
    from loom_py.runtime.data import resolve_dataset

    ds = params.get("dataset")
    if not ds:
        raise UsageError("--dataset is required: pass a data object pathspec (see `loom datasets`)")
    run = resolve_dataset(ds)
    info = light_info(run)
    target = params.get("target") or None
    time_col = params.get("time") or params.get("time_column") or None
    task = params.get("task") or None
    check_columns(info, ds, target=target, time=time_col)
    if task and task not in TASKS:
        raise UsageError(f"--task must be classification or regression, not '{task}'")
    if not info.get("rows"):
        raise UsageError(f"{ds} has no rows: ingest a non-empty table")
    if target:
        check_target_column(read_column(run, target), target, task)
    return {"params": {"dataset": ds, "target": target or "", "time_column": time_col or "", "task": task or ""},
            "inputs": [ds]}
