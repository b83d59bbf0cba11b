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
        from metaflow.cards import Markdown

        from loom_py.verbs import eda
        from loom_py.runtime import flowkit

        c = current.card
        c.append(flowkit.card_header(f"{me}: profile of {s['dataset']} ({s.get('dataset_label') or ''})", [
            f"status: **{status}** ({len(s['leakage_flags'])} leakage flag(s))",
            f"shape: {s['shape']['rows']:,} rows x {s['shape']['columns']} columns; duplicate rows: {s['duplicate_rows']:,}",
            f"target: {s['target'] or '(none)'}; task: {s['task'] or '-'}; time column: {s['time_column'] or '-'}",
            f"content hash: `{s.get('content_hash')}`"] + [f"sampling: {x}" for x in s["sampling"]]))
        c.append(Markdown("## Leakage flags"))
        c.append(flowkit.card_table(s["leakage_flags"], ["column", "reason", "evidence"]))
        c.append(Markdown("## Columns (semantic types, missing, distinct)"))
        c.append(flowkit.card_table(s["dtypes"], limit=200))
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
        c.append(flowkit.card_table(s["alerts"], ["column", "alert", "value", "threshold"]))
        from metaflow.cards import VegaChart

        c.append(Markdown("## Plots: missingness, target balance, top correlations"))
        for spec in eda.card_charts(df, s):  # Vega-Lite, drawn by the card itself (no matplotlib in this step)
            c.append(VegaChart(spec))

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(EdaFlow)  # leaves without interpreter teardown on success (0.3-0.8 s per process)
