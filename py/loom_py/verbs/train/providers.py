"""Model-builder providers behind one interface: plan → build or launch → metrics.

Adding a provider: subclass ``Provider`` here, register it in ``PROVIDERS``, and list its name (and any
budget sizes) in ``budgets.json`` (the TypeScript side reads the names from there).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from loom_py.runtime.errors import DomainError, LoomError, UsageError
from loom_py.verbs.train import REFUSAL_HINT, STATUS_REFUSED, Request, budgets, cost_plan
from loom_py.verbs.train.sequences import Columns


@dataclass
class Outcome:
    status: str
    summary: dict
    artifacts: dict = field(default_factory=dict)   # set on the flow as artifacts
    card: list = field(default_factory=list)         # metaflow.cards components
    messages: list = field(default_factory=list)
    next: list = field(default_factory=list)


class Provider:
    name = "?"

    def check(self, req: Request) -> None:
        """Refusals that need no data (run in the launcher before a run exists)."""

    def check_launch(self, req: Request) -> None:
        """Checks for --launch once the data is known to be usable."""
        if req.launch:
            raise UsageError(f"--launch needs a GPU builder: drop --launch for provider '{self.name}', "
                             "or use --provider nemo with LOOM_GPU_TARGET set")

    def max_events(self, req: Request) -> int | None:
        return None

    def plan(self, req: Request, data: dict) -> dict:
        raise NotImplementedError

    def execute(self, req: Request, plan: dict, df, cols: Columns, workdir: str) -> Outcome:
        raise NotImplementedError


# ---- nemo: plans, refuses without a GPU target, launches through Modal ------------------------------

class NemoProvider(Provider):
    name = "nemo"

    def check(self, req: Request) -> None:
        from loom_py.verbs.train.modal_app import parse_target

        plan = cost_plan(req.budget, req.gpu_hourly_usd)
        if not req.gpu_target:
            raise UsageError(f"nemo needs a GPU target: set LOOM_GPU_TARGET (e.g. modal:H100), or build on "
                            f"this machine's CPU with LOOM_MODEL_BUILDER_PROVIDER=local (cost plan: {plan['line']})",
                            status=STATUS_REFUSED, summary=refusal_summary(req, plan))
        parse_target(req.gpu_target)

    def check_launch(self, req: Request) -> None:
        if req.launch:
            from loom_py.verbs.train.modal_app import check_client

            check_client()

    def plan(self, req: Request, data: dict) -> dict:
        from loom_py.verbs.train import nemo_export
        from loom_py.verbs.train.modal_app import parse_target

        cost = cost_plan(req.budget, req.gpu_hourly_usd)
        backbone = req.backbone or budgets()["default_backbone"][req.objective]
        factory = "pretrain_recipe" if req.objective == "next-event" else "finetune_recipe"
        module = f"nemo.collections.llm.recipes.{backbone}"
        return {"provider": "nemo", "objective": req.objective, "budget": req.budget, "backbone": backbone,
                "recipe": f"{module}.{factory}", "recipe_module": module, "recipe_factory": factory,
                "gpus": cost["gpus"], "hours": cost["hours"], "gpu_hours": cost["gpu_hours"], "usd": cost["usd"],
                "rate_usd_per_gpu_hour": cost["rate_usd_per_gpu_hour"], "max_steps": cost["max_steps"],
                "cost_line": cost["line"], "data": data, "target": parse_target(req.gpu_target),
                "launcher": "modal", "launch_command": req.command(launch=True),
                "trains_on": nemo_export.FORMATS[req.objective], "app_name": app_name(req)}

    def execute(self, req, plan, df, cols, workdir) -> Outcome:
        from loom_py.runtime import flowkit

        rows = [{"field": k, "value": v} for k, v in (
            ("cost", plan["cost_line"]), ("backbone", plan["backbone"]), ("recipe", plan["recipe"]),
            ("trains on", plan["trains_on"]),
            ("data", f"{plan['data']['pathspec']} ({plan['data']['rows']} rows, {plan['data']['content_hash']})"),
            ("columns", ", ".join(f"{k}={v}" for k, v in plan["data"]["columns"].items())),
            ("target", f"{plan['target']['launcher']}:{plan['target']['gpu']} x {plan['gpus']}"),
            ("launch", plan["launch_command"]))]
        summary = base_summary(req, plan["backbone"], cost_summary(plan), cols)
        summary["plan"] = {k: plan[k] for k in ("recipe", "gpus", "hours", "gpu_hours", "usd", "max_steps",
                                                "launcher", "launch_command", "trains_on")}
        summary["plan"]["target"] = plan["target"]["raw"]
        if not req.launch:
            return Outcome("PLANNED", summary, artifacts={"plan": plan},
                           card=[flowkit.card_header("Train plan (nemo): nothing launched", [plan["cost_line"]]),
                                 flowkit.card_table(rows)],
                           messages=[f"plan only: nothing was launched; to launch: {plan['launch_command']}"],
                           next=[plan["launch_command"]])
        return self._launch(req, plan, df, cols, workdir, summary, rows)

    def _launch(self, req, plan, df, cols, workdir, summary, rows) -> Outcome:
        from loom_py.runtime import events, flowkit
        from loom_py.verbs.train import modal_app, nemo_export
        from loom_py.verbs.train.sequences import build_sequences, check_sequences

        modal_app.check_client()
        os.makedirs(workdir, exist_ok=True)
        events.progress(f"exporting {plan['data']['pathspec']} for the recipe ({req.objective})")
        seqs = build_sequences(df, cols)
        check_sequences(seqs, cols.event)
        export_dir = os.path.join(workdir, "export")
        manifest = nemo_export.export(req.objective, seqs, export_dir)
        app_path = modal_app.write_app(plan, workdir, export_dir)
        summary["export"] = {k: manifest[k] for k in manifest if k != "files"}
        summary["export"]["dir"] = export_dir
        events.progress(f"submitting {os.path.basename(app_path)} to Modal ({plan['target']['gpu']} x {plan['gpus']})")
        try:
            ids = modal_app.submit(app_path, export_dir)
        except LoomError:
            raise
        except Exception as e:  # the Modal boundary: auth, network, quota
            raise DomainError(f"Modal did not accept the launch: {type(e).__name__}: {str(e)[:200]} "
                              f"(the app is at {app_path}; check `modal token info`)")
        launch = {"launcher": "modal", "target": plan["target"]["raw"], "app_file": app_path, **ids}
        summary["launch"] = launch
        return Outcome("LAUNCHED", summary,
                       artifacts={"plan": plan, "launch": launch, "modal_app_source": open(app_path).read(),
                                  "export_manifest": manifest},
                       card=[flowkit.card_header("Train launch (nemo on Modal)",
                                                 [plan["cost_line"], f"app id: {ids.get('app_id')}"]),
                             flowkit.card_table(rows + [
                                 {"field": "export", "value": f"{manifest['format']}: {manifest['entities']} entities, "
                                                              f"{manifest['events']} events, vocabulary {manifest['vocab_size']}"},
                                 {"field": "app_id", "value": ids.get("app_id")}])],
                       messages=[f"launched on Modal: app {ids.get('app_id')}; follow it with `modal app logs "
                                 f"{ids.get('app_id')}`"])


# ---- local: the CPU stand-in ----------------------------------------------------------------------

class LocalProvider(Provider):
    name = "local"

    def check(self, req: Request) -> None:
        if req.objective == "finetune":
            raise UsageError("finetune needs a GPU builder: set LOOM_GPU_TARGET (e.g. modal:H100) and use "
                             "--provider nemo; the CPU build (--provider local) makes next-event and embedding models")

    def size(self, req: Request) -> dict:
        return budgets()["local"][req.budget]

    def max_events(self, req: Request) -> int | None:
        return self.size(req)["max_events"]

    def plan(self, req: Request, data: dict) -> dict:
        s = self.size(req)
        return {"provider": "local", "objective": req.objective, "budget": req.budget,
                "backbone": f"ppmi-svd-d{s['dim']}", "data": data, **s, "gpus": 0, "hours": 0, "gpu_hours": 0,
                "usd": 0.0, "cost_line": f"budget={req.budget}: built on this machine's CPU, 0 GPU-hours ($0)"}

    def execute(self, req, plan, df, cols, workdir) -> Outcome:
        from loom_py.runtime import events
        from loom_py.verbs.train import local
        from loom_py.verbs.train.sequences import build_sequences, check_sequences

        events.progress(f"building a {plan['backbone']} event-embedding model from {len(df)} rows")
        t0 = time.perf_counter()
        seqs = build_sequences(df, cols, plan["max_events"])
        check_sequences(seqs, cols.event)
        bb = local.build(seqs, objective=req.objective, dim=plan["dim"], window=plan["window"],
                         max_vocab=plan["max_vocab"])
        build_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        metrics = local.evaluate(bb, seqs, window=plan["window"])
        eval_seconds = time.perf_counter() - t1
        neighbours = local.nearest_neighbours(bb)
        t2 = time.perf_counter()
        summary = base_summary(req, plan["backbone"], cost_summary(plan), cols)
        summary.update({
            "metrics": metrics, "backbone_sha256": bb.sha256, "build_seconds": round(build_seconds, 4),
            "eval_seconds": round(eval_seconds, 4), "vocab_size": len(bb.vocab), "dim": int(bb.embeddings.shape[1]),
            "window": plan["window"], "events": seqs.n_events, "sequences": seqs.n_sequences,
            "truncated_to_max_events": seqs.truncated, "stats": bb.stats,
        })
        beats = metrics["hit_at_10"] > metrics["baseline_hit_at_10"]
        messages = [] if beats else ["the model does not beat the popularity baseline on hit@10: the events may "
                                     "not be sequential, or try a larger --budget"]
        if req.backbone:
            messages.append(f"--backbone {req.backbone} is a nemo recipe name: the CPU build always makes {plan['backbone']}")
        if seqs.truncated:
            messages.append(f"budget {req.budget} uses the first {seqs.n_events} events (whole sequences); "
                            "a larger --budget uses more data")
        artifacts = {"embeddings": bb.embeddings, "context_embeddings": bb.context, "vocabulary": bb.vocab,
                     "event_counts": bb.counts, "singular_values": bb.singular_values,
                     "backbone_sha256": bb.sha256, "backbone_config": bb.config, "metrics": metrics}
        card = local_card(plan, summary, bb, neighbours)
        summary["card_seconds"] = round(time.perf_counter() - t2, 4)
        return Outcome("BUILT", summary, artifacts=artifacts, card=card, messages=messages)


def local_card(plan, summary, bb, neighbours) -> list:
    from metaflow.cards import Markdown, VegaChart

    from loom_py.runtime import flowkit

    m = summary["metrics"]
    comps = [flowkit.card_header(f"Backbone {plan['backbone']} ({summary['objective']}, budget {summary['budget']})", [
        f"events: {summary['events']} in {summary['sequences']} sequences; vocabulary {summary['vocab_size']}",
        f"build: {summary['build_seconds']:.3f} s (CPU, BLAS pinned to 1 thread); sha256 `{summary['backbone_sha256']}`",
        f"next-event hit@10 {m['hit_at_10']:.3f} vs popularity {m['baseline_hit_at_10']:.3f}; "
        f"MRR {m['mrr']:.3f} vs {m['baseline_mrr']:.3f} on {m['heldout']} held-out last events"])]
    comps.append(Markdown("## Metrics (held-out last event of each sequence)"))
    comps.append(flowkit.card_table([{"metric": "hit@10", "backbone": m["hit_at_10"], "popularity": m["baseline_hit_at_10"]},
                                     {"metric": "MRR", "backbone": m["mrr"], "popularity": m["baseline_mrr"]}]))
    W = bb.embeddings
    if W.shape[1] >= 2:
        comps.append(Markdown("## 2-D projection (first two SVD components; the 15 most frequent events labelled)"))
        comps.append(VegaChart(projection_spec(bb)))
    comps.append(Markdown("## Nearest neighbours of the most frequent events (cosine)"))
    comps.append(flowkit.card_table(neighbours))
    return comps


def projection_spec(bb, max_points: int = 2000, labels: int = 15) -> dict:
    """A Vega-Lite scatter of the first two embedding components (no matplotlib import on this path)."""
    W = bb.embeddings
    n = min(len(bb.vocab), max_points)
    pts = [{"event": bb.vocab[i], "count": int(bb.counts[i]), "x": round(float(W[i, 0]), 5),
            "y": round(float(W[i, 1]), 5), "label": bb.vocab[i][:16] if i < labels else ""} for i in range(n)]
    enc = {"x": {"field": "x", "type": "quantitative", "title": "component 1"},
           "y": {"field": "y", "type": "quantitative", "title": "component 2"}}
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "width": 520, "height": 420,
            "data": {"values": pts},
            "layer": [{"mark": {"type": "circle", "opacity": 0.5},
                       "encoding": {**enc, "size": {"field": "count", "type": "quantitative", "legend": None},
                                    "tooltip": [{"field": "event"}, {"field": "count"}]}},
                      {"mark": {"type": "text", "dx": 6, "align": "left", "fontSize": 9},
                       "encoding": {**enc, "text": {"field": "label"}}}]}


def base_summary(req: Request, backbone: str, cost: dict, cols: Columns) -> dict:
    return {"provider": req.provider, "objective": req.objective, "budget": req.budget, "backbone": backbone,
            "dataset": req.dataset, "columns": {"entity": cols.entity, "time": cols.time, "event": cols.event},
            "cost": cost}


def cost_summary(plan: dict) -> dict:
    return {k: plan[k] for k in ("gpus", "hours", "gpu_hours", "usd")} | {"line": plan["cost_line"]}


def refusal_summary(req: Request, plan: dict) -> dict:
    return {"provider": req.provider, "objective": req.objective, "budget": req.budget,
            "backbone": req.backbone or budgets()["default_backbone"][req.objective], "dataset": req.dataset,
            "cost": {"gpus": plan["gpus"], "hours": plan["hours"], "gpu_hours": plan["gpu_hours"], "usd": plan["usd"],
                     "line": plan["line"]},
            "refusal": f"{STATUS_REFUSED}   {REFUSAL_HINT}"}


def app_name(req: Request) -> str:
    import re

    base = re.sub(r"[^a-z0-9-]+", "-", f"loom-train-{req.dataset}-{req.objective}-{req.budget}".lower())
    return base.strip("-")[:64]


PROVIDERS: dict[str, type[Provider]] = {"nemo": NemoProvider, "local": LocalProvider}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]()
    except KeyError:
        raise UsageError(f"unknown provider '{name}': use --provider {'|'.join(PROVIDERS)}")
