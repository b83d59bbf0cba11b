/** One verb invocation: parse → validate → workspace → preflight → gate → handler → check → output. */
import { parseArgs, type ArgsDef } from "citty";
import * as v from "valibot";
import { callBridge, type BridgeReply, type BridgeRequest } from "./bridge";
import { defaultHuman, envelope, errorOutcome, renderHuman } from "./contract";
import type { Outcome, VerbContext, VerbDef } from "./define";
import { UsageError } from "./errors";
import { runGate, terminalIO } from "./gate";
import { requirePython } from "./pyenv";
import type { Tier } from "./tiers";
import { closest, colorAllowed, stripControl, termWidth } from "./term";
import { makeUI } from "./ui";
import { openCard } from "./open";
import { computePreflight } from "./compute";
import { DEFAULT_LIMITS, datastoreExists, ensureWorkspace, locateWorkspace, readLimits, type Workspace } from "./workspace";

export const COMMON_ARGS: ArgsDef = {
  json: { type: "boolean", description: "print exactly one JSON object on stdout (for scripts and agents)" },
  debug: { type: "boolean", description: "show the Python/Metaflow log and tracebacks" },
  quiet: { type: "boolean", description: "no progress lines" },
  open: { type: "boolean", description: "open the run's card when it is made: in the browser where there is a display, else its path is printed" },
};
/** Metaflow's remote compute for every flow the verb runs (scaleout.ts): `--with kubernetes`, `--with batch:cpu=4`. */
export const WITH_ARG: ArgsDef = {
  with: { type: "string", repeatable: true, description: "run the flow's steps on Metaflow remote compute: kubernetes, kubernetes:image=IMAGE, batch (also LOOM_METAFLOW_WITH)" } as ArgsDef[string],
};
export const YES_ARG: ArgsDef = {
  yes: { type: "boolean", description: "accept the expensive-tier gate (never skips an irreversible confirmation)" },
};

export function argsFor(verb: VerbDef): ArgsDef {
  const gated = verb.tier === "expensive" || !!verb.cost;
  return { ...verb.args, ...COMMON_ARGS, ...(verb.needsPython !== false ? WITH_ARG : {}), ...(gated ? YES_ARG : {}) };
}

/** Pure: flags in rawArgs that the verb does not declare. */
export function unknownFlags(rawArgs: string[], defs: ArgsDef): string[] {
  const known = new Set<string>(["help", "h"]);
  for (const [name, d] of Object.entries(defs)) {
    known.add(name);
    const al = (d as { alias?: string | string[] }).alias;
    for (const a of Array.isArray(al) ? al : al ? [al] : []) known.add(a);
  }
  const bad: string[] = [];
  for (const a of rawArgs) {
    if (a === "--") break;
    if (!a.startsWith("-") || /^-\d/.test(a)) continue;
    let name = a.replace(/^--?/, "").split("=")[0]!;
    if (!known.has(name) && name.startsWith("no-") && known.has(name.slice(3))) name = name.slice(3);
    if (!known.has(name)) bad.push(a.split("=")[0]!);
  }
  return bad;
}

/** Args declared with `repeatable: true` keep every value (`--sensitive a --sensitive b` → ["a", "b"]);
 * citty alone keeps the last one. */
export function collectRepeated(rawArgs: string[], defs: ArgsDef, parsed: Record<string, unknown>): void {
  for (const [name, d] of Object.entries(defs)) {
    if (!(d as { repeatable?: boolean }).repeatable) continue;
    const vals: string[] = [];
    for (let i = 0; i < rawArgs.length; i++) {
      const a = rawArgs[i]!;
      if (a === "--") break;
      if (a === `--${name}` && i + 1 < rawArgs.length) vals.push(rawArgs[++i]!);
      else if (a.startsWith(`--${name}=`)) vals.push(a.slice(name.length + 3));
    }
    if (vals.length > 1) parsed[name] = vals;
  }
}

/** Pure: the parsed args restricted to what the verb declares (citty also adds camelCase twins). */
export function pickDeclared(parsed: Record<string, unknown>, defs: ArgsDef): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(defs)) {
    const val = parsed[name];
    if (val === undefined || val === "") continue;
    if ((d as { type?: string }).type === "positional" && val === undefined) continue;
    out[name] = val;
  }
  return out;
}

export function formatIssue(issue: v.BaseIssue<unknown>, args?: ArgsDef): string {
  const key = issue.path?.map((p) => String(p.key)).join(".");
  if (key && issue.input === undefined && /^Invalid (key|type)/.test(issue.message)) {
    const desc = (args?.[key] as { description?: string } | undefined)?.description;
    return `--${key} is required${desc ? `: ${desc}` : ""}`;
  }
  return key ? `--${key}: ${issue.message}` : issue.message;
}

export function replyToOutcome(r: BridgeReply): Outcome {
  if (r.ok) {
    return {
      status: r.status ?? "OK",
      verdict: r.verdict ?? null,
      exit_code: (r.exit_code ?? 0) as 0 | 1 | 2,
      pathspec: r.pathspec ?? null,
      card_path: r.card_path ?? null,
      inputs: r.inputs ?? [],
      summary: r.summary ?? {},
      messages: r.messages ?? [],
      next: r.next ?? [],
    };
  }
  const code = (r.exit_code === 2 ? 2 : 1) as 1 | 2;
  if (code === 2) throw new UsageError(r.message ?? "bad input");
  const out = errorOutcome(r.status ?? "FAILED", 1, r.message ?? "failed", r.summary ?? {});
  out.pathspec = r.pathspec ?? null;
  return out;
}

/** Workspace-write notes wait until the input is known to be good (the bridge's "prepared" event), so a
 * refused input prints exactly one line. */
const pendingNotes: string[] = [];
function flushNotes() {
  while (pendingNotes.length) process.stderr.write(pendingNotes.shift() + "\n");
}

function makeContext(verb: VerbDef, ws: Workspace, flags: { json: boolean; debug: boolean; yes: boolean; quiet: boolean }, withOpts: string[] = []): VerbContext {
  const ui = makeUI({ quiet: flags.quiet });
  const onEvent = (ev: { kind: string; [k: string]: unknown }) => {
    if (ev.kind === "prepared") return flushNotes();
    if (verb.onEvent) return verb.onEvent(ev, ui);
    if (ev.kind === "progress" && typeof ev.message === "string") ui.progress(ev.message);
  };
  const bridge = async (req: BridgeRequest, env?: Record<string, string>) =>
    replyToOutcome(await callBridge(req, { ws: ctx.workspace, debug: flags.debug, onEvent, env }));
  const ctx: VerbContext = {
    workspace: ws,
    ui,
    ...flags,
    async flow(req) {
      ctx.workspace = ensureWorkspace(ctx.workspace);
      return bridge(
        { mode: "flow", flow: req.flow, flow_name: req.flowName, params: req.params, prepare: req.prepare, flow_options: [...(req.flowOptions ?? []), ...withOpts] },
        withOpts.length ? { ...req.env, LOOM_METAFLOW_WITH: withOpts.filter((o) => o !== "--with").join(" ") } : req.env, // flows a flow starts (optimize's foreach) inherit it
      );
    },
    async call(fn, params, opts) {
      return bridge({ mode: "call", fn, params }, opts?.env);
    },
  };
  return ctx;
}

function gateIO(tier: Tier) {
  const io = terminalIO();
  if (tier === "workspace-write") io.say = (l) => pendingNotes.push(l);
  return io;
}

export interface Printed {
  exitCode: number;
}

/** Pure: keep only suggestions that name a verb Loom has (unbuilt verbs are absent, not suggested). */
export function builtNext(next: string[], isVerb: (name: string) => boolean): string[] {
  return next.filter((n) => {
    const m = /^loom\s+([a-z][\w-]*)/.exec(n.trim());
    return !m || isVerb(m[1]!);
  });
}

export async function executeVerb(verb: VerbDef, rawArgs: string[], isVerb: (name: string) => boolean = () => true): Promise<Printed> {
  const defs = argsFor(verb);
  const flagsOnly = parseArgs(rawArgs, { json: { type: "boolean" }, debug: { type: "boolean" }, open: { type: "boolean" } } as ArgsDef);
  const json = !!flagsOnly.json;
  const wantsOpen = !!flagsOnly.open;
  let humanInput: unknown = undefined;
  let tier: Tier = typeof verb.tier === "string" ? verb.tier : "expensive";
  const print = (out: Outcome): Printed => {
    out.next = builtNext(out.next ?? [], isVerb);
    if (wantsOpen && out.card_path && out.exit_code !== 2 && verb.name !== "open") {
      const opened = openCard(out.card_path);
      if (!json) process.stderr.write(opened ? `opened the card with ${opened}\n` : `no display to open the card: ${out.card_path}\n`);
    }
    const env = envelope(verb.name, tier, out, verb.emitsVerdict);
    if (json) process.stdout.write(JSON.stringify(env) + "\n");
    else if (out.exit_code === 2) process.stderr.write(`loom ${verb.name}: ${stripControl(out.messages[0] ?? out.status)}\n`);
    else
      process.stdout.write(
        renderHuman(env, verb.human ? safeHuman(verb, out) : defaultHuman(out.summary), { color: colorAllowed(process.stdout), width: termWidth(process.stdout) }),
      );
    return { exitCode: out.exit_code };
  };
  const safeHuman = (vb: VerbDef, out: Outcome) => {
    try {
      return vb.human!(out, humanInput);
    } catch {
      return defaultHuman(out.summary);
    }
  };
  try {
    const bad = unknownFlags(rawArgs, defs);
    if (bad.length) {
      const guess = closest(bad[0]!.replace(/^--?/, ""), Object.keys(defs));
      throw new UsageError(`unknown option ${bad.map(stripControl).join(", ")}${guess ? ` (did you mean --${guess}?)` : ""}: see \`loom ${verb.name} --help\``);
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = parseArgs(rawArgs, defs) as Record<string, unknown>;
      collectRepeated(rawArgs, defs, parsed);
    } catch (e) {
      throw new UsageError(`${(e as Error).message}: see \`loom ${verb.name} --help\``);
    }
    const flags = { json, debug: !!parsed.debug, yes: !!parsed.yes, quiet: !!parsed.quiet };
    const res = v.safeParse(verb.input, pickDeclared(parsed, verb.args));
    if (!res.success) throw new UsageError(`${formatIssue(res.issues[0], verb.args)} (see \`loom ${verb.name} --help\`)`);
    const input = res.output;
    humanInput = input;
    tier = typeof verb.tier === "function" ? verb.tier(input) : verb.tier;

    const ws = locateWorkspace();
    if (verb.needsPython !== false) {
      requirePython();
      if (!verb.createsWorkspace && !datastoreExists(ws))
        throw new UsageError(
          `no Loom datastore here (looked for .loom/ from ${process.cwd()} upward): ingest data first (\`loom ingest --source FILE\`), set LOOM_WORKSPACE, or run \`loom doctor\``,
        );
    }
    // remote compute is checked before the gate and before any run: one line, exit 2 (compute.ts)
    const withOpts = verb.needsPython !== false ? computePreflight(parsed.with, ws) : [];
    const ctx = makeContext(verb, ws, flags, withOpts);
    if (verb.preflight) {
      const early = await verb.preflight(input, ctx);
      if (early) return print(early);
    }
    const decision = await runGate(
      tier,
      verb.name,
      {
        writes: verb.writes?.(input, ctx),
        cost: verb.cost ? await verb.cost(input, ctx) : undefined,
        // the limits matter to the gated tiers only; a config that does not parse stops them (exit 2)
        limits: tier === "expensive" || tier === "irreversible" ? readLimits(ws) : DEFAULT_LIMITS,
        yes: flags.yes,
      },
      gateIO(tier),
    );
    if (!decision.allowed) {
      return print(errorOutcome("DENIED", 1, `gate denied: ${decision.reason}`, { gate: { tier, allowed: false, reason: decision.reason } }));
    }
    if (verb.needsPython === false) flushNotes();
    const out = await verb.run(input, ctx);
    pendingNotes.length = 0;
    if (out.exit_code !== 2 && !["DENIED", "FAILED"].includes(out.status)) {
      const check = v.safeParse(verb.summary, out.summary);
      if (!check.success) {
        const issue = check.issues[0];
        return print(
          errorOutcome("FAILED", 1, `internal error: the ${verb.name} summary does not match its schema (${formatIssue(issue).replace(/^--/, "summary.")}); please report it`, out.summary),
        );
      }
      out.summary = check.output;
    }
    return print(out);
  } catch (e) {
    if (e instanceof UsageError) return print(errorOutcome("ERROR", 2, e.message));
    const err = e as Error;
    if (flagsOnly.debug) process.stderr.write((err.stack ?? String(err)) + "\n");
    return print(errorOutcome("FAILED", 1, `internal error: ${err.message ?? String(err)} (rerun with --debug)`));
  }
}
