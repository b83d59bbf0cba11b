"""viz on a wide table: the capped plots (``viz.render_all`` + save) against the uncapped reference
(one 24-panel distributions figure per 24 columns, as viz drew before the cap), in one invocation.

The reference is measured on its first REF_FIGS figures and scaled to the number it would draw (drawing
all 417 takes a quarter of an hour); the figure is printed as an estimate.

    python bench/viz_wide.py [columns=10000] [rows=500]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "py"))
os.environ.setdefault("MPLBACKEND", "Agg")

REF_FIGS = 3


def table(n_cols: int, n_rows: int):
    import numpy as np
    import pandas as pd

    r = np.random.default_rng(0)
    n_num = int(n_cols * 0.9)
    df = pd.DataFrame(r.normal(size=(n_rows, n_num)).round(4), columns=[f"n{i}" for i in range(n_num)])
    cats = pd.DataFrame({f"c{i}": r.choice(list("abcdef"), n_rows) for i in range(n_cols - n_num)})
    df = pd.concat([df, cats], axis=1)
    df["y"] = (df["n5"] + df["n77"] > 0).astype(int)
    return df


def main() -> None:
    import matplotlib.pyplot as plt

    from loom_py.verbs import viz

    n_cols = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    n_rows = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    df = table(n_cols, n_rows)
    out = tempfile.mkdtemp(prefix="viz-wide-")

    t, c = time.perf_counter(), time.process_time()
    figs, notes = viz.render_all(df, ["distributions", "correlation", "target"], target="y")
    viz.save(figs, out)
    capped, capped_cpu = time.perf_counter() - t, time.process_time() - c
    top = viz.rank_columns(df, [c for c in df.columns if c != "y"], "y")[:2]
    plt.close("all")

    cols = viz.plot_columns(df, "y")
    n_ref = -(-len(cols) // viz.MAX_PANELS)
    t, c = time.perf_counter(), time.process_time()
    for i in range(REF_FIGS):
        chunk = cols[i * viz.MAX_PANELS:(i + 1) * viz.MAX_PANELS]
        viz.save([(f"ref_{i}", viz.distributions_fig(df, chunk))], out)
        plt.close("all")
    per_fig, per_fig_cpu = (time.perf_counter() - t) / REF_FIGS, (time.process_time() - c) / REF_FIGS

    print(f"table: {n_rows} rows x {n_cols} columns ({len(cols)} plottable)")
    print(f"capped   : {len(figs)} figures in {capped:.1f} s wall, {capped_cpu:.1f} s CPU ({'; '.join(notes)})")
    print(f"           the two columns ranked first: {top} (the planted signal is n5, n77)")
    print(f"reference: {n_ref} distribution figures x {per_fig:.2f} s wall ({per_fig_cpu:.2f} s CPU) each = "
          f"{n_ref * per_fig:.0f} s wall, {n_ref * per_fig_cpu:.0f} s CPU (estimated from {REF_FIGS} drawn)")
    print(f"ratio    : {n_ref * per_fig / capped:.0f}x less wall time, {n_ref * per_fig_cpu / capped_cpu:.0f}x less CPU with the cap")


if __name__ == "__main__":
    main()
