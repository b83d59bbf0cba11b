"""OptimizeRoundFlow: one round of `loom run --executor metaflow` — the round's candidates as a Metaflow
foreach, so that with `--with kubernetes` (LOOM_OPTIMIZE_WITH) they fan out across a cluster. Started by the
search loop inside OptimizeFlow (py/loom_py/verbs/optimize/foreach.py), never by a user. The payload (candidates'
code + the data files each may see, labels of held-out rows excluded) travels through the datastore as an
IncludeFile; each candidate task runs its folds in Loom's sandbox and returns predictions, never a score."""

from metaflow import FlowSpec, IncludeFile, step


class OptimizeRoundFlow(FlowSpec):
    payload = IncludeFile("payload", is_text=False, help="pickled round: candidates + staged data files")

    @step
    def start(self):
        import pickle

        from loom_py.runtime import flowkit

        with flowkit.relay_errors():
            p = pickle.loads(self.payload)
            self.data_files = p["data"]  # {fold name or "": {file name: bytes}}
            self.limits = p["limits"]
            self.candidates = p["candidates"]  # [{"id", "code", "timeout"}]
        self.next(self.candidate, foreach="candidates")

    @step
    def candidate(self):
        from loom_py.runtime import flowkit
        from loom_py.verbs.optimize.foreach import run_candidate_task

        with flowkit.relay_errors():
            self.result = run_candidate_task(self.input, self.data_files, self.limits)
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
