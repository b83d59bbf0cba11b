"""The seal the search never sees.

``validate`` seals a holdout derived only from the data object's content hash and the split choices
(target, ``--time``, ``--group``, holdout share): ``splits.seal_id_for`` names it and
``validate.sealed`` carves it. The search leaves out exactly those rows before anything is staged for a
candidate, so a later ``validate --model OptimizeFlow/N`` on the same data object scores the search's
best on rows that took no part in choosing it. The carving is validate's own code (``validate.sealed``),
never a second implementation, so the two cannot drift apart.

``exclude`` returns the frame the search may use (labeled rows outside the seal, then the unlabeled rows,
which validate never seals) and the record stored in the run's ``search_config["seal"]`` and summary.
"""

from __future__ import annotations

from loom_py.runtime.errors import UsageError


def check_options(columns, target: str, time_col: str | None, group_col: str | None, holdout) -> float:
    """The seal's options against the columns (UsageError: exit 2). Returns the holdout share."""
    from loom_py.stats import splits

    cols = list(columns)
    for flag, col in (("--time", time_col), ("--group", group_col)):
        if col and col not in cols:
            raise UsageError(f"unknown {flag} column '{col}': columns are {', '.join(map(str, cols[:30]))}")
        if col and col == target:
            raise UsageError(f"{flag} cannot be the target column")
    if time_col and group_col:
        raise UsageError("pass --time or --group, not both (the seal is the latest rows, or whole groups)")
    share = float(holdout) if holdout not in (None, "", 0, "0") else splits.DEFAULT_HOLDOUT
    if not 0.05 <= share <= 0.5:
        raise UsageError(f"--holdout must be a share between 0.05 and 0.5, got {share}")
    return share


def exclude(df, target: str, task: str, content_hash: str, *, time_col: str | None = None,
            group_col: str | None = None, holdout: float | None = None):
    """(the frame without the sealed rows, the seal record). Same rows as ``validate`` seals for the same
    data object and options (its ``seal_key`` / ``sealed``)."""
    import numpy as np
    import pandas as pd

    from loom_py.stats import splits
    from loom_py.verbs.validate import seal_key, sealed

    share = check_options(df.columns, target, time_col, group_col, holdout)
    params = {"target": target, "time": time_col or None, "group": group_col or None, "holdout": share}
    sid = splits.seal_id_for(content_hash, *seal_key(params))
    opts = {"target": target, "task": task, "time": params["time"], "group": params["group"], "holdout": share,
            "horizon": 0.0}
    if time_col:
        t0, _ = splits.time_values(df[time_col])
        if t0 is None or np.isnan(t0[df[target].notna().to_numpy()]).any():
            raise UsageError(f"--time {time_col} does not parse as dates or numbers on every row: pick an ordering column")
    try:
        s = sealed(df, opts, content_hash)
    except ValueError as e:
        raise UsageError(str(e))
    seal = s["seal"]
    assert seal.seal_id == sid  # validate's id for these options
    labeled = s["df"]
    keep = np.ones(len(labeled), dtype=bool)
    keep[seal.holdout] = False
    unlabeled = df[df[target].isna()]
    out = pd.concat([labeled[keep], unlabeled], ignore_index=True) if len(unlabeled) else \
        labeled[keep].reset_index(drop=True)
    record = {"id": seal.seal_id, "how": seal.info.get("how"), "fraction": share, "time": params["time"],
              "group": params["group"], "rows_excluded": int(len(seal.holdout)), "rows_hash": seal.rows_hash,
              "rows_searched": int(keep.sum()), "rows_unlabeled": int(len(unlabeled))}
    return out, record
