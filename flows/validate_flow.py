"""ValidateFlow: the rigorous VERDICT that gates promotion (loom validate).

Loads the data object, carves the sealed holdout (derived from its content hash), cross-validates on
the rest (purged K-fold with embargo / group K-fold / stratified K-fold), scores the holdout once, and
checks calibration, per-slice fairness and leakage. PASS only when every check passes. The seal's
evaluation count comes from earlier ValidateFlow runs with the same ``seal_id`` artifact (Client API)."""

from metaflow import Config, FlowSpec, Parameter, card, config_expr, current, resources, step

from loom_py.runtime.sizing import default_config

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()  # the card is rendered once at the end of the step (no live-refresh process)

# imported once by the bridge's warm image while prepare runs, so the tasks start with them (loom_py/runtime/warm.py)
LOOM_WARM = ("loom_py.verbs.validate:data_imports", "loom_py.verbs.validate:warm_imports", "loom_py.runtime.sidecar")


class ValidateFlow(FlowSpec):
    loom_resources = Config("loom_resources", default_value=default_config("validate"),
                            help="what the heavy step asks of remote compute (cpu, memory MiB, basis): from the data's size")
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
    decision_threshold = Parameter("decision_threshold", default="",
                                   help="probability cut for the fairness decisions (default: base-rate matching)")
    calibrate = Parameter("calibrate", default="", help="sigmoid | isotonic: wrap the model in CalibratedClassifierCV")

    # asked of Kubernetes / Batch, sized from the data by prepare (runtime/sizing.py); ignored on local compute
    @resources(cpu=config_expr("loom_resources.cpu"), memory=config_expr("loom_resources.memory"))
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
                  "bounds": json.loads(self.bounds or "{}"), "decision_threshold": self.decision_threshold or None,
                  "calibrate": self.calibrate or None}
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
            if opts["calibrate"]:
                factory = validate.calibrated(factory, opts["calibrate"])
                model_name = f"{model_name}, calibrated ({opts['calibrate']}, CalibratedClassifierCV cv=3)"
        except BaseException:
            side.cancel()
            raise
        from loom_py.runtime import stop

        try:
            out = validate.evaluate(staged["df"], opts, content_hash=info["content_hash"], factory=factory,
                                    model_name=model_name, model_source=model_source, earlier_evaluations=len(earlier),
                                    progress=events.progress, staged_data=(staged, side))
        except stop.Stopped as e:  # Ctrl-C: the running fold ended; record what finished
            return self._interrupted(getattr(e, "done", {}), opts, info, model_name, model_source)
        finally:
            if hasattr(factory, "close"):  # a model-written solution's sandbox launcher (ends its processes)
                factory.close()
        s = out["summary"]
        if getattr(factory, "model_written", False):
            s["model"]["model_written"] = True  # its code ran only in the OS sandbox, never in this process
            s["model"]["sandbox"] = factory.isolation()
        # what any script reading the data with pandas and fitting scikit-learn pays too
        s["timings"]["data_library_import_s"] = round(data_import_s, 3)
        s["timings"]["model_library_import_s"] = round(import_s, 3)
        from loom_py.runtime import warm

        s["timings"]["warm_image"] = warm.SERVED  # forked with its imports done (0 s above), not a fresh interpreter
        s["dataset"] = {"pathspec": self.dataset, "label": info.get("label"), "rows": info.get("rows"),
                        "content_hash": info.get("content_hash")}
        s["resources"] = self.loom_resources.to_dict()  # what @resources asked of remote compute, and why
        s["seal"]["earlier_runs"] = earlier[-20:]
        s["seal"]["untouched"] = True  # no search chose the default model
        if opts["model"]:
            from loom_py.verbs.solution import solution_info

            sol = solution_info(opts["model"])
            searched_on, searched_seal = sol.get("dataset"), (sol.get("seal") or {})
            s["model"]["searched_on"] = searched_on
            s["model"]["search_seal"] = searched_seal.get("id")
            s["seal"]["untouched"], note = seal_note(opts["model"], self.dataset, self.seal_id, searched_on,
                                                     searched_seal, int(len(out["seal"].holdout)))
            if note:
                s["notes"].append(note)
        self.seal_rows_hash = out["seal"].rows_hash
        self.holdout_positions = out["seal"].holdout.tolist()
        keep_scored_model(self, out)
        self.verdict = s["verdict"]
        me = f"ValidateFlow/{current.run_id}"
        inputs = [self.dataset] + ([opts["model"]] if opts["model"] else [])
        msgs = list(s["notes"])
        if len(earlier) >= 1:
            msgs.append(f"this sealed holdout has now been evaluated {len(earlier) + 1} times: each look spends "
                        "some of its honesty (tune on CV, not on the holdout)")
        nxt = ([f"loom deploy --validate {me}"] if s["verdict"] == "PASS" else []) + [f"loom report --run {me}"]
        cal = s.get("calibration") or {}
        if (cal.get("judged") or {}).get("failed") and not opts["calibrate"]:
            nxt.insert(0, validate.rerun_command(self.dataset, opts, calibrate="sigmoid"))
        s["caveats"] = msgs  # the card and the report show every caveat, not only the terminal
        self.validation = flowkit.json_safe(s)
        self.loom_result = flowkit.result("OK" if s["verdict"] == "PASS" else "FAIL", s, verdict=s["verdict"],
                                          exit_code=0 if s["verdict"] == "PASS" else 1, inputs=inputs,
                                          messages=msgs, next=nxt)
        events.progress("rendering card")
        render_card(current.card, me, s)

    def _interrupted(self, done, opts, info, model_name, model_source):
        from loom_py.runtime import flowkit
        from loom_py.verbs import validate

        me = f"ValidateFlow/{current.run_id}"
        # not a look at the seal: later runs do not count it (earlier_evaluations skips this tag)
        untag_run(me, f"seal:{self.seal_id}", INTERRUPTED_TAG)
        rec = validate.interrupted(done, opts, self.dataset, info, model_name, model_source)
        s = rec["summary"]
        self.verdict = None
        self.validation = flowkit.json_safe(s)
        inputs = [self.dataset] + ([opts["model"]] if opts["model"] else [])
        self.loom_result = flowkit.result("INTERRUPTED", s, verdict=None, exit_code=1, inputs=inputs,
                                          messages=rec["messages"], next=rec["next"])
        card = current.card
        card.append(flowkit.banner("INTERRUPTED", rec["messages"][0], title=f"{me}: validation of {self.dataset}",
                                   word="STATUS", facts=[("folds finished", f"{s['folds_finished']} of {s['cv']['folds']}"),
                                                         ("model", model_name), ("target", opts["target"])]))
        from metaflow.cards import Markdown

        card.append(Markdown("## Folds that finished"))
        card.append(flowkit.card_table(s["cv"]["per_fold"]))
        card.append(flowkit.items_block([f"run it again: {flowkit.code(rec['next'][0])}"]))

    @step
    def end(self):
        pass


INTERRUPTED_TAG = "loom:interrupted"


def untag_run(pathspec: str, tag: str, add: str) -> None:
    try:
        from metaflow import Run, namespace

        namespace(None)
        run = Run(pathspec)
        run.replace_tag(tag, add)
    except Exception:
        pass


def seal_note(model: str, dataset: str, seal_id: str, searched_on, searched_seal: dict, rows: int):
    """(is the holdout untouched by the search that chose the model?, the note saying so). True when the
    search left out this very seal; False when it scored on its own split of these rows; None when it searched
    another data object (Loom cannot tell which of these rows it saw)."""
    if searched_on == dataset and searched_seal.get("id") == seal_id:
        return True, (f"{model} searched without the {rows} sealed rows (seal {seal_id}): the holdout is untouched "
                      "by the search that chose the model")
    if searched_on == dataset:
        why = (f"its search left out seal {searched_seal['id']}, not this one (pass the same --time/--group/--holdout "
               "to `loom run` and `loom validate`)" if searched_seal.get("id") else "the sealed rows were not hidden from that search")
        return False, (f"{model} chose its solution by scoring on its own split of {dataset}: {why}, "
                       "so the holdout is optimistic for it")
    return None, None


def keep_scored_model(flow, out: dict) -> None:
    """The estimator the holdout was scored with, pickled, and what it predicted on the sealed rows, so
    ``loom deploy`` packages exactly the validated model and its serving test can compare predictions.
    A model that cannot be pickled is kept as None (deploy then refuses with a line saying so)."""
    import pickle

    import numpy as np

    try:
        if out.get("holdout_model_bytes") is not None:  # model-written: pickled in the sandbox, copied as bytes
            flow.scored_model = out["holdout_model_bytes"]
        else:
            flow.scored_model = pickle.dumps(out["holdout_model"], protocol=pickle.HIGHEST_PROTOCOL)
        flow.scored_model_error = None
    except Exception as e:
        flow.scored_model = None
        flow.scored_model_error = f"{type(e).__name__}: {e}"[:300]
    flow.holdout_scored = {"pred": np.asarray(out["pred_holdout"]).tolist(),
                           "proba": None if out["proba_holdout"] is None else np.asarray(out["proba_holdout"]).tolist()}


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
            if INTERRUPTED_TAG in r.user_tags:  # stopped before the holdout was scored
                continue
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
    from loom_py.runtime.sizing import describe

    f = lambda v: "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    H = flowkit.h
    cv, ho = s["cv"], s["holdout"]
    failed = [c for c in s["checks"] if c.get("passed") is False]
    reason = (s["reasons"][0] if s["reasons"] else
              (f"failed: {', '.join(c['check'] for c in failed)}" if failed else
               f"holdout {ho['metric']} {f(ho['value'])} on {ho['rows']} sealed rows; every check passed"))
    card.append(flowkit.banner(s["verdict"], reason, title=f"{me}: validation of {s['dataset']['pathspec']}", facts=[
        (f"holdout {ho['metric']}", f(ho["value"])), ("CV", f"{f(cv['mean'])} ± {f(cv['std'])}"),
        ("model", s["model"]["name"]), ("target", f"{s['target']} ({s['task']})"),
        ("leakage", "FOUND" if s["leakage"]["found"] else "none found")]))
    card.append(Markdown("## Checks"))
    card.append(flowkit.checks_block(s["checks"]))
    if s.get("caveats"):
        card.append(Markdown("## Caveats"))
        card.append(flowkit.items_block([H(c) for c in s["caveats"]]))
    if len(s["reasons"]) > 1:
        card.append(flowkit.items_block([H(r) for r in s["reasons"]]))
    card.append(flowkit.items_block([
        f"data: {H(s['dataset']['pathspec'])} ({H(s['rows'])} rows with a target), target {flowkit.code(s['target'])} ({H(s['task'])})",
        f"model: {H(s['model']['name'])} ({H(s['model']['source'])})",
        f"holdout {H(ho['metric'])}: <b>{H(f(ho['value']))}</b> on {H(ho['rows'])} sealed rows "
        f"(seal {H(s['seal']['id'])}, {H(s['seal']['how'])}; evaluated {H(s['seal']['evaluations'])}×)",
        f"CV ({H(cv['scheme'])}, {H(cv['folds'])} folds): {H(f(cv['mean']))} ± {H(f(cv['std']))}"
        + (f"; purged {H(cv['purged'])}, embargoed {H(cv['embargoed'])}" if cv["scheme"] == "purged_kfold" else "")]
        + ([f"remote compute asked for: {H(describe(s['resources']))}"] if s.get("resources") else [])))
    card.append(Markdown("## Cross-validation folds"))
    card.append(flowkit.card_table(cv["per_fold"]))
    if s.get("calibration"):
        c = s["calibration"]
        failed = (c.get("judged") or {}).get("failed") or []
        card.append(Markdown("## Calibration (holdout)"))
        card.append(flowkit.items_block([f"ECE ({H(c['bins'])} bins, {H(c.get('ece_of', ''))}): {H(f(c['ece']))} · Brier: {H(f(c['brier']))} · "
                                         f"slope: {H(f(c['slope']))} · intercept: {H(f(c['intercept']))}"]
                                        + ([f"{flowkit.badge('failed', 'bad')} " + "; ".join(H(x) for x in failed)] if failed else [])))
        from metaflow.cards import VegaChart

        card.append(VegaChart(charts.reliability_vega(c["reliability"])))  # drawn by the card: no matplotlib
    if s.get("fairness"):
        for col, fr in s["fairness"].items():
            card.append(Markdown(f"## Per-slice results: {flowkit.esc(col)}"))
            card.append(flowkit.items_block(
                [f"demographic-parity difference {H(f(fr['demographic_parity_difference']))}, ratio {H(f(fr['demographic_parity_ratio']))}, "
                 f"equalized-odds difference {H(f(fr['equalized_odds_difference']))}"
                 + (f" at decision threshold {H(f(fr['decision']['threshold']))} ({H(fr['decision']['how'])})" if fr.get("decision") else "")
                 + (f"; per-group ROC-AUC gap {H(f(fr['auc_gap']))}" if fr.get("auc_gap") is not None else "")]
                + ([f"{flowkit.badge('not assessable', 'bad')} " + "; ".join(H(x) for x in fr["not_assessable_because"])]
                   if fr.get("assessable") is False else [])
                + (["too small to judge: " + ", ".join(f"{H(g['group'])} ({H(g['reason'])})" for g in fr["too_small"])]
                   if fr["too_small"] else [])))
            card.append(flowkit.card_table(fr["groups"]))
    lk = s["leakage"]
    card.append(Markdown("## Leakage"))
    card.append(flowkit.items_block(
        [f"holdout rows duplicated in CV data: {H(lk['duplicates']['holdout_rows_in_cv'])} · "
         f"holdout implausibly above CV: {'yes' if lk['holdout_above_cv'] else 'no'}"]
        + [f"{flowkit.badge('leakage', 'bad')} <b>{H(fl['column'])}</b>: {H(fl['reason'])} — {flowkit.kv_text(fl.get('evidence') or {}, as_html=True)}"
           for fl in lk["flags"]]))
    card.append(Markdown("## Thresholds"))
    card.append(flowkit.card_table([{"bound": k, "value": v} for k, v in s["thresholds"].items()]))


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(ValidateFlow)  # leaves without interpreter teardown on success (0.3-0.8 s per process)
