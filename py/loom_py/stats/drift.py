"""Data drift between a reference and a current table, with the tests data scientists already trust.

The test for a column and its threshold follow Evidently's defaults (``DataDriftPreset``, checked
against Evidently itself in ``tests/stats/test_drift_evidently.py``):

* reference of at most 1,000 rows: numeric with more than 5 distinct values → two-sample
  Kolmogorov-Smirnov, drift when p ≤ 0.05; categorical (or numeric with 3-5 values) → chi-square
  goodness of fit of the current counts against the reference's proportions, drift when p < 0.05;
  two values → two-proportion Z-test, drift when p < 0.05;
* reference above 1,000 rows: numeric → Wasserstein distance normed by the reference's standard
  deviation, drift when ≥ 0.1; categorical (or numeric with at most 5 values) → Jensen-Shannon
  distance, drift when ≥ 0.1;
* the table drifts when the share of drifted columns is ≥ 0.5.

Missing values (and ±inf) are left out of the tests, as Evidently does, and reported on their own:
the missing share in each table and a change of at least ``MISSING_CHANGE`` (5 points). Values of a
categorical column that the reference never had are reported as new categories. PSI (Evidently's
binning) is reported for every tested column, never used for the verdict.

Column kinds follow Evidently's inference on the reference column: float → numeric; integer → numeric
above 10 distinct values, else categorical; bool / category → categorical; strings → categorical,
or text when more than half the values are distinct (not tested: identifiers and free text);
datetimes are not tested. Imports no verb (scipy, numpy, pandas only).
"""

from __future__ import annotations

import math

import numpy as np

from loom_py.runtime.errors import UsageError

SMALL_REFERENCE = 1000  # rows; at most this many: the p-value tests, above: the distances
P_THRESHOLD = 0.05
DISTANCE_THRESHOLD = 0.1
DRIFT_SHARE = 0.5
INTEGER_CARDINALITY_LIMIT = 10
MISSING_CHANGE = 0.05  # absolute change in the missing share that is reported as a change
N_BINS = 30  # Evidently's n_bins for PSI / JS (numeric columns with > 20 values use Sturges instead)

TESTS = {
    "ks": {"name": "K-S p_value", "threshold": P_THRESHOLD, "kind": "p_value"},
    "chisquare": {"name": "chi-square p_value", "threshold": P_THRESHOLD, "kind": "p_value"},
    "z": {"name": "Z-test p_value", "threshold": P_THRESHOLD, "kind": "p_value"},
    "wasserstein": {"name": "Wasserstein distance (normed)", "threshold": DISTANCE_THRESHOLD, "kind": "distance"},
    "jensenshannon": {"name": "Jensen-Shannon distance", "threshold": DISTANCE_THRESHOLD, "kind": "distance"},
}


# ---- column kinds -----------------------------------------------------------------------------------

def column_kind(s) -> str:
    """numeric | categorical | text | datetime | unknown (Evidently's ``infer_column_type``)."""
    name = s.dtype.name
    if name.startswith(("float", "Float")):
        return "numeric"
    if name.startswith(("int", "Int", "uint", "UInt")):
        return "categorical" if s.nunique() <= INTEGER_CARDINALITY_LIMIT else "numeric"
    if name in ("bool", "boolean", "category"):
        return "categorical"
    if name.startswith("datetime"):
        return "datetime"
    if name in ("string", "str", "object") or name.startswith("string"):
        non_na = s.dropna()
        if non_na.empty:
            return "unknown"
        if name == "object" and not (isinstance(non_na.iloc[0], str) and isinstance(non_na.iloc[-1], str)):
            return "unknown"
        return "text" if s.nunique() > s.count() * 0.5 else "categorical"
    return "unknown"


def _is_numeric_dtype(s) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _clean(s, na=None):
    """The values a test sees: missing and ±inf dropped (``na``: the column's missing mask, if known)."""
    if _is_numeric_dtype(s):
        a = s.to_numpy(dtype="float64", na_value=np.nan)
        return a[np.isfinite(a)]
    a = s.to_numpy(dtype=object)
    return a[~(s.isna().to_numpy() if na is None else na)]


def _n_unique_at_most(ref, cur, k: int) -> bool:
    """Is the number of distinct values of ref ∪ cur at most k? (a head sample answers 'no' cheaply)"""
    import pandas as pd

    head = pd.unique(np.concatenate([np.asarray(ref[:4096]), np.asarray(cur[:4096])]))
    if len(head) > k:
        return False
    return len(pd.unique(np.concatenate([np.asarray(ref), np.asarray(cur)]))) <= k


def choose_test(ref, cur, kind: str, ref_rows: int) -> str:
    """Evidently's default test for a column (``_get_default_stattest``); ``ref``/``cur`` are cleaned."""
    if ref_rows <= SMALL_REFERENCE:
        if kind == "numeric":
            if _n_unique_at_most(ref, cur, 5):
                return "z" if _n_unique_at_most(ref, cur, 2) else "chisquare"
            return "ks"
        return "z" if len(_counts(ref, cur)[0]) <= 2 else "chisquare"
    if kind == "numeric" and not _n_unique_at_most(ref, cur, 5):
        return "wasserstein"
    return "jensenshannon"


# ---- the statistics -------------------------------------------------------------------------------

_COUNTS: dict = {}  # one column's counts while column_drift runs (the test, PSI and new categories share them)


def _counts(ref, cur):
    """Aligned value counts (keys = the union of values) of two cleaned columns."""
    import pandas as pd

    key = (id(ref), id(cur))
    if key in _COUNTS:
        return _COUNTS[key]
    rc = pd.Series(ref).value_counts(dropna=True)
    cc = pd.Series(cur).value_counts(dropna=True)
    keys = rc.index.union(cc.index)
    out = keys, rc.reindex(keys, fill_value=0).to_numpy(float), cc.reindex(keys, fill_value=0).to_numpy(float)
    _COUNTS.clear()
    _COUNTS[key] = out
    return out


def ks_pvalue(ref, cur) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(np.asarray(ref, dtype=float), np.asarray(cur, dtype=float))[1])


def chisquare_pvalue(ref, cur) -> float:
    from scipy.stats import chisquare

    _, r, c = _counts(ref, cur)
    f_exp = r * (len(cur) / len(ref))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(c, f_exp)[1])


def z_pvalue(ref, cur) -> float:
    """Two-proportion Z-test on the share of the first (sorted) value, two-sided."""
    from scipy.stats import norm

    keys, r, c = _counts(ref, cur)
    if len(keys) == 1:
        return 1.0
    try:
        first = sorted(keys)[0]
    except TypeError:
        first = sorted(keys, key=str)[0]
    i = list(keys).index(first)
    n1, n2 = r.sum(), c.sum()
    p1, p2 = (n1 - r[i]) / n1, (n2 - c[i]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def wasserstein_normed(ref, cur) -> float:
    """W1(ref, cur) / max(std(ref), 0.001): scipy's value from one stable merge of the two sorted columns.

    In the merged order, the running count of reference values equals scipy's ``searchsorted(u, x, 'right')``
    wherever the next value is larger; inside a run of ties the difference to the next value is 0, so those
    terms vanish either way (same sum, no binary searches: ~5x faster than scipy on 1M rows)."""
    u = np.sort(np.asarray(ref, dtype=float))
    v = np.sort(np.asarray(cur, dtype=float))
    both = np.concatenate([u, v])
    order = np.argsort(both, kind="stable")  # two sorted runs: a merge
    merged = both[order]
    from_u = order < u.size
    ucdf = np.cumsum(from_u)[:-1] / u.size
    vcdf = np.cumsum(~from_u)[:-1] / v.size
    w = float(np.dot(np.abs(ucdf - vcdf), np.diff(merged)))
    return w / max(float(np.std(u)), 0.001)


def binned(ref, cur, kind: str, fill_zeroes: bool):
    """Evidently's ``get_binned_data``: shares per Sturges bin (numeric with > 20 values) or per value."""
    if kind == "numeric" and not _n_unique_at_most(ref, ref, 20):
        u, v = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
        edges = np.histogram_bin_edges(np.concatenate([u, v]), bins="sturges")
        rp = np.histogram(u, edges)[0] / len(u)
        cp = np.histogram(v, edges)[0] / len(v)
    else:
        _, r, c = _counts(ref, cur)
        rp, cp = r / len(ref), c / len(cur)
    if fill_zeroes:  # Evidently's "feel_zeroes": an empty bin gets a tiny share so the log is finite
        for p in (rp, cp):
            nz = p[p != 0]
            if len(nz) and len(nz) < len(p):
                m = nz.min()
                p[p == 0] = m / 10**6 if m <= 0.0001 else 0.0001
    return rp, cp


def jensenshannon_distance(ref, cur, kind: str) -> float:
    from scipy.spatial import distance

    rp, cp = binned(ref, cur, kind, fill_zeroes=False)
    return float(distance.jensenshannon(rp, cp))


def psi(ref, cur, kind: str) -> float:
    rp, cp = binned(ref, cur, kind, fill_zeroes=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (rp - cp) * np.log(rp / cp)
    return float(np.nansum(v))


def run_test(test: str, ref, cur, kind: str) -> float:
    if test == "ks":
        return ks_pvalue(ref, cur)
    if test == "chisquare":
        return chisquare_pvalue(ref, cur)
    if test == "z":
        return z_pvalue(ref, cur)
    if test == "wasserstein":
        return wasserstein_normed(ref, cur)
    return jensenshannon_distance(ref, cur, kind)


def is_drift(test: str, statistic: float) -> bool:
    t = TESTS[test]
    if math.isnan(statistic):
        return False
    if test == "ks":
        return statistic <= t["threshold"]
    if t["kind"] == "p_value":
        return statistic < t["threshold"]
    return statistic >= t["threshold"]


# ---- one column, one table ------------------------------------------------------------------------

def column_drift(ref_s, cur_s, kind: str | None = None, *, plot_values: bool = False) -> dict:
    """The drift record of one column: test, statistic, threshold, verdict, PSI, missing and new values."""
    name = str(ref_s.name)
    kind = kind or column_kind(ref_s)
    n_ref, n_cur = len(ref_s), len(cur_s)
    na_ref, na_cur = ref_s.isna().to_numpy(), cur_s.isna().to_numpy()
    miss_ref = float(na_ref.mean()) if n_ref else 0.0
    miss_cur = float(na_cur.mean()) if n_cur else 0.0
    out = {"column": name, "kind": kind, "test": None, "test_name": None, "statistic": None, "threshold": None,
           "drifted": False, "psi": None, "skipped": None,
           "missing": {"reference": round(miss_ref, 6), "current": round(miss_cur, 6),
                       "changed": abs(miss_cur - miss_ref) >= MISSING_CHANGE},
           "new_categories": None}
    if kind not in ("numeric", "categorical"):
        out["skipped"] = {"text": "text or identifier-like (more than half the values distinct): not tested",
                          "datetime": "datetime: not tested", "unknown": "values of no testable kind"}[kind]
        return out
    if kind == "numeric" and not (_is_numeric_dtype(ref_s) and _is_numeric_dtype(cur_s)):
        out["skipped"] = "numeric in one table, not in the other"
        return out
    ref, cur = _clean(ref_s, na_ref), _clean(cur_s, na_cur)
    try:
        return _tested(out, ref, cur, kind)
    finally:
        _COUNTS.clear()


def _tested(out: dict, ref, cur, kind: str) -> dict:
    if len(ref) == 0 or len(cur) == 0:
        out["skipped"] = f"no values in the {'reference' if len(ref) == 0 else 'current'} table"
        return out
    test = choose_test(ref, cur, kind, len(ref))
    stat = run_test(test, ref, cur, kind)
    out.update(test=test, test_name=TESTS[test]["name"], statistic=stat, threshold=TESTS[test]["threshold"],
               drifted=is_drift(test, stat), psi=psi(ref, cur, kind))
    if kind == "categorical":
        keys, r, c = _counts(ref, cur)
        new = [(k, int(cnt)) for k, rr, cnt in zip(keys, r, c) if rr == 0 and cnt > 0]
        new.sort(key=lambda kv: -kv[1])
        out["new_categories"] = {"count": len(new), "rows": int(sum(c for _, c in new)),
                                 "share": round(sum(c for _, c in new) / max(1, len(cur)), 6),
                                 "values": [str(k)[:60] for k, _ in new[:10]]}
    return out


def align(ref_df, cur_df, columns: list[str] | None = None) -> list[str]:
    """The columns to compare; a UsageError naming the columns when the schemas do not line up."""
    if columns:
        miss_r = [c for c in columns if c not in ref_df.columns]
        miss_c = [c for c in columns if c not in cur_df.columns]
        if miss_r or miss_c:
            raise UsageError(_misaligned(miss_r, miss_c))
        cols = list(columns)
    else:
        only_r = [c for c in ref_df.columns if c not in cur_df.columns]
        only_c = [c for c in cur_df.columns if c not in ref_df.columns]
        if only_r or only_c:
            raise UsageError(_misaligned(only_c, only_r) + "; pass --columns to compare the shared ones")
        cols = list(ref_df.columns)
    bad = [c for c in cols if _is_numeric_dtype(ref_df[c]) != _is_numeric_dtype(cur_df[c])
           and not (ref_df[c].isna().all() or cur_df[c].isna().all())]
    if bad:
        raise UsageError("columns numeric in one table and not in the other: " + ", ".join(bad)
                         + " (fix their types, or leave them out with --columns)")
    return cols


def _misaligned(not_in_ref: list[str], not_in_cur: list[str]) -> str:
    parts = []
    if not_in_ref:
        parts.append("not in the reference: " + ", ".join(map(str, not_in_ref[:20])))
    if not_in_cur:
        parts.append("not in the current table: " + ", ".join(map(str, not_in_cur[:20])))
    return "the schemas do not line up: " + "; ".join(parts)


def dataset_drift(ref_df, cur_df, columns: list[str] | None = None, *, target: str | None = None,
                  drift_share: float = DRIFT_SHARE) -> dict:
    """Per-column drift over ``columns`` (all shared ones by default; the target apart), the drifted
    share, dataset drift (share ≥ ``drift_share``) and, with ``target``, the target's own drift."""
    cols = align(ref_df, cur_df, columns)
    if target is not None:
        align(ref_df, cur_df, [target])
    feature_cols = [c for c in cols if c != target]
    per = [column_drift(ref_df[c], cur_df[c]) for c in feature_cols]
    tested = [r for r in per if r["test"]]
    n_drift = sum(r["drifted"] for r in tested)
    share = n_drift / len(tested) if tested else 0.0
    tgt = column_drift(ref_df[target], cur_df[target]) if target is not None else None
    return {"reference_rows": int(len(ref_df)), "current_rows": int(len(cur_df)),
            "columns": per, "tested": len(tested), "drifted": n_drift, "drifted_share": share,
            "drift_share_threshold": drift_share, "dataset_drift": bool(tested) and share >= drift_share,
            "target": tgt,
            "missing_changed": [r["column"] for r in per if r["missing"]["changed"]],
            "new_categories": [r["column"] for r in per if (r["new_categories"] or {}).get("count")]}


def most_drifted(columns: list[dict], k: int = 4) -> list[dict]:
    """The drifted columns first, then the rest, by how far past (or near) their threshold they are."""
    def score(r):
        s, t = r["statistic"], r["threshold"]
        if s is None:
            return -1.0
        if TESTS[r["test"]]["kind"] == "p_value":
            return -math.log10(max(s, 1e-300)) / -math.log10(t)
        return s / t
    return sorted([r for r in columns if r["test"]], key=lambda r: (not r["drifted"], -score(r)))[:k]
