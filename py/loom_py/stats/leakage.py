"""Leakage checks shared by eda, features and validate.

Every check returns a list of flags ``{"column", "reason", "evidence"}``. Reasons are stable strings:

- ``single_feature_predictor``: one column alone predicts the target almost perfectly on held-out rows
  (5-fold out-of-fold score of a one-feature histogram estimator: ROC-AUC for classification, R² for
  regression).
- ``identifier``: unique per row (or nearly) and integer-sequence / key-like / named like a key; a model
  would memorize rows with it.
- ``target_copy``: a near-copy or monotone function of the target (|Spearman| or |Pearson| with a
  regression target, correlation ratio / bias-corrected Cramér's V with a class target).
- ``post_outcome_timestamp``: a timestamp whose missingness alone predicts the target (filled only
  after the outcome).
- ``after_prediction_time``: a timestamp that lies after the prediction time (``time_col``) on most rows.
- ``near_deterministic``: a low-cardinality column given which the class is all but certain (held-out
  cross-entropy of the target given the column, over the target's entropy, near 0).
- ``dominant_predictor``: one column's held-out score is high and far above what a model of every other
  column achieves together (a genuine strong feature rarely beats the rest of the table combined).

The expensive statistics run on at most ``SAMPLE_ROWS`` rows (seeded sample); evidence says
``rows_used`` so a summary can state that it sampled.

The one-feature estimator: the column is cut into quantile bins (numerics, datetimes) or categories
(everything else), missing values get their own bin, and each held-out row is predicted by the smoothed
target mean / class distribution of its bin in the other folds. It is fast (bincount), handles any
column type, and sees missingness as a signal. Bins are target-free (computed once); only the
per-bin target statistics are fitted, inside folds.
"""

from __future__ import annotations

SAMPLE_ROWS = 200_000
N_FOLDS = 5
# Thresholds, measured on clean data (see docs/decisions/0100-leakage-thresholds.md):
# breast_cancer's best genuine single feature reaches an out-of-fold AUC of about 0.97, so 0.95 would
# flag it; 0.99 leaves a margin above genuine data while planted leaks score > 0.995.
THRESHOLD_AUC = 0.99
THRESHOLD_R2 = 0.95
COPY_CORR = 0.98          # |Spearman| or |Pearson| with a regression target
COPY_ETA2 = 0.95          # correlation ratio (numeric column by class target)
COPY_CRAMERS_V = 0.95     # bias-corrected Cramér's V (categorical column vs class target)
MISSING_AUC = 0.9         # missingness of a timestamp predicts the target
MISSING_R2 = 0.5
AFTER_SHARE = 0.95        # share of rows where a timestamp is after the prediction time
ID_UNIQUE_SHARE = 0.95    # near-unique share for a key-named column

# The model-relative signals (decision 0100, second part): a near-copy of the label with a few percent
# noise scores just under the bars above, while a genuine strong feature can score as high. What separates
# them: a leak carries the label on its own, far beyond what all the other columns achieve together.
DOMINANT_AUC = 0.9        # one-feature out-of-fold AUC a candidate needs ...
DOMINANT_R2 = 0.75        # ... or R²
DOMINANT_MARGIN_AUC = 0.1  # and its lead over a model of every other column (out of fold)
DOMINANT_MARGIN_R2 = 0.3
DOMINANT_ROWS = 5000      # rows the rest-of-table model uses (seeded sample)
NEAR_DET_ENTROPY = 0.25   # out-of-fold cross-entropy of the target given the column / entropy of the target
NEAR_DET_LEVELS = 50      # "low cardinality": at most this many values

REASON_ORDER = ("target_copy", "post_outcome_timestamp", "after_prediction_time",
                "single_feature_predictor", "near_deterministic", "dominant_predictor", "identifier")


def _flag(column, reason, **evidence) -> dict:
    from loom_py.stats.tabular import json_safe

    return {"column": str(column), "reason": reason, "evidence": json_safe(evidence)}


def _sample(df, seed: int = 0, max_rows: int = SAMPLE_ROWS):
    if len(df) <= max_rows:
        return df
    return df.sample(n=max_rows, random_state=seed)


def _check_target(df, target):
    from loom_py.runtime.errors import UsageError, did_you_mean

    if target not in df.columns:
        raise UsageError(f"unknown target column '{target}'{did_you_mean(target, df.columns)}: columns are {', '.join(map(str, list(df.columns)[:30]))}")


def _task(df, target, task):
    from loom_py.stats.tabular import infer_task

    return task or infer_task(df[target])


def _target_codes(y, task):
    """(y as float array for regression | int codes for classification, n_classes)."""
    import numpy as np
    import pandas as pd

    if task == "classification":
        codes, uniques = pd.factorize(y, sort=True)
        return codes.astype(np.int64), len(uniques)
    return pd.to_numeric(y, errors="coerce").to_numpy(dtype="float64"), 0


def _is_datetime_like(s, name=None) -> bool:
    import pandas as pd

    from loom_py.stats.tabular import semantic_type

    if pd.api.types.is_datetime64_any_dtype(s):
        return True
    return s.dtype == object and semantic_type(s, name) == "datetime"


def _as_datetime(s):
    import warnings

    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(s):
        d = s
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = pd.to_datetime(s, errors="coerce", format="mixed")
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_convert("UTC").dt.tz_localize(None)
    return d


def bin_codes(s, max_bins: int = 32):
    """Target-free integer codes for one column: quantile bins for numerics/datetimes, categories
    otherwise; missing values get their own code. Returns (codes, n_codes)."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(s):
        v = s.astype("float64")
    elif pd.api.types.is_datetime64_any_dtype(s):
        d = _as_datetime(s)
        a = d.to_numpy(dtype="datetime64[ns]").view("int64").astype("float64")
        a[d.isna().to_numpy()] = np.nan
        v = pd.Series(a, index=s.index)
    elif pd.api.types.is_numeric_dtype(s):
        v = pd.to_numeric(s, errors="coerce").astype("float64")
    else:
        v = None
    if v is not None:
        a = v.to_numpy(dtype="float64")
        miss = ~np.isfinite(a)
        nn = a[~miss]
        if len(nn) == 0:
            return np.zeros(len(a), dtype=np.int64), 1
        uniq = np.unique(nn)
        if len(uniq) <= max_bins:
            codes = np.searchsorted(uniq, np.where(miss, uniq[0], a))
        else:
            edges = np.unique(np.quantile(nn, np.linspace(0, 1, max_bins + 1)[1:-1]))
            codes = np.searchsorted(edges, np.where(miss, nn[0], a), side="right")
        n = int(codes.max()) + 1 if len(codes) else 1
        codes = np.where(miss, n, codes).astype(np.int64)
        return codes, n + 1
    codes, uniques = pd.factorize(s.astype("object").where(s.notna(), None))
    n = len(uniques)
    codes = np.where(codes < 0, n, codes).astype(np.int64)
    return codes, n + 1


def _folds(n: int, seed: int, k: int = N_FOLDS):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.permutation(n) % k


def roc_auc(positive, score) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties averaged; no sklearn import needed."""
    import numpy as np
    import pandas as pd

    positive = np.asarray(positive, dtype=bool)
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = pd.Series(np.asarray(score, dtype="float64")).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _auc_of_cells(score, pos, neg) -> float:
    """ROC-AUC when every row's score is one of a few cell values: ``score[j]`` with ``pos[j]`` positive
    and ``neg[j]`` negative rows in cell j. Equal scores (across cells) tie, as in the rank formula."""
    import numpy as np

    n1, n0 = pos.sum(), neg.sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    values, inv = np.unique(score, return_inverse=True)
    p = np.bincount(inv, weights=pos, minlength=len(values))
    q = np.bincount(inv, weights=neg, minlength=len(values))
    below = np.cumsum(q) - q  # negatives scored strictly lower
    return float((p * below).sum() + 0.5 * (p * q).sum()) / float(n1 * n0)


def oof_score(codes, n_codes: int, y, task: str, n_classes: int = 0, *, seed: int = 0, smoothing: float = 2.0,
              fold=None) -> float:
    """Out-of-fold score of the one-feature histogram estimator: ROC-AUC (classification, macro
    one-vs-rest for multiclass) or R² (regression).

    One pass: counts per (fold, bin, class); a fold's training counts are the totals minus its own. The
    out-of-fold prediction of a row depends only on its (fold, bin) cell, so the AUC is computed on the
    cells' counts instead of ranking every row (same value as ``roc_auc`` on the row predictions)."""
    import numpy as np

    n = len(codes)
    fold = _folds(n, seed) if fold is None else fold
    cell = fold * n_codes + codes  # the (fold, bin) a row falls in
    if task == "classification":
        k = max(n_classes, 2)
        counts = np.bincount(cell * k + y, minlength=N_FOLDS * n_codes * k).reshape(N_FOLDS, n_codes, k)
        per_fold = counts.sum(1)  # (fold, class)
        train = counts.sum(0)[None] - counts  # (fold, bin, class): counts outside the fold
        train_n = (per_fold.sum() - per_fold.sum(1)).astype("float64")  # rows outside each fold
        prior = (per_fold.sum(0)[None] - per_fold) / np.maximum(train_n, 1)[:, None]  # (fold, class)
        proba = (train + smoothing * prior[:, None, :]) / (train.sum(2, keepdims=True) + smoothing)
        present = np.flatnonzero(counts.sum((0, 1)))
        if len(present) < 2:
            return float("nan")
        cells = counts.reshape(-1, k)  # rows of each class in each (fold, bin) cell
        flat = proba.reshape(-1, k)

        def auc(c):
            pos = cells[:, c].astype("float64")
            return _auc_of_cells(flat[:, c], pos, cells.sum(1) - pos)

        if len(present) == 2:
            return auc(present[1])
        # macro one-vs-rest, as sklearn's roc_auc_score(multi_class="ovr", average="macro")
        return float(np.mean([auc(c) for c in present]))
    size = N_FOLDS * n_codes
    c = np.bincount(cell, minlength=size).reshape(N_FOLDS, n_codes)
    s = np.bincount(cell, weights=y, minlength=size).reshape(N_FOLDS, n_codes)
    tc, ts = c.sum(0)[None] - c, s.sum(0)[None] - s
    prior = ts.sum(1) / np.maximum(tc.sum(1), 1)  # target mean outside each fold
    pred = ((ts + smoothing * prior[:, None]) / (tc + smoothing)).reshape(-1)[cell]
    sst = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - pred) ** 2).sum() / sst) if sst > 0 else float("nan")


def _prepared(df, target, task, seed):
    """(sampled frame with a non-missing target, y, n_classes, task, rows_used)."""
    import numpy as np

    _check_target(df, target)
    task = _task(df, target, task)
    d = df[df[target].notna()]
    d = _sample(d, seed)
    y, k = _target_codes(d[target], task)
    if task == "regression":
        keep = np.isfinite(y)
        d, y = d[keep], y[keep]
    return d, y, k, task, len(d)


def single_feature_predictors(df, target, task=None, *, threshold_auc: float = THRESHOLD_AUC,
                              threshold_r2: float = THRESHOLD_R2, seed: int = 0) -> list[dict]:
    """Columns that alone predict the target almost perfectly on held-out rows."""
    d, y, k, task, used = _prepared(df, target, task, seed)
    if used < 20:
        return []
    out = []
    fold = _folds(used, seed)
    for c in d.columns:
        if c == target:
            continue
        codes, n_codes = bin_codes(d[c])
        if n_codes <= 1:
            continue
        score = oof_score(codes, n_codes, y, task, k, seed=seed, fold=fold)
        metric, thr = ("roc_auc", threshold_auc) if task == "classification" else ("r2", threshold_r2)
        if score == score and score >= thr:
            out.append(_flag(c, "single_feature_predictor", metric=metric, score=round(score, 4),
                             threshold=thr, method=f"{N_FOLDS}-fold out-of-fold one-feature histogram estimator",
                             rows_used=used))
    return out


def single_feature_scores(df, target, task=None, *, seed: int = 0) -> dict:
    """{column: out-of-fold one-feature score} for every feature (used by eda for its tables)."""
    d, y, k, task, used = _prepared(df, target, task, seed)
    res = {}
    fold = _folds(used, seed)
    for c in d.columns:
        if c == target:
            continue
        codes, n_codes = bin_codes(d[c])
        res[c] = oof_score(codes, n_codes, y, task, k, seed=seed, fold=fold) if n_codes > 1 and used >= 20 else None
    return res


def _keyname(name) -> bool:
    n = str(name).lower()
    return n in ("id", "uuid", "guid", "key", "index", "row", "rowid", "row_id") or \
        (n.endswith(("_id", "_uuid", "_key", "id")) and not n.endswith(("paid", "valid", "void", "grid", "fluid", "solid")))


def identifier_columns(df, target=None) -> list[dict]:
    """Unique-per-row keys: integer sequences, key-like strings, or key-named near-unique columns.
    Integers are checked on every row (cheap); strings on a seeded sample of ``SAMPLE_ROWS``."""
    import numpy as np
    import pandas as pd

    from loom_py.stats.tabular import semantic_type

    out = []
    if len(df) < 20:
        return out
    for c in df.columns:
        if c == target:
            continue
        s = df[c]
        if pd.api.types.is_float_dtype(s) or pd.api.types.is_bool_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
            continue
        nn = s.dropna()
        n = len(nn)
        if n < 20:
            continue
        keyname = _keyname(c)
        if pd.api.types.is_integer_dtype(s):
            v = nn.to_numpy()
            uniq = len(np.unique(v))
            share = uniq / n
            seq = uniq == n and int(v.max()) - int(v.min()) + 1 == n
            if uniq == n and (keyname or seq):
                out.append(_flag(c, "identifier", unique_share=round(share, 4), semantic_type="identifier",
                                 why="unique per row (integer sequence or key name)"))
            elif keyname and share >= ID_UNIQUE_SHARE:
                out.append(_flag(c, "identifier", unique_share=round(share, 4), threshold=ID_UNIQUE_SHARE,
                                 why="key-like name and nearly unique per row"))
            continue
        sample = nn if n <= SAMPLE_ROWS else nn.sample(SAMPLE_ROWS, random_state=0)
        share = sample.nunique() / len(sample)
        if share < ID_UNIQUE_SHARE:
            continue
        st = semantic_type(sample, str(c))
        if st == "identifier":
            out.append(_flag(c, "identifier", unique_share=round(share, 4), semantic_type=st,
                             why="unique per row (key-like string or key name)"))
        elif keyname:
            out.append(_flag(c, "identifier", unique_share=round(share, 4), semantic_type=st,
                             threshold=ID_UNIQUE_SHARE, why="key-like name and nearly unique per row"))
    return out


def pearson(x, y) -> float:
    """Pearson correlation of two finite float arrays (nan when either is constant); cheaper than
    np.corrcoef for a single pair."""
    import numpy as np

    # elementwise sums, not BLAS dot: on a busy machine BLAS threads spin (17 ms vs 0.3 ms per 100k pair)
    xc = x - x.mean()
    yc = y - y.mean()
    d = float(np.sqrt((xc * xc).sum() * (yc * yc).sum()))
    return float((xc * yc).sum() / d) if d > 0 else float("nan")


def cramers_v_corrected(a_codes, b_codes) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013)."""
    import numpy as np

    n = len(a_codes)
    ra, rb = a_codes.max() + 1, b_codes.max() + 1
    table = np.bincount(a_codes * rb + b_codes, minlength=ra * rb).reshape(ra, rb).astype(float)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    r, k = table.shape
    if r < 2 or k < 2 or n < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    phi2 = chi2 / n
    phi2c = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    rc = r - (r - 1) ** 2 / (n - 1)
    kc = k - (k - 1) ** 2 / (n - 1)
    den = min(kc - 1, rc - 1)
    return float(np.sqrt(phi2c / den)) if den > 0 else 0.0


def correlation_ratio(codes, x) -> float:
    """eta² of x by group codes: between-group variance / total variance."""
    import numpy as np

    n = len(x)
    if n < 2:
        return 0.0
    tot = ((x - x.mean()) ** 2).sum()
    if tot <= 0:
        return 0.0
    cnt = np.bincount(codes)
    s = np.bincount(codes, weights=x)
    nz = cnt > 0
    means = s[nz] / cnt[nz]
    between = (cnt[nz] * (means - x.mean()) ** 2).sum()
    return float(between / tot)


def target_copies(df, target, task=None, *, seed: int = 0) -> list[dict]:
    """Near-copies or monotone functions of the target."""
    import numpy as np
    import pandas as pd

    d, y, k, task, used = _prepared(df, target, task, seed)
    out = []
    if used < 20:
        return out
    for c in d.columns:
        if c == target:
            continue
        s = d[c]
        numeric = (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)) and not pd.api.types.is_datetime64_any_dtype(s)
        if task == "regression":
            if not numeric:
                continue
            x = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
            m = np.isfinite(x)
            if m.sum() < max(20, 0.5 * used) or np.nanstd(x[m]) == 0 or np.std(y[m]) == 0:
                continue
            xs, ys = x[m], y[m]
            pearson_r = pearson(xs, ys)
            spearman = pearson(pd.Series(xs).rank().to_numpy(), pd.Series(ys).rank().to_numpy())
            if max(abs(pearson_r), abs(spearman)) >= COPY_CORR:
                out.append(_flag(c, "target_copy", pearson=round(pearson_r, 4), spearman=round(spearman, 4),
                                 threshold=COPY_CORR, rows_used=int(m.sum()),
                                 why="near-copy or monotone function of the target"))
        else:
            if numeric:
                x = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
                m = np.isfinite(x)
                if m.sum() < max(20, 0.5 * used) or np.std(x[m]) == 0:
                    continue
                eta2 = correlation_ratio(y[m], x[m])
                if eta2 >= COPY_ETA2:
                    out.append(_flag(c, "target_copy", correlation_ratio=round(eta2, 4), threshold=COPY_ETA2,
                                     rows_used=int(m.sum()), why="the column is (almost) a function of the class"))
            else:
                if pd.api.types.is_datetime64_any_dtype(s):
                    continue
                codes, n_codes = bin_codes(s)
                if n_codes - 1 > 50 or n_codes < 2:
                    continue
                v = cramers_v_corrected(codes, y)
                if v >= COPY_CRAMERS_V:
                    out.append(_flag(c, "target_copy", cramers_v=round(v, 4), threshold=COPY_CRAMERS_V,
                                     rows_used=used, why="categories map one-to-one onto the classes"))
    return out


def temporal_leaks(df, target, time_col=None, task=None, *, seed: int = 0) -> list[dict]:
    """Timestamps filled only after the outcome (missingness predicts the target) or lying after the
    prediction time ``time_col``."""
    import numpy as np

    from loom_py.runtime.errors import UsageError

    d, y, k, task, used = _prepared(df, target, task, seed)
    if time_col is not None and time_col not in d.columns:
        raise UsageError(f"unknown time column '{time_col}': pass --time with one of the data object's columns")
    out = []
    if used < 20:
        return out
    t0 = _as_datetime(d[time_col]) if time_col is not None else None
    for c in d.columns:
        if c in (target, time_col):
            continue
        s = d[c]
        if not _is_datetime_like(s, str(c)):
            continue
        dt = _as_datetime(s)
        miss = dt.isna().to_numpy()
        share = float(miss.mean())
        if 0.02 <= share <= 0.98:
            score = oof_score(miss.astype(np.int64), 2, y, task, k, seed=seed)
            thr = MISSING_AUC if task == "classification" else MISSING_R2
            if score == score and score >= thr:
                out.append(_flag(c, "post_outcome_timestamp", missing_share=round(share, 4),
                                 metric="roc_auc" if task == "classification" else "r2",
                                 missingness_score=round(score, 4), threshold=thr, rows_used=used,
                                 why="whether the timestamp is filled predicts the target: it is written after the outcome"))
                continue
        if t0 is not None:
            both = dt.notna().to_numpy() & t0.notna().to_numpy()
            if both.sum() >= 20:
                after = float((dt.to_numpy()[both] > t0.to_numpy()[both]).mean())
                if after >= AFTER_SHARE:
                    out.append(_flag(c, "after_prediction_time", share_after=round(after, 4), time_column=time_col,
                                     threshold=AFTER_SHARE, rows_used=int(both.sum()),
                                     why=f"the timestamp is later than the prediction time '{time_col}'"))
    return out


def find_leaks(df, target, task=None, time_col=None, *, seed: int = 0,
               threshold_auc: float = THRESHOLD_AUC, threshold_r2: float = THRESHOLD_R2) -> list[dict]:
    """All checks, one flag per column (the strongest reason first; the others in evidence.also)."""
    _check_target(df, target)
    task = _task(df, target, task)
    d = _sample(df[df[target].notna()], seed)  # one sample for every target statistic
    flags = (target_copies(d, target, task, seed=seed)
             + temporal_leaks(d, target, time_col, task, seed=seed)
             + single_feature_predictors(d, target, task, threshold_auc=threshold_auc,
                                         threshold_r2=threshold_r2, seed=seed)
             + identifier_columns(df, target))
    flags += near_deterministic(d, target, task, seed=seed)
    strict = {f["column"] for f in flags}
    flags += dominant_predictors(d, target, task, seed=seed, exclude=strict)
    by_col: dict[str, dict] = {}
    for f in sorted(flags, key=lambda f: REASON_ORDER.index(f["reason"])):
        if f["column"] in by_col:
            by_col[f["column"]]["evidence"].setdefault("also", []).append(f["reason"])
        else:
            by_col[f["column"]] = {**f, "evidence": dict(f["evidence"])}
    order = {str(c): i for i, c in enumerate(df.columns)}
    return sorted(by_col.values(), key=lambda f: order.get(f["column"], 0))


def oof_cross_entropy(codes, n_codes: int, y, n_classes: int, *, seed: int = 0, smoothing: float = 2.0,
                      fold=None) -> float:
    """Out-of-fold cross-entropy (nats) of the target given one column's bins, divided by the target's
    entropy: 0 = the column determines the class, 1 = it tells nothing. Held-out, so a many-level column
    cannot look deterministic by memorizing its levels (a plug-in conditional entropy would)."""
    import numpy as np

    n = len(codes)
    fold = _folds(n, seed) if fold is None else fold
    k = max(n_classes, 2)
    cell = fold * n_codes + codes
    counts = np.bincount(cell * k + y, minlength=N_FOLDS * n_codes * k).reshape(N_FOLDS, n_codes, k)
    per_fold = counts.sum(1)
    train = counts.sum(0)[None] - counts
    train_n = (per_fold.sum() - per_fold.sum(1)).astype("float64")
    prior = (per_fold.sum(0)[None] - per_fold) / np.maximum(train_n, 1)[:, None]
    proba = (train + smoothing * prior[:, None, :]) / (train.sum(2, keepdims=True) + smoothing)
    p = np.clip(proba.reshape(-1, k)[cell, y], 1e-12, 1)
    freq = np.bincount(y, minlength=k) / n
    h = -(freq[freq > 0] * np.log(freq[freq > 0])).sum()
    return float(-np.log(p).mean() / h) if h > 0 else float("nan")


def near_deterministic(df, target, task=None, *, seed: int = 0) -> list[dict]:
    """Low-cardinality columns (≤ NEAR_DET_LEVELS values) that all but determine a class target."""
    import numpy as np

    d, y, k, task, used = _prepared(df, target, task, seed)
    out = []
    if task != "classification" or used < 50:
        return out
    fold = _folds(used, seed)
    for c in d.columns:
        if c == target:
            continue
        levels = d[c].nunique(dropna=False)
        if levels < 2 or levels > NEAR_DET_LEVELS:
            continue
        codes, n_codes = bin_codes(d[c], max_bins=NEAR_DET_LEVELS + 1)
        ce = oof_cross_entropy(codes, n_codes, y, k, seed=seed, fold=fold)
        if ce == ce and ce <= NEAR_DET_ENTROPY:
            out.append(_flag(c, "near_deterministic", conditional_entropy=round(ce, 4), threshold=NEAR_DET_ENTROPY,
                             levels=int(levels), rows_used=used,
                             method=f"{N_FOLDS}-fold out-of-fold cross-entropy of the target given the column, "
                                    "over the target's entropy",
                             why="a low-cardinality column that all but determines the class (a status or flag "
                                 "written from the outcome)"))
    return out


def rest_score(d, y, task: str, n_classes: int, columns: list, *, seed: int = 0) -> float:
    """Out-of-fold score (ROC-AUC / R²) of a gradient-boosted model of ``columns`` together (3 folds, at
    most DOMINANT_ROWS rows): what the rest of the table achieves without the candidate."""
    import numpy as np

    if not columns:
        return float("nan")
    rng = np.random.default_rng(seed)
    idx = np.arange(len(d)) if len(d) <= DOMINANT_ROWS else np.sort(rng.choice(len(d), DOMINANT_ROWS, replace=False))
    import pandas as pd

    feats, cat = [], []
    for c in columns:
        s = d[c].iloc[idx]
        codes, n_codes = bin_codes(s)
        numeric = pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_bool_dtype(s)
        if not numeric and n_codes > 250:
            continue
        feats.append(codes)
        cat.append(not numeric)
    if not feats:
        return float("nan")
    from threadpoolctl import threadpool_limits

    X = np.column_stack(feats).astype("float64")
    yy = y[idx]
    with threadpool_limits(1):  # a small fit: OpenMP threads on a busy machine cost 10-50x, never gain
        return _rest_fit(X, yy, cat, task, seed)


def _rest_fit(X, yy, cat, task, seed) -> float:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.model_selection import cross_val_predict

    if task == "classification":
        if len(np.unique(yy)) < 2 or np.bincount(yy).min() < 3:
            return float("nan")
        m = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, categorical_features=np.array(cat),
                                           random_state=seed)
        p = cross_val_predict(m, X, yy, cv=3, method="predict_proba")
        present = np.unique(yy)
        if len(present) == 2:
            return roc_auc(yy == present[1], p[:, 1])
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(yy, p, multi_class="ovr", average="macro"))
    m = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.1, categorical_features=np.array(cat),
                                      random_state=seed)
    p = cross_val_predict(m, X, yy, cv=3)
    sst = ((yy - yy.mean()) ** 2).sum()
    return float(1 - ((yy - p) ** 2).sum() / sst) if sst > 0 else float("nan")


def dominant_predictors(df, target, task=None, *, seed: int = 0, exclude=()) -> list[dict]:
    """Columns whose one-feature out-of-fold score is high (≥ DOMINANT_AUC / DOMINANT_R2) and far above
    (≥ the margin) what every other column achieves together. ``exclude``: columns already flagged
    (a leak in the rest of the table would hide another). Only candidates pay for the rest-of-table model,
    so clean tables rarely fit one."""
    d, y, k, task, used = _prepared(df, target, task, seed)
    out = []
    if used < 50:
        return out
    fold = _folds(used, seed)
    cand_thr, margin, metric = ((DOMINANT_AUC, DOMINANT_MARGIN_AUC, "roc_auc") if task == "classification"
                                else (DOMINANT_R2, DOMINANT_MARGIN_R2, "r2"))
    scores = {}
    for c in d.columns:
        if c == target:
            continue
        codes, n_codes = bin_codes(d[c])
        if n_codes > 1:
            scores[c] = oof_score(codes, n_codes, y, task, k, seed=seed, fold=fold)
    skip = set(map(str, exclude))
    for c, sc in scores.items():
        if not (sc == sc and sc >= cand_thr) or str(c) in skip:
            continue
        rest = [o for o in d.columns if o not in (c, target) and str(o) not in skip]
        rs = rest_score(d, y, task, k, rest, seed=seed)
        if rs == rs and sc - rs >= margin:
            out.append(_flag(c, "dominant_predictor", metric=metric, score=round(sc, 4), rest_score=round(rs, 4),
                             margin=margin, candidate_threshold=cand_thr, rows_used=used,
                             method="one-feature out-of-fold score vs a 3-fold gradient-boosted model of every other column",
                             why="the column alone predicts the target far better than the whole rest of the table: "
                                 "a leak carries the label on its own"))
    return out


def sampled(df) -> bool:
    """Whether the leakage statistics ran on a sample of ``df``."""
    return len(df) > SAMPLE_ROWS
