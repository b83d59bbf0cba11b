"""Event data → sequences: find the entity / time / event columns, order each entity's events by time,
and hold out the last event of each sequence for evaluation.

Pure functions on plain DataFrames (pytest-tested); both the launcher (prepare: bad input → exit 2 before
a run) and the TrainFlow step use them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loom_py.runtime.errors import UsageError

ENTITY_NAMES = re.compile(r"^(entity|user|users|customer|client|account|session|device|visitor|member|patient|actor)"
                          r"(_?id|_?key)?$|_(user|customer|session|entity|account)(_id)?$")
TIME_NAMES = re.compile(r"^(time|timestamp|ts|datetime|date|event_time|event_ts|created(_at)?|occurred(_at)?|when|seq|step|order|t)$"
                        r"|_(time|timestamp|ts|at|date)$")
EVENT_NAMES = re.compile(r"^(event|events|event_type|event_name|action|activity|item|item_id|token|page|product|sku|"
                         r"category|type|name|code|kind|verb)$|^(event|action|item|activity)_")
MIN_SEQ_FOR_EVAL = 3  # two events of context, one held out


@dataclass
class Columns:
    entity: str
    time: str | None
    event: str
    notes: list[str]


def _cols_hint(df) -> str:
    cols = [str(c) for c in df.columns]
    return ", ".join(cols[:20]) + (" …" if len(cols) > 20 else "")


def _check_given(df, col, flag):
    if col is not None and col not in df.columns:
        raise UsageError(f"column '{col}' (--{flag}) is not in the data object (columns: {_cols_hint(df)})")


def _is_time_like(s) -> bool:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(s):
        return True
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return True
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        sample = s.dropna().astype(str).head(500)
        if len(sample) and sample.str.match(r"^\d{4}-\d{1,2}-\d{1,2}").mean() > 0.9:
            return True
    return False


def detect_columns(df, *, objective: str, entity: str | None = None, time: str | None = None,
                   event: str | None = None) -> Columns:
    """Given columns are checked; missing ones are guessed by name and shape, else a UsageError."""
    _check_given(df, entity, "entity")
    _check_given(df, time, "time")
    _check_given(df, event, "event")
    notes: list[str] = []
    n = len(df)
    taken = {c for c in (entity, time, event) if c}

    if time is None:
        named = [c for c in df.columns if c not in taken and TIME_NAMES.search(str(c).lower()) and _is_time_like(df[c])]
        dated = [c for c in df.columns if c not in taken and str(df[c].dtype).startswith("datetime")]
        cand = named or dated
        if cand:
            time = cand[0]
            notes.append(f"time column guessed: {time} (pass --time to choose)")
            taken.add(time)
        elif objective == "next-event":
            raise UsageError(f"could not guess the time column: pass --time COL (columns: {_cols_hint(df)})")
        else:
            notes.append("no time column: each entity's events are taken in row order")

    def repeated(c):
        nu = df[c].nunique(dropna=True)
        return 2 <= nu < n

    if entity is None:
        cand = [c for c in df.columns if c not in taken and ENTITY_NAMES.search(str(c).lower()) and repeated(c)]
        if not cand:
            cand = [c for c in df.columns if c not in taken and str(c).lower().endswith("id") and repeated(c)]
        if not cand:
            raise UsageError(f"could not guess the entity column (whose sequences these are): pass --entity COL "
                             f"(columns: {_cols_hint(df)})")
        entity = cand[0]
        notes.append(f"entity column guessed: {entity} (pass --entity to choose)")
        taken.add(entity)

    if event is None:
        def tokenish(c):
            s = df[c]
            return (s.dtype == object or str(s.dtype) in ("category", "string") or
                    (str(s.dtype).startswith("int") and s.nunique() < max(50, n // 20))) and s.nunique(dropna=True) >= 2

        cand = [c for c in df.columns if c not in taken and EVENT_NAMES.search(str(c).lower()) and tokenish(c)]
        if not cand:
            cand = sorted((c for c in df.columns if c not in taken and tokenish(c) and df[c].dtype == object),
                          key=lambda c: df[c].nunique())
        if not cand:
            raise UsageError(f"could not guess the event column (the tokens to embed): pass --event COL "
                             f"(columns: {_cols_hint(df)})")
        event = cand[0]
        notes.append(f"event column guessed: {event} (pass --event to choose)")

    if len({entity, time, event} - {None}) < len([c for c in (entity, time, event) if c]):
        raise UsageError("--entity, --time and --event must be three different columns")
    return Columns(entity=entity, time=time, event=event, notes=notes)


@dataclass
class Sequences:
    tokens: list            # event value (str) per row, sorted by entity then time
    seq_id: "object"        # np.int64 array, the sequence index of each row
    starts: "object"        # np.int64 array, start offset of each sequence (len = n_seq + 1)
    n_events: int
    n_sequences: int
    truncated: bool


def build_sequences(df, cols: Columns, max_events: int | None = None) -> Sequences:
    """Order events per entity by time (stable: ties keep row order). With ``max_events``, keep whole
    sequences in entity order until the cap."""
    import numpy as np
    import pandas as pd

    sub = df[[c for c in (cols.entity, cols.time, cols.event) if c]].dropna(subset=[cols.entity, cols.event])
    # entities in value order (not row order): the same rows in any order give the same sequences
    ent_codes, _ = pd.factorize(sub[cols.entity].astype(str), sort=True)
    keys = [ent_codes]
    if cols.time:
        t = sub[cols.time]
        if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_datetime64_any_dtype(t)):
            t = pd.to_datetime(t, errors="coerce", format="mixed", utc=True)
            if t.isna().mean() > 0.5:
                raise UsageError(f"time column '{cols.time}' does not hold times or numbers: pass --time COL")
        missing = t.isna().to_numpy()
        if pd.api.types.is_datetime64_any_dtype(t):
            if getattr(t.dt, "tz", None) is not None:
                t = t.dt.tz_convert("UTC").dt.tz_localize(None)
            tv = t.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        else:
            tv = t.to_numpy(dtype=np.float64, na_value=np.nan)
        tv[missing] = np.inf  # unknown times sort last within their entity
        keys.insert(0, tv)
    # lexsort: last key is primary → (entity, time, row order)
    order = np.lexsort([np.arange(len(sub))] + keys) if cols.time else np.lexsort([np.arange(len(sub)), ent_codes])
    ent_sorted = ent_codes[order]
    tokens = sub[cols.event].astype(str).to_numpy()[order]
    change = np.flatnonzero(np.diff(ent_sorted)) + 1
    starts = np.concatenate([[0], change, [len(ent_sorted)]]).astype(np.int64)
    truncated = False
    if max_events and len(tokens) > max_events:
        k = int(np.searchsorted(starts, max_events, side="right")) - 1
        k = max(k, 1)
        starts = starts[:k + 1]
        tokens = tokens[:starts[-1]]
        truncated = True
    lens = np.diff(starts)
    seq_id = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
    return Sequences(tokens=tokens, seq_id=seq_id, starts=starts, n_events=int(len(tokens)),
                     n_sequences=int(len(lens)), truncated=truncated)


def check_sequences(seqs: Sequences, event_col: str) -> None:
    """Bad input that makes a backbone meaningless: one event type, or nothing to hold out."""
    import numpy as np

    n_types = len(set(seqs.tokens.tolist())) if seqs.n_events else 0
    if n_types < 2:
        raise UsageError(f"the event column '{event_col}' has {n_types} event type(s): a model of event sequences needs at least 2 "
                         "(pass --event COL to pick another column)")
    lens = np.diff(seqs.starts)
    if not (lens >= MIN_SEQ_FOR_EVAL).any():
        raise UsageError(f"sequences too short to hold out: every entity has fewer than {MIN_SEQ_FOR_EVAL} events "
                         f"(longest: {int(lens.max()) if len(lens) else 0}); pass --entity COL to group differently")
