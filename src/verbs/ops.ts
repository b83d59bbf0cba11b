/**
 * `loom ops`: run health (default), the leaderboard (--leaderboard) and a drift check of a current data
 * object against a reference (--dataset CURRENT --reference REF → OpsFlow/N). Read-only: health and the
 * leaderboard read the datastore without creating a run; the drift check is a run whose VERDICT is
 * DRIFT (exit 1, a domain outcome) or NO_DRIFT (exit 0). Where a model is deployed with the champion alias
 * (--model / --alias choose), the drift check also scores both tables with it in the sandbox and compares
 * its predictions (loom_py/verbs/ops_champion.py).
 */
import * as v from "valibot";
import { defineVerb } from "../core/define";
import { Column, DatasetPathspec } from "../core/schemas";
import { kv } from "../core/ui";

const Num = v.nullable(v.number());

const FlowRow = v.object({
  flow: v.string(),
  runs: v.number(),
  succeeded: v.number(),
  failed: v.number(),
  running: v.number(),
  never_finished: v.number(),
  latest: v.nullable(v.string()),
  median_seconds: Num,
  last_seconds: Num,
});
const Health = v.object({
  mode: v.literal("health"),
  flows: v.array(FlowRow),
  last_failures: v.array(v.object({ pathspec: v.string(), created: v.nullable(v.string()), why: v.nullable(v.string()) })),
  never_finished: v.array(v.object({ pathspec: v.string(), created: v.nullable(v.string()) })),
  attention: v.array(v.string()),
  datastore: v.object({ metaflow_bytes: v.number(), artifacts_bytes: v.number(), total_bytes: v.number() }),
  deployed: v.nullable(v.unknown()),
});
const BoardRow = v.looseObject({
  rank: v.number(),
  kind: v.picklist(["search", "validate"]),
  pathspec: v.string(),
  dataset: v.nullable(v.string()),
  metric: v.nullable(v.string()),
  score: v.number(),
  node: Num,
  model: v.nullable(v.string()),
  when: v.nullable(v.string()),
});
const Board = v.object({ mode: v.literal("leaderboard"), dataset: v.nullable(v.string()), metric: v.nullable(v.string()), rows: v.array(BoardRow) });
const ColumnDrift = v.looseObject({
  column: v.string(),
  kind: v.string(),
  test: v.nullable(v.string()),
  test_name: v.nullable(v.string()),
  statistic: Num,
  threshold: Num,
  drifted: v.boolean(),
  psi: Num,
  skipped: v.nullable(v.string()),
  missing: v.object({ reference: v.number(), current: v.number(), changed: v.boolean() }),
  new_categories: v.nullable(v.looseObject({ count: v.number(), rows: v.number(), share: v.number(), values: v.array(v.string()) })),
});
const Side = v.object({ pathspec: v.string(), rows: v.number(), content_hash: v.nullable(v.string()) });
/** the deployed champion's predictions on both tables (scored in the sandbox), or why they are not assessed */
const PredictionDrift = v.object({
  assessed: v.boolean(),
  reason: v.nullable(v.string()),
  model: v.nullable(
    v.looseObject({
      name: v.string(),
      alias: v.string(),
      version: v.number(),
      registry: v.string(),
      task: v.nullable(v.string()),
      target: v.nullable(v.string()),
      features: v.array(v.string()),
      validate: v.nullable(v.string()),
      model_written_code: v.nullable(v.boolean()),
      verified: v.boolean(),
    }),
  ),
  columns: v.array(ColumnDrift),
  drifted: v.boolean(),
  drifted_columns: v.array(v.string()),
  rows: v.nullable(v.object({ reference: v.number(), current: v.number() })),
});
const Drift = v.looseObject({
  mode: v.literal("drift"),
  verdict: v.picklist(["DRIFT", "NO_DRIFT"]),
  current: Side,
  reference: Side,
  columns: v.array(ColumnDrift),
  tested: v.number(),
  drifted: v.number(),
  drifted_share: v.number(),
  drift_share_threshold: v.number(),
  dataset_drift: v.boolean(),
  target: v.nullable(ColumnDrift),
  missing_changed: v.array(v.string()),
  new_categories: v.array(v.string()),
  reasons: v.array(v.string()),
  drifted_columns: v.array(v.string()),
  prediction_drift: PredictionDrift,
});
const Summary = v.variant("mode", [Health, Board, Drift]);

const Input = v.pipe(
  v.object({
    leaderboard: v.optional(v.boolean()),
    dataset: v.optional(DatasetPathspec),
    reference: v.optional(DatasetPathspec),
    columns: v.optional(v.union([v.string(), v.array(v.string())])),
    target: v.optional(Column),
    metric: v.optional(v.string()),
    model: v.optional(v.string()),
    alias: v.optional(v.string()),
  }),
  v.check((i) => !i.leaderboard || (!i.reference && !i.columns && !i.target), "--leaderboard takes only --dataset and --metric (drop --reference, --columns, --target)"),
  v.check((i) => !!i.leaderboard || !!i.dataset === !!i.reference, "the drift check needs both --dataset CURRENT and --reference REFERENCE"),
  v.check((i) => !!i.leaderboard || !!i.dataset || (!i.columns && !i.target), "--columns and --target belong to the drift check: add --dataset CURRENT --reference REFERENCE"),
  v.check((i) => !!i.leaderboard || !i.metric, "--metric filters the leaderboard: add --leaderboard"),
  v.check((i) => (!i.model && !i.alias) || (!i.leaderboard && !!i.reference), "--model and --alias choose the deployed model of the drift check: add --dataset CURRENT --reference REFERENCE"),
);
type I = v.InferOutput<typeof Input>;

const secs = (x: number | null) => (x === null ? "-" : x.toFixed(2));
const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const f4 = (x: number | null | undefined) => (x === null || x === undefined ? "n/a" : Math.abs(x) < 1e-3 && x !== 0 ? x.toExponential(2) : x.toFixed(4));

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.min(40, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
  const fmt = (cells: string[]) => cells.map((c, i) => c.slice(0, widths[i]).padEnd(widths[i]!)).join("  ").trimEnd();
  return [fmt(head), ...rows.map(fmt)];
}

export default defineVerb<I>({
  name: "ops",
  description:
    "Run health (default: per flow succeeded/failed/running/never finished, last failures, durations, datastore size), --leaderboard, or a drift check --dataset CURRENT --reference REF, with the deployed champion's prediction drift (→ OpsFlow/N, VERDICT DRIFT exits 1)",
  tier: "read-only",
  emitsVerdict: true,
  args: {
    leaderboard: { type: "boolean", description: "every search's best (OptimizeFlow) and validate's holdout scores, best first" },
    dataset: { type: "string", description: "drift: the current data object; with --leaderboard: only rows on this data object" },
    reference: { type: "string", description: "drift: the reference data object the current one is compared with" },
    columns: { type: "string", description: "drift: comma-separated columns to compare (default: all; schemas must line up)" },
    target: { type: "string", description: "drift: the target column, whose drift (label drift) is reported apart" },
    metric: { type: "string", description: "with --leaderboard: only rows whose metric contains this text" },
    model: { type: "string", description: "drift: the registered model whose prediction drift is checked (default: the only one with the alias)" },
    alias: { type: "string", description: "drift: the alias of the deployed model to score (default: champion)" },
  },
  input: Input,
  summary: Summary,
  human: (out) => {
    const s = out.summary as v.InferOutput<typeof Summary>;
    if (s.mode === "health") {
      const lines = table(
        ["flow", "runs", "ok", "failed", "running", "never done", "median s", "last s"],
        s.flows.map((f) => [f.flow, String(f.runs), String(f.succeeded), String(f.failed), String(f.running), String(f.never_finished), secs(f.median_seconds), secs(f.last_seconds)]),
      );
      for (const x of s.last_failures.slice(0, 5)) lines.push(kv("failed", `${x.pathspec}: ${x.why ?? ""}`));
      for (const x of s.never_finished.slice(0, 5)) lines.push(kv("unfinished", `${x.pathspec} (started ${x.created ?? "?"}, no live process)`));
      lines.push(kv("datastore", `${mb(s.datastore.total_bytes)} (Metaflow ${mb(s.datastore.metaflow_bytes)}, artifacts ${mb(s.datastore.artifacts_bytes)})`));
      const deployed = (s.deployed ?? []) as { name: string; alias: string; version: number | null; last_move: { run: string; from: number | null; when?: string }; moves: number }[];
      for (const d of deployed)
        lines.push(kv("deployed", `${d.name}@${d.alias} → version ${d.version ?? "?"} (last move ${d.last_move.from ?? "none"} → ${d.version ?? "?"} by ${d.last_move.run}; ${d.moves} move(s))`));
      return lines;
    }
    if (s.mode === "leaderboard") {
      if (!s.rows.length) return ["no searches or validate results yet" + (s.dataset || s.metric ? " matching the filter" : "")];
      return table(
        ["#", "metric", "score", "model", "node", "dataset", "run", "when"],
        s.rows.map((r) => [String(r.rank), r.metric ?? "", f4(r.score), r.model ?? "", r.node === null ? "-" : String(r.node), r.dataset ?? "", r.pathspec, (r.when ?? "").slice(0, 19)]),
      );
    }
    const lines = [
      kv("drift", `${s.current.pathspec} (${s.current.rows.toLocaleString()} rows) vs reference ${s.reference.pathspec} (${s.reference.rows.toLocaleString()} rows)`),
      kv("drifted", `${s.drifted} of ${s.tested} columns (share ${s.drifted_share.toFixed(2)}; dataset drift at ≥ ${s.drift_share_threshold})`),
    ];
    lines.push(
      ...table(
        ["column", "test", "statistic", "threshold", "verdict", "psi"],
        s.columns.map((c) => [c.column, c.test_name ?? `skipped: ${c.skipped}`, f4(c.statistic), c.threshold === null ? "" : String(c.threshold), c.test ? (c.drifted ? "DRIFT" : "ok") : "-", f4(c.psi)]),
      ),
    );
    if (s.target) lines.push(kv("target", `${s.target.column}: ${s.target.test_name} ${f4(s.target.statistic)} → ${s.target.drifted ? "DRIFT" : "no drift"}`));
    const p = s.prediction_drift;
    if (!p.assessed || !p.model) lines.push(kv("predictions", `prediction drift ${p.reason ?? "not assessed"}`));
    else
      lines.push(
        kv(
          "predictions",
          `${p.model.name}@${p.model.alias} (version ${p.model.version}): ` +
            p.columns.map((c) => `${c.column} ${c.test_name ?? "skipped"} ${f4(c.statistic)} → ${c.test ? (c.drifted ? "DRIFT" : "no drift") : "-"}`).join("; "),
        ),
      );
    return lines;
  },
  run: (input, ctx) => {
    if (input.leaderboard) return ctx.call("loom_py.verbs.ops:leaderboard", { dataset: input.dataset, metric: input.metric });
    if (!input.dataset) return ctx.call("loom_py.verbs.ops:health", {});
    const columns = Array.isArray(input.columns) ? input.columns.join(",") : input.columns;
    return ctx.flow({
      flow: "ops_flow.py",
      flowName: "OpsFlow",
      prepare: "loom_py.verbs.ops:prepare",
      params: { dataset: input.dataset, reference: input.reference, columns: columns ?? "", target: input.target ?? "", model: input.model ?? "", alias: input.alias ?? "" },
    });
  },
});
