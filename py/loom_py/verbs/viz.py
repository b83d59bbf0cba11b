"""Standard plots (matplotlib, Agg): distributions, correlation heatmap, feature vs target, missingness,
target balance, top correlations, leaderboard. Each ``*_fig`` returns a Figure with labelled axes and a
size that stays readable; categorical plots show the top categories only (the rest as "other").

``render(kind, df, ...)`` returns a list of ``(name, Figure)``; ``save(figs, out_dir)`` writes PNGs.
"""

from __future__ import annotations

import os

# the chart vocabulary cards share (Vega-Lite specs, top categories, short labels)
from loom_py.runtime.charts import TOP_CATEGORIES, short as _short, top_counts  # noqa: F401

KINDS = ("distributions", "correlation", "target", "leaderboard")
MAX_PANELS = 24
PLOT_SAMPLE = 100_000
MAX_DISTRIBUTION_FIGURES = 2  # 48 columns: a wide table's plots stay readable and take seconds (decision 0103)
HEATMAP_COLUMNS = 30
TARGET_PANELS = 12
RANK_SAMPLE = 2_000  # rows the ranking of a wide table's columns looks at


def _plt():
    import matplotlib

    if os.environ.get("MPLBACKEND") is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _sample(df, n: int = PLOT_SAMPLE, seed: int = 0):
    return df if len(df) <= n else df.sample(n=n, random_state=seed)


def _is_num(s) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def distributions_fig(df, columns: list[str] | None = None, title: str = "Distributions"):
    import numpy as np
    import pandas as pd

    from loom_py.stats.tabular import semantic_type

    plt = _plt()
    cols = [c for c in (columns or list(df.columns))][:MAX_PANELS]
    n = max(len(cols), 1)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), squeeze=False)
    d = _sample(df[cols])
    for ax, c in zip(axes.flat, cols):
        s = d[c]
        st = semantic_type(s, str(c))
        if st == "numeric":
            v = pd.to_numeric(s, errors="coerce").dropna()
            ax.hist(v, bins=min(40, max(5, v.nunique())), color="#4C72B0", edgecolor="white")
            ax.set_xlabel(_short(c))
            ax.set_ylabel("rows")
        elif st == "datetime":
            v = pd.to_datetime(s, errors="coerce", format="mixed").dropna()
            ax.hist(v, bins=30, color="#55A868", edgecolor="white")
            ax.set_xlabel(_short(c))
            ax.set_ylabel("rows")
            ax.tick_params(axis="x", labelrotation=30)
        else:
            vc = top_counts(s, 10)
            ax.barh([_short(i, 18) for i in vc.index[::-1]], vc.values[::-1], color="#8172B2")
            ax.set_xlabel("rows")
            ax.set_ylabel(_short(c))
        ax.set_title(f"{_short(c, 30)} ({st})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(cols):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def association_matrix(df, columns: list[str]):
    """Symmetric matrix of |Pearson| for numeric pairs, Cramér's V for categorical pairs, correlation
    ratio for mixed pairs (on a sample)."""
    import numpy as np
    import pandas as pd

    from loom_py.stats.leakage import cramers_v_corrected, bin_codes, correlation_ratio, pearson

    d = _sample(df[columns])
    k = len(columns)
    m = np.eye(k)
    num = {c: _is_num(d[c]) for c in columns}
    codes = {}
    for i, a in enumerate(columns):
        for j in range(i + 1, k):
            b = columns[j]
            if num[a] and num[b]:
                x = d[[a, b]].apply(pd.to_numeric, errors="coerce").dropna()
                v = abs(pearson(x[a].to_numpy(dtype="float64"), x[b].to_numpy(dtype="float64"))) if len(x) > 2 else 0.0
            elif not num[a] and not num[b]:
                ca = codes.setdefault(a, bin_codes(d[a])[0])
                cb = codes.setdefault(b, bin_codes(d[b])[0])
                v = cramers_v_corrected(ca, cb)
            else:
                cat, nu = (a, b) if not num[a] else (b, a)
                x = pd.to_numeric(d[nu], errors="coerce").to_numpy(dtype="float64")
                ok = np.isfinite(x)
                cc = codes.setdefault(cat, bin_codes(d[cat])[0])
                v = float(np.sqrt(correlation_ratio(cc[ok], x[ok]))) if ok.sum() > 2 else 0.0
            m[i, j] = m[j, i] = 0.0 if v != v else v
    return m


def correlation_fig(df, columns: list[str], title: str = "Association heatmap"):
    plt = _plt()
    cols = columns[:HEATMAP_COLUMNS]
    m = association_matrix(df, cols)
    size = max(4.5, 0.42 * len(cols) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(cols)), [_short(c, 16) for c in cols], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(cols)), [_short(c, 16) for c in cols], fontsize=7)
    if len(cols) <= 15:
        for i in range(len(cols)):
            for j in range(len(cols)):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if m[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, label="|Pearson| · Cramér's V · correlation ratio")
    ax.set_xlabel("column")
    ax.set_ylabel("column")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def feature_target_fig(df, target: str, columns: list[str], task: str, title: str = "Features vs target"):
    import numpy as np
    import pandas as pd

    from loom_py.stats.tabular import semantic_type

    plt = _plt()
    cols = columns[:TARGET_PANELS]
    n = max(len(cols), 1)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.2 * nrow), squeeze=False)
    d = _sample(df[cols + [target]].dropna(subset=[target]), 20_000)
    y = d[target]
    d = d.copy()
    for ax, c in zip(axes.flat, cols):
        st = semantic_type(d[c], str(c))
        if st == "datetime":  # compare by period (quarters), missing kept as its own level
            dt = pd.to_datetime(d[c], errors="coerce", format="mixed")
            d[c] = dt.dt.to_period("Q").astype(str).where(dt.notna(), None)
            st = "categorical"
        if task == "classification":
            classes = top_counts(y, 8).index.tolist()
            if st == "numeric":
                x = pd.to_numeric(d[c], errors="coerce")
                data = [x[y.astype(str) == k].dropna().to_numpy() for k in classes if k not in ("(other)", "(missing)")]
                labels = [_short(k, 12) for k in classes if k not in ("(other)", "(missing)")]
                ax.boxplot(data, tick_labels=labels, showfliers=False)
                ax.set_xlabel(f"{_short(target)} (class)")
                ax.set_ylabel(_short(c))
            else:
                cats = top_counts(d[c], 8).index.tolist()
                xs = d[c].astype("object").where(d[c].notna(), "(missing)").astype(str)
                xs = xs.where(xs.isin(cats), "(other)")
                ct = pd.crosstab(xs, y.astype(str), normalize="index")
                ct.plot(kind="barh", stacked=True, ax=ax, legend=False, width=0.8)
                ax.set_xlabel(f"share of {_short(target)}")
                ax.set_ylabel(_short(c))
        else:
            if st == "numeric":
                x = pd.to_numeric(d[c], errors="coerce")
                ax.scatter(x, y, s=4, alpha=0.25 if len(d) > 2000 else 0.6, color="#4C72B0", rasterized=True)
                ax.set_xlabel(_short(c))
                ax.set_ylabel(_short(target))
            else:
                cats = top_counts(d[c], 10).index.tolist()
                xs = d[c].astype("object").where(d[c].notna(), "(missing)").astype(str)
                xs = xs.where(xs.isin(cats), "(other)")
                groups = [pd.to_numeric(y[xs == k], errors="coerce").dropna().to_numpy() for k in cats if (xs == k).any()]
                ax.boxplot(groups, tick_labels=[_short(k, 12) for k in cats if (xs == k).any()], vert=False, showfliers=False)
                ax.set_xlabel(_short(target))
                ax.set_ylabel(_short(c))
        ax.set_title(f"{_short(c, 30)} vs {_short(target, 20)}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(cols):]:
        ax.set_visible(False)
    if task == "classification" and cols:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        for ax in axes.flat:
            h, l = ax.get_legend_handles_labels()
            if h:
                fig.legend(h, [f"{target}={x}" for x in l], loc="upper right", fontsize=7)
                break
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def target_fig(y, task: str, target: str):
    import pandas as pd

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if task == "classification":
        vc = top_counts(y.dropna(), 20)
        ax.bar([_short(i, 14) for i in vc.index], vc.values, color="#4C72B0")
        ax.set_xlabel(f"{_short(target)} (class)")
        ax.set_ylabel("rows")
        ax.tick_params(axis="x", labelrotation=30 if len(vc) > 5 else 0)
    else:
        v = pd.to_numeric(y, errors="coerce").dropna()
        ax.hist(_sample(v.to_frame())[v.name] if len(v) > PLOT_SAMPLE else v, bins=50, color="#4C72B0", edgecolor="white")
        ax.set_xlabel(_short(target))
        ax.set_ylabel("rows")
    ax.set_title(f"Target balance: {_short(target, 40)}")
    fig.tight_layout()
    return fig


def leaderboard_fig(leaderboard: list[dict], title: str = "Leaderboard", metric: str = "score"):
    """Scores of the leaderboard entries (node, score, model, status), best first."""
    plt = _plt()
    rows = [r for r in leaderboard if isinstance(r, dict) and isinstance(r.get("score"), (int, float))]
    rows = rows[:30]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.3 * len(rows) + 1.2)))
    if not rows:
        ax.text(0.5, 0.5, "no scored entries", ha="center", va="center")
        ax.set_axis_off()
        return fig
    colors = ["#55A868" if str(r.get("status", "")).lower() in ("ok", "success", "done", "good", "completed") else "#C44E52"
              for r in rows]
    labels = [f"{r.get('node', i)}: {_short(r.get('model', ''), 28)}" for i, r in enumerate(rows)]
    ax.barh(labels[::-1], [r["score"] for r in rows][::-1], color=colors[::-1])
    lo = min(r["score"] for r in rows)
    hi = max(r["score"] for r in rows)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 0.05
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel(metric)
    ax.set_ylabel("node: model")
    ax.set_title(title)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def sort_leaderboard(leaderboard: list[dict], higher_is_better: bool = True) -> list[dict]:
    """Best first: by the producer's ``rank`` when every scored entry has one, else by score in the
    metric's direction; unscored entries (failed nodes) last."""
    scored = [r for r in leaderboard if isinstance(r, dict) and isinstance(r.get("score"), (int, float))]
    rest = [r for r in leaderboard if r not in scored]
    if scored and all(isinstance(r.get("rank"), (int, float)) for r in scored):
        return sorted(scored, key=lambda r: r["rank"]) + rest
    return sorted(scored, key=lambda r: r["score"], reverse=higher_is_better) + rest


def leaderboard_direction(data) -> tuple[bool, str]:
    """(higher_is_better, metric label) from a run's artifacts: ``metric_spec`` {direction, label}
    (OptimizeFlow), else ``direction``, else maximize."""
    spec = getattr(data, "metric_spec", None) if "metric_spec" in data else None
    if isinstance(spec, dict) and spec.get("direction"):
        return not str(spec["direction"]).lower().startswith("min"), str(spec.get("label") or spec.get("metric") or "score")
    if "direction" in data:
        return not str(data.direction).lower().startswith("min"), "score"
    return True, "score"


def plot_columns(df, target: str | None = None) -> list[str]:
    """Columns worth a plot: not identifiers, not free text, not the target."""
    from loom_py.stats.tabular import semantic_type

    return [c for c in df.columns if c != target and semantic_type(df[c], str(c)) not in ("identifier", "text")]


def rank_columns(df, columns: list[str], target: str | None = None, seed: int = 0) -> list[str]:
    """The columns, most informative first. With a target: by bias-corrected Cramér's V between the
    column's and the target's codes (quantile bins for numerics, categories otherwise, missing its own
    code — one measure for every pair of types); without one, or on ties: by the share of rows with a
    value times the normalised entropy of the codes (a constant column scores 0). On a row sample."""
    import numpy as np

    from loom_py.stats.leakage import bin_codes, cramers_v_corrected

    if not columns:
        return []
    d = df[columns + ([target] if target and target not in columns else [])]
    d = d if len(d) <= RANK_SAMPLE else d.sample(n=RANK_SAMPLE, random_state=seed)
    t_codes = None
    if target:
        t = d[target]
        d = d[t.notna()]
        t_codes = bin_codes(d[target])[0] if len(d) > 1 else None
    # numeric columns in one block, binned with numpy (per-column pandas calls cost ~1 ms each: 10 s on
    # 10,000 columns); the others through leakage.bin_codes
    num = [c for c in columns if _is_num(d[c])]
    block = d[num].to_numpy(dtype="float64", na_value=np.nan) if num else None
    where = {c: i for i, c in enumerate(num)}
    scores = {}
    for c in columns:
        if c in where:
            codes, k, present = _quantile_codes(block[:, where[c]])
        else:
            codes, k = bin_codes(d[c])
            present = float(d[c].notna().mean()) if len(d) else 0.0
        p = np.bincount(codes, minlength=k) / max(len(codes), 1)
        p = p[p > 0]
        spread = float(-(p * np.log(p)).sum() / np.log(len(p))) if len(p) > 1 else 0.0
        spread *= present
        assoc = 0.0
        if t_codes is not None and len(p) > 1:
            v = cramers_v_corrected(codes, t_codes)
            assoc = 0.0 if v != v else float(v)
        scores[c] = (assoc, spread)
    return sorted(columns, key=lambda c: scores[c], reverse=True)


def _quantile_codes(x, bins: int = 32):
    """(codes, n_codes, share present) of a float array: quantile bins 1…, missing 0."""
    import numpy as np

    ok = np.isfinite(x)
    codes = np.zeros(len(x), dtype=np.int64)
    if ok.any():
        edges = np.unique(np.quantile(x[ok], np.linspace(0, 1, bins + 1)[1:-1]))
        codes[ok] = np.searchsorted(edges, x[ok], side="right") + 1
    return codes, int(codes.max()) + 1 if len(codes) else 1, float(ok.mean()) if len(x) else 0.0


def render_all(df, kinds: list[str], *, target: str | None = None, label: str = ""):
    """(figures, notes) for the data kinds: ±inf counted as missing, a target with no values plotted
    without its target plots, and on a wide table only the most informative columns plotted
    (``rank_columns``), with a note of how many were left out."""
    from loom_py.stats.tabular import hashable_frame, infer_task, infinite_note, infinite_to_missing

    notes = []
    df, counts = infinite_to_missing(hashable_frame(df))
    if (n := infinite_note(counts)):
        notes.append(n)
    if target and "target" in kinds and not df[target].notna().any():
        kinds = [k for k in kinds if k != "target"]
        notes.append(f"target '{target}' has no values: its plots were left out")
    cols = plot_columns(df, target)
    has_target = bool(target) and bool(df[target].notna().any())
    # ranking costs a pass over the columns: only when some are left out, or to order features by the target
    ranked = rank_columns(df, cols, target if has_target else None) \
        if len(cols) >= HEATMAP_COLUMNS or "target" in kinds else cols
    figs = []
    for kind in kinds:
        if kind == "distributions":
            keep = ranked[:MAX_PANELS * MAX_DISTRIBUTION_FIGURES] if len(cols) > MAX_PANELS * MAX_DISTRIBUTION_FIGURES else cols
            for i in range(0, max(len(keep), 1), MAX_PANELS):
                figs.append((f"distributions_{i // MAX_PANELS + 1}",
                             distributions_fig(df, keep[i:i + MAX_PANELS], f"Distributions {label}".strip())))
            if len(keep) < len(cols):
                notes.append(f"distributions: plotted the {len(keep)} most informative of {len(cols)} columns; "
                             f"{len(cols) - len(keep)} left out")
        elif kind == "correlation":
            keep = (ranked if len(cols) > HEATMAP_COLUMNS else cols)[:HEATMAP_COLUMNS - (1 if target else 0)]
            figs.append(("correlation", correlation_fig(df, keep + ([target] if target else []),
                                                        f"Associations {label}".strip())))
            if len(keep) < len(cols):
                notes.append(f"association heatmap: the {len(keep)} most informative of {len(cols)} columns")
        elif kind == "target":
            task = infer_task(df[target])
            figs.append(("target", target_fig(df[target], task, target)))
            figs.append(("features_vs_target", feature_target_fig(df, target, ranked, task,
                                                                  f"Features vs {target} {label}".strip())))
            if len(cols) > TARGET_PANELS:
                notes.append(f"features vs target: the {TARGET_PANELS} columns most associated with '{target}' "
                             f"of {len(cols)}")
        else:
            raise ValueError(kind)
    return figs, notes


def render(kind: str, df=None, *, target: str | None = None, task: str | None = None,
           leaderboard: list[dict] | None = None, label: str = "", metric: str = "score") -> list[tuple[str, object]]:
    """(name, Figure) pairs for one kind of plot."""
    from loom_py.stats.tabular import infer_task

    if kind == "leaderboard":
        return [("leaderboard", leaderboard_fig(leaderboard or [], f"Leaderboard {label}".strip(), metric))]
    from loom_py.stats.tabular import hashable_frame

    df = hashable_frame(df)
    cols = plot_columns(df, target)
    if kind == "distributions":
        figs = []
        for i in range(0, max(len(cols), 1), MAX_PANELS):
            chunk = cols[i:i + MAX_PANELS]
            figs.append((f"distributions_{i // MAX_PANELS + 1}", distributions_fig(df, chunk, f"Distributions {label}".strip())))
        return figs
    if kind == "correlation":
        return [("correlation", correlation_fig(df, cols + ([target] if target else []), f"Associations {label}".strip()))]
    if kind == "target":
        task = task or infer_task(df[target])
        return [("target", target_fig(df[target], task, target)),
                ("features_vs_target", feature_target_fig(df, target, cols, task, f"Features vs {target} {label}".strip()))]
    raise ValueError(kind)


def save(figs: list[tuple[str, object]], out_dir: str, dpi: int = 100) -> list[str]:
    plt = _plt()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, fig in figs:
        p = os.path.join(out_dir, f"{name}.png")
        fig.savefig(p, dpi=dpi, bbox_inches="tight")
        paths.append(p)
    return paths


# ---- bridge hook ----------------------------------------------------------------------------------

def _run_dataset(run) -> str | None:
    """The data object a run was made from (its own pathspec for a data object)."""
    d = run.data
    if "data_parquet" in d:
        return run.pathspec
    for k in ("profiled_dataset", "dataset", "dataset_ref"):
        if k in d:
            v = getattr(d, k)
            if isinstance(v, str) and "/" in v:
                return v
    if "lineage" in d and isinstance(d.lineage, dict):
        for p in d.lineage.get("inputs") or []:
            if str(p).startswith(("IngestDataset/", "FeaturesFlow/")):
                return p
    return None


def prepare(params: dict) -> dict:
    from loom_py.runtime.data import resolve_dataset, resolve_run
    from loom_py.runtime.data import check_columns, light_info
    from loom_py.runtime.errors import UsageError

    ds, rs = params.get("dataset") or None, params.get("run") or None
    kind = params.get("kind") or ""
    target = params.get("target") or None
    if bool(ds) == bool(rs):
        raise UsageError("pass exactly one of --dataset PATHSPEC (a data object) or --run PATHSPEC (e.g. a run with a leaderboard)")
    if kind and kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, not '{kind}'")
    inputs = []
    source_run = ""
    if rs:
        run = resolve_run(rs, None, what="run", require_success=False)
        has_lb = "leaderboard" in run.data
        if kind == "leaderboard" or (not kind and has_lb):
            if not has_lb:
                raise UsageError(f"{rs} holds no leaderboard artifact: pass an optimize run (e.g. OptimizeFlow/N)")
            lb = run.data.leaderboard
            if not isinstance(lb, list):
                raise UsageError(f"{rs}'s leaderboard is not a list of entries: it cannot be plotted")
            return {"params": {"source_run": rs, "kind": "leaderboard", "dataset": "", "target": ""}, "inputs": [rs]}
        if not run.successful:
            raise UsageError(f"{rs} did not finish successfully: use a successful run")
        ds = _run_dataset(run)
        if not ds:
            raise UsageError(f"{rs} is neither a data object nor made from one, and holds no leaderboard: pass --dataset")
        if not target and "eda_target" in run.data and run.data.eda_target:
            target = run.data.eda_target
        source_run = rs
        inputs.append(rs)
    dsrun = resolve_dataset(ds)
    info = light_info(dsrun)
    check_columns(info, ds, target=target)
    if kind == "target" and not target:
        raise UsageError("--kind target needs --target COL (the column to plot the features against)")
    if kind == "leaderboard":
        raise UsageError("--kind leaderboard needs --run PATHSPEC of a run that holds a leaderboard (e.g. OptimizeFlow/N)")
    if not info.get("rows"):
        raise UsageError(f"{ds} has no rows: nothing to plot")
    if target:
        _target_has_values(dsrun, ds, target)
    inputs.append(ds)
    return {"params": {"dataset": ds, "source_run": source_run, "kind": kind, "target": target or ""},
            "inputs": list(dict.fromkeys(inputs))}


def _target_has_values(dsrun, ds: str, target: str) -> None:
    """Refuse (exit 2) a target with no value (all missing or ±inf): reads that one column only."""
    import io

    import pyarrow.parquet as pq

    from loom_py.runtime.errors import UsageError
    from loom_py.stats.tabular import infinite_to_missing

    try:
        col = pq.ParquetFile(io.BytesIO(dsrun.data.data_parquet)).read(columns=[target]).to_pandas()
    except Exception:
        return  # the step loads the whole table and says what is wrong with it
    col, counts = infinite_to_missing(col)
    if not col[target].notna().any():
        why = f", {counts[target]} of them ±inf" if target in counts else ""
        raise UsageError(f"target '{target}' has no values (all {len(col)} rows missing{why}): "
                         "pick another --target, or drop --target for the plots without one")


def default_kinds(kind: str, target: str | None) -> list[str]:
    if kind:
        return [kind]
    return ["distributions", "correlation"] + (["target"] if target else [])
