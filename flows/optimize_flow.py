"""OptimizeFlow (`loom run` / `loom optimize`): the AIDE search. The step runs the search loop in Python —
proposals (offline library, or the CLI's proposer server for anthropic/openai), sandboxed candidates, Loom's
own scoring — and records the journal, leaderboard, best code, fitted model and test predictions."""

from metaflow import Config, FlowSpec, Parameter, card, config_expr, current, resources, step

from loom_py.runtime.sizing import default_config

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once, when the step ends (no live-refresh process)


class OptimizeFlow(FlowSpec):
    loom_resources = Config("loom_resources", default_value=default_config("optimize"),
                            help="what the heavy step asks of remote compute (cpu, memory MiB, basis): from the data's size")
    dataset = Parameter("dataset", help="data object pathspec (IngestDataset/N or FeaturesFlow/N)")
    goal = Parameter("goal", default="Predict the target for each row.")
    metric = Parameter("metric", help="the metric as text; parsed into the spec")
    metric_mapping = Parameter("metric_mapping", default="", help="the model's mapping of unusual --metric text (JSON, from the CLI)")
    target = Parameter("target", default="")
    steps = Parameter("steps", default=10, type=int)
    model_provider = Parameter("model_provider", default="anthropic")
    model = Parameter("model", default="")
    budget_usd = Parameter("budget_usd", default=-1.0, type=float, help="hard spend cap in USD (-1: none; 0: no spend at all)")
    time_limit = Parameter("time_limit", default=0.0, type=float, help="minutes for the whole search (0: none)")
    parallel = Parameter("parallel", default=1, type=int)
    resume = Parameter("resume", default="")
    seed = Parameter("seed", default=0, type=int)
    node_timeout = Parameter("node_timeout", default=120.0, type=float, help="wall-clock seconds per candidate")
    memory_mb = Parameter("memory_mb", default=4096, type=int, help="address-space limit per candidate")
    policy = Parameter("policy", default="aide", help="aide (default, AIDE's published policy) or topk")
    time = Parameter("time", default="", help="time column of the seal (as validate --time): the latest rows are left out")
    group = Parameter("group", default="", help="entity column of the seal (as validate --group): whole groups are left out")
    holdout = Parameter("holdout", default=0.2, type=float, help="share of rows sealed for validate (left out of the search)")
    unsafe_no_sandbox = Parameter("unsafe_no_sandbox", default=0, type=int,
                                  help="1: run model-written code without the OS sandbox (audit hook only; recorded)")
    keep_leaky = Parameter("keep_leaky", default=False, type=bool,
                           help="search with the columns the leakage checks flag (default: dropped first)")
    executor = Parameter("executor", default="local",
                         help="local (a sandboxed process pool, default) or metaflow (each round's candidates as a foreach)")

    # asked of Kubernetes / Batch, sized from the data by prepare (runtime/sizing.py); ignored on local compute
    @resources(cpu=config_expr("loom_resources.cpu"), memory=config_expr("loom_resources.memory"))
    @card(type="blank", id="optimize")
    @step
    def start(self):
        from loom_py.runtime import flowkit
        from loom_py.verbs.optimize.flowside import execute

        with flowkit.relay_errors():
            execute(self, current)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(OptimizeFlow)  # leaves without interpreter teardown on success
