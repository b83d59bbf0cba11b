"""PipelineFlow (`loom pipeline`): the whole lifecycle as one gated run.

``start`` runs the stages in order (eda → features → optimize → validate → report); each is the verb's own run
(its prepare and its flow) tagged ``pipeline:<id>`` / ``stage:<name>``, so a killed pipeline keeps the stage runs
that finished and ``--resume PipelineFlow/N`` finds and reuses them by tag. The first stage that fails stops
the chain (the rest are recorded SKIPPED); ``end`` builds the result and the card. See
``loom_py/verbs/pipeline.py`` and decision 0600."""

import os

from metaflow import FlowSpec, Parameter, card, current, resources, step

from loom_py.runtime.data import task_resources
from loom_py.runtime.flowkit import final_cards_only

final_cards_only()

# one process tree: the image imports once what every stage's prepare, warm image and tasks import (scikit-learn
# above all); each stage's run is forked from a stage task that already has them (decision 0600)
LOOM_WARM = ("loom_py.verbs.pipeline", "loom_py.runtime.bridge", "loom_py.runtime.sidecar",
             "loom_py.verbs.validate:data_imports", "loom_py.verbs.validate:warm_imports", "loom_py.verbs.eda",
             "loom_py.verbs.features", "loom_py.verbs.optimize.search", "loom_py.verbs.optimize.flowside",
             "loom_py.verbs.report", "loom_py.verbs.solution", "loom_py.stats.leakage", "loom_py.stats.tabular")


class PipelineFlow(FlowSpec):
    # `loom pipeline --deploy-to argo` compiles the flow with the options as the parameter's default
    # (LOOM_PIPELINE_OPTIONS, read when the flow file is): the template runs the pipeline that was described
    options = Parameter("options", default=os.environ.get("LOOM_PIPELINE_OPTIONS", ""),
                        help="the pipeline's options (JSON, from loom_py.verbs.pipeline.prepare)")
    resume = Parameter("resume", default="", help="PipelineFlow/N whose finished stages are reused")

    @resources(**task_resources("optimize"))  # the stages run in this task (the search is the heaviest)
    @step
    def start(self):
        import json

        from loom_py.runtime import events, flowkit
        from loom_py.verbs import pipeline

        # the stages' flows beside this one: in a remote task (the code package) no launcher set LOOM_FLOWS_DIR
        os.environ.setdefault("LOOM_FLOWS_DIR", os.path.dirname(os.path.abspath(__file__)))
        me = f"PipelineFlow/{current.run_id}"
        with flowkit.relay_errors():
            if not self.options:
                from loom_py.runtime.errors import UsageError

                raise UsageError("PipelineFlow needs --options (JSON): `loom pipeline` builds them")
            self.opts = json.loads(self.options)
            prev = pipeline.previous(self.resume)[1] if self.resume else []
            self.reuse = pipeline.reusable(prev)
            self.continues = pipeline.continuable(prev)  # a search Ctrl-C stopped: its stage continues it
        events.emit("stage", stage="pipeline", event="begin", pathspec=me, reuse=list(self.reuse))
        stages = []
        for name in pipeline.STAGES:  # each stage is the verb's own run, tagged pipeline:<id> stage:<name>
            # Ctrl-C: the running stage stops (a search or validate's folds) or finishes (seconds); the rest are skipped
            stages = pipeline.run_stage(name, self.opts, stages, str(current.run_id), self.reuse, events.emit,
                                        reuse_from=self.resume or None, cont=self.continues)
        self.stages = stages
        self.next(self.end)

    @card(type="blank", id="pipeline")
    @step
    def end(self):
        from loom_py.runtime import flowkit
        from loom_py.verbs import pipeline

        me = f"PipelineFlow/{current.run_id}"
        s = pipeline.outcome(self.stages, self.opts)
        self.verdict = s["verdict"]
        self.stage_runs = {r["name"]: r["pathspec"] for r in s["stages"]}
        by = {r["name"]: r["pathspec"] for r in s["stages"]}
        inputs = [self.opts["dataset"]] + ([self.resume] if self.resume else []) + [p for p in by.values() if p]
        msgs = [s["reason"]] if s["reason"] else []
        if s["reused"]:
            msgs.append(f"reused from {self.resume}: {', '.join(s['reused'])}")
        nxt = []
        if s["interrupted"] or s["failed_stage"]:
            nxt.append(f"loom pipeline --resume {me}")
        elif by.get("validate"):
            nxt.append(f"loom deploy --validate {by['validate']}")
        if by.get("optimize"):
            nxt.append(f"loom viz --run {by['optimize']}")
        exit_code = 0 if s["verdict"] == "PASS" else 1
        status = "INTERRUPTED" if s["interrupted"] else "OK" if exit_code == 0 else "FAIL"
        if s["interrupted"]:
            done = [r["name"] for r in s["stages"] if r["status"] in ("OK", "WARN", "PASS")]
            msgs.insert(0, f"interrupted: finished stages kept ({', '.join(done) or 'none'}); "
                           f"`loom pipeline --resume {me}` reuses them" + (" and continues the search" if any(
                               r["name"] == "optimize" and r["status"] == "INTERRUPTED" for r in s["stages"]) else ""))
        self.loom_result = flowkit.result(status, s, verdict=s["verdict"], exit_code=exit_code, inputs=inputs,
                                          messages=msgs, next=nxt)
        render_card(current.card, me, s)


def render_card(card, me: str, s: dict) -> None:
    import os

    from metaflow.cards import Markdown

    from loom_py.runtime import flowkit

    card.append(flowkit.card_header(f"{me}: VERDICT {s['verdict'] or 'n/a'}", [
        f"data: {s['dataset']} → target `{s['target']}`",
        " → ".join(f"{r['name']} ({r['status']})" for r in s["stages"]),
        f"total {s['seconds']:.1f} s" + (f"; reused: {', '.join(s['reused'])}" if s["reused"] else ""),
    ] + ([f"stopped at: {s['reason']}"] if s["reason"] else [])))
    rows = []
    for r in s["stages"]:
        card_link = ""
        if r.get("card_path"):
            card_link = os.path.relpath(r["card_path"], os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL") or "/")
        rows.append({"stage": r["name"], "run": r["pathspec"] or "", "status": r["status"], "verdict": r["verdict"] or "",
                     "seconds": r["seconds"], "reused": r["reused_from"] or "", "card": card_link,
                     "note": r["reason"] or ""})
    card.append(Markdown("## Stages"))
    card.append(flowkit.card_table(rows))
    v = s.get("validation") or {}
    if v:
        ho = v.get("holdout") or {}
        card.append(Markdown(f"## Validation\n\nholdout {ho.get('metric')}: {ho.get('value')} on {ho.get('rows')} sealed rows "
                             f"(seal {v.get('seal')}; untouched by the search: {v.get('seal_untouched')})"))


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(PipelineFlow)
