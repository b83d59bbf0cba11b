"""VizFlow: standard plots from a data object or a run (loom viz). PNGs go to
<workspace>/artifacts/viz/<run id>/ and into the card; the card and the summary name the run and the
data object the plots came from."""

from metaflow import FlowSpec, Parameter, card, current, step

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once, when the step ends (no live-refresh process)

# imported once by the bridge's warm image while prepare runs, so the tasks start with them (loom_py/runtime/warm.py)
LOOM_WARM = ("loom_py.verbs.viz:_plt",)


class VizFlow(FlowSpec):
    dataset = Parameter("dataset", default="", help="data object pathspec")
    source_run = Parameter("source_run", default="", help="run the plots come from (leaderboard, or a run made from a data object)")
    kind = Parameter("kind", default="", help="distributions | correlation | target | leaderboard (default: by input)")
    target = Parameter("target", default="", help="target column for the target plots")

    @card(type="blank", id="viz")
    @step
    def start(self):
        import os

        from loom_py.runtime import flowkit
        from loom_py.runtime.events import progress

        with flowkit.relay_errors():
            from metaflow.cards import Markdown

            from loom_py.verbs import viz
            from loom_py.runtime.data import load_frame, resolve_run

            me = f"VizFlow/{current.run_id}"
            ws = os.environ.get("LOOM_WORKSPACE_DIR") or os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL") or "."
            out_dir = os.path.join(ws, "artifacts", "viz", str(current.run_id))
            figs, lineage, extra, notes = [], {}, {}, []
            if self.kind == "leaderboard":
                run = resolve_run(self.source_run, None, require_success=False)
                lb = list(run.data.leaderboard)
                desc, metric = viz.leaderboard_direction(run.data)
                ordered = viz.sort_leaderboard(lb, higher_is_better=desc)
                figs = viz.render("leaderboard", leaderboard=ordered, label=self.source_run, metric=metric)
                lineage = {"run": self.source_run, "dataset": viz._run_dataset(run)}
                best = ordered[0] if ordered and isinstance(ordered[0].get("score"), (int, float)) else None
                extra = {"entries": len(lb), "best": best, "metric": metric,
                         "order": "higher score first" if desc else "lower score first"}
                kinds = ["leaderboard"]
            else:
                progress(f"loading {self.dataset}")
                df, info = load_frame(self.dataset)
                kinds = viz.default_kinds(self.kind, self.target or None)
                progress(f"plotting {', '.join(kinds)}")
                figs, notes = viz.render_all(df, kinds, target=self.target or None, label=f"({self.dataset})")
                lineage = {"run": self.source_run or None, "dataset": self.dataset, "content_hash": info.get("content_hash")}
                extra = {"rows": len(df), "columns": int(df.shape[1]),
                         "sampled_for_plots": len(df) > viz.PLOT_SAMPLE}
            paths = viz.save(figs, out_dir)
            from loom_py.runtime import wsfiles

            wsfiles.keep(self, *paths)  # the PNGs travel with the run (a remote task writes them in its container)
            self.plot_paths = paths
            self.viz_lineage = lineage
            summary = {"kinds": kinds, "plots": [{"name": n, "path": p} for (n, _), p in zip(figs, paths)],
                       "output_dir": out_dir, "lineage": lineage, "notes": notes, **extra}
            self.loom_result = flowkit.result("OK", summary, inputs=[p for p in (self.source_run, self.dataset) if p],
                                              messages=notes + [f"wrote {len(paths)} plot(s) to {out_dir}"])
            c = current.card
            c.append(flowkit.card_header(f"{me}: {', '.join(kinds)}", [
                f"from run: {lineage.get('run') or '-'}", f"data object: {lineage.get('dataset') or '-'}",
                f"PNG files: {out_dir}"]))
            if self.kind == "leaderboard":
                c.append(Markdown("## Leaderboard"))
                c.append(flowkit.card_table(ordered, limit=100))
            for (name, fig), p in zip(figs, paths):
                c.append(Markdown(f"## {flowkit.esc(name.replace('_', ' '))}"))
                c.append(flowkit.html_block(flowkit.code(p, None)))
                c.append(flowkit.card_image(fig))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(VizFlow)  # leaves without interpreter teardown on success
