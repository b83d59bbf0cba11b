import * as v from "valibot";
import { defineVerb, type Outcome } from "../core/define";
import { UsageError } from "../core/errors";
import { Pathspec } from "../core/schemas";
import { kv } from "../core/ui";

const Move = v.object({ from: v.nullable(v.number()), to: v.nullable(v.number()) });
const Summary = v.looseObject({
  mode: v.picklist(["plan", "apply", "rollback", "rollback_apply"]),
  name: v.optional(v.string()),
  alias: v.optional(v.string()),
  registry: v.optional(v.string()),
  validate: v.optional(v.string()),
  // plan
  stage_dir: v.optional(v.string()),
  manifest_sha256: v.optional(v.pipe(v.string(), v.regex(/^sha256:[0-9a-f]{64}$/))),
  files: v.optional(v.number()),
  holdout: v.optional(v.looseObject({ metric: v.string(), value: v.nullable(v.number()), rows: v.number() })),
  seal_id: v.optional(v.string()),
  apply_will: v.optional(v.looseObject({ registry: v.string(), model_name: v.string(), alias: v.string(), alias_from: v.nullable(v.number()), command: v.string() })),
  rollback: v.optional(v.string()),
  model: v.optional(v.looseObject({ name: v.string(), source: v.string(), sha256: v.string(), model_written_code: v.boolean() })),
  // apply / rollback
  version: v.optional(v.number()),
  alias_move: v.optional(Move),
  model_uri: v.optional(v.string()),
  serve: v.optional(v.string()),
  // refused
  verdict: v.optional(v.nullable(v.string())),
  reasons: v.optional(v.array(v.string())),
});
type S = v.InferOutput<typeof Summary>;

const Input = v.object({
  validate: v.optional(Pathspec("validate run")),
  rollback: v.optional(v.pipe(v.string(), v.minLength(1, "needs the registered model's name"))),
  name: v.optional(v.string()),
  alias: v.optional(v.string(), "champion"),
  target: v.optional(v.picklist(["mlflow"], "must be mlflow (an MLflow model registry)"), "mlflow"),
  apply: v.optional(v.boolean(), false),
});
type Input = v.InferOutput<typeof Input>;

interface Checked {
  mode: string;
  name: string;
  alias: string;
  registry: string;
  plan?: string;
  alias_from?: number | null;
  model_written_code?: boolean;
  model?: string;
  from?: number;
  to?: number;
}
/** what the --apply preflight verified (one verb per process), shown at the gate */
let checked: Checked | null = null;

function mode(input: Input): "plan" | "apply" | "rollback" | "rollback_apply" {
  if (input.rollback !== undefined && input.validate !== undefined)
    throw new UsageError("pass either --validate ValidateFlow/N (promote) or --rollback NAME (move the alias back), not both");
  if (input.rollback !== undefined) return input.apply ? "rollback_apply" : "rollback";
  if (input.validate === undefined) throw new UsageError("deploy needs --validate ValidateFlow/N (a PASS verdict) or --rollback NAME");
  return input.apply ? "apply" : "plan";
}

const params = (input: Input) => ({
  mode: mode(input),
  validate: input.validate,
  name: input.rollback ?? input.name,
  alias: input.alias,
  target: input.target,
});

export default defineVerb({
  name: "deploy",
  description:
    "Put a validated model into an MLflow model registry: by default a plan to review (the packaged model and its manifest); --apply registers a new version and points the alias (champion) at it; --rollback NAME points it back (→ DeployFlow/N)",
  tier: (input: Input) => (input.apply ? "irreversible" : "workspace-write"),
  tierLabel: "workspace-write (irreversible with --apply)",
  args: {
    validate: { type: "string", description: "the ValidateFlow run whose model is deployed (its VERDICT must be PASS), or a PipelineFlow run (its validate step)" },
    rollback: { type: "string", description: "registered model name: plan pointing its alias back at the previous version (--apply does it)" },
    name: { type: "string", description: "registered model name (default: <dataset label>-<target>)" },
    alias: { type: "string", description: "the MLflow alias to point at the new version (default champion; challenger, say, to try a candidate)" },
    target: { type: "enum", options: ["mlflow"], description: "where to deploy: mlflow (MLFLOW_TRACKING_URI, else a SQLite registry in .loom/mlflow/)" },
    apply: { type: "boolean", description: "register the version and point the alias at it (irreversible: asks y/N first; denied without a terminal)" },
  },
  input: Input,
  summary: Summary,
  writes: (input) =>
    input.rollback !== undefined ? "records a rollback plan as a DeployFlow run" : "stages a model and manifest under .loom/artifacts/deploy/ (no registry write)",
  async preflight(input, ctx): Promise<Outcome | void> {
    const m = mode(input);
    if (m !== "apply" && m !== "rollback_apply") return;
    // before the gate asks: the staged files still match the plan (tampered → exit 2), or there is a
    // version to roll back to (none → refused, exit 1)
    const out = await ctx.call("loom_py.verbs.deploy:check", params(input));
    if (out.exit_code !== 0) return out;
    checked = out.summary as Checked;
  },
  // shown at the gate, before the y/N: what the apply changes, and whose code the registry will serve
  cost: (input) => {
    const c = checked;
    if (!input.apply || !c) return { lines: [] };
    if (c.mode === "rollback_apply")
      return { lines: [`moves ${c.name}@${c.alias} in ${c.registry} from version ${c.from} back to ${c.to}`] };
    return {
      lines: [
        `registers a new version of ${c.name} in ${c.registry} and moves @${c.alias} from ${c.alias_from ?? "nobody"} to it (plan ${c.plan})`,
        c.model_written_code
          ? `the model is model-written code (${c.model}): MLflow's serving and loading processes will run it`
          : `the model is Loom's default estimator (${c.model})`,
      ],
    };
  },
  human: (out) => {
    const s = out.summary as S;
    const lines: string[] = [];
    if (s.mode === "plan" && s.apply_will) {
      lines.push(kv("validate", `${s.validate} · holdout ${s.holdout?.metric} ${s.holdout?.value?.toFixed(4) ?? "n/a"} · seal ${s.seal_id}`));
      if (s.model) lines.push(kv("model", `${s.model.name}${s.model.model_written_code ? " (model-written code)" : ""}`));
      lines.push(kv("staged", `${s.stage_dir} (${s.files} files, manifest ${s.manifest_sha256?.slice(0, 19)}…)`));
      lines.push(kv("on --apply", `register a new version of ${s.apply_will.model_name} and move @${s.apply_will.alias} from ${s.apply_will.alias_from ?? "nobody"} to it`));
      lines.push(kv("registry", s.apply_will.registry));
      if (s.rollback) lines.push(kv("rollback", s.rollback));
    } else if (s.alias_move) {
      const verb = s.mode === "rollback" ? "would move" : "moved";
      lines.push(kv("alias", `${s.name}@${s.alias} ${verb} from version ${s.alias_move.from ?? "none"} to ${s.alias_move.to}`));
      if (s.version !== undefined) lines.push(kv("version", `${s.name} version ${s.version}`));
      if (s.registry) lines.push(kv("registry", s.registry));
      if (s.serve) lines.push(kv("serve", s.serve));
    }
    for (const r of s.reasons ?? []) lines.push(kv("reason", r));
    return lines;
  },
  run: (input, ctx) =>
    ctx.flow({
      flow: "deploy_flow.py",
      flowName: "DeployFlow",
      prepare: "loom_py.verbs.deploy:prepare",
      params: params(input),
      // the warm image imports only what this mode's task uses (loom_py.verbs.deploy:warm_imports)
      env: { LOOM_DEPLOY_MODE: mode(input) },
    }),
});
