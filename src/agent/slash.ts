/**
 * Slash commands: deterministic workflows the person types; they run without a model key.
 *   /loom-<verb> [flags]  intake → plan/tier → run → verify → deliver, for every verb in the registry
 *   /loom-auto [--dataset X] [--target Y] [--goal "…"] [--metric "…"]
 *                         eda → features --from → run (the one gate) → validate --model → report
 *   /help /datasets /cost /history /clear /exit
 * A person's slash command may carry an irreversible flag (e.g. /loom-train --launch): the verb's own
 * deny-first confirmation then runs in the verb's process, on the person's terminal.
 */
import { parseArgs } from "citty";
import { bridgeEnv } from "../core/bridge";
import { materialize } from "../core/assets";
import { defaultHuman, renderHuman, type Envelope } from "../core/contract";
import type { Outcome, VerbDef } from "../core/define";
import { loomHome } from "../core/home";
import { argsFor, builtNext } from "../core/run";
import { requirePython } from "../core/pyenv";
import { kv } from "../core/ui";
import { datastoreExists, locateWorkspace } from "../core/workspace";
import { VERBS, findVerb } from "../verbs/index";
import { planCost, runVerbChild } from "./exec";
import { listSessions, readRecords, type Session } from "./session";
import { requiredArgs, tierLabel } from "./tools";
import type { Provider } from "./providers";
import type { AutoPlan, Narration } from "./autoplan";

export interface SlashIO {
  say(line: string): void;
  /** a person is at a terminal (intake prompts, confirmations) */
  interactive: boolean;
  /** headless: the person passed --yes on `loom agent` */
  yes: boolean;
  confirm(message: string): Promise<boolean>;
  select(message: string, options: { value: string; label: string; hint?: string }[]): Promise<string | null>;
  /** ask for a value (null: cancelled) */
  text?(message: string): Promise<string | null>;
  /** the person pressed Ctrl-C (REPL): /loom-auto starts no further stage or model call */
  aborted?: () => boolean;
  /** aborts a model call in flight (Ctrl-C) */
  signal?: () => AbortSignal | undefined;
  /** with a model key: deliver narrates the envelope (streamed), /loom-auto plans and narrates each stage;
   * without one the verb's summary stands. No model call starts once the session budget is spent. */
  model?: { provider: Provider; onText: (s: string) => void; budgetUsd: number };
}

export const DELIVER_PROMPT =
  "In at most 5 short lines, give a lineage-grounded account of this Loom result for the person: the pathspecs and card paths, the numbers that matter, and the next command to run. Use only what the envelope says.";

/** deliver, with a model: a short account of the envelope(s), counted in the session's spend; its text. */
export async function narrate(io: SlashIO, session: Session, verb: string, envs: Envelope[]): Promise<string | null> {
  if (!io.model) return null;
  if (session.usd >= io.model.budgetUsd) {
    io.say(`(no narration: the session budget ($${io.model.budgetUsd.toFixed(2)}) is spent)`);
    return null;
  }
  const { untrusted } = await import("./loop");
  const body = envs.map((e) => untrusted(verb, e, 8000)).join("\n");
  try {
    const t = await io.model.provider.turn(DELIVER_PROMPT, [{ role: "user", content: [{ type: "text", text: body }] }], [], io.model.onText, io.signal?.());
    io.model.onText("\n");
    session.totals.input_tokens += t.input_tokens;
    session.totals.output_tokens += t.output_tokens;
    session.totals.agent_usd += t.usd;
    session.record({ type: "usage", input_tokens: t.input_tokens, output_tokens: t.output_tokens, usd: t.usd, model: t.model, deliver: verb });
    session.record({ type: "deliver", verb, text: t.text });
    return t.text;
  } catch (e) {
    io.say(`(no narration: ${(e as Error).message})`);
    return null;
  }
}

export interface SlashResult {
  /** the command stops the REPL (/exit) */
  exit?: boolean;
  clear?: boolean;
  ok: boolean;
  /** the verb runs it made, in order */
  runs: { verb: string; argv: string[]; envelope: Envelope | null; gate?: string; narration?: Narration }[];
  message?: string;
  /** /loom-auto with a model: the plan it proposed and whether it was used */
  plan?: PlanRecord;
  /** deliver's account from the model */
  account?: string | null;
}

export interface PlanRecord {
  source: "model" | "default";
  proposed: unknown;
  used: AutoPlan | null;
  problems: string[];
}

export const BUILTINS = ["/help", "/datasets", "/cost", "/history", "/clear", "/exit", "/loom-auto"];
export const slashNames = () => [...BUILTINS, ...VERBS.map((v) => `/loom-${v.name}`)];

/** Pure: split a typed line into words as a shell would (quotes, backslashes), without running a shell. */
export function splitWords(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | null = null;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === "\\" && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      has = true;
    } else if (ch === "\\" && i + 1 < line.length) {
      cur += line[++i];
      has = true;
    } else if (/\s/.test(ch)) {
      if (has || cur) out.push(cur);
      cur = "";
      has = false;
    } else cur += ch;
  }
  if (has || cur) out.push(cur);
  return out;
}

const CONTROL_FLAGS = new Set(["--json", "--yes", "--quiet"]);

/** The columns of a data object (its `schema` artifact, read with plain Metaflow). */
export async function columnsOf(pathspec: string): Promise<string[]> {
  try {
    const ws = locateWorkspace();
    const py = requirePython();
    const env = bridgeEnv(process.env, ws, materialize(loomHome()));
    const code = "import json,sys\nfrom metaflow import Run, namespace\nnamespace(None)\nprint(json.dumps([f['name'] for f in Run(sys.argv[1]).data.schema]))";
    const p = Bun.spawn([py.python, "-c", code, pathspec], { cwd: ws.dir, env, stdout: "pipe", stderr: "ignore" });
    const out = await new Response(p.stdout).text();
    await p.exited;
    return JSON.parse(out.trim());
  } catch {
    return [];
  }
}

async function datasetsList(): Promise<{ pathspec: string; label: string; rows: number | null; columns: number | null }[]> {
  if (!datastoreExists(locateWorkspace())) return [];
  const r = await runVerbChild(["datasets"], { quiet: true });
  return ((r.envelope.summary as any)?.datasets ?? []) as any[];
}

function humanOf(verb: VerbDef, env: Envelope, input: unknown): string {
  let lines: string[];
  try {
    lines = verb.human ? verb.human(env as unknown as Outcome, input) : defaultHuman(env.summary);
  } catch {
    lines = defaultHuman(env.summary);
  }
  return renderHuman(env, lines);
}

/** verify: the envelope's own account of success, and what the next verb will assert of it. */
export function verifyLine(env: Envelope): { ok: boolean; line: string } {
  const okExit = env.exit_code === 0;
  const verdictOk = env.verdict === undefined || env.verdict === null || env.verdict === "PASS";
  const ok = okExit && verdictOk && !["FAILED", "DENIED", "ERROR"].includes(env.status);
  const parts = [`exit ${env.exit_code}`, `status ${env.status}`];
  if (env.verdict) parts.push(`VERDICT ${env.verdict}`);
  if (env.pathspec) parts.push(`${env.pathspec} (a successful run: the next verb asserts it by pathspec)`);
  return { ok, line: kv("verify", `${ok ? "ok" : "FAILED"} — ${parts.join(" · ")}`) };
}

/** One verb as a slash command. */
export async function slashVerb(verb: VerbDef, words: string[], io: SlashIO, session: Session): Promise<SlashResult> {
  const typed = words.filter((w) => !CONTROL_FLAGS.has(w));
  const defs = argsFor(verb);
  let present: Record<string, unknown> = {};
  try {
    present = parseArgs(typed, defs) as Record<string, unknown>;
  } catch {
    /* the verb's own parse reports it below */
  }
  // intake: never guess silently
  if ("dataset" in verb.args && !present.dataset && !present.resume && io.interactive) {
    const ds = await datasetsList();
    if (!ds.length) {
      io.say("no data objects in this workspace yet: /loom-ingest --source FILE");
      return { ok: false, runs: [], message: "no data objects" };
    }
    const pick = await io.select(`data object for loom ${verb.name}`, ds.map((d) => ({ value: d.pathspec, label: `${d.pathspec}  ${d.label}`, hint: `${d.rows ?? "?"} rows × ${d.columns ?? "?"} columns` })));
    if (!pick) return { ok: false, runs: [], message: "cancelled" };
    typed.push(`--dataset=${pick}`);
    present.dataset = pick;
  }
  if ("target" in verb.args && !present.target && present.dataset && io.interactive) {
    const cols = await columnsOf(String(present.dataset));
    if (cols.length) {
      const pick = await io.select(`target column of ${present.dataset}`, [...cols.map((c) => ({ value: c, label: c })), { value: "", label: "(no target)" }]);
      if (pick === null) return { ok: false, runs: [], message: "cancelled" };
      if (pick) typed.push(`--target=${pick}`);
    }
  }
  // any other required argument: asked for by its own help text
  for (const key of requiredArgs(verb)) {
    if (present[key] !== undefined || key === "dataset" || !io.interactive || !io.text) continue;
    const d = (verb.args as Record<string, { description?: string; type?: string }>)[key];
    if (d?.type === "positional") continue;
    const val = await io.text(`--${key}: ${d?.description ?? ""}`);
    if (val === null) return { ok: false, runs: [], message: "cancelled" };
    if (val) typed.push(`--${key}=${val}`);
  }
  const r = await runStage(verb, typed, io, session);
  const account = r.run.envelope && r.run.envelope.exit_code !== 2 ? await narrate(io, session, verb.name, [r.run.envelope]) : null;
  return { ok: r.ok, runs: [r.run], message: r.ok ? undefined : r.reason, ...(io.model ? { account } : {}) };
}

/** plan/tier → gate → run → verify → deliver for one command line. */
async function runStage(
  verb: VerbDef,
  argv: string[],
  io: SlashIO,
  session: Session,
  opts: { deliver?: boolean; /** the argv came from a model's plan: if the verb's preflight refuses it (exit 2), this default runs instead */ fallback?: { argv: string[]; refused: (why: string) => void } } = {},
): Promise<{ ok: boolean; run: SlashResult["runs"][number]; reason?: string }> {
  const { parseVerbArgv } = await import("./tools");
  const parsed = parseVerbArgv(verb, argv);
  const line = `loom ${verb.name} ${argv.map(shellQuote).join(" ")}`.trim();
  io.say(kv("plan", line));
  session.record({ type: "slash", verb: verb.name, argv });
  const run = { verb: verb.name, argv: [verb.name, ...argv], envelope: null as Envelope | null, gate: undefined as string | undefined };
  if (!parsed.ok) {
    io.say(`loom ${verb.name}: ${parsed.message}`);
    return { ok: false, run, reason: parsed.message };
  }
  io.say(kv("tier", parsed.tier + (typeof verb.tier === "function" ? ` (${tierLabel(verb)})` : "")));
  const extra: string[] = [];
  if (parsed.tier === "expensive") {
    const plan = await planCost(verb, parsed.input, parsed.tier);
    if (plan.early && plan.early.exit_code === 2 && opts.fallback) {
      const why = plan.early.messages[0] ?? plan.early.status;
      io.say(kv("plan", `loom ${verb.name} refused the model's plan (${why}): the default runs instead`));
      opts.fallback.refused(why);
      return runStage(verb, opts.fallback.argv, io, session, { ...opts, fallback: undefined });
    }
    if (plan.early) {
      run.envelope = plan.early;
      io.say(`loom ${verb.name}: ${plan.early.messages[0] ?? plan.early.status}`);
      return { ok: false, run, reason: plan.early.messages[0] ?? plan.early.status };
    }
    for (const l of plan.cost?.lines ?? []) io.say(kv("cost (gate)", l));
    const ok = io.interactive ? await io.confirm(`loom ${verb.name}: expensive — proceed?`) : io.yes;
    run.gate = ok ? (io.interactive ? "confirmed" : "accepted by --yes") : io.interactive ? "declined at the prompt" : "no terminal to confirm: rerun `loom agent` with --yes";
    session.record({ type: "gate", verb: verb.name, tier: parsed.tier, allowed: ok, reason: run.gate, slash: true });
    io.say(kv("gate", run.gate));
    if (!ok) return { ok: false, run, reason: `gate denied: ${run.gate}` };
    extra.push("--yes");
  }
  // irreversible: the verb's own deny-first confirmation runs in its process on the person's terminal
  const res = await runVerbChild([verb.name, ...argv, ...extra], { interactive: io.interactive });
  run.envelope = res.envelope;
  res.envelope.next = builtNext(res.envelope.next ?? [], (n) => !!findVerb(n));
  session.record({ type: "envelope", verb: verb.name, exit_code: res.exitCode, envelope: res.envelope, slash: true });
  if (res.interrupted) {
    io.say(kv("stopped", `loom ${verb.name} was stopped (Ctrl-C)`));
    return { ok: false, run, reason: "interrupted" };
  }
  const v = verifyLine(res.envelope);
  if (opts.deliver !== false) io.say(humanOf(verb, res.envelope, parsed.input).trimEnd());
  io.say(v.line);
  const reason = v.ok ? undefined : res.envelope.messages[0] ?? `${res.envelope.status}${res.envelope.verdict ? ` ${res.envelope.verdict}` : ""}`;
  return { ok: v.ok, run, reason };
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

/** /loom-auto: the main job, each outcome asserted before the next stage. With a model, a plan chooses the
 * values of the stages after eda (src/agent/autoplan.ts; invalid → the default, said and recorded) and each
 * stage gets a grounded one-or-two-line narration; the stages, their order, the asserts and the gate are
 * this function's, whatever the model says. */
export async function slashAuto(words: string[], io: SlashIO, session: Session): Promise<SlashResult> {
  const flags = parseArgs(words, {
    dataset: { type: "string" },
    target: { type: "string" },
    goal: { type: "string" },
    metric: { type: "string" },
    steps: { type: "string" },
    "model-provider": { type: "string" },
  }) as Record<string, string | undefined>;
  const runs: SlashResult["runs"] = [];
  let planRec: PlanRecord | undefined;
  const stop = (why: string): SlashResult => {
    io.say(kv("auto", `stopped: ${why}`));
    session.record({ type: "auto", stopped: why, runs: runs.map((r) => r.envelope?.pathspec ?? null) });
    return { ok: false, runs, message: why, ...(planRec ? { plan: planRec } : {}) };
  };
  let dataset = flags.dataset;
  if (!dataset) {
    const ds = io.interactive ? await datasetsList() : [];
    if (!io.interactive) return stop("--dataset is required without a terminal (`loom datasets` lists them)");
    if (!ds.length) return stop("no data objects in this workspace yet: /loom-ingest --source FILE");
    dataset = (await io.select("data object for /loom-auto", ds.map((d) => ({ value: d.pathspec, label: `${d.pathspec}  ${d.label}` })))) ?? undefined;
    if (!dataset) return stop("cancelled");
  }
  let target = flags.target;
  if (!target) {
    if (!io.interactive) return stop("--target is required without a terminal");
    const cols = await columnsOf(dataset);
    target = (await io.select(`target column of ${dataset}`, cols.map((c) => ({ value: c, label: c })))) ?? undefined;
    if (!target) return stop("cancelled");
  }
  const model = io.model ? { provider: io.model.provider, budgetUsd: io.model.budgetUsd, signal: io.signal } : null;
  const auto = model ? await import("./autoplan") : null;
  const stage = async (verbName: string, argv: string[], check: (e: Envelope) => string | null, fallback?: { argv: string[]; refused: (why: string) => void }) => {
    const verb = findVerb(verbName)!;
    if (io.aborted?.()) return { env: null, why: "interrupted (Ctrl-C)" };
    io.say("");
    io.say(`── ${verbName}`);
    const r = await runStage(verb, argv, io, session, { fallback });
    runs.push(r.run);
    if (!r.ok) return { env: null, why: `${verbName}: ${r.reason}` };
    const bad = check(r.run.envelope!);
    if (bad) return { env: null, why: `${verbName}: ${bad}` };
    if (model && auto && !io.aborted?.()) {
      const n = await auto.narrateStage(model, session, verbName, r.run.envelope!);
      r.run.narration = n;
      if (n.grounded && n.text) for (const l of n.text.split("\n")) io.say(kv("narrate", l));
      else io.say(kv("narrate", `(none: ${n.why})`));
    }
    return { env: r.run.envelope!, why: null };
  };
  const isRun = (flow: string) => (e: Envelope) => (e.pathspec?.startsWith(`${flow}/`) ? null : `expected a ${flow} run, got ${e.pathspec ?? "none"}`);

  const eda = await stage("eda", [`--dataset=${dataset}`, `--target=${target}`], isRun("EdaFlow"));
  if (!eda.env) return stop(eda.why!);
  const flagged = ((eda.env.summary as any)?.leakage_flags ?? []).map((f: any) => f.column);
  const task = (eda.env.summary as any)?.task as string | null;

  // the plan (with a model): values for the stages below; the person's own flags stand over it
  const fixed: Record<string, string> = {};
  for (const k of ["metric", "goal", "steps"] as const) if (flags[k] !== undefined) fixed[k] = flags[k]!;
  let planned: Record<string, Record<string, string>> = { features: {}, run: {} };
  if (model && auto && !io.aborted?.()) {
    io.say("");
    io.say("── plan");
    const base = { features: { dataset, target, from: eda.env.pathspec! }, run: { dataset, target } };
    const asked = await auto.askPlan(model, session, eda.env, { target, fixed });
    const checked = asked.error ? { plan: null, problems: [asked.error] } : auto.validatePlan(asked.proposed, base, locateWorkspace().root);
    planRec = { source: checked.plan ? "model" : "default", proposed: asked.proposed ?? null, used: checked.plan, problems: checked.problems };
    if (checked.plan) {
      planned = checked.plan.args;
      const chosen = Object.entries(planned).flatMap(([verb, a]) => Object.entries(a).map(([k, val]) => `${verb} --${k}=${JSON.stringify(val)}${k in fixed ? " (yours stands)" : ""}`));
      io.say(kv("plan", `the model's: ${chosen.join(" · ") || "the defaults"}`));
      if (checked.plan.rationale) io.say(kv("why", checked.plan.rationale));
    } else io.say(kv("plan", `the model's plan is not used (${checked.problems.join("; ")}): the default stands`));
    session.record({ type: "plan", ...planRec });
  }
  const feat = await stage("features", [`--dataset=${dataset}`, `--target=${target}`, `--from=${eda.env.pathspec}`, `--recipe=${planned.features?.recipe ?? "standard"}`], (e) => {
    const bad = isRun("FeaturesFlow")(e);
    if (bad) return bad;
    const kept = new Set((((e.summary as any)?.schema ?? []) as { name: string }[]).map((f) => f.name));
    const leaked = flagged.filter((c: string) => kept.has(c));
    return leaked.length ? `eda flagged ${leaked.join(", ")} for leakage but the new data object still has them` : null;
  });
  if (!feat.env) return stop(feat.why!);
  const defaults: Record<string, string> = {
    goal: `Predict ${target} for each row.`,
    metric: task === "regression" ? "Minimize RMSE on a held-out split." : "Maximize ROC-AUC on a held-out split.",
    steps: "10",
  };
  const runArgv = (values: Record<string, string>) => [
    `--dataset=${feat.env!.pathspec}`,
    `--target=${target}`,
    ...Object.entries(values).map(([k, val]) => `--${k}=${val}`),
    `--model-provider=${flags["model-provider"] ?? "offline"}`,
  ];
  const byDefault = runArgv({ ...defaults, ...fixed });
  const byPlan = runArgv({ ...defaults, ...(planned.run ?? {}), ...fixed });
  const differs = byPlan.join("\0") !== byDefault.join("\0");
  const opt = await stage(
    "run",
    byPlan,
    (e) => (isRun("OptimizeFlow")(e) ?? ((e.summary as any)?.best ? null : "no candidate scored (every one failed)")),
    differs && planRec
      ? {
          argv: byDefault,
          refused: (why) => {
            planRec!.problems.push(`loom run: ${why}`);
            planRec!.source = "default";
            session.record({ type: "plan", fallback: "run", reason: why });
          },
        }
      : undefined,
  );
  if (!opt.env) return stop(opt.why!);
  // validate judges on the metric the search optimized, when validate computes it (its own enum, from the registry)
  const searched = (opt.env.summary as any)?.metric_spec?.metric as string | undefined;
  const judged = ((findVerb("validate")!.args as Record<string, { options?: string[] }>).metric?.options ?? []).includes(searched ?? "") ? [`--metric=${searched}`] : [];
  const val = await stage("validate", [`--dataset=${feat.env.pathspec}`, `--target=${target}`, `--model=${opt.env.pathspec}`, ...judged], (e) =>
    isRun("ValidateFlow")(e) ?? (e.verdict === "PASS" ? null : `VERDICT ${e.verdict}: ${e.messages[0] ?? "see the card"}`),
  );
  if (!val.env) return stop(val.why!);
  const rep = await stage("report", [`--run=${val.env.pathspec}`], isRun("ReportFlow"));
  if (!rep.env) return stop(rep.why!);
  io.say("");
  io.say(kv("auto", `VERDICT ${val.env.verdict} · ${[eda, feat, opt, val, rep].map((s) => s.env!.pathspec).join(" → ")}`));
  const card = (rep.env.summary as { html_path?: string; markdown_path?: string } | null) ?? {};
  io.say(kv("model card", card.html_path ?? card.markdown_path ?? rep.env.card_path ?? "(see the report run)"));
  const m = (rep.env.summary as any)?.metrics;
  if (m?.holdout !== undefined && m?.holdout !== null) io.say(kv("holdout", `${m.metric ?? "metric"} ${Number(m.holdout).toPrecision(4)}`));
  // the irreversible next steps are suggested, never fired (and only if Loom has the verb)
  const suggestions = builtNext(
    [
      `loom deploy --validate ${val.env.pathspec}   (stages the plan), then the same with --apply`,
      `loom collab --run ${rep.env.pathspec}   (the bundle), then loom collab --run CollabFlow/N --send s3://BUCKET/PREFIX`,
    ],
    (n) => !!findVerb(n),
  );
  for (const s of suggestions) io.say(kv("next", `${s}   (--apply / --send are irreversible: yours to type; the agent never runs them)`));
  session.record({ type: "auto", verdict: val.env.verdict, runs: runs.map((r) => r.envelope?.pathspec ?? null) });
  const account = io.aborted?.() ? null : await narrate(io, session, "auto", [val.env, rep.env]);
  return { ok: true, runs, message: `VERDICT ${val.env.verdict}`, ...(planRec ? { plan: planRec } : {}), ...(io.model ? { account } : {}) };
}

/** Pure: Tab completion for a line, given the pathspecs known so far. */
export function complete(line: string, pathspecs: string[]): [string[], string] {
  const words = line.split(/\s+/);
  const last = words[words.length - 1] ?? "";
  if (words.length === 1) {
    if (!line.startsWith("/")) return [[], line];
    const hits = slashNames().filter((n) => n.startsWith(line));
    return [hits.length ? hits.map((h) => h + " ") : slashNames(), line];
  }
  const m = /^\/loom-([a-z][\w-]*)$/.exec(words[0]!);
  const verb = m ? findVerb(m[1]!) : undefined;
  const prev = words[words.length - 2] ?? "";
  const flagNames = verb ? Object.keys(verb.args).map((a) => `--${a}`) : words[0] === "/loom-auto" ? ["--dataset", "--target", "--goal", "--metric", "--steps", "--model-provider"] : [];
  if (last.startsWith("--")) {
    const hits = flagNames.filter((f) => f.startsWith(last));
    return [hits.map((h) => h + " "), last];
  }
  if (/^--(dataset|model|run|from|resume)$/.test(prev) || last.includes("/")) {
    const hits = pathspecs.filter((p) => p.startsWith(last));
    return [hits.map((h) => h + " "), last];
  }
  return [[], last];
}

/** Pure: a verb's description for /help: its first clause (a colon inside parentheses does not end it), cut at
 * a word to 70 characters. */
export function shortDescription(d: string, max = 70): string {
  let depth = 0;
  let end = d.length;
  for (let i = 0; i < d.length; i++) {
    const ch = d[i]!;
    if (ch === "(") depth++;
    else if (ch === ")") depth = Math.max(0, depth - 1);
    else if ((ch === ":" || ch === ";") && depth === 0) {
      end = i;
      break;
    }
  }
  const first = d.slice(0, end).trim();
  if (first.length <= max) return first;
  const cut = first.slice(0, max - 1);
  return cut.slice(0, Math.max(cut.lastIndexOf(" "), max / 2)).replace(/[\s,(]+$/, "") + "…";
}

export function helpText(): string {
  const width = Math.max(...VERBS.map((v) => v.name.length)) + 8;
  return [
    "Slash commands (no model key needed):",
    ...VERBS.map((v) => `  ${`/loom-${v.name}`.padEnd(width)}${shortDescription(v.description)} [${tierLabel(v)}]`),
    `  ${"/loom-auto".padEnd(width)}eda → features --from → run (asks once) → validate --model → report`,
    `  ${"/datasets".padEnd(width)}the data objects here`,
    `  ${"/cost".padEnd(width)}tokens and $ spent in this session`,
    `  ${"/history".padEnd(width)}saved sessions (loom agent --resume ID)`,
    `  ${"/clear".padEnd(width)}forget this conversation (the session file stays)`,
    `  ${"/exit".padEnd(width)}leave (Ctrl-C twice, Ctrl-D)`,
    "Anything else is a request to the model (ANTHROPIC_API_KEY, or --model-provider openai).",
  ].join("\n");
}

export async function runSlash(line: string, io: SlashIO, session: Session): Promise<SlashResult> {
  const [cmd, ...words] = splitWords(line.trim());
  switch (cmd) {
    case "/help":
      io.say(helpText());
      return { ok: true, runs: [] };
    case "/exit":
    case "/quit":
      return { ok: true, runs: [], exit: true };
    case "/clear":
      session.messages = [];
      session.record({ type: "clear" });
      io.say("conversation cleared (the session file keeps the history)");
      return { ok: true, runs: [], clear: true };
    case "/cost": {
      const t = session.totals;
      io.say(kv("tokens", `${t.input_tokens} in / ${t.output_tokens} out`));
      io.say(kv("spent", `$${session.usd.toFixed(4)} (agent $${t.agent_usd.toFixed(4)}, verbs $${t.verbs_usd.toFixed(4)})`));
      return { ok: true, runs: [] };
    }
    case "/history": {
      const all = listSessions().slice(0, 10);
      if (!all.length) io.say("no saved sessions yet");
      for (const s of all) {
        const recs = readRecords(s.path);
        const first = recs.find((r) => r.type === "message" && r.role === "user")?.content?.[0]?.text ?? recs.find((r) => r.type === "slash")?.verb ?? "";
        io.say(`  ${s.id}${s.id === session.id ? " (this one)" : ""}  ${String(first).slice(0, 60)}`);
      }
      io.say("resume one with `loom agent --resume ID` (or --continue for the newest)");
      return { ok: true, runs: [] };
    }
    case "/datasets":
      return slashVerb(findVerb("datasets")!, words, io, session);
    case "/loom-auto":
      return slashAuto(words, io, session);
  }
  const m = /^\/loom-([a-z][\w-]*)$/.exec(cmd ?? "");
  const verb = m ? findVerb(m[1]!) : undefined;
  if (!verb) {
    io.say(`unknown command '${cmd}': /help lists them`);
    return { ok: false, runs: [], message: "unknown command" };
  }
  return slashVerb(verb, words, io, session);
}
