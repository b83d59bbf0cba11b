"""Vega-Lite chart specs for cards (drawn by the card in the browser: no matplotlib in a step), and the
small chart vocabulary they share with viz's matplotlib figures. Imports no verb: eda, viz and validate
all build their card charts from here."""

from __future__ import annotations

TOP_CATEGORIES = 15


def short(s, n: int = 22) -> str:
    s = str(s)
    return s if len(s) <= n else s[: n - 1] + "…"


def top_counts(s, k: int = TOP_CATEGORIES):
    """Value counts of the top ``k`` categories, the rest summed as '(other)', missing as '(missing)'."""
    import pandas as pd

    vc = s.astype("object").where(s.notna(), "(missing)").astype(str).value_counts()
    if len(vc) > k:
        vc = pd.concat([vc.iloc[:k], pd.Series({"(other)": int(vc.iloc[k:].sum())})])
    return vc


VEGA_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"


def vega_missingness(missing_share: dict) -> dict:
    items = sorted(missing_share.items(), key=lambda kv: -kv[1])[:30]
    return {"$schema": VEGA_SCHEMA, "title": "Missing values per column", "width": 380,
            "data": {"values": [{"column": str(k), "missing_pct": round(v * 100, 3)} for k, v in items]},
            "mark": "bar",
            "encoding": {"y": {"field": "column", "type": "nominal", "sort": "-x", "title": "column"},
                         "x": {"field": "missing_pct", "type": "quantitative", "title": "missing (% of rows)",
                               "scale": {"domain": [0, 100]}},
                         "tooltip": [{"field": "column"}, {"field": "missing_pct"}]}}


def vega_target(y, task: str, target: str) -> dict:
    import numpy as np
    import pandas as pd

    if task == "classification":
        vc = top_counts(y.dropna(), 20)
        return {"$schema": VEGA_SCHEMA, "title": f"Target balance: {short(target, 40)}", "width": 380,
                "data": {"values": [{"class": str(k), "rows": int(v)} for k, v in vc.items()]},
                "mark": "bar",
                "encoding": {"x": {"field": "class", "type": "nominal", "title": f"{short(target)} (class)", "sort": "-y"},
                             "y": {"field": "rows", "type": "quantitative", "title": "rows"},
                             "tooltip": [{"field": "class"}, {"field": "rows"}]}}
    v = pd.to_numeric(y, errors="coerce").dropna().to_numpy()
    counts, edges = np.histogram(v, bins=40) if len(v) else (np.array([]), np.array([0.0]))
    return {"$schema": VEGA_SCHEMA, "title": f"Target distribution: {short(target, 40)}", "width": 380,
            "data": {"values": [{"from": float(edges[i]), "to": float(edges[i + 1]), "rows": int(c)} for i, c in enumerate(counts)]},
            "mark": "bar",
            "encoding": {"x": {"field": "from", "type": "quantitative", "title": short(target)}, "x2": {"field": "to"},
                         "y": {"field": "rows", "type": "quantitative", "title": "rows"}}}


def vega_associations(rows: list[dict], title: str = "Top associations with the target") -> dict:
    rows = rows[:15]
    return {"$schema": VEGA_SCHEMA, "title": title, "width": 380,
            "data": {"values": [{"column": r["column"], "strength": abs(r["value"]), "value": r["value"], "method": r["method"]}
                                for r in rows]},
            "mark": "bar",
            "encoding": {"y": {"field": "column", "type": "nominal", "sort": "-x", "title": "column"},
                         "x": {"field": "strength", "type": "quantitative", "title": "strength of association (0-1)",
                               "scale": {"domain": [0, 1]}},
                         "color": {"field": "method", "type": "nominal", "title": "method"},
                         "tooltip": [{"field": "column"}, {"field": "value"}, {"field": "method"}]}}


def reliability_vega(rel: list[dict], title: str = "Reliability diagram (holdout)") -> dict:
    """The reliability diagram as a Vega-Lite spec for the card (``metaflow.cards.VegaChart``): the
    model's observed frequency against mean predicted probability per bin, the diagonal of perfect
    calibration, and the share of rows per bin as bars. Drawn by the card in the browser: no
    matplotlib import and PNG rendering in the step (~0.8 s, decision 0203)."""
    total = max(1, sum(r["count"] for r in rel))
    bins = [{"lo": r["lo"], "hi": r["hi"], "share": r["count"] / total, "rows": r["count"]} for r in rel]
    pts = [{"mean_predicted": r["mean_predicted"], "observed": r["observed"], "rows": r["count"]}
           for r in rel if r["count"]]
    x = {"type": "quantitative", "scale": {"domain": [0, 1]}, "title": "mean predicted probability"}
    y = {"type": "quantitative", "scale": {"domain": [0, 1]}, "title": "observed frequency"}
    return {"$schema": VEGA_SCHEMA, "title": title, "width": 360, "height": 360,
            "layer": [
                {"data": {"values": bins}, "mark": {"type": "bar", "opacity": 0.25, "color": "#ff7f0e"},
                 "encoding": {"x": {**x, "field": "lo"}, "x2": {"field": "hi"},
                              "y": {**y, "field": "share"},
                              "tooltip": [{"field": "lo"}, {"field": "hi"}, {"field": "rows"}]}},
                {"data": {"values": [{"p": 0.0}, {"p": 1.0}]},
                 "mark": {"type": "line", "strokeDash": [4, 4], "color": "grey"},
                 "encoding": {"x": {**x, "field": "p"}, "y": {**y, "field": "p"}}},
                {"data": {"values": pts}, "mark": {"type": "line", "point": True, "color": "#1f77b4"},
                 "encoding": {"x": {**x, "field": "mean_predicted"}, "y": {**y, "field": "observed"},
                              "tooltip": [{"field": "mean_predicted"}, {"field": "observed"}, {"field": "rows"}]}},
            ]}


def vega_mini(s, semantic_type: str = "") -> dict:
    """A column's small distribution chart for the eda card's per-column view: a 20-bin histogram for a
    numeric column, the top 8 categories otherwise (Vega-Lite, drawn by the card)."""
    import numpy as np
    import pandas as pd

    small = {"$schema": VEGA_SCHEMA, "width": 220, "height": 70, "mark": {"type": "bar", "color": "#5b8def"},
             "config": {"axis": {"labelFontSize": 9, "titleFontSize": 9}, "view": {"stroke": None}}}
    numeric = semantic_type in ("numeric", "identifier") or (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s))
    if numeric and semantic_type not in ("boolean", "categorical"):
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        counts, edges = np.histogram(v, bins=20) if len(v) else (np.array([]), np.array([0.0]))
        return {**small, "data": {"values": [{"from": float(edges[i]), "to": float(edges[i + 1]), "rows": int(c)}
                                             for i, c in enumerate(counts)]},
                "encoding": {"x": {"field": "from", "type": "quantitative", "title": None, "bin": {"binned": True}},
                             "x2": {"field": "to"}, "y": {"field": "rows", "type": "quantitative", "title": None}}}
    vc = top_counts(s, 8)
    return {**small, "data": {"values": [{"value": short(k, 18), "rows": int(n)} for k, n in vc.items()]},
            "encoding": {"y": {"field": "value", "type": "nominal", "sort": "-x", "title": None},
                         "x": {"field": "rows", "type": "quantitative", "title": None}}}
