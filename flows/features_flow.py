"""FeaturesFlow: engineer features into a NEW data object (loom features). The launcher has asserted
the eda run behind --from (successful, same data object); this run drops eda's leakage flags first,
applies the recipe, and stores the result as a data object with a feature manifest and lineage."""

from metaflow import FlowSpec, Parameter, card, current, resources, step

from loom_py.runtime.data import task_resources

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once, when the step ends (no live-refresh process)


class FeaturesFlow(FlowSpec):
    dataset = Parameter("dataset", help="input data object pathspec", required=True)
    target = Parameter("target", default="", help="target column (passes through untouched)")
    from_run = Parameter("from_run", default="", help="EdaFlow/N whose leakage flags are dropped first")
    recipe = Parameter("recipe", default="minimal", help="minimal | standard")
    time_column = Parameter("time_column", default="", help="prediction-time column for the own leakage checks")
    task = Parameter("task", default="", help="classification | regression (default: inferred)")
    sensitive = Parameter("sensitive", default="[]", help="JSON list of columns carried unchanged for slicing")

    @resources(**task_resources("features"))  # asked of Kubernetes / Batch; ignored on local compute
    @card(type="blank", id="features")
    @step
    def start(self):
        from loom_py.runtime import flowkit
        from loom_py.runtime.events import progress

        with flowkit.relay_errors():
            from loom_py.verbs import features
            from loom_py.runtime.data import dataset_artifacts, from_frame, load_frame, resolve_run

            progress(f"loading {self.dataset}")
            df, info = load_frame(self.dataset)
            eda_flags = None
            if self.from_run:
                eda_flags = list(resolve_run(self.from_run, ("EdaFlow",), what="eda run").data.leakage_flags)
            progress(f"building features ({self.recipe}) from {len(df):,} rows x {df.shape[1]} columns")
            out, manifest, report = features.build(df, self.target or None, self.recipe, task=self.task or None,
                                                   time_col=self.time_column or None, eda_flags=eda_flags,
                                                   carry=flowkit.param_list(self.sensitive))
            table = from_frame(out)
            inputs = [self.dataset] + ([self.from_run] if self.from_run else [])
            label = f"{info.get('label') or 'dataset'}-features-{self.recipe}"
            arts = dataset_artifacts(table, label=label,
                                     source={"kind": "features", "dataset": self.dataset, "eda_run": self.from_run or None,
                                             "recipe": self.recipe},
                                     lineage={"verb": "features", "inputs": inputs, "recipe": self.recipe,
                                              "input_content_hash": info.get("content_hash")})
            for k, v in arts.items():
                setattr(self, k, v)
            self.feature_manifest = manifest
            self.carried_columns = report["carried_columns"]  # for slicing; validate and the search skip them
            self.dropped_for_leakage = report["dropped_for_leakage"]
            self.features_report = report
            me = f"FeaturesFlow/{current.run_id}"
            summary = {**report, "dataset": self.dataset, "from": self.from_run or None, "output": me,
                       "label": label, "rows": self.rows, "columns": self.n_columns, "schema": self.schema,
                       "content_hash": self.content_hash, "manifest": manifest, "lineage": self.lineage}
            messages = [f"dropped for leakage: {f['column']} ({f['reason']})" for f in report["dropped_for_leakage"]]
            if report["carried_columns"]:
                messages.append(f"carried for slicing, not model inputs: {', '.join(report['carried_columns'])}")
            if not self.from_run:
                messages.append("no --from eda run: leakage checks were run here (" + report["leakage_checked_by"] + ")")
            tgt = f" --target {self.target}" if self.target else ""
            self.loom_result = flowkit.result("OK", summary, inputs=inputs, messages=messages,
                                              next=[f"loom eda --dataset {me}{tgt}", f"loom validate --dataset {me}{tgt}"
                                                    + "".join(f" --sensitive {c}" for c in report["carried_columns"])]
                                              + ([f"loom run --dataset {me}{tgt} --metric '{_metric_hint(self.target, df)}' --model-provider offline"]
                                                 if self.target else []))
            from metaflow.cards import Markdown

            c = current.card
            c.append(flowkit.card_header(f"{me}: features from {self.dataset} ({self.recipe})", [
                f"new data object: {self.rows:,} rows x {self.n_columns} columns; content hash `{self.content_hash}`",
                f"lineage: {', '.join(inputs)}", f"leakage checked by: {report['leakage_checked_by']}",
                f"input rows: {report['rows_in']:,}; rows dropped for a missing target: {report['rows_dropped_missing_target']:,}"]))
            c.append(Markdown("## Dropped for leakage (first, before the recipe)"))
            c.append(flowkit.card_table(report["dropped_for_leakage"], ["column", "reason", "evidence"]))
            c.append(Markdown("## Dropped by the recipe"))
            c.append(flowkit.card_table(report["dropped"]))
            c.append(Markdown("## Feature manifest"))
            c.append(flowkit.card_table(manifest, ["column", "inputs", "transform"], limit=500))
        self.next(self.end)

    @step
    def end(self):
        pass


def _metric_hint(target, df) -> str:
    """The metric sentence `loom run` takes, for the target's kind (a hint that runs as printed)."""
    try:
        from loom_py.stats.tabular import infer_task

        task = infer_task(df[target])
    except Exception:
        task = "classification"
    return "Maximize ROC-AUC on a held-out split." if task == "classification" else "Minimize RMSE on a held-out split."


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(FeaturesFlow)  # leaves without interpreter teardown on success
