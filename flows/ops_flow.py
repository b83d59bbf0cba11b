"""OpsFlow: a drift check of a current data object against a reference (loom ops --dataset --reference).

The launcher has asserted both data objects and that their schemas line up (loom_py.verbs.ops.prepare);
this run loads both through the Client API, runs loom_py.stats.drift (Evidently's default tests), records
the per-column results and the VERDICT (DRIFT / NO_DRIFT) and renders a card with the table and the
distributions of the most drifted columns (Vega-Lite)."""

from metaflow import FlowSpec, Parameter, card, current, step

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once, when the step ends (no live-refresh process)

LOOM_WARM = ("scipy.stats", "scipy.spatial.distance", "loom_py.stats.drift")


class OpsFlow(FlowSpec):
    dataset = Parameter("dataset", help="the current data object (IngestDataset/N or FeaturesFlow/N)", required=True)
    reference = Parameter("reference", help="the reference data object it is compared with", required=True)
    columns = Parameter("columns", default="", help="comma-separated columns to compare (default: all)")
    target = Parameter("target", default="", help="target column: its drift is reported apart (label drift)")
    # the deployed champion whose predictions on both tables are compared (resolved by prepare; empty: none)
    model_name = Parameter("model_name", default="", help="registered model whose prediction drift is checked")
    model_alias = Parameter("model_alias", default="", help="its alias (champion)")
    model_version = Parameter("model_version", default="", help="the version the alias pointed at when the check began")
    registry = Parameter("registry", default="", help="the MLflow registry URI")
    prediction_note = Parameter("prediction_note", default="", help="why no prediction drift is assessed")

    @card(type="blank", id="ops")
    @step
    def start(self):
        from loom_py.runtime import flowkit

        with flowkit.relay_errors():
            self._work()
        self.next(self.end)

    def _work(self):
        from loom_py.runtime import events, flowkit
        from loom_py.runtime.data import load_frame
        from loom_py.stats import drift
        from loom_py.verbs import ops, ops_champion

        events.progress(f"loading {self.dataset} and {self.reference}")
        cur, info_cur = load_frame(self.dataset)
        ref, info_ref = load_frame(self.reference)
        cols = [c for c in self.columns.split(",") if c] or None
        if cols is None and self.target:
            cols = [c for c in ref.columns if c != self.target]
        events.progress(f"drift over {len(cols or ref.columns)} columns ({len(ref):,} reference rows, {len(cur):,} current)")
        res = drift.dataset_drift(ref, cur, cols, target=self.target or None)
        if self.model_name:
            events.progress(f"scoring both tables with the deployed {self.model_name}@{self.model_alias} "
                            f"(version {self.model_version}) in the sandbox")
        pred, pred_series = ops_champion.assess(ref, cur, {
            "model_name": self.model_name, "model_alias": self.model_alias, "model_version": self.model_version,
            "registry": self.registry, "prediction_note": self.prediction_note})
        s = ops.drift_summary(res, self.dataset, self.reference, info_cur, info_ref, pred)
        self.drift = s
        verdict = s["verdict"]
        msgs = list(s["reasons"])
        if s["missing_changed"]:
            msgs.append("missing share changed: " + ", ".join(s["missing_changed"]))
        if s["new_categories"]:
            msgs.append("new categories in: " + ", ".join(s["new_categories"]))
        p = s["prediction_drift"]
        if not p["assessed"]:
            msgs.append(f"prediction drift {p['reason']}")
        me = f"OpsFlow/{current.run_id}"
        self.loom_result = flowkit.result("OK", s, verdict=verdict, exit_code=1 if verdict == "DRIFT" else 0,
                                          inputs=[self.dataset, self.reference], messages=msgs,
                                          next=[f"loom eda --dataset {self.dataset}"])
        events.progress("rendering card")
        self._card(ref, cur, s, res, me, pred_series)

    def _card(self, ref, cur, s, res, me, pred_series):
        from metaflow.cards import Markdown, VegaChart

        from loom_py.runtime import flowkit
        from loom_py.stats import drift
        from loom_py.verbs import ops

        c = current.card
        c.append(flowkit.card_header(f"{me}: drift of {s['current']['pathspec']} vs {s['reference']['pathspec']}", [
            f"VERDICT: **{s['verdict']}** — {ops.verdict_reason(s)}",
            f"{s['drifted']} of {s['tested']} columns drifted (share {s['drifted_share']:.2f}; dataset drift at ≥ {s['drift_share_threshold']})",
            f"reference {s['reference']['rows']:,} rows, current {s['current']['rows']:,} rows",
            "tests: Evidently's defaults (≤ 1,000 reference values: KS / chi-square / Z, p < 0.05; above: "
            "normed Wasserstein / Jensen-Shannon ≥ 0.1)", ops.prediction_line(s["prediction_drift"])]
            + [f"reason: {r}" for r in s["reasons"]]))
        rows = [{"column": r["column"], "kind": r["kind"], "test": r["test_name"] or r["skipped"], "statistic": r["statistic"],
                 "threshold": r["threshold"], "verdict": ("DRIFT" if r["drifted"] else "no drift") if r["test"] else "-",
                 "psi": r["psi"], "missing ref": r["missing"]["reference"], "missing cur": r["missing"]["current"],
                 "new categories": (r["new_categories"] or {}).get("count")} for r in s["columns"]]
        c.append(Markdown("## Per-column drift"))
        c.append(flowkit.card_table(rows, limit=500))
        if s["target"]:
            t = s["target"]
            c.append(Markdown(f"## Target drift: `{t['column']}`: {t['test_name']} {t['statistic']:.4g} "
                              f"(threshold {t['threshold']}) → **{'DRIFT' if t['drifted'] else 'no drift'}**"))
        p = s["prediction_drift"]
        if p["assessed"]:
            m = p["model"]
            c.append(Markdown(f"## Prediction drift: the deployed {flowkit.code(m['name'] + '@' + m['alias'])} "
                              f"(version {m['version']}) on both tables → **{'DRIFT' if p['drifted'] else 'no drift'}**"))
            c.append(Markdown(f"Scored in the sandbox ({flowkit.esc(m['sandbox']['os_sandbox'] or 'audit hook only')}, "
                              f"{m['sandbox']['wall_seconds']:.1f} s) on its {len(m['features'])} feature columns "
                              f"(the target {flowkit.code(m['target'])} is not an input); files checked against "
                              f"the deploy manifest: {'yes' if m['verified'] else 'no manifest recorded'}."))
            c.append(flowkit.card_table([{"output": r["column"], "kind": r["kind"], "test": r["test_name"] or r["skipped"],
                                          "statistic": r["statistic"], "threshold": r["threshold"],
                                          "verdict": ("DRIFT" if r["drifted"] else "no drift") if r["test"] else "-",
                                          "psi": r["psi"]} for r in p["columns"]]))
            recs = {r["column"]: r for r in p["columns"]}
            for col, _kind, r_s, c_s in pred_series:
                if recs[col]["test"]:
                    c.append(VegaChart(ops.drift_chart(r_s, c_s, recs[col])))
        else:
            c.append(Markdown(f"## Prediction drift: {flowkit.esc(p['reason'])}"))
        top = drift.most_drifted(res["columns"], 4)
        if top:
            c.append(Markdown("## Distributions of the most drifted columns"))
            for r in top:
                c.append(VegaChart(ops.drift_chart(ref[r["column"]], cur[r["column"]], r)))

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(OpsFlow)  # leaves without interpreter teardown on success
