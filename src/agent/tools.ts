/**
 * The model's tools ARE the registry: one tool per verb in src/verbs/index.ts, its arguments and help
 * taken from the verb's own definition. Two rules are derived from each verb's tier, never hand-listed:
 *
 *  - a verb whose tier is always irreversible is not offered at all;
 *  - an argument whose presence makes the verb's tier irreversible (found by probing the tier function
 *    with each value argument given alone, each boolean flag set and each enum value, alone and in pairs of
 *    booleans) is dropped from the
 *    tool, so no tool call can express `train --launch`, `deploy --apply` or `collab --send`.
 *
 * At call time the tier is computed again from the validated input (the same parse and valibot schema
 * as the command line), and an irreversible result is refused whatever the schema said.
 */
import { resolve, sep } from "node:path";
import { parseArgs, type ArgsDef } from "citty";
import * as v from "valibot";
import type { VerbDef } from "../core/define";
import { argsFor, collectRepeated, formatIssue, pickDeclared } from "../core/run";
import type { Tier } from "../core/tiers";
import { VERBS } from "../verbs/index";

type ArgDefLike = { type?: string; description?: string; options?: string[]; repeatable?: boolean; required?: boolean };

export interface AgentTool {
  /** the tool's name as the model sees it: loom_<verb> */
  name: string;
  verb: VerbDef;
  description: string;
  /** verb args the model may pass (irreversible ones removed) */
  args: Record<string, ArgDefLike>;
  /** args removed because their presence makes the tier irreversible */
  dropped: string[];
  input_schema: { type: "object"; properties: Record<string, unknown>; required: string[]; additionalProperties: false };
}

export const toolName = (verb: string) => `loom_${verb.replace(/[^A-Za-z0-9_]/g, "_")}`;

export function tierLabel(verb: VerbDef): string {
  return typeof verb.tier === "string" ? verb.tier : verb.tierLabel ?? "depends on flags";
}

function tierOf(verb: VerbDef, input: Record<string, unknown>): Tier | "unknown" {
  if (typeof verb.tier === "string") return verb.tier;
  try {
    return verb.tier(input);
  } catch {
    return "unknown";
  }
}

/** Pure: the args of a verb whose presence makes its tier irreversible (a tier function that throws on a
 * probe counts as irreversible: what cannot be shown safe is not offered). `["*"]` when the verb itself is. */
export function irreversibleArgs(verb: VerbDef): string[] {
  const base = tierOf(verb, {});
  if (base === "irreversible" || base === "unknown") return ["*"];
  if (typeof verb.tier === "string") return [];
  const args = Object.entries(verb.args as Record<string, ArgDefLike>);
  // probed on an empty input and on one with every value argument filled in (a tier that needs, say,
  // --model as well as --apply to become irreversible is found by the second)
  const bad = new Set<string>();
  // a value argument whose mere presence is irreversible (e.g. collab --send DEST): probed alone
  for (const [name, d] of args) {
    if (d.type === "boolean" || d.type === "enum") continue;
    const t = tierOf(verb, { [name]: "x" });
    if (t === "irreversible" || t === "unknown") bad.add(name);
  }
  const filled: Record<string, unknown> = {};
  for (const [name, d] of args) if (d.type !== "boolean" && !bad.has(name)) filled[name] = d.type === "enum" ? d.options?.[0] : "x";
  const ft = tierOf(verb, filled);
  const bases = ft === "irreversible" || ft === "unknown" ? [{}] : [{}, filled];
  const probe = (input: Record<string, unknown>) =>
    bases.some((b) => {
      const t = tierOf(verb, { ...b, ...input });
      return t === "irreversible" || t === "unknown";
    });
  const booleans = args.filter(([, d]) => d.type === "boolean").map(([n]) => n);
  for (const [name, d] of args) {
    const values: unknown[] = d.type === "boolean" ? [true] : d.type === "enum" ? d.options ?? [] : [];
    if (values.some((val) => probe({ [name]: val }))) bad.add(name);
  }
  // a pair of flags that is irreversible only together (e.g. --rollback --apply): both go
  for (let i = 0; i < booleans.length; i++)
    for (let j = i + 1; j < booleans.length; j++) {
      const [a, b] = [booleans[i]!, booleans[j]!];
      if (!bad.has(a) && !bad.has(b) && probe({ [a]: true, [b]: true })) {
        bad.add(a);
        bad.add(b);
      }
    }
  return [...bad];
}

/** Pure: the required keys of a verb's input (valibot's issues for an empty input). */
export function requiredArgs(verb: VerbDef): string[] {
  const res = v.safeParse(verb.input, {}, { abortEarly: false });
  if (res.success) return [];
  const keys = new Set<string>();
  for (const issue of res.issues) {
    const key = issue.path?.[0]?.key;
    if (typeof key === "string" && issue.input === undefined && key in verb.args) keys.add(key);
  }
  return [...keys];
}

function propertySchema(d: ArgDefLike): Record<string, unknown> {
  const description = d.description ?? "";
  if (d.type === "boolean") return { type: "boolean", description };
  if (d.type === "enum") return { type: "string", enum: d.options ?? [], description };
  if (d.repeatable) return { type: "array", items: { type: "string" }, description: description + " (a list)" };
  return { type: "string", description };
}

export function buildTools(verbs: VerbDef[] = VERBS): AgentTool[] {
  const tools: AgentTool[] = [];
  for (const verb of verbs) {
    if (verb.agentTool === false) continue;
    const dropped = irreversibleArgs(verb);
    if (dropped.includes("*")) continue;
    const args: Record<string, ArgDefLike> = {};
    for (const [name, d] of Object.entries(verb.args as Record<string, ArgDefLike>)) if (!dropped.includes(name)) args[name] = d;
    const required = requiredArgs(verb).filter((k) => k in args);
    const notes = [
      `Runs \`loom ${verb.name}\` and returns its --json envelope (exit_code, status, pathspec, summary, next).`,
      `Tier: ${tierLabel(verb)}.`,
    ];
    if (tierOf(verb, {}) === "expensive") notes.push("Expensive: the person confirms the cost shown to them; you cannot confirm for them.");
    if (dropped.length) notes.push(`Not available to the agent (irreversible): ${dropped.map((d) => `--${d}`).join(", ")}; only the person can type /loom-${verb.name} with it.`);
    tools.push({
      name: toolName(verb.name),
      verb,
      description: `${verb.description}. ${notes.join(" ")}`,
      args,
      dropped,
      input_schema: {
        type: "object",
        properties: Object.fromEntries(Object.entries(args).map(([n, d]) => [n, propertySchema(d)])),
        required,
        additionalProperties: false,
      },
    });
  }
  return tools;
}

export class ToolRefusal extends Error {}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

/** Pure: a path-like value must resolve inside the workspace root (no `../`, no absolute path elsewhere);
 * a server URI must name this machine. */
export function insideRoot(value: string, root: string): boolean {
  let p = value;
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(value);
  if (m) {
    if (!/^(sqlite|file)$/i.test(m[1]!)) {
      // a server URI: loopback only (a remote host named by the model could receive a password from the
      // environment, e.g. connect --password-env); the person registers remote sources with `loom connect`
      const host = /^(?:[^@/]*@)?(\[[^\]]*\]|[^:/?#]*)/.exec(m[2]!)?.[1]?.toLowerCase() ?? "";
      return ["", "localhost", "127.0.0.1", "[::1]"].includes(host);
    }
    p = m[2]!.startsWith("/") ? m[2]! : m[2]!.replace(/^\/*/, "");
  }
  if (p.startsWith("~")) return false;
  if (!/[\\/]/.test(p) && p !== "..") return true;
  const abs = resolve(root, p.replace(/\\/g, "/"));
  const r = resolve(root);
  return abs === r || abs.startsWith(r + sep);
}

/** Pure: the command line a tool call stands for; refuses anything the tool does not declare. */
export function toolArgv(tool: AgentTool, input: unknown, root: string): string[] {
  if (input === null || typeof input !== "object" || Array.isArray(input)) throw new ToolRefusal(`${tool.name}: arguments must be an object`);
  const flags: string[] = [];
  const positionals: string[] = [];
  const checkString = (key: string, val: string) => {
    if (CONTROL.test(val)) throw new ToolRefusal(`${tool.name}: --${key} contains control characters`);
    if (val.length > 4000) throw new ToolRefusal(`${tool.name}: --${key} is too long`);
    if (!insideRoot(val, root)) throw new ToolRefusal(`${tool.name}: --${key}=${JSON.stringify(val)} names a path outside the workspace (${root}) or a remote server; the agent may only name paths inside it and servers on this machine (remote sources: the person registers them with \`loom connect\`, then @NAME)`);
  };
  for (const [key, raw] of Object.entries(input as Record<string, unknown>)) {
    if (tool.dropped.includes(key)) throw new ToolRefusal(`${tool.name}: --${key} is irreversible and not available to the agent; only the person can type /loom-${tool.verb.name} --${key}`);
    const d = tool.args[key];
    if (!d) throw new ToolRefusal(`${tool.name}: unknown argument '${key}' (the tool takes: ${Object.keys(tool.args).join(", ") || "no arguments"})`);
    if (raw === null || raw === undefined) continue;
    if (d.type === "boolean") {
      if (typeof raw !== "boolean") throw new ToolRefusal(`${tool.name}: --${key} must be true or false`);
      if (raw) flags.push(`--${key}`);
      continue;
    }
    const vals = Array.isArray(raw) && d.repeatable ? raw : [raw];
    for (const val of vals) {
      if (typeof val !== "string" && typeof val !== "number") throw new ToolRefusal(`${tool.name}: --${key} must be a string`);
      const s = String(val);
      checkString(key, s);
      if (d.type === "positional") {
        if (s.startsWith("-")) throw new ToolRefusal(`${tool.name}: ${key} may not start with '-'`);
        positionals.push(s);
      } else flags.push(`--${key}=${s}`);
    }
  }
  return [tool.verb.name, ...flags, ...(positionals.length ? ["--", ...positionals] : [])];
}

export interface Parsed {
  ok: true;
  input: Record<string, unknown>;
  tier: Tier;
}

/** The command line's own parse and valibot check (src/core/run.ts), used to learn the call's tier. */
export function parseVerbArgv(verb: VerbDef, rest: string[]): Parsed | { ok: false; message: string } {
  const defs: ArgsDef = argsFor(verb);
  let parsed: Record<string, unknown>;
  try {
    parsed = parseArgs(rest, defs) as Record<string, unknown>;
    collectRepeated(rest, defs, parsed);
  } catch (e) {
    return { ok: false, message: `${(e as Error).message}: see \`loom ${verb.name} --help\`` };
  }
  const res = v.safeParse(verb.input, pickDeclared(parsed, verb.args));
  if (!res.success) return { ok: false, message: `${formatIssue(res.issues[0], verb.args)} (see \`loom ${verb.name} --help\`)` };
  const input = res.output as Record<string, unknown>;
  const tier = typeof verb.tier === "function" ? verb.tier(input) : verb.tier;
  return { ok: true, input, tier };
}
