import * as v from "valibot";
import budgets from "../../py/loom_py/verbs/train/budgets.json";
import { defineVerb, type Outcome } from "../core/define";
import { UsageError } from "../core/errors";
import { Column, DatasetPathspec } from "../core/schemas";
import { kv } from "../core/ui";

const OBJECTIVES = ["next-event", "embedding", "finetune"] as const;
const BUDGETS = ["probe", "small", "full"] as const;
type Objective = (typeof OBJECTIVES)[number];
type Budget = (typeof BUDGETS)[number];
export const STATUS_REFUSED = "REFUSED_NO_GPU_TARGET";
export const REFUSAL_HINT = "(set LOOM_GPU_TARGET, or build on this machine's CPU: --provider local)";

const Cost = v.object({ gpus: v.number(), hours: v.number(), gpu_hours: v.number(), usd: v.number(), line: v.string() });
const Metrics = v.looseObject({
  hit_at_10: v.number(),
  baseline_hit_at_10: v.number(),
  mrr: v.number(),
  baseline_mrr: v.number(),
  heldout: v.number(),
});
const Summary = v.looseObject({
  provider: v.picklist(["nemo", "local"]),
  objective: v.picklist(OBJECTIVES),
  budget: v.picklist(BUDGETS),
  backbone: v.string(),
  dataset: v.string(),
  columns: v.object({ entity: v.string(), time: v.nullable(v.string()), event: v.string() }),
  cost: Cost,
  // local (BUILT)
  metrics: v.optional(Metrics),
  backbone_sha256: v.optional(v.pipe(v.string(), v.regex(/^sha256:[0-9a-f]{64}$/))),
  backbone_pathspec: v.optional(v.string()),
  build_seconds: v.optional(v.number()),
  vocab_size: v.optional(v.number()),
  dim: v.optional(v.number()),
  events: v.optional(v.number()),
  sequences: v.optional(v.number()),
  // nemo (PLANNED / LAUNCHED)
  plan: v.optional(v.looseObject({ recipe: v.string(), gpus: v.number(), hours: v.number(), usd: v.number(), launch_command: v.string(), target: v.string(), trains_on: v.optional(v.string()) })),
  export: v.optional(v.looseObject({ format: v.string(), entities: v.number(), events: v.number(), vocab_size: v.number(), dir: v.string() })),
  launch: v.optional(v.looseObject({ launcher: v.string(), target: v.string(), app_id: v.unknown() })),
});
type Summary = v.InferOutput<typeof Summary>;

/** Pure: the provider from --provider, else LOOM_MODEL_BUILDER_PROVIDER, else nemo. */
export function resolveProvider(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const p = (flag || env.LOOM_MODEL_BUILDER_PROVIDER || "nemo").trim().toLowerCase();
  if (!budgets.providers.includes(p))
    throw new UsageError(`unknown provider '${p}': use --provider ${budgets.providers.join("|")} (or set LOOM_MODEL_BUILDER_PROVIDER)`);
  return p;
}

export function gpuRate(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.LOOM_GPU_HOURLY_USD;
  if (raw === undefined || raw === "") return budgets.gpu_hourly_usd_default;
  const r = Number(raw);
  if (!Number.isFinite(r) || r < 0) throw new UsageError(`LOOM_GPU_HOURLY_USD=${raw} is not a dollar rate: set it to a number such as 3.00`);
  return r;
}

const num = (x: number) => (Number.isInteger(x) ? String(x) : String(x));
const usdText = (usd: number) => (usd >= 10 || Number.isInteger(usd) ? `~$${Math.round(usd).toLocaleString("en-US")}` : `~$${usd.toFixed(2)}`);

/** Pure: the nemo cost plan (same numbers and text as loom_py.verbs.train.cost_plan). */
export function costPlan(budget: Budget, rate: number) {
  const b = budgets.nemo[budget];
  const gpuHours = b.gpus * b.hours;
  const usd = Math.round(gpuHours * rate * 100) / 100;
  return { gpus: b.gpus, hours: b.hours, gpuHours, usd, line: `budget=${budget}: ${b.gpus} GPU x ${num(b.hours)} h = ${num(gpuHours)} GPU-hours (${usdText(usd)})` };
}

const Input = v.object({
  dataset: DatasetPathspec,
  objective: v.optional(v.picklist(OBJECTIVES, `must be one of ${OBJECTIVES.join(", ")}`), "next-event"),
  budget: v.optional(v.picklist(BUDGETS, `must be one of ${BUDGETS.join(", ")}`), "probe"),
  backbone: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]+$/, "must be a recipe name (letters, digits, _ . -), e.g. llama32_1b"))),
  provider: v.optional(v.string()),
  entity: v.optional(Column),
  time: v.optional(Column),
  event: v.optional(Column),
  launch: v.optional(v.boolean(), false),
});
type Input = v.InferOutput<typeof Input>;

const gpuTarget = () => (process.env.LOOM_GPU_TARGET ?? "").trim();

export default defineVerb({
  name: "train",
  description: "Train a model of event sequences: on GPUs with NVIDIA NeMo (a cost plan; --launch submits it) or on this machine's CPU (a small embedding model) → TrainFlow/N",
  tier: (input: Input) => (input.launch ? "irreversible" : "expensive"),
  tierLabel: "expensive (irreversible with --launch)",
  args: {
    dataset: { type: "string", description: "data object with event data: its label, IngestDataset/N or a run-id prefix" },
    objective: { type: "enum", options: [...OBJECTIVES], description: "next-event (learn to predict each entity's next event) | embedding (an embedding of the event types) | finetune (GPU only); default next-event" },
    budget: { type: "enum", options: [...BUDGETS], description: "how much to train: probe | small | full (GPU-hours on NeMo, model size on the CPU); default probe" },
    backbone: { type: "string", description: "the base model to train, a NeMo recipe name (default per objective: " + Object.entries(budgets.default_backbone).map(([k, b]) => `${k}=${b}`).join(", ") + ")" },
    provider: { type: "string", description: "where to train: nemo (GPUs; default) | local (this machine's CPU); or LOOM_MODEL_BUILDER_PROVIDER" },
    entity: { type: "string", description: "entity column (whose sequence); guessed when absent" },
    time: { type: "string", description: "time column (orders each sequence); guessed when absent" },
    event: { type: "string", description: "event / token column; guessed when absent" },
    launch: { type: "boolean", description: "nemo: send the training job to the GPUs (irreversible: asks y/N first; denied without a terminal)" },
  },
  input: Input,
  summary: Summary,
  cost(input) {
    const provider = resolveProvider(input.provider);
    if (provider === "local")
      return { lines: [`budget=${input.budget}: built on this machine's CPU, 0 GPU-hours ($0)`], usd: 0, gpuHours: 0 };
    const plan = costPlan(input.budget, gpuRate());
    if (!input.launch)
      return { lines: [`${plan.line}: plan only, nothing launches ($0 now; --launch spends it)`], usd: 0, gpuHours: 0 };
    return {
      lines: [plan.line, `launch to ${gpuTarget()} (Modal): ${input.dataset} leaves this machine`],
      usd: plan.usd,
      gpuHours: plan.gpuHours,
      leavesMachine: true,
    };
  },
  preflight(input, ctx): Outcome | void {
    const provider = resolveProvider(input.provider);
    const rate = gpuRate();
    if (provider === "local") {
      if (input.objective === "finetune")
        throw new UsageError("finetune needs a GPU builder: set LOOM_GPU_TARGET (e.g. modal:H100) and use --provider nemo; the CPU build (--provider local) makes next-event and embedding models");
      if (input.launch) throw new UsageError("--launch needs a GPU builder: drop --launch to build on the CPU, or set LOOM_GPU_TARGET and use --provider nemo");
      return;
    }
    const target = gpuTarget();
    if (target) {
      const launcher = target.includes(":") ? target.split(":")[0]!.toLowerCase() : "modal";
      if (launcher !== "modal") throw new UsageError(`LOOM_GPU_TARGET=${target}: unknown launcher '${launcher}'; set LOOM_GPU_TARGET=modal:H100 (Modal is the launcher Loom ships)`);
      return;
    }
    // nemo without a GPU target: refuse before any gate, show the plan, launch nothing
    const plan = costPlan(input.budget, rate);
    const fix = "set LOOM_GPU_TARGET (e.g. LOOM_GPU_TARGET=modal:H100) to plan a GPU build, or LOOM_MODEL_BUILDER_PROVIDER=local to build on this machine's CPU";
    if (!ctx.json) {
      ctx.ui.line(kv("cost (gate)", plan.line));
      ctx.ui.line(kv("STATUS", `${STATUS_REFUSED}   ${REFUSAL_HINT}`));
    }
    return {
      status: STATUS_REFUSED,
      exit_code: 2,
      pathspec: null,
      card_path: null,
      inputs: [input.dataset],
      summary: {
        provider,
        objective: input.objective,
        budget: input.budget,
        backbone: input.backbone ?? budgets.default_backbone[input.objective as Objective],
        dataset: input.dataset,
        cost: { gpus: plan.gpus, hours: plan.hours, gpu_hours: plan.gpuHours, usd: plan.usd, line: plan.line },
        refusal: `${STATUS_REFUSED}   ${REFUSAL_HINT}`,
      },
      messages: [fix],
      next: [`LOOM_MODEL_BUILDER_PROVIDER=local loom train --dataset ${input.dataset} --objective ${input.objective === "finetune" ? "next-event" : input.objective} --budget probe`],
    };
  },
  human(out) {
    const s = out.summary as Summary;
    const lines = [kv("training", `${s.provider} · ${s.objective} · budget ${s.budget}`), kv("model", s.backbone), kv("data", `${s.dataset} (${s.columns.entity} / ${s.columns.time ?? "row order"} / ${s.columns.event})`)];
    if (s.metrics) {
      const m = s.metrics;
      lines.push(
        kv("hit@10", `${m.hit_at_10.toFixed(3)} vs popularity ${m.baseline_hit_at_10.toFixed(3)} (${m.heldout} held-out last events)`),
        kv("MRR", `${m.mrr.toFixed(3)} vs popularity ${m.baseline_mrr.toFixed(3)}`),
        kv("built", `${s.events} events, ${s.vocab_size} event types, ${s.dim} dims in ${s.build_seconds?.toFixed(3)} s (CPU)`),
        kv("sha256", s.backbone_sha256 ?? ""),
        kv("artifacts", `${s.backbone_pathspec}: embeddings, context_embeddings, vocabulary`),
      );
    }
    if (s.plan) {
      lines.push(kv("cost (plan)", s.cost.line), kv("recipe", s.plan.recipe), kv("target", `${s.plan.target} (Modal)`));
      if (s.plan.trains_on) lines.push(kv("trains on", s.plan.trains_on));
      if (!s.launch) lines.push(kv("launch", s.plan.launch_command));
    }
    if (s.export) lines.push(kv("export", `${s.export.format}: ${s.export.entities} entities, ${s.export.events} events, vocabulary ${s.export.vocab_size} (${s.export.dir})`));
    if (s.launch) lines.push(kv("launched", `app ${String(s.launch.app_id)} on ${s.launch.target}`));
    return lines;
  },
  async run(input, ctx) {
    const provider = resolveProvider(input.provider);
    return ctx.flow({
      flow: "train_flow.py",
      flowName: "TrainFlow",
      prepare: "loom_py.verbs.train:prepare",
      params: {
        dataset: input.dataset,
        objective: input.objective,
        budget: input.budget,
        provider,
        backbone: input.backbone,
        entity: input.entity,
        time_col: input.time,
        event: input.event,
        launch: input.launch,
        gpu_target: provider === "nemo" ? gpuTarget() : undefined,
        gpu_hourly_usd: gpuRate(),
      },
    });
  },
});
