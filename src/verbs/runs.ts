/** `loom runs`: the newest runs of every flow in this workspace, with status, verdict, label and age. Read-only,
 * no run made: `loom_py.verbs.ops:recent_runs` classifies runs the way `loom ops` health does. */
import * as v from "valibot";
import { defineVerb } from "../core/define";
import { PositiveInt } from "../core/schemas";
import { termWidth } from "../core/term";

const STATUSES = ["succeeded", "failed", "running", "interrupted", "never_finished"] as const;
const Row = v.object({
  pathspec: v.string(),
  flow: v.string(),
  status: v.picklist(STATUSES),
  verdict: v.nullable(v.string()),
  result: v.nullable(v.string()),
  label: v.nullable(v.string()),
  created: v.nullable(v.string()),
  age_seconds: v.nullable(v.number()),
  why: v.nullable(v.string()),
});
const Summary = v.object({ count: v.number(), limit: v.number(), flow: v.nullable(v.string()), runs: v.array(Row) });
type R = v.InferOutput<typeof Row>;

/** "42s", "5m", "3h", "2d": the age as people read it. */
export function age(seconds: number | null): string {
  if (seconds === null) return "?";
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/** Pure: the table at `width` columns. The pathspec (what one pastes) and the status stay whole; the label, then
 * the verdict, give way: cut with "…", then left out. */
export function runsTable(rows: R[], width: number): string[] {
  const cells = rows.map((r) => ({ run: r.pathspec, status: r.status.replace("_", " "), verdict: r.verdict ?? "", label: r.label ?? "", age: age(r.age_seconds) }));
  const cols = ["run", "status", "verdict", "label", "age"] as const;
  const w: Record<string, number> = {};
  for (const c of cols) w[c] = Math.max(c.length, ...cells.map((x) => x[c].length));
  const total = (keep: readonly string[]) => keep.reduce((n, c) => n + w[c]!, 0) + 2 * (keep.length - 1);
  let keep: string[] = [...cols];
  for (const soft of ["label", "verdict"]) {
    if (total(keep) <= width) break;
    const over = total(keep) - width;
    if (w[soft]! - over >= Math.max(5, soft.length)) w[soft] = w[soft]! - over;
    else keep = keep.filter((c) => c !== soft);
  }
  const cut = (s: string, n: number) => (s.length <= n ? s.padEnd(n) : s.slice(0, n - 1) + "…");
  const line = (x: Record<string, string>) => keep.map((c) => cut(x[c]!, w[c]!)).join("  ").trimEnd();
  return [line(Object.fromEntries(keep.map((c) => [c, c]))), ...cells.map((x) => line(x))];
}

export default defineVerb({
  name: "runs",
  description: "The newest runs of every flow in this workspace: status (succeeded, failed, running, interrupted), verdict, data label and age",
  tier: "read-only",
  args: {
    flow: { type: "string", description: "only this flow's runs: its name (ValidateFlow) or its verb (validate)" },
    limit: { type: "string", description: "how many runs to show (default 20)" },
  },
  input: v.object({ flow: v.optional(v.string()), limit: v.optional(PositiveInt("--limit")) }),
  summary: Summary,
  human: (out) => {
    const s = out.summary as v.InferOutput<typeof Summary>;
    if (!s.runs.length) return ["no runs yet: `loom ingest --source FILE`"];
    return runsTable(s.runs, termWidth(process.stdout));
  },
  run: (input, ctx) => ctx.call("loom_py.verbs.ops:recent_runs", { flow: input.flow, limit: input.limit }),
});
