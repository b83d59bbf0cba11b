"""What eda knows, before the search: run the leakage checks (stats.leakage, the same as eda and features)
on the search's input and drop the flagged columns, so a target copy cannot win the search with a
near-perfect score. ``--keep-leaky`` opts out (recorded in the summary). Columns a features object carries
for slicing (``carried_columns``) are never model inputs and are dropped first."""

from __future__ import annotations


def screen(df, target: str, *, keep_leaky: bool = False, carried=(), seed: int = 0):
    """(frame the search sees, record). The record: flags found, columns dropped, whether kept on request."""
    from loom_py.stats import leakage

    carried = [c for c in carried or [] if c in df.columns and c != target]
    work = df.drop(columns=carried)
    flags = [f for f in leakage.find_leaks(work, target, seed=seed) if f["reason"] != "identifier"]
    flagged = [f["column"] for f in flags]
    record = {"checked_by": "stats.leakage.find_leaks (eda's checks)", "keep_leaky": bool(keep_leaky),
              "flags": [{"column": f["column"], "reason": f["reason"]} for f in flags],
              "dropped": [] if keep_leaky else flagged, "carried_dropped": carried}
    if flagged and not keep_leaky:
        work = work.drop(columns=[c for c in work.columns if str(c) in set(flagged)])
    return work, record


def messages(record: dict) -> list[str]:
    out = []
    what = ", ".join(f"{f['column']} ({f['reason']})" for f in record["flags"])
    if record["flags"] and not record["keep_leaky"]:
        out.append(f"dropped for leakage before the search: {what} (pass --keep-leaky to search with them)")
    elif record["flags"]:
        out.append(f"--keep-leaky: searched WITH columns flagged for leakage: {what}; scores may be optimistic")
    if record["carried_dropped"]:
        out.append(f"carried for slicing, not searched on: {', '.join(record['carried_dropped'])}")
    return out
