/** The JSON envelope every verb prints with --json, and its human rendering. */
import * as v from "valibot";
import { TIERS, type Tier } from "./tiers";
import type { Outcome } from "./define";
import { kv } from "./ui";

export const EnvelopeSchema = v.object({
  verb: v.string(),
  tier: v.picklist(TIERS),
  status: v.string(),
  verdict: v.optional(v.nullable(v.string())),
  exit_code: v.picklist([0, 1, 2]),
  pathspec: v.nullable(v.string()),
  card_path: v.nullable(v.string()),
  inputs: v.array(v.string()),
  summary: v.unknown(),
  messages: v.array(v.string()),
  next: v.array(v.string()),
});
export type Envelope = v.InferOutput<typeof EnvelopeSchema>;

export function envelope(verb: string, tier: Tier, out: Outcome, emitsVerdict = false): Envelope {
  const env: Envelope = {
    verb,
    tier,
    status: out.status,
    exit_code: out.exit_code,
    pathspec: out.pathspec ?? null,
    card_path: out.card_path ?? null,
    inputs: out.inputs ?? [],
    summary: out.summary ?? {},
    messages: out.messages ?? [],
    next: out.next ?? [],
  };
  if (emitsVerdict || out.verdict) env.verdict = out.verdict ?? null;
  return v.parse(EnvelopeSchema, env);
}

export function errorOutcome(status: string, exit: 0 | 1 | 2, message: string, summary: unknown = {}): Outcome {
  return { status, exit_code: exit, pathspec: null, card_path: null, inputs: [], summary, messages: [message], next: [] };
}

/** Default human lines: scalar fields of the summary. */
export function defaultHuman(summary: unknown): string[] {
  if (!summary || typeof summary !== "object") return [];
  const lines: string[] = [];
  for (const [k, val] of Object.entries(summary as Record<string, unknown>)) {
    if (val === null || ["string", "number", "boolean"].includes(typeof val)) lines.push(kv(k, String(val)));
    if (lines.length >= 12) break;
  }
  return lines;
}

export function renderHuman(env: Envelope, body: string[]): string {
  const lines = [...body];
  if (env.pathspec) lines.push(kv("run", env.pathspec));
  if (env.card_path) lines.push(kv("card", env.card_path));
  for (const m of env.messages) lines.push(kv("note", m));
  if (env.next.length) lines.push(kv("next", env.next[0]!), ...env.next.slice(1).map((n) => `${" ".repeat(14)}${n}`));
  lines.push(env.verdict ? kv("VERDICT", env.verdict) : kv("STATUS", env.status));
  return lines.join("\n") + "\n";
}
