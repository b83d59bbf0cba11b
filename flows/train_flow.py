"""TrainFlow: `loom train` through the model-builder seam. The launcher (loom_py.verbs.train.prepare) has
already refused what cannot run and resolved the columns; this run plans (nemo), launches (nemo
--launch, through Modal) or builds the CPU stand-in backbone (local: PPMI + SVD), and records it."""

from metaflow import FlowSpec, Parameter, card, current, resources, step

from loom_py.runtime.data import task_resources

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once, when the step ends (no live-refresh process)


class TrainFlow(FlowSpec):
    dataset = Parameter("dataset", required=True, help="data object pathspec (IngestDataset/N or FeaturesFlow/N)")
    objective = Parameter("objective", default="next-event", help="next-event | embedding | finetune")
    budget = Parameter("budget", default="probe", help="probe | small | full")
    provider = Parameter("provider", default="nemo", help="nemo | local")
    backbone = Parameter("backbone", default="", help="backbone / recipe name (nemo); empty: the objective's default")
    entity = Parameter("entity", default="", help="entity column (whose sequence)")
    time_col = Parameter("time_col", default="", help="time column (orders each sequence)")
    event = Parameter("event", default="", help="event / token column")
    launch = Parameter("launch", default=False, type=bool, help="nemo: submit the launch (the gate has allowed it)")
    gpu_target = Parameter("gpu_target", default="", help="LOOM_GPU_TARGET as the launcher saw it")
    gpu_hourly_usd = Parameter("gpu_hourly_usd", default=3.0, type=float, help="dollars per GPU-hour")
    column_notes = Parameter("column_notes", default="[]", help="JSON: how the columns were found")

    @resources(**task_resources("train"))  # asked of Kubernetes / Batch; ignored on local compute
    @card(type="blank", id="train")
    @step
    def start(self):
        from loom_py.runtime import flowkit

        flowkit.pin_threads(1)  # before numpy does any work: a bit-identical backbone, fair timing
        import json
        import os

        from loom_py.runtime.data import load_frame
        from loom_py.verbs.train import Request
        from loom_py.verbs.train.providers import get_provider
        from loom_py.verbs.train.sequences import Columns

        with flowkit.relay_errors():
            req = Request.from_params({
                "dataset": self.dataset, "objective": self.objective, "budget": self.budget,
                "provider": self.provider, "backbone": self.backbone, "entity": self.entity,
                "time_col": self.time_col, "event": self.event, "launch": self.launch,
                "gpu_target": self.gpu_target, "gpu_hourly_usd": self.gpu_hourly_usd})
            provider = get_provider(req.provider)
            import time

            t0 = time.perf_counter()
            df, info = load_frame(req.dataset)
            load_seconds = round(time.perf_counter() - t0, 4)
            notes = json.loads(self.column_notes)
            cols = Columns(entity=req.entity, time=req.time, event=req.event, notes=notes)
            data = {"pathspec": req.dataset, "rows": info["rows"], "content_hash": info["content_hash"],
                    "columns": {"entity": cols.entity, "time": cols.time, "event": cols.event}}
            self.plan = provider.plan(req, data)
            me = f"TrainFlow/{current.run_id}"
            workdir = os.path.join(os.environ.get("LOOM_WORKSPACE_DIR") or os.getcwd(), "artifacts", "train",
                                   f"TrainFlow-{current.run_id}")
            out = provider.execute(req, self.plan, df, cols, workdir)
            if os.path.isdir(workdir):
                from loom_py.runtime import wsfiles

                wsfiles.keep(self, workdir)  # the work dir travels with the run (capped: runtime/wsfiles.py)
            for k, v in out.artifacts.items():
                setattr(self, k, v)
            summary = dict(out.summary)
            if out.status == "BUILT":
                summary["backbone_pathspec"] = me
            summary["column_notes"] = notes
            summary["load_seconds"] = load_seconds
            self.status = out.status
            for c in out.card:
                current.card.append(c)
            nxt = list(out.next)
            if out.status == "BUILT":
                nxt.append(f"loom report --run {me}")  # (Python: Run('{me}').data.embeddings, see the card)
            self.loom_result = flowkit.result(out.status, summary, inputs=[req.dataset],
                                              messages=notes + out.messages, next=nxt)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(TrainFlow)  # leaves without interpreter teardown on success
