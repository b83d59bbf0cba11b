/** The JSON envelope every verb prints with --json, and its human rendering. */
import * as v from "valibot";
import { TIERS, type Tier } from "./tiers";
import type { Outcome } from "./define";
import { paint, statusColor, stripControl, wrap } from "./term";
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

/** The human rendering: data-derived text has its control characters stripped; lines longer than `width`
 * wrap under their value; the VERDICT/STATUS word is coloured where `color` allows (a TTY without NO_COLOR). */
export function renderHuman(env: Envelope, body: string[], opts: { color?: boolean; width?: number } = {}): string {
  const lines = body.map((l) => stripControl(l));
  if (env.pathspec) lines.push(kv("run", env.pathspec));
  if (env.card_path) lines.push(kv("card", env.card_path));
  for (const m of env.messages) lines.push(kv("note", stripControl(m)));
  const width = opts.width ?? Infinity;
  const out = lines.flatMap((l) => (l.length <= width || !/^.{11} : /.test(l) ? [l] : [l.slice(0, 14) + wrap(l.slice(14), width - 14, 14).join("\n")]));
  // `next` lines are commands to paste: never wrapped
  const next = env.next.map((n) => stripControl(n));
  if (next.length) out.push(kv("next", next[0]!), ...next.slice(1).map((n) => `${" ".repeat(14)}${n}`));
  const word = env.verdict ?? env.status;
  const c = statusColor(word);
  const shown = opts.color && c ? paint(true, "bold", paint(true, c, word)) : word;
  out.push(kv(env.verdict ? "VERDICT" : "STATUS", shown));
  return out.join("\n") + "\n";
}
