"""Vega-Lite chart specs the cards draw (runtime.charts: one place, imports no verb)."""

import numpy as np

from loom_py.runtime.charts import reliability_vega
from loom_py.stats import calibration as C


def test_reliability_vega_holds_the_diagram():
    r = np.random.default_rng(0)
    p = r.random(2000)
    y = (r.random(2000) < p).astype(float)
    rel = C.reliability(y, p, 15)
    spec = reliability_vega(rel)
    bars, diag, model = spec["layer"]
    assert len(bars["data"]["values"]) == 15
    assert abs(sum(b["share"] for b in bars["data"]["values"]) - 1) < 1e-9
    assert diag["data"]["values"] == [{"p": 0.0}, {"p": 1.0}]
    pts = model["data"]["values"]
    assert len(pts) == sum(1 for x in rel if x["count"]) and all(0 <= q["observed"] <= 1 for q in pts)
    assert model["encoding"]["x"]["title"] == "mean predicted probability"
