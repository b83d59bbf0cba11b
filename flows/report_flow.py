"""ReportFlow: a model card assembled from an experiment's runs and their lineage (loom report).

Walks back from ``--run`` (or from every run tagged ``experiment:NAME``) through each run's recorded
inputs and each data object's lineage, and writes the card as Markdown and HTML under
``<workspace>/artifacts/reports/<run id>/`` and as this run's @card. The Markdown is also an artifact
(``model_card_md``), so the card travels with the run on a remote datastore."""

from metaflow import FlowSpec, Parameter, card, current, step

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once, when the step ends (no live-refresh process)


class ReportFlow(FlowSpec):
    run = Parameter("run", default="", help="the run to report on (e.g. ValidateFlow/12)")
    experiment = Parameter("experiment", default="", help="report on every run tagged experiment:NAME")

    @card(type="blank", id="report")
    @step
    def start(self):
        from loom_py.runtime import flowkit

        with flowkit.relay_errors():
            self._work()
        self.next(self.end)

    def _work(self):
        import os

        from loom_py.runtime import events, flowkit, wsfiles
        from loom_py.verbs import report

        if self.run:
            roots = [self.run]
        else:
            roots = report.experiment_runs(self.experiment)
        events.progress(f"walking lineage from {len(roots)} run(s)")
        nodes = report.walk(roots)
        root = self.run or next((p for p in reversed(roots) if p.startswith("ValidateFlow/")), roots[-1] if roots else None)
        built = report.build_card(nodes, root, experiment=self.experiment or None)
        md = built["markdown"]
        title = f"Model card: {self.experiment or root}"
        page = report.to_html(md, title)
        ws = os.environ.get("LOOM_WORKSPACE_DIR") or os.getcwd()
        out_dir = os.path.join(ws, "artifacts", "reports", str(current.run_id))
        os.makedirs(out_dir, exist_ok=True)
        md_path, html_path = os.path.join(out_dir, "model_card.md"), os.path.join(out_dir, "model_card.html")
        with open(md_path, "w") as f:
            f.write(md)
        with open(html_path, "w") as f:
            f.write(page)
        wsfiles.keep(self, md_path, html_path)  # the files travel with the run (a remote task writes them in its container)
        self.model_card_md = md
        self.model_card_html = page
        self.report_lineage = [r["pathspec"] for r in built["runs"]]
        summary = {"root": root, "experiment": self.experiment or None, "runs": built["runs"],
                   "validate": built["validate"], "metrics": built["metrics"], "sections_filled": built["filled"],
                   "sections_unfilled": built["unfilled"], "caveats": built["caveats"],
                   "markdown_path": md_path, "html_path": html_path}
        msgs = [f"sections the runs cannot fill: {', '.join(built['unfilled'])}"] if built["unfilled"] else []
        msgs.append(f"model card: {html_path} (open it in a browser)")
        self.loom_result = flowkit.result("OK", summary, inputs=list(roots), messages=msgs)
        # the card shows the same escaped HTML as model_card.html (every run-derived string went through
        # html.escape in report.to_html), not the Markdown: card Markdown passes raw HTML through
        m = built.get("metrics") or {}
        verdict = m.get("verdict")
        cav = built["caveats"]
        reason = (f"{len(cav)} run(s) with caveats on the path: " + ", ".join(f"{c['pathspec']} ({c['status']})" for c in cav[:3])
                  if cav
                  else "no WARN or FAIL on the path")
        facts = [("runs on the path", str(len(built["runs"]))), ("sections filled", str(len(built["filled"]))),
                 ("not filled", str(len(built["unfilled"])))]
        if m.get("holdout") is not None:
            facts.insert(0, (f"holdout {m.get('metric')}", f"{m['holdout']:.4g}"))
        current.card.append(flowkit.banner(verdict or "OK", reason, word="VERDICT" if verdict else "STATUS", title=title, facts=facts))
        body = page.split("<body>", 1)[-1].rsplit("</body>", 1)[0]
        current.card.append(flowkit.html_block(body))

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(ReportFlow)  # leaves without interpreter teardown on success
