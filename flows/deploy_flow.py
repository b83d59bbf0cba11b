"""DeployFlow: promote a validated model into an MLflow model registry (loom deploy).

mode=plan stages the pyfunc model + manifest (no registry write); mode=apply registers a version and moves
the alias; mode=rollback / rollback_apply plans / moves the alias back. Every run is Loom's record of what
it planned or moved (MLflow keeps no alias history): loom_py/verbs/deploy/__init__.py."""

from metaflow import FlowSpec, Parameter, card, current, step

from loom_py.runtime.flowkit import final_cards_only

final_cards_only()

LOOM_WARM = ("loom_py.verbs.deploy:warm_imports",)


class DeployFlow(FlowSpec):
    mode = Parameter("mode", default="plan", help="plan | apply | rollback | rollback_apply")
    validate = Parameter("validate", default="", help="the ValidateFlow run (VERDICT PASS)")
    model_name = Parameter("model_name", required=True, help="registered model name")
    model_alias = Parameter("model_alias", default="champion", help="the MLflow alias to move")
    target = Parameter("target", default="mlflow", help="deploy target")
    registry = Parameter("registry", required=True, help="MLflow tracking/registry URI")
    plan = Parameter("plan", default="", help="the DeployFlow plan run --apply applies")

    @card(type="blank", id="deploy")
    @step
    def start(self):
        from loom_py.runtime import flowkit

        with flowkit.relay_errors():
            self._work()
        self.next(self.end)

    def _work(self):
        from loom_py.runtime import events, flowkit
        from loom_py.verbs import deploy

        me = f"DeployFlow/{current.run_id}"
        name, alias, uri = self.model_name, self.model_alias, self.registry
        p = {"mode": self.mode, "validate": self.validate, "name": name, "alias": alias,
             "target": self.target, "registry": uri, "plan": self.plan}
        if self.mode == "plan":
            events.progress(f"staging {self.validate} as {name}@{alias}")
            plan = deploy.stage(current.run_id, p)
            from loom_py.runtime import wsfiles

            wsfiles.keep(self, plan["stage_dir"])  # the staged model travels with the run; --apply re-verifies it
            self.staged_plan = plan
            m = plan["manifest"]
            s = {"mode": "plan", "validate": self.validate, "name": name, "alias": alias, "registry": uri,
                 "stage_dir": plan["stage_dir"], "manifest_sha256": plan["manifest_sha256"],
                 "files": len(m["files"]), "metric": m["metric"], "threshold": m["threshold"],
                 "holdout": m["holdout"], "seal_id": m["seal_id"], "model": m["model"], "lineage": m["lineage"],
                 "apply_will": m["apply_will"], "rollback": m["rollback"]}
            msgs = [m["model"]["code_note"], f"staged under {plan['stage_dir']}; nothing is registered until --apply"]
            self.loom_result = flowkit.result("PLANNED", s, inputs=[self.validate, m["dataset"]["pathspec"]],
                                              messages=msgs, next=[plan["apply_command"]])
            title, lines = f"{me}: PLANNED {name}@{alias}", [
                f"validate: {self.validate} (VERDICT PASS, holdout {m['holdout']['metric']} {m['holdout']['value']:.4g})",
                f"--apply will register a new version of {name} in {uri} and move @{alias} from "
                f"{m['apply_will']['alias_from'] or 'nobody'} to it", f"rollback: {m['rollback']}",
                f"model: {m['model']['name']}", m["model"]["code_note"], f"staged: {plan['stage_dir']}"]
        elif self.mode == "apply":
            events.progress(f"registering {self.plan} as {name}@{alias}")
            res = deploy.apply(me, p)
            self.move = res["move"]
            mv = res["move"]
            s = {"mode": "apply", "validate": self.validate, "name": name, "alias": alias, "registry": uri,
                 "plan": self.plan, "version": res["version"], "alias_move": {"from": mv["from"], "to": mv["to"]},
                 "model_uri": res["model_uri"], "source": res["source"],
                 "serve": deploy.serve_command(name, alias, uri)}
            back = f"loom deploy --rollback {name} --alias {alias}"
            self.loom_result = flowkit.result("APPLIED", s, inputs=[self.plan, self.validate],
                                              messages=[f"{name}@{alias}: version {mv['from'] or 'none'} → {mv['to']}"],
                                              next=[s["serve"]] + ([back] if mv["from"] else []))
            title, lines = f"{me}: APPLIED {name}@{alias} → version {mv['to']}", [
                f"from version {mv['from'] or 'none'} to {mv['to']} in {uri}", f"plan: {self.plan}",
                f"validate: {self.validate}", f"serve: {s['serve']}"]
        elif self.mode == "rollback":
            t = deploy.rollback_target(uri, name, alias)
            s = {"mode": "rollback", "name": name, "alias": alias, "registry": uri,
                 "alias_move": {"from": t["from"], "to": t["to"]}, "recorded_moves": t["moves"]}
            cmd = f"loom deploy --rollback {name} --alias {alias} --apply"
            self.loom_result = flowkit.result("PLANNED", s, messages=[f"--apply moves {name}@{alias} from version "
                                                                      f"{t['from']} back to {t['to']}"], next=[cmd])
            title, lines = f"{me}: PLANNED rollback of {name}@{alias}", [f"version {t['from']} → {t['to']}"]
        elif self.mode == "rollback_apply":
            res = deploy.rollback_apply(me, p)
            self.move = res["move"]
            mv = res["move"]
            s = {"mode": "rollback_apply", "name": name, "alias": alias, "registry": uri, "version": res["version"],
                 "alias_move": {"from": mv["from"], "to": mv["to"]}, "model_uri": res["model_uri"],
                 "serve": deploy.serve_command(name, alias, uri)}
            self.loom_result = flowkit.result("APPLIED", s, messages=[f"{name}@{alias}: version {mv['from']} → {mv['to']} (rollback)"],
                                              next=[s["serve"]])
            title, lines = f"{me}: ROLLED BACK {name}@{alias} → version {mv['to']}", [f"from version {mv['from']}"]
        else:
            from loom_py.runtime.errors import UsageError

            raise UsageError(f"unknown deploy mode '{self.mode}'")
        current.card.append(flowkit.card_header(title, lines))

    @step
    def end(self):
        pass


if __name__ == "__main__":
    from loom_py.runtime.flowkit import main

    main(DeployFlow)
