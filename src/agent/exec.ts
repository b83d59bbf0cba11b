/**
 * Running a verb for the agent: the same binary, the same code path as the command line
 * (`loom <verb> … --json` as a child process: argument validation, preflight, gate, bridge, summary
 * check), its one JSON envelope read back. The child never gets a terminal for its stdin unless the
 * person typed the command (a slash command), so its own gate can never be answered by the model.
 */
import type { Subprocess } from "bun";
import { callBridge } from "../core/bridge";
import { envelope, errorOutcome, type Envelope } from "../core/contract";
import type { Cost, Outcome, VerbContext, VerbDef } from "../core/define";
import { UsageError } from "../core/errors";
import { replyToOutcome } from "../core/run";
import { requirePython } from "../core/pyenv";
import type { Tier } from "../core/tiers";
import { makeUI } from "../core/ui";
import { datastoreExists, locateWorkspace } from "../core/workspace";

/** How to start this same binary (compiled: the executable itself; from source: bun + src/cli.ts). */
export function selfCommand(): string[] {
  const script = process.argv[1] ?? "";
  if (/\.(ts|js)$/.test(script) && !script.startsWith("/$bunfs")) return [process.execPath, script];
  return [process.execPath];
}

export interface VerbRun {
  envelope: Envelope;
  exitCode: number;
  ms: number;
  interrupted: boolean;
}

let current: Subprocess | null = null;

/** Stop the running verb (Ctrl-C): SIGINT to the child (its Python tree shares the process group and
 * ends with it), SIGKILL if it is still there after a grace period. ``fromTerminal``: the terminal already
 * sent SIGINT to the whole foreground group, the child included, so a second one is not sent (a second
 * Ctrl-C tells `loom run` to abort instead of recording the search so far); the grace is longer, for the
 * verb to keep what it did. */
export function interruptRunning(fromTerminal = false): boolean {
  const p = current;
  if (!p) return false;
  if (!fromTerminal) {
    try {
      p.kill("SIGINT");
    } catch {
      /* already gone */
    }
  }
  setTimeout(() => {
    if (p.exitCode === null && !p.killed) p.kill("SIGKILL");
  }, fromTerminal ? 20_000 : 5000).unref?.();
  return true;
}

export async function runVerbChild(
  argv: string[],
  opts: { interactive?: boolean; env?: Record<string, string>; quiet?: boolean; /** show the verb's progress on this terminal (stdin still not given) */ progress?: boolean; /** false: a background call Ctrl-C does not stop */ track?: boolean } = {},
): Promise<VerbRun> {
  const t0 = performance.now();
  const env: Record<string, string> = {};
  for (const [k, val] of Object.entries(process.env)) if (val !== undefined) env[k] = val;
  Object.assign(env, opts.env ?? {});
  const args = [...argv, "--json", ...(opts.quiet ? ["--quiet"] : [])];
  const proc = Bun.spawn([...selfCommand(), ...args], {
    env,
    stdin: opts.interactive ? "inherit" : "ignore",
    stdout: "pipe",
    stderr: opts.interactive || opts.progress ? "inherit" : "pipe",
  });
  if (opts.track !== false) current = proc;
  let interrupted = false;
  const errText = opts.interactive || opts.progress ? Promise.resolve("") : new Response(proc.stderr as ReadableStream).text();
  const out = await new Response(proc.stdout).text();
  const code = await proc.exited;
  const stderr = await errText;
  if (current === proc) current = null;
  if (proc.signalCode) interrupted = true;
  const ms = performance.now() - t0;
  const verb = argv[0]!;
  try {
    const env = JSON.parse(out.trim().split("\n").pop() ?? "") as Envelope;
    return { envelope: env, exitCode: code, ms, interrupted };
  } catch {
    const last = stderr.trim().split("\n").pop() ?? "";
    const msg = interrupted ? `loom ${verb} was stopped (Ctrl-C)` : `loom ${verb} printed no envelope (exit ${code}${last ? `: ${last.slice(0, 200)}` : ""})`;
    return { envelope: envelope(verb, "read-only", errorOutcome(interrupted ? "INTERRUPTED" : "FAILED", 1, msg)), exitCode: code || 1, ms, interrupted };
  }
}

/** The envelope of an outcome the agent produced itself (a refusal before anything ran). */
export function refusalEnvelope(verb: string, tier: Tier, status: string, message: string, exit: 1 | 2 = 1): Envelope {
  return envelope(verb, tier, errorOutcome(status, exit, message));
}

export interface Plan {
  cost?: Cost;
  /** the verb's own early outcome (its preflight answered without running, e.g. a refused train plan) */
  early?: Envelope;
}

/**
 * What the gate shows for an expensive call: the verb's own preflight and cost, computed in this process
 * exactly as `executeVerb` does before its gate. A UsageError becomes the verb's exit-2 envelope.
 */
export async function planCost(verb: VerbDef, input: Record<string, unknown>, tier: Tier): Promise<Plan> {
  try {
    const ws = locateWorkspace();
    if (verb.needsPython !== false) {
      requirePython();
      if (!verb.createsWorkspace && !datastoreExists(ws))
        throw new UsageError(
          `no Loom datastore here (looked for .loom/ from ${process.cwd()} upward): ingest data first (\`loom ingest --source FILE\`), set LOOM_WORKSPACE, or run \`loom doctor\``,
        );
    }
    const ctx: VerbContext = {
      workspace: ws,
      ui: makeUI({ quiet: true }),
      json: true,
      debug: false,
      yes: false,
      flow: async () => {
        throw new Error("planning runs no flow");
      },
      call: async (fn, params, o) => replyToOutcome(await callBridge({ mode: "call", fn, params }, { ws, debug: false, env: o?.env })),
    };
    if (verb.preflight) {
      const early = (await verb.preflight(input, ctx)) as Outcome | void;
      if (early) return { early: envelope(verb.name, tier, early, verb.emitsVerdict) };
    }
    return { cost: verb.cost ? await verb.cost(input, ctx) : { lines: [] } };
  } catch (e) {
    if (e instanceof UsageError) return { early: refusalEnvelope(verb.name, tier, "ERROR", e.message, 2) };
    return { early: refusalEnvelope(verb.name, tier, "FAILED", `internal error while computing the cost: ${(e as Error).message}`) };
  }
}
