/**
 * `loom pipeline`: the whole lifecycle as one gated run → PipelineFlow/N. One gate up front (the optimize
 * stage's cost and what each stage writes); the stages are the verbs' own runs (eda → features --from →
 * run → validate --model → report), started from PipelineFlow's steps and tagged pipeline:<id>. See
 * py/loom_py/verbs/pipeline.py and docs/decisions/0600-pipeline-stages-are-child-runs.md.
 */
import type { ArgDef } from "citty";
import * as v from "valibot";
import { defineVerb, type Outcome } from "../core/define";
import { UsageError } from "../core/errors";
import { onInterrupt } from "../core/interrupt";
import { Column, DatasetPathspec, Num, Pathspec, PositiveInt, Repeated } from "../core/schemas";
import { kv } from "../core/ui";
import { DEPLOY_TARGETS, argoPreflight } from "../core/scaleout";
import { workspaceDatastore } from "../core/workspace";
import { EST_TOKENS_PER_NODE, priceOf, usd } from "../optimize/pricing";
import { startProposerServer } from "../optimize/server";
import { anthropicProposer, openaiProposer } from "../optimize/proposers";
import optimize, { boardBelow, resolveProposer } from "./optimize";

const PROVIDERS = ["anthropic", "openai", "offline"] as const;
const STAGES = ["eda", "features", "optimize", "validate", "report"] as const;

const Stage = v.object({
  name: v.picklist(STAGES),
  pathspec: v.nullable(v.string()),
  status: v.string(),
  verdict: v.nullable(v.string()),
  seconds: v.number(),
  card_path: v.nullable(v.string()),
  reused_from: v.nullable(v.string()),
  reason: v.nullable(v.string()),
});
const Summary = v.looseObject({
  verdict: v.nullable(v.picklist(["PASS", "FAIL"])),
  dataset: v.string(),
  target: v.string(),
  stages: v.array(Stage),
  failed_stage: v.nullable(v.picklist(STAGES)),
  reason: v.nullable(v.string()),
  seconds: v.number(),
  reused: v.array(v.string()),
  interrupted: v.optional(v.boolean()),
});
type S = v.InferOutput<typeof Summary>;
/** `--deploy-to argo`: the template Metaflow compiled (py/loom_py/verbs/pipeline_argo.py), no run */
const DeploySummary = v.looseObject({
  mode: v.literal("deploy"),
  deploy_to: v.literal("argo-workflows"),
  template_path: v.string(),
  workflow_template: v.string(),
  image: v.union([v.string(), v.array(v.string())]),
  code_package: v.string(),
  steps: v.array(v.looseObject({ name: v.string(), image: v.nullable(v.string()), cpu: v.nullish(v.string()), memory: v.nullish(v.string()) })),
  metadata: v.string(),
  dataset: v.string(),
  target: v.string(),
});
type D = v.InferOutput<typeof DeploySummary>;

const Input = v.object({
  dataset: v.optional(DatasetPathspec),
  target: v.optional(Column),
  goal: v.optional(v.string()),
  metric: v.optional(v.string()),
  steps: v.optional(PositiveInt("--steps"), 10),
  threshold: v.optional(Num("--threshold")),
  recipe: v.optional(v.picklist(["minimal", "standard"], "must be minimal or standard"), "minimal"),
  sensitive: v.optional(Repeated),
  time: v.optional(Column),
  group: v.optional(Column),
  "model-provider": v.optional(v.picklist(PROVIDERS, "must be anthropic, openai or offline")),
  model: v.optional(v.string()),
  "budget-usd": v.optional(Num("--budget-usd")),
  resume: v.optional(Pathspec("PipelineFlow run")),
  "deploy-to": v.optional(v.picklist(DEPLOY_TARGETS, "must be argo (Argo Workflows)")),
});
type Input = v.InferOutput<typeof Input>;

interface Described {
  rows: number;
  labeled_rows: number;
  columns: number;
  task: string;
  metric_spec: { metric: string; label: string; direction: string };
  options: { steps: number; model_provider: (typeof PROVIDERS)[number]; model: string | null; budget_usd: number | null; [k: string]: unknown };
  reuse: string[];
  /** the search Ctrl-C stopped, continued by the resumed pipeline's optimize stage */
  continues?: { pathspec: string; nodes_finished: number } | null;
  writes: Record<string, string>;
}
let described: Described | undefined;
let lastBoardLines = 0;

function proposerOf(d: Described) {
  return resolveProposer({ "model-provider": d.options.model_provider, model: d.options.model ?? undefined });
}

export default defineVerb({
  name: "pipeline",
  description: "The whole lifecycle as one run, with one cost check up front: eda → features → a bounded search → validate → report, each step checking the one before it (→ PipelineFlow/N)",
  // --deploy-to only compiles a template (a file here, the code package in the datastore); creating it on a
  // cluster would be external and irreversible, and Loom does not offer it
  tier: (input: Input) => (input["deploy-to"] ? "workspace-write" : "expensive"),
  tierLabel: "expensive (workspace-write with --deploy-to)",
  emitsVerdict: true,
  args: {
    dataset: { type: "string", description: "data object to start from (IngestDataset/N or FeaturesFlow/N)" },
    target: { type: "string", description: "the column to predict" },
    goal: { type: "string", description: "what to predict, in words" },
    metric: { type: "string", description: "the metric in words, e.g. \"Maximize ROC-AUC on a held-out split.\"" },
    steps: { type: "string", description: "candidates the search proposes and scores (default 10)" },
    threshold: { type: "string", description: "the bar validate's holdout metric must reach" },
    recipe: { type: "enum", options: ["minimal", "standard"], description: "features recipe: minimal (default) or standard" },
    sensitive: { type: "string", repeatable: true, description: "sensitive column whose groups validate compares for fairness (repeatable)" } as ArgDef,
    time: { type: "string", description: "time column: eda's leakage check, the newest rows held back, time-aware cross-validation" },
    group: { type: "string", description: "entity column: all rows of one entity stay on the same side of every split" },
    "model-provider": { type: "enum", options: [...PROVIDERS], description: "who writes the search's candidates: anthropic (default), openai, offline (keyless)" },
    model: { type: "string", description: "the LLM the search uses" },
    "budget-usd": { type: "string", description: "hard spend cap for the search" },
    resume: { type: "string", description: "PipelineFlow/N: continue from its first stage that did not succeed" },
    "deploy-to": { type: "enum", options: [...DEPLOY_TARGETS], description: "compile the pipeline into an Argo Workflows template under .loom/artifacts/pipeline/ instead of running it (needs the s3 datastore and METAFLOW_KUBERNETES_CONTAINER_IMAGE)" },
  },
  input: Input,
  summary: v.union([Summary, DeploySummary]),
  writes: (input) =>
    input["deploy-to"]
      ? "checks the options, uploads PipelineFlow's code package to the datastore and writes an Argo Workflows template under .loom/artifacts/pipeline/ (nothing is sent to a cluster)"
      : "runs the pipeline's stages",
  async preflight(input, ctx) {
    described = undefined;
    if (input["deploy-to"]) {
      if (input.resume) throw new UsageError("--deploy-to argo compiles a new pipeline: drop --resume");
      const provider = input["model-provider"] ?? "offline";
      if (provider !== "offline")
        throw new UsageError(`--deploy-to argo runs the search on the cluster, where the ${provider} API key must not go: use --model-provider offline`);
      const ds = workspaceDatastore(ctx.workspace);
      const why = argoPreflight(ds, process.env, ds.profile);
      if (why) throw new UsageError(why);
      return; // the options are checked by the compile call itself (pipeline_argo.deploy), before any upload
    }
    if (input.resume) {
      const mixed = (["dataset", "target", "goal", "metric", "threshold", "sensitive", "time", "group", "model-provider", "model", "budget-usd"] as const).filter((k) => input[k] !== undefined);
      if (mixed.length) throw new UsageError(`--resume continues ${input.resume} with its own options: drop ${mixed.map((k) => `--${k}`).join(", ")}`);
    }
    const d = await ctx.call("loom_py.verbs.pipeline:describe", params(input));
    described = d.summary as Described;
    proposerOf(described); // a missing key is refused (exit 2) before the gate
  },
  cost(input) {
    if (input["deploy-to"]) return { lines: [], usd: 0 };
    const d = described!;
    const p = proposerOf(d);
    const reuse = new Set(d.reuse);
    const rows = `${d.rows} rows (${d.labeled_rows} labeled) × ${d.columns} columns, ${d.task}; ${d.metric_spec.label} (${d.metric_spec.direction})`;
    const stageLines = STAGES.map((s) =>
      `${s}: ${reuse.has(s) ? "reused from the resumed run" : s === "optimize" && d.continues ? `continues ${d.continues.pathspec} (${d.continues.nodes_finished} candidates already scored)` : d.writes[s]}`,
    );
    const steps = d.options.steps;
    if (reuse.has("optimize") || !p.remote)
      return {
        lines: [`optimize stage: ${reuse.has("optimize") ? "reused (no new search)" : `${steps} steps × offline proposer = $0 (keyless, local)`}`, rows, ...stageLines],
        usd: 0,
        rows: d.rows,
        leavesMachine: false,
      };
    const tokIn = steps * EST_TOKENS_PER_NODE.input;
    const tokOut = steps * EST_TOKENS_PER_NODE.output;
    const price = priceOf(p.model);
    const est = usd(p.model, tokIn, tokOut);
    const cap = d.options.budget_usd;
    return {
      lines: [
        `optimize stage: ${steps} steps × ~${EST_TOKENS_PER_NODE.input + EST_TOKENS_PER_NODE.output} tokens × ${price ? `$${price.input}/$${price.output} per Mtok` : "unknown price ($0 counted)"} (${p.model}) ≈ $${est.toFixed(2)}${cap != null ? ` (capped at $${cap})` : ""}`,
        rows + "; the proposer sees a statistics preview, not rows",
        ...stageLines,
      ],
      usd: cap != null ? Math.min(est, cap) : est,
      tokens: tokIn + tokOut,
      rows: d.rows,
      leavesMachine: !/^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(\/|$)/i.test(p.baseURL ?? (p.provider === "anthropic" ? "https://api.anthropic.com" : "")),
    };
  },
  onEvent(ev, ui) {
    if (ev.kind === "stage") {
      const e = ev as unknown as { stage: string; event: string; pathspec?: string; status?: string; verdict?: string; seconds?: number; reason?: string };
      if (e.event === "begin") ui.progress(`pipeline ${e.pathspec} (if it is interrupted: loom pipeline --resume ${e.pathspec})`);
      else if (e.event === "start") ui.progress(`stage ${e.stage}: started`);
      else if (e.event === "reused") ui.progress(`stage ${e.stage}: reused ${e.pathspec} (${e.verdict ?? e.status})`);
      else {
        lastBoardLines = 0;
        ui.progress(`stage ${e.stage}: ${e.pathspec ?? "no run"} ${e.verdict ?? e.status} (${(e.seconds ?? 0).toFixed(1)} s)${e.reason ? ` — ${e.reason}` : ""}`);
      }
      return;
    }
    if (ev.kind === "leaderboard") return optimize.onEvent!(ev, ui);
  },
  human(out) {
    if ((out.summary as D)?.mode === "deploy") {
      const d = out.summary as D;
      return [
        kv("data", `${d.dataset} → ${d.target}`),
        kv("template", d.template_path),
        kv("argo", `WorkflowTemplate ${d.workflow_template}`),
        kv("image", Array.isArray(d.image) ? d.image.join(", ") : d.image),
        kv("package", d.code_package),
        ...d.steps.map((st) => kv(`step ${st.name}`, `${st.cpu ?? "?"} cpu, ${st.memory ?? "?"} memory`)),
      ];
    }
    const s = out.summary as S;
    if (!s?.stages) return [];
    return [
      kv("data", `${s.dataset} → ${s.target}`),
      ...s.stages.map((r) =>
        kv(r.name, `${(r.pathspec ?? "—").padEnd(30)} ${(r.verdict ?? r.status).padEnd(11)} ${r.seconds.toFixed(1).padStart(6)} s${r.reused_from ? " (reused)" : ""}${r.reason && r.status !== "SKIPPED" ? ` — ${r.reason}` : ""}`),
      ),
      kv("total", `${s.seconds.toFixed(1)} s`),
      ...((s as { model_card?: string | null }).model_card ? [kv("model card", (s as { model_card?: string }).model_card!)] : []),
    ];
  },
  async run(input, ctx): Promise<Outcome> {
    if (input["deploy-to"]) return ctx.call("loom_py.verbs.pipeline_argo:deploy", { ...params(input), model_provider: input["model-provider"] ?? "offline" });
    const p = proposerOf(described!);
    // describe (the preflight) made every input check moments ago: prepare skips the second data load
    const req = { flow: "pipeline_flow.py", flowName: "PipelineFlow", prepare: "loom_py.verbs.pipeline:prepare", params: { ...params(input), checked: true } };
    // Ctrl-C: the running stage stops (the search's candidate, validate's fold) and the finished ones are kept
    const interrupt = onInterrupt(ctx, "stopping the current stage and keeping the finished ones", boardBelow);
    try {
      if (!p.remote || described!.reuse.includes("optimize")) return await ctx.flow({ ...req, env: interrupt.env });
      const complete =
        p.provider === "anthropic"
          ? anthropicProposer({ apiKey: p.apiKey!, model: p.model, baseURL: p.baseURL })
          : openaiProposer({ apiKey: p.apiKey, model: p.model, baseURL: p.baseURL!, stream: process.env.LOOM_OPENAI_STREAM !== "0" });
      const server = startProposerServer(complete);
      try {
        return await ctx.flow({ ...req, env: { LOOM_PROPOSER_URL: server.url, ...interrupt.env } });
      } finally {
        server.stop();
      }
    } finally {
      interrupt.done();
    }
  },
});

function params(input: Input): Record<string, unknown> {
  if (input.resume) return { resume: input.resume };
  return {
    dataset: input.dataset,
    target: input.target,
    goal: input.goal,
    metric: input.metric,
    steps: input.steps,
    threshold: input.threshold,
    recipe: input.recipe,
    sensitive: input.sensitive,
    time: input.time,
    group: input.group,
    model_provider: input["model-provider"] ?? "anthropic",
    model: input.model,
    budget_usd: input["budget-usd"],
  };
}
