"""Honest splits for validate: the sealed holdout and the cross-validation schemes.

* ``carve_holdout``: the sealed holdout, derived only from the data object's content hash and the
  split choices (target, ``--time``, ``--group``, fraction), so the same object always gets the same
  seal. With a time column it is the latest rows (every row at the cut-off time goes to the holdout, so
  no timestamp straddles the seal); with a group column whole groups go to it; otherwise it is
  stratified by the target (classification) or a seeded random share (regression).
* ``purged_kfold``: López de Prado's purged K-fold with an embargo (Advances in Financial Machine
  Learning, ch. 7). Each row ``i`` has a prediction time ``t0[i]`` and a label time ``t1[i] = t0[i] +
  horizon``. Folds are contiguous blocks of time-ordered rows. For a test block ``[s, e)``, training
  rows before it whose label interval reaches into it (``t1[i] >= t0[s]``) are *purged*, training rows
  after it whose prediction time falls inside its label span (``t0[i] <= max t1[test]``) are purged
  too, and the next ``embargo`` rows after that are *embargoed*. With one row per time unit and an
  embargo of E rows this is exactly timeseriescv's ``CombPurgedKFoldCV(n_test_splits=1,
  embargo_td=E units)`` (checked in tests/test_splits.py).
* ``group_kfold`` / ``stratified_kfold`` / ``plain_kfold``: the other schemes, seeded.

All functions return positions (numpy int arrays), never labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

DEFAULT_HOLDOUT = 0.2
DEFAULT_EMBARGO = 0.01  # share of CV rows embargoed after each test fold


@dataclass
class Fold:
    train: np.ndarray
    test: np.ndarray
    purged: int = 0
    embargoed: int = 0


@dataclass
class Seal:
    seal_id: str
    seed: int
    cv: np.ndarray  # positions in the original frame
    holdout: np.ndarray
    rows_hash: str  # sha256 over the holdout rows' own hashes (order-free)
    info: dict = field(default_factory=dict)


# ---- the seal -------------------------------------------------------------------------------------

def seal_id_for(content_hash: str, target: str, time_col: str | None, group_col: str | None,
                fraction: float = DEFAULT_HOLDOUT) -> str:
    key = f"{content_hash}|target={target}|time={time_col or ''}|group={group_col or ''}|fraction={fraction:g}"
    return "seal-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def seed_of(seal_id: str) -> int:
    return int(hashlib.sha256(seal_id.encode()).hexdigest()[:8], 16)


def row_hashes(df) -> np.ndarray:
    """One uint64 per row over all its values (column order as given), index ignored."""
    import pandas as pd

    return pd.util.hash_pandas_object(df, index=False).to_numpy()


def rows_hash(hashes: np.ndarray) -> str:
    return "sha256:" + hashlib.sha256(np.sort(np.asarray(hashes, dtype=np.uint64)).tobytes()).hexdigest()


def time_values(s):
    """A time column as float64 nanoseconds (datetimes) or float (numbers); None where it does not parse."""
    import warnings

    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(s):
        return pd.to_datetime(s).astype("int64").astype("float64").where(s.notna()).to_numpy(), "datetime"
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.astype("float64").to_numpy(), "numeric"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = pd.to_datetime(s, errors="coerce", format="mixed")
    if d.notna().sum() < s.notna().sum() or s.notna().sum() == 0:
        return None, "unparsed"
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_convert("UTC").dt.tz_localize(None)
    return d.astype("int64").astype("float64").where(d.notna()).to_numpy(), "datetime"


def horizon_value(horizon, kind: str) -> float:
    """--horizon as the time column's units: a pandas Timedelta string ('7D', '12h') for datetimes,
    a number for numeric time columns. Empty means 0 (the label is known at prediction time)."""
    import pandas as pd

    if horizon in (None, "", 0, "0"):
        return 0.0
    if kind == "datetime":
        try:
            td = pd.Timedelta(str(horizon))
        except Exception:
            try:
                td = pd.Timedelta(days=float(horizon))
            except Exception:
                raise ValueError(f"--horizon {horizon!r} is not a duration (e.g. 7D, 12h, 30min)")
        return float(td.value)
    try:
        return float(horizon)
    except ValueError:
        raise ValueError(f"--horizon {horizon!r} must be a number in the time column's units")


def _rows_by_class(y) -> list[np.ndarray]:
    """Row positions per class, classes in the order of their string form ("<NA>" for missing), as the
    seal has always drawn them. The strings are made from each distinct value once, not per row."""
    import pandas as pd

    codes, _ = pd.factorize(y, use_na_sentinel=False)
    _, first = np.unique(codes, return_index=True)
    names = y.iloc[first].astype("string").fillna("<NA>").to_numpy(dtype=object)  # code k's string form
    pos = np.arange(len(codes))
    return [pos[np.isin(codes, np.flatnonzero(names == cls))] for cls in sorted(set(names))]


def carve_holdout(df, target: str, task: str, *, content_hash: str, time_col: str | None = None,
                  group_col: str | None = None, fraction: float = DEFAULT_HOLDOUT, t0=None) -> Seal:
    """The sealed holdout. ``t0``: the parsed time values (``time_values``) when ``time_col`` is set."""
    sid = seal_id_for(content_hash, target, time_col, group_col, fraction)
    seed = seed_of(sid)
    n = len(df)
    pos = np.arange(n)
    n_hold = max(1, int(round(fraction * n)))
    y = df[target]
    if time_col is not None:
        order = np.argsort(t0, kind="mergesort")
        cut_time = t0[order[n - n_hold]]
        hold_mask = t0 >= cut_time
        if hold_mask.all():  # everything shares one timestamp: nothing earlier to train on
            raise ValueError(f"--time {time_col}: the latest {fraction:.0%} of rows cover every timestamp")
        how = f"latest rows by {time_col} (from the cut-off time on)"
    elif group_col is not None:
        from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

        k = max(2, int(round(1 / fraction)))
        groups = df[group_col].astype("string").fillna("<NA>").to_numpy()
        if task == "classification":
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed % (2**31))
            _, test = next(splitter.split(pos, y.astype("string").fillna("<NA>"), groups))
        else:
            splitter = GroupKFold(n_splits=k, shuffle=True, random_state=seed % (2**31))
            _, test = next(splitter.split(pos, None, groups))
        hold_mask = np.zeros(n, bool)
        hold_mask[test] = True
        how = f"whole groups of {group_col}" + (", stratified by target" if task == "classification" else "")
    else:
        rng = np.random.default_rng(seed)
        hold_mask = np.zeros(n, bool)
        if task == "classification":
            # per class, the same share (at least one row of every class with 2+ rows)
            for idx in _rows_by_class(y):
                take = int(round(fraction * len(idx)))
                if take == 0 and len(idx) >= 2:
                    take = 1
                hold_mask[rng.permutation(idx)[:take]] = True
            how = "stratified by target"
        else:
            hold_mask[rng.permutation(pos)[:n_hold]] = True
            how = "seeded random rows"
    holdout, cv = pos[hold_mask], pos[~hold_mask]
    rh = rows_hash(row_hashes(df.iloc[holdout]))
    return Seal(sid, seed, cv, holdout, rh,
                {"how": how, "fraction": fraction, "rows": int(len(holdout)), "cv_rows": int(len(cv))})


def purge_before_holdout(t0_cv: np.ndarray, t1_cv: np.ndarray, holdout_start: float) -> np.ndarray:
    """Mask of CV rows to keep: those whose label interval ends before the holdout's first prediction time."""
    return t1_cv < holdout_start


# ---- cross-validation schemes --------------------------------------------------------------------

def purged_kfold(t0: np.ndarray, t1: np.ndarray, n_splits: int, embargo: int) -> list[Fold]:
    """Purged K-fold with embargo over rows already sorted by ``t0`` (non-decreasing).

    ``t1[i] >= t0[i]`` is the time the label of row ``i`` becomes known; ``embargo`` a row count."""
    t0 = np.asarray(t0, dtype="float64")
    t1 = np.asarray(t1, dtype="float64")
    n = len(t0)
    if n_splits < 2 or n_splits > n:
        raise ValueError(f"purged K-fold needs 2 <= folds <= rows ({n}), got {n_splits}")
    if np.any(np.diff(t0) < 0):
        raise ValueError("purged_kfold expects rows sorted by prediction time")
    idx = np.arange(n)
    folds = []
    for block in np.array_split(idx, n_splits):
        s, e = int(block[0]), int(block[-1]) + 1
        test = idx[s:e]
        before = idx[:s]
        keep_before = before[t1[:s] < t0[s]]
        # rows after the block: purged while their prediction time is inside the test labels' span,
        # then `embargo` more rows are embargoed
        last_label = t1[s:e].max()
        first_clear = int(np.searchsorted(t0, last_label, side="right"))
        first_clear = max(first_clear, e)
        first_train_after = min(n, first_clear + embargo) if first_clear < n else n
        after = idx[first_train_after:]
        purged = (s - len(keep_before)) + (first_clear - e)
        embargoed = first_train_after - first_clear
        folds.append(Fold(np.concatenate([keep_before, after]), test, int(purged), int(embargoed)))
    return folds


def class_codes(y) -> np.ndarray:
    """Labels as StratifiedKFold should see them: as strings (1 and "1" are one class). Integer and
    boolean labels are coded by first appearance instead, which is how StratifiedKFold encodes classes
    anyway, so the folds are the same without converting and sorting 100,000 strings."""
    import pandas as pd

    y = np.asarray(y)
    if y.dtype.kind in "biu":
        return pd.factorize(y)[0]
    return y.astype(str)


def stratified_kfold(y, n_splits: int, seed: int) -> list[Fold]:
    from sklearn.model_selection import StratifiedKFold

    y = class_codes(y)
    sk = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed % (2**31))
    return [Fold(tr, te) for tr, te in sk.split(np.zeros(len(y)), y)]


def group_kfold(groups, n_splits: int, seed: int, y=None) -> list[Fold]:
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    groups = np.asarray(groups).astype(str)
    X = np.zeros(len(groups))
    if y is not None:
        sk = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed % (2**31))
        it = sk.split(X, np.asarray(y).astype(str), groups)
    else:
        sk = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed % (2**31))
        it = sk.split(X, None, groups)
    return [Fold(tr, te) for tr, te in it]


def plain_kfold(n: int, n_splits: int, seed: int) -> list[Fold]:
    from sklearn.model_selection import KFold

    sk = KFold(n_splits=n_splits, shuffle=True, random_state=seed % (2**31))
    return [Fold(tr, te) for tr, te in sk.split(np.zeros(n))]


def max_folds(task: str, y=None, groups=None, n: int = 0, scheme: str = "") -> int:
    """The most folds the CV rows allow for a scheme (for the exit-2 check)."""
    import pandas as pd

    if scheme == "group_kfold":
        return int(pd.Series(groups).nunique())
    if scheme == "stratified_kfold":
        return int(pd.Series(y).value_counts().min())
    if scheme == "purged_kfold":
        return n // 2
    return n
