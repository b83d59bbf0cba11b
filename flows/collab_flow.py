"""CollabFlow: a sanitized, shareable bundle of a run and (with --include-lineage) the runs it came from
(loom collab). The launcher has asserted the run (loom_py.verbs.collab.prepare); this run reads the runs
through the Client API, stages their summaries, cards, the model card and OpenLineage events, removes raw
rows, secrets and machine paths, scans every file with detect-secrets and writes
``<workspace>/artifacts/collab/<run id>/bundle.tar.gz`` only when the final scan is clean."""

from metaflow import FlowSpec, Parameter, card, current, step

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once, when the step ends (no live-refresh process)

LOOM_WARM = ("detect_secrets", "detect_secrets.settings", "loom_py.verbs.collab")


class CollabFlow(FlowSpec):
    run = Parameter("run", help="the run to bundle (e.g. ReportFlow/12)", required=True)
    include_lineage = Parameter("include_lineage", default=False, type=bool, help="bundle the runs it came from too")

    @card(type="blank", id="collab")
    @step
    def start(self):
        from loom_py.runtime import flowkit

        with flowkit.relay_errors():
            self._work()
        self.next(self.end)

    def _work(self):
        import os

        from loom_py.runtime import events, flowkit, wsfiles
        from loom_py.verbs import collab

        ws = os.environ.get("LOOM_WORKSPACE_DIR") or os.getcwd()
        out_dir = os.path.join(ws, "artifacts", "collab", str(current.run_id))
        events.progress(f"bundling {self.run}" + (" and its lineage" if self.include_lineage else ""))
        b = collab.build_bundle(self.run, bool(self.include_lineage), out_dir, ws_dir=ws)
        wsfiles.keep(self, b["bundle"])  # the bundle travels with the run; `--send` reads it on the launching machine
        removed = b["removed"]
        summary = {"run": self.run, "include_lineage": bool(self.include_lineage), "bundle_path": b["bundle"],
                   "sha256": b["sha256"], "bytes": b["bytes"], "runs": b["runs"], "files": b["files"],
                   "removed": removed, "removed_total": sum(removed.values()),
                   "secrets_found_after_sanitizing": b["secrets_found_after_sanitizing"],
                   "raw_rows_included": b["raw_rows_included"], "build_seconds": b["seconds"], "sent": []}
        self.bundle_sha256 = b["sha256"]
        self.bundle_manifest = b["files"]
        me = f"CollabFlow/{current.run_id}"
        msgs = [f"removed {n} × {k}" for k, n in removed.items()]
        self.loom_result = flowkit.result("OK", summary, inputs=[self.run], messages=msgs,
                                          next=[f"loom collab --run {me} --send s3://BUCKET/PREFIX"])
        c = current.card
        c.append(flowkit.card_header(f"{me}: bundle of {self.run}", [
            f"bundle: `{os.path.basename(b['bundle'])}` ({b['bytes']:,} bytes), sha256 `{b['sha256']}`",
            f"runs: {', '.join(b['runs'])}",
            "secrets left after sanitizing (detect-secrets + Loom's checks): 0; raw rows included: 0",
            f"removed: {sum(removed.values())} item(s)" ]))
        from metaflow.cards import Markdown

        c.append(Markdown("## What was removed, by kind"))
        c.append(flowkit.card_table([{"kind": k, "count": n} for k, n in removed.items()]))
        c.append(Markdown("## Files (sha256)"))
        c.append(flowkit.card_table(b["files"], ["path", "bytes", "sha256"], limit=500))

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(CollabFlow)  # leaves without interpreter teardown on success
