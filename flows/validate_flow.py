"""ValidateFlow: the rigorous VERDICT that gates promotion (loom validate).

Loads the data object, carves the sealed holdout (derived from its content hash), cross-validates on
the rest (purged K-fold with embargo / group K-fold / stratified K-fold), scores the holdout once, and
checks calibration, per-slice fairness and leakage. PASS only when every check passes. The seal's
evaluation count comes from earlier ValidateFlow runs with the same ``seal_id`` artifact (Client API)."""

from metaflow import FlowSpec, Parameter, card, current, resources, step

from loom_py.runtime.data import task_resources

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once at the end of the step (no live-refresh process)

# imported once by the bridge's warm image while prepare runs, so the tasks start with them (loom_py/runtime/warm.py)
LOOM_WARM = ("loom_py.verbs.validate:data_imports", "loom_py.verbs.validate:warm_imports", "loom_py.runtime.sidecar")


class ValidateFlow(FlowSpec):
    dataset = Parameter("dataset", required=True, help="data object pathspec (IngestDataset/N or FeaturesFlow/N)")
    target = Parameter("target", required=True, help="the column to predict")
    metric = Parameter("metric", default="", help="roc_auc, log_loss, accuracy, f1, pr_auc, rmse, mae, r2")
    threshold = Parameter("threshold", default="", help="the bar the holdout metric must reach")
    time = Parameter("time", default="", help="time column: purged K-fold with embargo, holdout = latest rows")
    horizon = Parameter("horizon", default="", help="label horizon for purging (duration or number)")
    group = Parameter("group", default="", help="entity key: group K-fold, whole groups in the holdout")
    sensitive = Parameter("sensitive", default="[]", help="JSON list of sensitive columns")
    folds = Parameter("folds", default=5, type=int, help="number of CV folds")
    model = Parameter("model", default="", help="a run pathspec holding a fitted solution (default: the default model)")
    seed = Parameter("seed", default=0, type=int, help="seed for CV shuffling and the model")
    holdout = Parameter("holdout", default=0.2, type=float, help="share of rows sealed as the holdout")
    embargo = Parameter("embargo", default=0.01, type=float, help="share of CV rows embargoed after each test fold")
    bounds = Parameter("bounds", default="{}", help="JSON overrides of the verdict's bounds")

    @resources(**task_resources("validate"))  # asked of Kubernetes / Batch; ignored on local compute
    @card(type="blank", id="validate")
    @step
    def start(self):
        from loom_py.runtime import flowkit

        flowkit.pin_threads(1)
        with flowkit.relay_errors():
            self._work()
        self.next(self.end)

    def _work(self):
        import json
        import time

        from loom_py.runtime import events, flowkit
        from loom_py.verbs import validate
        from loom_py.runtime.sidecar import Sidecar

        events.progress(f"loading {self.dataset}")
        params = {"target": self.target, "metric": self.metric or None, "threshold": self.threshold or None,
                  "time": self.time or None, "horizon": self.horizon or None, "group": self.group or None,
                  "sensitive": json.loads(self.sensitive or "[]"), "folds": self.folds, "model": self.model or None,
                  "seed": self.seed, "holdout": self.holdout, "embargo": self.embargo,
                  "bounds": json.loads(self.bounds or "{}")}
        # the spare core loads, resolves and seals the data (then runs the data checks) while this process
        # tags the run with its seal, finds the seal's earlier runs, imports scikit-learn (unless the warm
        # image already did) and later fits; inline where there is no spare core (loom_py/runtime/sidecar.py)
        t_data = time.perf_counter()
        validate.data_imports()  # before the fork, so the sidecar shares them
        data_import_s = time.perf_counter() - t_data
        side = Sidecar(validate.staged, self.dataset, params)
        try:
            from loom_py.runtime.data import dataset_info, resolve_dataset
            from loom_py.stats.splits import seal_id_for

            content_hash = dataset_info(resolve_dataset(self.dataset)).get("content_hash")
            self.seal_id = seal_id_for(content_hash, *validate.seal_key(params))
            tag_run(f"ValidateFlow/{current.run_id}", f"seal:{self.seal_id}")
            earlier = earlier_evaluations(self.seal_id, current.run_id)
            t_import = time.perf_counter()
            validate.warm_imports()
            import_s = time.perf_counter() - t_import
            staged = side.next()
            opts, info = staged["opts"], staged["info"]
            factory, model_name, model_source = validate.model_factory(opts["model"], opts["target"])
        except BaseException:
            side.cancel()
            raise
        out = validate.evaluate(staged["df"], opts, content_hash=info["content_hash"], factory=factory,
                                model_name=model_name, model_source=model_source, earlier_evaluations=len(earlier),
                                progress=events.progress, staged_data=(staged, side))
        s = out["summary"]
        # what any script reading the data with pandas and fitting scikit-learn pays too
        s["timings"]["data_library_import_s"] = round(data_import_s, 3)
        s["timings"]["model_library_import_s"] = round(import_s, 3)
        from loom_py.runtime import warm

        s["timings"]["warm_image"] = warm.SERVED  # forked with its imports done (0 s above), not a fresh interpreter
        s["dataset"] = {"pathspec": self.dataset, "label": info.get("label"), "rows": info.get("rows"),
                        "content_hash": info.get("content_hash")}
        s["seal"]["earlier_runs"] = earlier[-20:]
        if opts["model"]:
            from loom_py.verbs.solution import solution_info

            searched_on = solution_info(opts["model"]).get("dataset")
            s["model"]["searched_on"] = searched_on
            if searched_on == self.dataset:
                s["notes"].append(f"{opts['model']} chose its solution by scoring on its own split of {self.dataset}: "
                                  "the sealed rows were not hidden from that search, so the holdout is optimistic for it")
        self.seal_rows_hash = out["seal"].rows_hash
        self.holdout_positions = out["seal"].holdout.tolist()
        self.verdict = s["verdict"]
        self.validation = flowkit.json_safe(s)
        me = f"ValidateFlow/{current.run_id}"
        inputs = [self.dataset] + ([opts["model"]] if opts["model"] else [])
        msgs = list(s["notes"])
        if len(earlier) >= 1:
            msgs.append(f"this sealed holdout has now been evaluated {len(earlier) + 1} times: each look spends "
                        "some of its honesty (tune on CV, not on the holdout)")
        nxt = ([f"loom deploy --validate {me}"] if s["verdict"] == "PASS" else []) + [f"loom report --run {me}"]
        self.loom_result = flowkit.result("OK" if s["verdict"] == "PASS" else "FAIL", s, verdict=s["verdict"],
                                          exit_code=0 if s["verdict"] == "PASS" else 1, inputs=inputs,
                                          messages=msgs, next=nxt)
        events.progress("rendering card")
        render_card(current.card, me, s)

    @step
    def end(self):
        pass


def tag_run(pathspec: str, tag: str) -> None:
    """Tag this run (``seal:<id>``) so later runs find it by tag instead of loading every run's artifacts."""
    try:
        from metaflow import Run, namespace

        namespace(None)
        Run(pathspec).add_tag(tag)
    except Exception:
        pass  # the artifact scan below still finds it


def earlier_evaluations(seal_id: str, run_id) -> list[str]:
    """Pathspecs of earlier successful ValidateFlow runs that evaluated the same seal (oldest first).

    Runs tagged ``seal:<id>`` are matched by tag; untagged runs (older, or where tagging failed) by their
    ``seal_id`` artifact."""
    from metaflow import Flow, namespace

    namespace(None)
    out = []
    try:
        runs = list(Flow("ValidateFlow").runs())
    except Exception:
        return out
    for r in runs:
        if str(r.id) == str(run_id):
            continue
        try:
            seals = [t for t in r.user_tags if t.startswith("seal:")]
            if seals:
                if f"seal:{seal_id}" in seals and r.successful:
                    out.append(r.pathspec)
            elif r.successful and "seal_id" in r.data and r.data.seal_id == seal_id:
                out.append(r.pathspec)
        except Exception:
            continue
    return sorted(out, key=lambda p: int(p.split("/")[1]) if p.split("/")[1].isdigit() else 0)


def render_card(card, me: str, s: dict) -> None:
    from metaflow.cards import Markdown

    from loom_py.runtime import charts
    from loom_py.runtime import flowkit

    f = lambda v: "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    cv, ho = s["cv"], s["holdout"]
    card.append(flowkit.card_header(f"{me}: VERDICT {s['verdict']}", [
        f"data: {s['dataset']['pathspec']} ({s['rows']} rows with a target), target `{s['target']}` ({s['task']})",
        f"model: {s['model']['name']} ({s['model']['source']})",
        f"holdout {ho['metric']}: **{f(ho['value'])}** on {ho['rows']} sealed rows "
        f"(seal {s['seal']['id']}, {s['seal']['how']}; evaluated {s['seal']['evaluations']}×)",
        f"CV ({cv['scheme']}, {cv['folds']} folds): {f(cv['mean'])} ± {f(cv['std'])}"
        + (f"; purged {cv['purged']}, embargoed {cv['embargoed']}" if cv["scheme"] == "purged_kfold" else ""),
    ] + [f"reason: {r}" for r in s["reasons"]]))
    card.append(Markdown("## Checks"))
    card.append(flowkit.card_table(s["checks"]))
    card.append(Markdown("## Cross-validation folds"))
    card.append(flowkit.card_table(cv["per_fold"]))
    if s.get("calibration"):
        c = s["calibration"]
        card.append(Markdown(f"## Calibration (holdout)\n\nECE ({c['bins']} bins, {c['ece_of']}): {f(c['ece'])} · "
                             f"Brier: {f(c['brier'])} · slope: {f(c['slope'])} · intercept: {f(c['intercept'])}"))
        from metaflow.cards import VegaChart

        card.append(VegaChart(charts.reliability_vega(c["reliability"])))  # drawn by the card: no matplotlib
    if s.get("fairness"):
        for col, fr in s["fairness"].items():
            card.append(Markdown(
                f"## Per-slice results: {col}\n\ndemographic-parity difference {f(fr['demographic_parity_difference'])}, "
                f"ratio {f(fr['demographic_parity_ratio'])}, equalized-odds difference "
                f"{f(fr['equalized_odds_difference'])}"
                + ("\n\ntoo small to judge: " + ", ".join(f"{g['group']} ({g['reason']})" for g in fr["too_small"])
                   if fr["too_small"] else "")))
            card.append(flowkit.card_table(fr["groups"]))
    lk = s["leakage"]
    card.append(Markdown(f"## Leakage\n\nholdout rows duplicated in CV data: {lk['duplicates']['holdout_rows_in_cv']} · "
                         f"holdout implausibly above CV: {lk['holdout_above_cv']}"))
    card.append(flowkit.card_table(lk["flags"]))
    card.append(Markdown("## Thresholds"))
    card.append(flowkit.card_table([{"bound": k, "value": v} for k, v in s["thresholds"].items()]))


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(ValidateFlow)  # leaves without interpreter teardown on success (0.3-0.8 s per process)
