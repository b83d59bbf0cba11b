/**
 * `loom agent` (and `loom` with no arguments on a terminal): the REPL, or one headless request with -p.
 *   loom agent -p "TEXT" [--json] [--yes] [--budget-usd N] [--max-turns N]
 *              [--model-provider anthropic|openai] [--model M] [--resume ID | --continue]
 * The model key stays in this process; verbs run as `loom <verb> --json` children.
 */
import { parseArgs, type ArgsDef } from "citty";
import { kv } from "../core/ui";
import { locateWorkspace, readJson } from "../core/workspace";
import { join } from "node:path";
import type { LoopResult } from "./loop";
import { makeProvider, MISSING_AGENT_KEY, ProviderError, resolveProvider, type Provider } from "./providers";
import { listSessions, loadSession, newSessionId, Session, SESSION_ID_RE } from "./session";
import type { SlashIO, SlashResult } from "./slash";
// What `loom` needs to show its prompt is only this file, the REPL, sessions and providers: the registry,
// the verbs, the bridge and the loop load after the prompt is drawn (startup: bench/agent_bench.ts).

export const AGENT_ARGS: ArgsDef = {
  print: { type: "string", alias: "p", description: "run one request headless (text, or a slash command) and print the result" },
  json: { type: "boolean", description: "with -p: print exactly one JSON object (final message, verb calls with envelopes, gate decisions, tokens, $, session id)" },
  yes: { type: "boolean", description: "headless: accept expensive verbs (their cost is still shown and recorded); never irreversible ones" },
  "budget-usd": { type: "string", description: "session budget: the agent's tokens plus the verbs' spend (default: limits.agent_budget_usd in .loom/config.json, else 1)" },
  "max-turns": { type: "string", description: "model turns per request (default 25)" },
  "model-provider": { type: "string", description: "anthropic (default; ANTHROPIC_API_KEY) or openai (OPENAI_API_KEY / OPENAI_BASE_URL: OpenAI, Ollama, vLLM, llama.cpp)" },
  model: { type: "string", description: "the model (default claude-sonnet-4-6 / gpt-4o-mini)" },
  resume: { type: "string", description: "continue the saved session ID (.loom/sessions/ID.jsonl; /history lists them)" },
  continue: { type: "boolean", description: "continue the newest saved session" },
};

export const DEFAULT_BUDGET_USD = 1;

class AgentUsage extends Error {}

interface Opts {
  print?: string;
  json: boolean;
  yes: boolean;
  budgetUsd: number;
  maxTurns: number;
  provider?: string;
  model?: string;
  resume?: string;
  cont: boolean;
}

async function parseOpts(rest: string[]): Promise<Opts> {
  if (rest.length) {
    const { unknownFlags } = await import("../core/run");
    const bad = unknownFlags(rest, AGENT_ARGS);
    if (bad.length) throw new AgentUsage(`unknown option ${bad.join(", ")}: see \`loom agent --help\``);
  }
  const a = parseArgs(rest, AGENT_ARGS) as Record<string, any>;
  const ws = locateWorkspace();
  const limits = readJson<{ limits?: { agent_budget_usd?: number } }>(join(ws.dir, "config.json"), {}).limits ?? {};
  const budget = a["budget-usd"] !== undefined ? Number(a["budget-usd"]) : limits.agent_budget_usd ?? DEFAULT_BUDGET_USD;
  if (!Number.isFinite(budget) || budget < 0) throw new AgentUsage("--budget-usd must be a dollar amount such as 0.50");
  const maxTurns = a["max-turns"] !== undefined ? Number(a["max-turns"]) : 25;
  if (!Number.isInteger(maxTurns) || maxTurns < 1) throw new AgentUsage("--max-turns must be a whole number of at least 1");
  if (a.resume !== undefined && !SESSION_ID_RE.test(String(a.resume))) throw new AgentUsage(`--resume: '${a.resume}' is not a session id (/history or \`ls .loom/sessions\` lists them)`);
  if (a.print !== undefined && !String(a.print).trim()) throw new AgentUsage("-p needs the request text, e.g. loom agent -p \"profile IngestDataset/1\"");
  return { print: a.print, json: !!a.json, yes: !!a.yes, budgetUsd: budget, maxTurns, provider: a["model-provider"], model: a.model, resume: a.resume, cont: !!a.continue };
}

function openSession(o: Opts): Session {
  if (o.resume) {
    if (!listSessions().some((s) => s.id === o.resume)) throw new AgentUsage(`--resume: no session '${o.resume}' under ${join(locateWorkspace().dir, "sessions")} (/history lists them)`);
    return loadSession(o.resume);
  }
  if (o.cont) {
    const last = listSessions()[0];
    if (!last) throw new AgentUsage("--continue: no saved session in this workspace yet");
    return loadSession(last.id);
  }
  return new Session(newSessionId());
}

function providerFor(o: Opts): Provider | null {
  try {
    const p = resolveProvider({ provider: o.provider, model: o.model });
    return p ? makeProvider(p) : null;
  } catch (e) {
    if (e instanceof ProviderError) throw new AgentUsage(e.message);
    throw e;
  }
}

const say = (l: string) => process.stderr.write(l + "\n");

export async function agentMain(rest: string[]): Promise<number> {
  if (rest.includes("--help") || rest.includes("-h")) {
    const { renderUsage, defineCommand } = await import("citty");
    process.stdout.write((await renderUsage(defineCommand({ meta: { name: "loom agent", description: "the agent: a REPL on a terminal, or one headless request with -p" }, args: AGENT_ARGS }))) + "\n");
    return 0;
  }
  let o: Opts;
  try {
    o = await parseOpts(rest);
    if (o.print === undefined) {
      if (!process.stdin.isTTY || !process.stdout.isTTY) throw new AgentUsage("no terminal for the REPL: pass -p \"REQUEST\" to run one request headless");
      const { repl } = await import("./repl");
      return await repl(openSession(o), providerFor(o), o);
    }
    return await headless(o);
  } catch (e) {
    if (e instanceof AgentUsage) {
      if (rest.includes("--json")) process.stdout.write(JSON.stringify({ verb: "agent", status: "ERROR", exit_code: 2, messages: [e.message] }) + "\n");
      else process.stderr.write(`loom agent: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

async function headless(o: Opts): Promise<number> {
  const session = openSession(o);
  const provider = providerFor(o);
  const text = o.print!;
  const quietSay = o.json ? (l: string) => process.stderr.write(l + "\n") : say;
  session.record({ type: "start", mode: "headless", provider: provider?.name ?? null, model: provider?.model ?? null, budget_usd: o.budgetUsd, yes: o.yes });
  if (text.trim().startsWith("/")) {
    const { runSlash } = await import("./slash");
    const io: SlashIO = {
      say: quietSay,
      interactive: false,
      yes: o.yes,
      confirm: async () => o.yes,
      select: async () => null,
      // --json: stdout carries the one object, so the model's words are collected into it, not streamed
      model: provider ? { provider, onText: o.json ? () => {} : (s) => process.stdout.write(s), budgetUsd: o.budgetUsd } : undefined,
    };
    const r = await runSlash(text, io, session);
    session.record({ type: "end", ok: r.ok, message: r.message ?? null });
    if (o.json) process.stdout.write(JSON.stringify(slashJson(session, r)) + "\n");
    return r.ok ? 0 : r.runs.some((x) => x.envelope?.exit_code === 2) && r.runs.length === 1 ? 2 : 1;
  }
  if (!provider) throw new AgentUsage(MISSING_AGENT_KEY);
  let streamed = false;
  const { runLoop } = await import("./loop");
  const res = await runLoop(text, {
    provider,
    session,
    budgetUsd: o.budgetUsd,
    maxTurns: o.maxTurns,
    root: locateWorkspace().root,
    yes: o.yes,
    say: quietSay,
    onText: o.json ? undefined : (s) => {
      streamed = true;
      process.stdout.write(s);
    },
  });
  session.record({ type: "end", stopped_because: res.stopped_because, usd: session.usd, error: res.error ?? null });
  if (o.json) process.stdout.write(JSON.stringify(loopJson(session, provider, o, res)) + "\n");
  else {
    if (streamed) process.stdout.write("\n");
    if (res.stopped_because !== "end_turn") process.stdout.write(`${res.stopped_because === "provider_error" ? `loom agent: ${res.error}` : res.final.split("\n").pop()}\n`);
    say(kv("session", `${session.id} · ${session.totals.input_tokens + session.totals.output_tokens} tokens · $${session.usd.toFixed(4)}`));
  }
  return res.stopped_because === "end_turn" ? 0 : 1;
}

function loopJson(session: Session, provider: Provider, o: Opts, r: LoopResult) {
  return {
    verb: "agent",
    status: r.stopped_because === "end_turn" ? "OK" : "STOPPED",
    exit_code: r.stopped_because === "end_turn" ? 0 : 1,
    stopped_because: r.stopped_because,
    final: r.final,
    error: r.error ?? null,
    session_id: session.id,
    session_path: session.path,
    provider: provider.name,
    model: provider.model,
    turns: r.turns,
    calls: r.calls,
    gate_decisions: r.calls.map((c) => ({ id: c.id, tool: c.tool, verb: c.verb, tier: c.tier, allowed: c.gate.allowed, reason: c.gate.reason })),
    tokens: { input: session.totals.input_tokens, output: session.totals.output_tokens },
    usd: { agent: session.totals.agent_usd, verbs: session.totals.verbs_usd, total: session.usd },
    budget_usd: o.budgetUsd,
  };
}

function slashJson(session: Session, r: SlashResult) {
  return {
    verb: "agent",
    status: r.ok ? "OK" : "STOPPED",
    exit_code: r.ok ? 0 : 1,
    final: r.message ?? (r.ok ? "done" : "stopped"),
    session_id: session.id,
    session_path: session.path,
    calls: r.runs.map((x) => ({ verb: x.verb, argv: x.argv, gate: x.gate ?? null, envelope: x.envelope, ...(x.narration ? { narration: x.narration } : {}) })),
    ...(r.plan ? { plan: r.plan } : {}),
    ...(r.runs.some((x) => x.narration) ? { narration: r.runs.filter((x) => x.narration).map((x) => x.narration) } : {}),
    ...(r.account !== undefined ? { account: r.account } : {}),
    tokens: { input: session.totals.input_tokens, output: session.totals.output_tokens },
    usd: { agent: session.totals.agent_usd, verbs: session.totals.verbs_usd, total: session.usd },
  };
}

