"""OptimizeRoundFlow: one round of `loom run --executor metaflow` — the round's candidates as a Metaflow
foreach, so that with `--with kubernetes` (LOOM_OPTIMIZE_WITH, or the CLI's --with) they fan out across a
cluster. Started by the search loop inside OptimizeFlow (py/loom_py/verbs/optimize/foreach.py), never by a
user. The data the candidates may see (labels of held-out rows excluded) is in this flow's content-addressed
store once per search; a run gets only ``data_ref`` (key, sha256, size) and the candidates' code (an
IncludeFile). Each candidate task loads the data by key from the datastore, refuses it unless it hashes to
the reference, runs its folds in Loom's sandbox and returns predictions, never a score."""

from metaflow import Config, FlowSpec, IncludeFile, Parameter, config_expr, resources, step

from loom_py.runtime.sizing import default_config


class OptimizeRoundFlow(FlowSpec):
    loom_resources = Config("loom_resources", default_value=default_config("round"),
                            help="what a candidate task asks of remote compute: from the data's size and the folds")
    payload = IncludeFile("payload", is_text=False, help="pickled round: the candidates' code and limits (no data)")
    data_ref = Parameter("data_ref", help="JSON: the search's data in this flow's content-addressed store (key, sha256, bytes, folds)")

    @step
    def start(self):
        import pickle

        from loom_py.runtime import flowkit
        from loom_py.verbs.optimize.foreach import check_ref, round_store

        with flowkit.relay_errors():
            self.ref = check_ref(self.data_ref, round_store(self._datastore.parent_datastore))
            p = pickle.loads(self.payload)
            self.limits = p["limits"]
            self.candidates = p["candidates"]  # [{"id", "code", "timeout"}]
        self.next(self.candidate, foreach="candidates")

    # asked of Kubernetes / Batch, sized by foreach.run_round from the data (runtime/sizing.py); ignored locally
    @resources(cpu=config_expr("loom_resources.cpu"), memory=config_expr("loom_resources.memory"))
    @step
    def candidate(self):
        from loom_py.runtime import flowkit
        from loom_py.verbs.optimize.foreach import round_store, run_candidate_task

        with flowkit.relay_errors():
            # this task's own datastore (local directory or S3): the same store the search saved the data in
            store = round_store(self._datastore.parent_datastore)
            self.result = run_candidate_task(self.input, self.ref, store, self.limits)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = {i.result["id"]: i.result for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(OptimizeRoundFlow)  # leaves without interpreter teardown on success
