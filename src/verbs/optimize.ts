/**
 * `loom run` (alias `loom optimize`): the AIDE search → OptimizeFlow/N. The search loop runs in Python inside
 * the flow's step; for anthropic/openai this process hosts the proposer (a loopback HTTP server holding the
 * SDK and the key) and hands its URL to the flow. See docs/decisions/0400-optimize-architecture.md.
 */
import * as v from "valibot";
import { defineVerb, type Outcome } from "../core/define";
import { UsageError } from "../core/errors";
import { onInterrupt } from "../core/interrupt";
import { DatasetPathspec, Num, Pathspec, PositiveInt } from "../core/schemas";
import { fit, stripControl, termWidth } from "../core/term";
import { kv } from "../core/ui";
import { nodeLines, progressLine, renderBoard, type BoardEvent } from "../optimize/leaderboard";
import { DEFAULT_MODELS, EST_TOKENS_PER_NODE, parsePricePerMtok, priceOf, usd, type Price } from "../optimize/pricing";
import { mapMetric, type ClosedSet, type MetricMapping } from "../optimize/metric";
import { anthropicProposer, openaiProposer, type Complete } from "../optimize/proposers";
import { startProposerServer } from "../optimize/server";

const PROVIDERS = ["anthropic", "openai", "offline"] as const;
type Provider = (typeof PROVIDERS)[number];

const Row = v.looseObject({
  rank: v.nullable(v.number()),
  node: v.number(),
  operator: v.picklist(["draft", "improve", "debug", "ensemble"]),
  model: v.string(),
  score: v.nullable(v.number()),
  seconds: v.number(),
  status: v.string(),
});
const Summary = v.looseObject({
  metric_spec: v.looseObject({ metric: v.string(), label: v.string(), direction: v.picklist(["maximize", "minimize"]), split: v.looseObject({ kind: v.string(), fraction: v.number() }), source: v.picklist(["rules", "model"]), text: v.string() }),
  best: v.nullable(v.object({ node: v.number(), score: v.number(), model: v.string() })),
  leaderboard: v.array(Row),
  nodes: v.record(v.string(), v.number()),
  spend: v.looseObject({ usd: v.number(), tokens: v.object({ input: v.number(), output: v.number() }), provider: v.string() }),
  stopped_because: v.string(),
});
type Summary = v.InferOutput<typeof Summary>;

const OptPositive = (what: string) => v.optional(Num(what));

const Input = v.object({
  dataset: v.optional(DatasetPathspec),
  goal: v.optional(v.string()),
  metric: v.optional(v.string()),
  target: v.optional(v.string()),
  steps: v.optional(PositiveInt("--steps"), 10),
  "model-provider": v.optional(v.picklist(PROVIDERS, "must be anthropic, openai or offline")),
  model: v.optional(v.string()),
  "budget-usd": OptPositive("--budget-usd"),
  "price-per-mtok": v.optional(v.string()),
  "time-limit": OptPositive("--time-limit"),
  parallel: v.optional(PositiveInt("--parallel"), 1),
  resume: v.optional(Pathspec("OptimizeFlow run")),
  seed: v.optional(v.pipe(v.union([v.string(), v.number()]), v.transform(Number), v.number("--seed must be a number"), v.integer("--seed must be a whole number")), 0),
  "node-timeout": OptPositive("--node-timeout"),
  "memory-mb": v.optional(PositiveInt("--memory-mb")),
  policy: v.optional(v.picklist(["aide", "topk"], "must be aide or topk"), "aide"),
  executor: v.optional(v.picklist(["local", "metaflow"], "must be local or metaflow"), "local"),
  time: v.optional(v.string()),
  group: v.optional(v.string()),
  holdout: OptPositive("--holdout"),
  "unsafe-no-sandbox": v.optional(v.boolean(), false),
  "keep-leaky": v.optional(v.boolean()),
});
type Input = v.InferOutput<typeof Input>;

export const MISSING_KEY = "set ANTHROPIC_API_KEY … or pick a --model-provider (offline runs keyless)";

/** Pure: the provider, model and endpoint a run will use, or a UsageError saying what to set. */
export function resolveProposer(input: Pick<Input, "model-provider" | "model">, env: NodeJS.ProcessEnv = process.env) {
  const provider: Provider = input["model-provider"] ?? "anthropic";
  if (provider === "offline") return { provider, model: "offline library + TPE", remote: false as const };
  if (provider === "anthropic") {
    if (!env.ANTHROPIC_API_KEY) throw new UsageError(MISSING_KEY);
    return { provider, model: input.model || env.LOOM_ANTHROPIC_MODEL || DEFAULT_MODELS.anthropic, baseURL: env.ANTHROPIC_BASE_URL, apiKey: env.ANTHROPIC_API_KEY, remote: true as const };
  }
  const baseURL = env.OPENAI_BASE_URL || "https://api.openai.com/v1";
  if (!env.OPENAI_API_KEY && !env.OPENAI_BASE_URL)
    throw new UsageError("set OPENAI_API_KEY (or OPENAI_BASE_URL for a local server such as Ollama) … or pick a --model-provider (offline runs keyless)");
  return { provider, model: input.model || env.LOOM_OPENAI_MODEL || DEFAULT_MODELS.openai, baseURL, apiKey: env.OPENAI_API_KEY, remote: true as const };
}

const isLoopback = (url?: string) => !!url && /^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(\/|$)/i.test(url);

let preflightRows: { rows?: number; labeled_rows?: number; columns?: number } = {};
let metricMapping: MetricMapping | undefined; // the model's mapping of unusual --metric text (preflight)

/** Pure: the price a run counts with (the table, or --price-per-mtok), or a UsageError. */
export function priceFor(input: Pick<Input, "price-per-mtok">, model: string): Price | null {
  if (input["price-per-mtok"] === undefined) return priceOf(model);
  const p = parsePricePerMtok(input["price-per-mtok"]);
  if (typeof p === "string") throw new UsageError(p);
  return p;
}

/** Pure: the spend checks that fail closed, before the gate: a cap of 0 or below, a cap on an unpriced model. */
export function budgetRefusal(input: Pick<Input, "budget-usd" | "price-per-mtok">, remote: boolean, model: string): string | null {
  const cap = input["budget-usd"];
  if (cap === undefined || !remote) return null;
  if (cap < 0) return `--budget-usd must be 0 or more, not ${cap}`;
  if (cap === 0) return "--budget-usd 0 allows no spend, so a model-proposed search cannot run: raise the cap, or use --model-provider offline (keyless, $0)";
  if (!priceFor(input, model)) return `--budget-usd cannot be enforced: Loom has no price for ${model}; pass --price-per-mtok IN,OUT (USD per million tokens; 0,0 for a free local server)`;
  return null;
}

function completeFor(p: ReturnType<typeof resolveProposer>, price?: Price | null): Complete {
  if (!p.remote) throw new Error("offline has no model");
  return p.provider === "anthropic"
    ? anthropicProposer({ apiKey: p.apiKey!, model: p.model, baseURL: p.baseURL, price })
    : openaiProposer({ apiKey: p.apiKey, model: p.model, baseURL: p.baseURL!, stream: process.env.LOOM_OPENAI_STREAM !== "0", price });
}
let lastBoardLines = 0;

/** The next leaderboard is drawn below what was printed since (a pipeline's interruption line), not over it. */
export function boardBelow(): void {
  lastBoardLines = 0;
}

/** Ctrl-C during a search: the running candidate is killed and the journal so far recorded as an INTERRUPTED
 * run that `--resume` continues (src/core/interrupt.ts). */
function stopRequest(ctx: { workspace: { dir: string }; ui: { line(m: string): void } }) {
  return onInterrupt(ctx, "stopping the running candidate and recording the search so far", () => {
    lastBoardLines = 0; // the next leaderboard is drawn below this line, not over it
  });
}

export default defineVerb({
  name: "run",
  aliases: ["optimize"],
  description: "Search for a model: a language model (or the offline proposer) writes candidate solutions, each runs in a sandbox and is scored on your metric; live leaderboard (→ OptimizeFlow/N)",
  tier: "expensive",
  createsWorkspace: false,
  args: {
    dataset: { type: "string", description: "data object to search on: its label, IngestDataset/N, Flow/latest or a run-id prefix" },
    goal: { type: "string", description: "what to predict, in words (e.g. \"Predict the target for each row in test.csv.\")" },
    metric: { type: "string", description: "the metric in words, e.g. \"Maximize ROC-AUC on a held-out split.\"" },
    target: { type: "string", description: "target column (default: a column named target/label/y/class)" },
    steps: { type: "string", description: "candidates to propose and score (default 10)" },
    "model-provider": { type: "enum", options: [...PROVIDERS], description: "anthropic (default; ANTHROPIC_API_KEY), openai (OPENAI_API_KEY / OPENAI_BASE_URL), offline (keyless)" },
    model: { type: "string", description: "the LLM to use (default claude-sonnet-4-6 / gpt-4o-mini)" },
    "budget-usd": { type: "string", description: "hard spend cap in USD, checked before every model call (0 allows no spend)" },
    "price-per-mtok": { type: "string", description: "the model's price IN,OUT in USD per million tokens, for a model Loom has no price for (e.g. 3,15)" },
    "time-limit": { type: "string", description: "minutes for the whole search" },
    parallel: { type: "string", description: "candidates proposed and run per round (default 1)" },
    resume: { type: "string", description: "continue the search OptimizeFlow/N (an interrupted one runs its stopped candidate first)" },
    seed: { type: "string", description: "seed (split, offline proposer, policy); default 0" },
    "node-timeout": { type: "string", description: "wall-clock seconds per candidate (default 120)" },
    "memory-mb": { type: "string", description: "memory limit per candidate in MiB (default 4096)" },
    policy: { type: "enum", options: ["aide", "topk"], description: "how the search picks what to try next: aide (default: draft, fix, improve, as the AIDE paper does) or topk (improve only the 3 best kinds of model)" },
    "unsafe-no-sandbox": { type: "boolean", description: "run model-written code without the OS sandbox (bubblewrap) where none is available: only Python's in-process guard remains; recorded in the run" },
    "keep-leaky": { type: "boolean", description: "search with the columns eda's leakage checks flag (default: they are dropped first, with a message)" },
    executor: { type: "enum", options: ["local", "metaflow"], description: "local (default: a sandboxed process pool) or metaflow (each round's candidates as a Metaflow foreach; LOOM_OPTIMIZE_WITH=kubernetes fans them out)" },

    time: { type: "string", description: "time column, as you will pass it to validate: the rows validate holds back (the newest) are left out of the search" },
    group: { type: "string", description: "entity column, as you will pass it to validate: the groups validate holds back are left out of the search" },
    holdout: { type: "string", description: "the share of rows validate holds back (default 0.2): those rows are left out of the search" },
  },
  input: Input,
  summary: Summary,
  async preflight(input, ctx) {
    if (!input.dataset && !input.resume) throw new UsageError("--dataset is required: pass a data object pathspec (`loom datasets` lists them)");
    if (!input.resume && !input.metric)
      throw new UsageError("--metric is required: e.g. --metric \"Maximize ROC-AUC on a held-out split.\"");
    const p = resolveProposer(input);
    const refusal = budgetRefusal(input, p.remote, p.model);
    if (refusal) throw new UsageError(refusal);
    metricMapping = undefined;
    let d = await ctx.call("loom_py.verbs.optimize.flowside:describe", { ...flowParams(input), metric_fallback: p.remote });
    const need = d.summary as { needs_mapping?: boolean; closed_set?: ClosedSet; understood?: string };
    if (need?.needs_mapping && p.remote) {
      // the rules cannot map the text and a key is present: ask the model (offline never gets here)
      metricMapping = await mapMetric(completeFor(p, priceFor(input, p.model)), input.metric!, need.closed_set!, need.understood!);
      d = await ctx.call("loom_py.verbs.optimize.flowside:describe", flowParams(input));
    }
    preflightRows = d.summary as typeof preflightRows;
  },
  cost(input) {
    const p = resolveProposer(input);
    const rows = preflightRows.rows;
    const rowsLine = rows !== undefined ? `${rows} rows (${preflightRows.labeled_rows} labeled) × ${preflightRows.columns} columns, sandboxed locally` : "rows: see the dataset";
    const mapped = metricMapping ? [`--metric mapped by ${metricMapping.model}: ${metricMapping.tokens.input + metricMapping.tokens.output} tokens, $${metricMapping.usd.toFixed(4)} (already spent, counted in the run's spend)`] : [];
    if (!p.remote) return { lines: [`${input.steps} steps × offline proposer = $0 (keyless, local)`, rowsLine], usd: 0, rows, leavesMachine: false };
    const tokIn = input.steps * EST_TOKENS_PER_NODE.input;
    const tokOut = input.steps * EST_TOKENS_PER_NODE.output;
    const price = priceFor(input, p.model);
    const est = usd(p.model, tokIn, tokOut, price);
    const cap = input["budget-usd"] !== undefined ? ` (capped at $${input["budget-usd"]})` : "";
    return {
      lines: [
        `${input.steps} steps × ~${EST_TOKENS_PER_NODE.input + EST_TOKENS_PER_NODE.output} tokens × ${price ? `$${price.input}/$${price.output} per Mtok` : "unknown price (spend cannot be counted; --price-per-mtok IN,OUT sets it)"} (${p.model}) ≈ $${est.toFixed(2)}${cap}`,
        rowsLine + `; the proposer sees a statistics preview, not rows`,
        ...mapped,
      ],
      usd: input["budget-usd"] !== undefined ? Math.min(est, input["budget-usd"]) : est,
      unpriced: price ? undefined : p.model,
      tokens: tokIn + tokOut,
      rows,
      leavesMachine: !isLoopback(p.baseURL ?? (p.provider === "anthropic" ? "https://api.anthropic.com" : undefined)),
    };
  },
  onEvent(ev, ui) {
    if (ev.kind === "leaderboard") {
      const b = ev as unknown as BoardEvent;
      if (ui.isTTY) {
        // one terminal row per line (cut to the width) so moving up `lastBoardLines` rows redraws in place
        const w = termWidth(process.stderr);
        const lines = renderBoard(b).map((l) => fit(stripControl(l), w - 1));
        if (lastBoardLines) ui.raw(`\x1b[${lastBoardLines}A\x1b[J`);
        ui.raw(lines.join("\n") + "\n");
        lastBoardLines = lines.length;
      } else {
        for (const l of nodeLines(b)) ui.progress(l);
        ui.progress(progressLine(b));
      }
      return;
    }
    if (ev.kind === "progress" && typeof ev.message === "string") ui.progress(ev.message);
  },
  human(out) {
    const s = out.summary as Summary;
    if (!s?.metric_spec) return [];
    const lines = [
      kv("metric", `${s.metric_spec.label} (${s.metric_spec.direction}) ${selectionText(s)} — computed by Loom${s.metric_spec.source === "model" ? ` (mapped from "${s.metric_spec.text}" by the model)` : ""}`),
      kv("best", s.best ? `node ${s.best.node} ${s.best.model}: ${s.best.score.toPrecision(5)}` : "none (every candidate failed)"),
      kv("candidates", Object.entries(s.nodes).map(([k, n]) => `${k} ${n}`).join(", ")),
      kv("spend", `$${s.spend.usd.toFixed(4)} (${s.spend.tokens.input + s.spend.tokens.output} tokens, ${s.spend.provider})`),
      kv("stopped", s.stopped_because),
      ...sealLine(s),
      ...leakageLines(s),
      ...ensembleLines(s),
      "",
      ...renderBoard({ step: 0, steps: 0, metric: s.metric_spec.label, best: { node: null, score: null }, spend_usd: s.spend.usd, rows: s.leaderboard as any }).slice(0, -1),
    ];
    return lines;
  },
  async run(input, ctx): Promise<Outcome> {
    const p = resolveProposer(input);
    const interrupt = stopRequest(ctx);
    try {
      if (!p.remote) return await ctx.flow({ ...flowRequest(input), env: interrupt.env });
      const price = priceFor(input, p.model);
      const complete = completeFor(p, price);
      const cap = input["budget-usd"];
      const server = startProposerServer(complete, cap !== undefined && price ? { capUsd: cap, price, spentBefore: metricMapping?.usd ?? 0 } : undefined);
      try {
        return await ctx.flow({ ...flowRequest(input, p.model), env: { LOOM_PROPOSER_URL: server.url, ...interrupt.env } });
      } finally {
        server.stop();
      }
    } finally {
      interrupt.done();
    }
  },
});

/** The seal validate will hold out, left out of the search (verbs/optimize/seal.py). */
function sealLine(s: Summary): string[] {
  const seal = (s as { seal?: { id: string; rows_excluded: number } }).seal;
  return seal ? [kv("held back", `${seal.rows_excluded} rows left out for validate's one final score (seal ${seal.id})`)] : [];
}

function leakageLines(s: Summary): string[] {
  const lk = (s as { leakage?: { flags: { column: string; reason: string }[]; dropped: string[]; keep_leaky: boolean } }).leakage;
  if (!lk || !lk.flags.length) return [];
  const what = lk.flags.map((f) => `${f.column} (${f.reason})`).join(", ");
  return [kv("leakage", lk.keep_leaky ? `KEPT on request (--keep-leaky): ${what}` : `dropped before the search: ${what}`)];
}

/** The ensemble (members, weights, chosen or why not) and how the wall clock was spent. */
function ensembleLines(s: Summary): string[] {
  const e = (s as { ensemble?: { node?: number; members?: number[]; weights?: number[]; chosen?: boolean; why?: string } }).ensemble;
  const t = (s as { time?: { limit_s?: number | null; search_s?: number; ensemble_s?: number; final_fit_s?: number; total_s?: number } }).time;
  const out: string[] = [];
  if (e?.members) {
    const mix = e.members.map((m, i) => `node ${m}×${(e.weights?.[i] ?? 0).toFixed(2)}`).join(" + ");
    out.push(kv("ensemble", `${e.node !== undefined ? `node ${e.node}: ` : ""}${mix} — ${e.chosen ? "chosen" : "not chosen"}: ${e.why ?? ""}`));
  } else if (e?.why) out.push(kv("ensemble", `none: ${e.why}`));
  if (t?.total_s !== undefined)
    out.push(kv("time", `${t.total_s}s${t.limit_s ? ` of ${t.limit_s}s` : ""}: search ${t.search_s}s, ensemble ${t.ensemble_s}s, final refit ${t.final_fit_s}s`));
  return out;
}

function selectionText(s: Summary): string {
  const sel = (s as { selection?: { kind?: string; folds?: number } }).selection;
  if (sel?.kind === "cv") return `by ${sel.folds}-fold cross-validation`;
  return `on a ${Math.round(s.metric_spec.split.fraction * 100)}% held-out split`;
}

function flowParams(input: Input, model?: string): Record<string, unknown> {
  const remote = (input["model-provider"] ?? "anthropic") !== "offline";
  return {
    dataset: input.dataset,
    goal: input.goal,
    metric: input.metric,
    metric_mapping: metricMapping ? JSON.stringify(metricMapping) : undefined,
    target: input.target,
    steps: input.steps,
    model_provider: input["model-provider"] ?? "anthropic",
    model,
    budget_usd: remote ? input["budget-usd"] : undefined, // offline spends nothing: a cap has nothing to stop
    time_limit: input["time-limit"],
    parallel: input.parallel,
    resume: input.resume,
    seed: input.seed,
    node_timeout: input["node-timeout"],
    memory_mb: input["memory-mb"],
    policy: input.policy,
    executor: input.executor,
    time: input.time,
    group: input.group,
    holdout: input.holdout,
    unsafe_no_sandbox: input["unsafe-no-sandbox"] ? 1 : undefined,
    keep_leaky: input["keep-leaky"] ? true : undefined,
  };
}

function flowRequest(input: Input, model?: string) {
  return { flow: "optimize_flow.py", flowName: "OptimizeFlow", prepare: "loom_py.verbs.optimize:prepare", params: flowParams(input, model) };
}
