"""EdaFlow: profile a data object (loom eda). The launcher has asserted the data object and the
columns (loom_py.verbs.eda.prepare); this run loads it through the Client API, profiles it, records the
summary and leakage flags as artifacts, and renders a card with a table per section and plots."""

from metaflow import FlowSpec, Parameter, card, current, step

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once at the end of the step (no live-refresh process)


class EdaFlow(FlowSpec):
    dataset = Parameter("dataset", help="data object pathspec (IngestDataset/N or FeaturesFlow/N)", required=True)
    target = Parameter("target", default="", help="target column (optional)")
    time_column = Parameter("time_column", default="", help="prediction-time column (optional)")
    task = Parameter("task", default="", help="classification | regression (default: inferred)")

    @card(type="blank", id="eda")
    @step
    def start(self):
        from loom_py.runtime import flowkit
        from loom_py.runtime.events import progress

        with flowkit.relay_errors():
            from loom_py.verbs import eda
            from loom_py.runtime.data import load_frame

            progress(f"loading {self.dataset}")
            df, info = load_frame(self.dataset)
            progress(f"profiling {len(df):,} rows x {df.shape[1]} columns")
            summary = eda.profile(df, self.target or None, self.task or None, self.time_column or None)
            summary["dataset"] = self.dataset
            summary["dataset_label"] = info.get("label")
            summary["content_hash"] = info.get("content_hash")
            self.profile = summary
            self.leakage_flags = summary["leakage_flags"]
            self.profiled_dataset = self.dataset
            self.profiled_content_hash = info.get("content_hash")
            self.eda_target = self.target or None
            self.eda_task = summary["task"]
            flags = summary["leakage_flags"]
            status = "WARN" if flags else "OK"
            me = f"EdaFlow/{current.run_id}"
            messages = [f"leakage: {f['column']} ({f['reason']})" for f in flags] + summary["sampling"]
            nxt = [f"loom features --dataset {self.dataset}" + (f" --target {self.target}" if self.target else "")
                   + f" --from {me}", f"loom viz --dataset {self.dataset}" + (f" --target {self.target}" if self.target else "")]
            self.loom_result = flowkit.result(status, summary, inputs=[self.dataset], messages=messages, next=nxt)
            progress("rendering card")
            self._card(df, summary, me, status)
        self.next(self.end)

    def _card(self, df, s, me, status):
        from metaflow.cards import Markdown, Table, VegaChart

        from loom_py.runtime import charts, flowkit
        from loom_py.verbs import eda

        c = current.card
        flags, alerts = s["leakage_flags"], s["alerts"]
        if flags:
            reason = f"{len(flags)} leakage flag(s): " + ", ".join(f"{f['column']} ({f['reason']})" for f in flags[:4]) + (" …" if len(flags) > 4 else "")
        else:
            reason = "no leakage flags" + (f"; {len(alerts)} data alert(s)" if alerts else "; no data alerts")
        c.append(flowkit.banner(status, reason, word="STATUS",
                                title=f"{me}: profile of {s['dataset']} ({s.get('dataset_label') or ''})", facts=[
            ("rows", f"{s['shape']['rows']:,}"), ("columns", str(s["shape"]["columns"])),
            ("duplicate rows", f"{s['duplicate_rows']:,}"), ("missing cells", f"{s['missingness']['overall_share'] * 100:.1f}%"),
            ("target", f"{s['target']} ({s['task']})" if s["target"] else "(none)")]))
        H = flowkit.h
        c.append(flowkit.items_block(
            [f"data object: {H(s['dataset'])} ({H(s.get('dataset_label') or '')}); content hash {flowkit.code(s.get('content_hash'))}",
             f"time column: {H(s['time_column'] or '-')}"] + [f"sampling: {H(x)}" for x in s["sampling"]]))
        # leakage first: what would make every later number a lie
        c.append(Markdown("## Leakage flags"))
        c.append(flowkit.items_block(
            [f"{flowkit.badge('leakage', 'bad')} <b>{H(f['column'])}</b>: {H(f['reason'])} — {flowkit.kv_text(f.get('evidence') or {}, as_html=True)}"
             for f in flags], "✓ none: no column predicts the target implausibly well or is filled after the outcome"))
        # per-column cards, as in ydata-profiling: type, missing share, distinct, alert badges, a small chart
        c.append(Markdown("## Columns"))
        by_col: dict = {}
        for a in alerts:
            by_col.setdefault(a["column"], []).append(a["alert"])
        flagged = {f["column"] for f in flags}
        rows_n = max(1, s["shape"]["rows"])
        cols = sorted(s["dtypes"], key=lambda d: (d["column"] not in flagged, d["column"] not in by_col))[:60]
        table = []
        for d in cols:
            name = d["column"]
            miss = d["missing"] / rows_n
            badges = ([flowkit.badge("leakage", "bad")] if name in flagged else []) + \
                     [flowkit.badge(a.replace("_", " "), "warn") for a in by_col.get(name, [])] + \
                     ([flowkit.badge(f"missing {miss * 100:.1f}%", "warn" if miss > 0.05 else "info")] if d["missing"] else [])
            info = (f"<div style='font-weight:700;font-size:15px'>{flowkit.code(name, 80)}</div>"
                    f"<div style='color:#555;font-size:12px'>{H(d['semantic_type'])} · {H(d['dtype'])} · "
                    f"{d['unique']:,} distinct · missing {miss * 100:.1f}%</div><div>{''.join(badges)}</div>")
            chart = None
            if name in df.columns:
                try:
                    chart = VegaChart(charts.vega_mini(df[name], d["semantic_type"]))
                except Exception:
                    chart = None
            table.append([Markdown(info), chart if chart is not None else "-"])
        c.append(Table(table, headers=["column", "distribution"]))
        if len(s["dtypes"]) > len(cols):
            c.append(Markdown(f"_{len(s['dtypes']) - len(cols)} more columns in the summary (`--json`)_"))
        if s["target_balance"]:
            c.append(Markdown("## Target balance"))
            tb = s["target_balance"]
            rows = ([{"class": k, "rows": v} for k, v in tb["classes"].items()] if tb["task"] == "classification"
                    else [{"statistic": k, "value": v} for k, v in {**tb["quantiles"], "mean": tb["mean"], "std": tb["std"], "skew": tb["skew"]}.items()])
            c.append(flowkit.card_table(rows))
        c.append(Markdown("## Top associations with the target"))
        c.append(flowkit.card_table(s["top_correlations"]["with_target"]))
        c.append(Markdown("## Top feature-feature associations"))
        c.append(flowkit.card_table(s["top_correlations"]["feature_pairs"]))
        c.append(Markdown("## Alerts"))
        c.append(flowkit.card_table(alerts, ["column", "alert", "value", "threshold"]))
        c.append(Markdown("## Plots: missingness, target balance, top correlations"))
        for spec in eda.card_charts(df, s):  # Vega-Lite, drawn by the card itself (no matplotlib in this step)
            c.append(VegaChart(spec))

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(EdaFlow)  # leaves without interpreter teardown on success (0.3-0.8 s per process)
