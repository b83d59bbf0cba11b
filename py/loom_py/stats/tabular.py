"""Shared tabular vocabulary: semantic column types, task inference, and the default model.

One place for these so eda, features, validate and the search agree on what a column is and what
the task is.
"""

from __future__ import annotations

SEMANTIC_TYPES = ("numeric", "categorical", "boolean", "datetime", "text", "identifier")
HIGH_CARDINALITY = 50


def semantic_type(s, name: str | None = None) -> str:
    """numeric | categorical | boolean | datetime | text | identifier for a pandas Series."""
    import pandas as pd

    if pd.api.types.is_float_dtype(s):  # never boolean, datetime or an identifier by the rules below
        return "numeric"
    nn = s.dropna()
    n = len(nn)
    if pd.api.types.is_bool_dtype(s) or (n and not pd.api.types.is_float_dtype(s) and nn.nunique() == 2
                                         and set(pd.unique(nn)) <= {0, 1, True, False}):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    nunique = nn.nunique()
    name_l = (name or str(s.name or "")).lower()
    idlike_name = name_l in ("id", "uuid", "key", "index") or name_l.endswith(("_id", "_uuid", "_key")) or name_l.startswith("id_")
    if pd.api.types.is_integer_dtype(s):
        if n and nunique == n and (idlike_name or _is_sequence(nn)):
            return "identifier"
        return "numeric"
    if pd.api.types.is_numeric_dtype(s):
        return "numeric"
    # object / string
    if n == 0:
        return "categorical"
    sample = nn.astype(str).head(2000)
    if _parses_as_datetime(sample):
        return "datetime"
    if nunique == n and n >= 20 and (idlike_name or sample.str.len().std() < 1.0 or sample.str.match(r"^[A-Za-z0-9_-]+$").all()):
        return "identifier"
    mean_len = sample.str.len().mean()
    if nunique > max(HIGH_CARDINALITY, 0.5 * n) and mean_len > 30 and sample.str.contains(" ").mean() > 0.5:
        return "text"
    return "categorical"


def _is_sequence(nn) -> bool:
    import numpy as np

    v = np.sort(nn.to_numpy())
    return len(v) > 1 and bool(np.all(np.diff(v) == 1))


def _parses_as_datetime(sample) -> bool:
    import warnings

    import pandas as pd

    if not sample.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}", regex=True).mean() > 0.9:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return parsed.notna().mean() > 0.95


def infer_task(y) -> str:
    """'classification' or 'regression' for a target Series (non-null values)."""
    import pandas as pd

    nn = y.dropna()
    if pd.api.types.is_bool_dtype(nn) or not pd.api.types.is_numeric_dtype(nn):
        return "classification"
    nunique = nn.nunique()
    if pd.api.types.is_float_dtype(nn) and not (nn == nn.round()).all():
        return "regression"
    return "classification" if nunique <= max(10, int(0.005 * len(nn))) and nunique <= 50 else "regression"


def feature_columns(df, target: str | None, exclude: tuple = ()) -> list[str]:
    return [c for c in df.columns if c != target and c not in exclude]


def make_preprocessor(X, *, scale: bool = False):
    """A ColumnTransformer fitted inside each CV fold: median-impute numerics (optionally scaled),
    most-frequent-impute + one-hot (rare levels grouped) for low-cardinality categoricals, ordinal for
    high-cardinality ones; datetimes become numeric parts; identifiers and free text are dropped."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

    num, low, high, dts = [], [], [], []
    for c in X.columns:
        t = semantic_type(X[c], c)
        if t in ("numeric", "boolean"):
            num.append(c)
        elif t == "datetime":
            dts.append(c)
        elif t == "categorical":
            (low if X[c].nunique() <= 20 else high).append(c)
    parts = []
    if num:
        steps = [SimpleImputer(strategy="median")] + ([StandardScaler()] if scale else [])
        parts.append(("num", make_pipeline(*steps), num))
    if low:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                           OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5,
                                                         sparse_output=False)), low))
    if high:
        parts.append(("hcat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)), high))
    if dts:
        parts.append(("dt", make_pipeline(FunctionTransformer(_datetime_parts), SimpleImputer(strategy="median")), dts))
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)


def _datetime_parts(X):
    import numpy as np
    import pandas as pd

    cols = []
    for c in X.columns:
        d = pd.to_datetime(X[c], errors="coerce", format="mixed") if not pd.api.types.is_datetime64_any_dtype(X[c]) else X[c]
        cols += [d.dt.year, d.dt.month, d.dt.dayofweek, d.dt.hour]
    return np.column_stack([c.astype("float64").to_numpy() for c in cols])


def _cast_objects(X):
    """Mixed-type object columns to str so encoders see one type."""
    X = X.copy()
    for c in X.columns:
        if X[c].dtype == object:
            X[c] = X[c].where(X[c].isna(), X[c].astype(str))
    return X


def default_model(task: str, X, seed: int = 0):
    """The strong default estimator: histogram gradient boosting behind the preprocessor."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    # early stopping on an inner 10% split: better calibrated, as accurate, ~8x faster than a fixed 200
    # rounds on small data (docs/decisions/0200-default-model-early-stopping.md)
    est = (HistGradientBoostingClassifier(random_state=seed, max_iter=200, early_stopping=True)
           if task == "classification" else HistGradientBoostingRegressor(random_state=seed, max_iter=200, early_stopping=True))
    return make_pipeline(FunctionTransformer(_cast_objects), make_preprocessor(X), est)


DEFAULT_MODEL_NAME = "HistGradientBoosting (sklearn) with median/most-frequent imputation, one-hot/ordinal encoding"


def json_safe(obj):
    """Convert numpy / pandas scalars and non-finite floats into plain JSON values."""
    import math

    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if np is not None:
        if isinstance(obj, np.generic):
            obj = obj.item()
        elif isinstance(obj, np.ndarray):
            return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def hashable_frame(df):
    """Nested cells (lists, dicts, arrays: JSON lines / Parquet list and struct columns) become their
    JSON text, so every statistic can hash them. Other columns are returned as they are."""
    import json

    import numpy as np

    nested = (list, dict, tuple, np.ndarray)
    out = None
    for c in df.columns:
        s = df[c]
        if s.dtype != object:
            continue
        nn = s.dropna()
        probe = nn.head(1000)
        if len(probe) and probe.map(lambda v: isinstance(v, nested)).any():
            def to_text(v):
                if isinstance(v, np.ndarray):
                    v = v.tolist()
                return json.dumps(v, default=str, sort_keys=True) if isinstance(v, nested) else v
            if out is None:
                out = df.copy()
            out[c] = s.map(to_text, na_action="ignore")
    return df if out is None else out


_NESTED_KIND = {list: "list", tuple: "list", dict: "struct"}


def nested_columns(df) -> dict:
    """{column: 'list' | 'struct'} for the object columns whose cells are lists, arrays or dicts
    (Parquet list/struct columns, JSON lines with nested values), judged on the first 1,000 values."""
    import numpy as np

    out = {}
    for c in df.columns:
        s = df[c]
        if s.dtype != object:
            continue
        for v in s.dropna().head(1000):
            if isinstance(v, (list, tuple, dict, np.ndarray)):
                out[c] = "struct" if isinstance(v, dict) else "list"
                break
    return out


def infinite_to_missing(df):
    """(frame, {column: count}): ±inf in float columns becomes NaN (missing), counted per column. An
    overflowed or sentinel infinity is no measurement, and every imputer and plot treats NaN as missing."""
    import numpy as np
    import pandas as pd

    counts, out = {}, None
    for c in df.columns:
        s = df[c]
        if not pd.api.types.is_float_dtype(s):
            continue
        bad = np.isinf(s.to_numpy(dtype="float64", na_value=np.nan))
        n = int(bad.sum())
        if n:
            if out is None:
                out = df.copy()
            out[c] = s.mask(bad)
            counts[c] = n
    return (df if out is None else out), counts


def _listing(names, limit: int = 8) -> str:
    names = [str(n) for n in names]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def infinite_note(counts: dict) -> str | None:
    if not counts:
        return None
    total = sum(counts.values())
    parts = [f"{c} ({n})" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return f"treated {total} ±inf value(s) as missing: {_listing(parts)}"


def model_frame(df, target: str | None = None, keep=()):
    """(frame, notes) ready for a model and the statistics: nested (list/struct) columns are left out
    — except the columns the user named (``keep``: time, group, sensitive), which become their JSON
    text — and ±inf becomes missing; each change is named in a note. A nested target, or a target
    with no finite value, is refused with one line (UsageError)."""
    from loom_py.runtime.errors import UsageError

    notes = []
    nested = nested_columns(df)
    if target is not None and target in nested:
        raise UsageError(f"target '{target}' holds nested values ({nested[target]} cells): pick a column of "
                         "plain values as --target")
    named = [c for c in nested if c in set(keep)]
    dropped = [c for c in nested if c not in set(keep)]
    if dropped:
        df = df.drop(columns=dropped)
        kinds = sorted({nested[c] for c in dropped})
        notes.append(f"left out {len(dropped)} nested ({'/'.join(kinds)}) column(s) a model cannot take as "
                     f"they are: {_listing(dropped)}")
    if named:
        df = hashable_frame(df)
        notes.append(f"nested column(s) {_listing(named)} compared by their JSON text")
    if target is not None and dropped and not [c for c in df.columns if c != target]:
        raise UsageError(nothing_left(target, dropped))
    df, counts = infinite_to_missing(df)
    if (n := infinite_note(counts)):
        notes.append(n)
    if target is not None and target in df.columns and not df[target].notna().any():
        why = f", {counts[target]} of them ±inf" if target in counts else ""
        raise UsageError(f"target '{target}' has no values (all {len(df)} rows missing{why}): pick another --target")
    return df, notes


def nothing_left(target: str, nested: list) -> str:
    return (f"every column but the target '{target}' is nested (list/struct): {_listing(nested)}; nothing is left "
            "for a model: flatten them into plain columns, then ingest again")


def nested_in_schema(schema: list[dict]) -> list[str]:
    """The columns a data object's ``schema`` artifact types as Arrow lists, structs or maps."""
    return [f["name"] for f in schema or []
            if str(f.get("type", "")).startswith(("list<", "large_list<", "fixed_size_list<", "struct<", "map<"))]
