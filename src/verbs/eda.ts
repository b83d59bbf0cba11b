import * as v from "valibot";
import { defineVerb } from "../core/define";
import { Column, DatasetPathspec } from "../core/schemas";
import { kv } from "../core/ui";

const Flag = v.object({ column: v.string(), reason: v.string(), evidence: v.record(v.string(), v.unknown()) });

const Summary = v.object({
  dataset: v.string(),
  shape: v.object({ rows: v.number(), columns: v.number() }),
  target: v.nullable(v.string()),
  task: v.nullable(v.picklist(["classification", "regression"])),
  dtypes: v.array(v.object({ column: v.string(), dtype: v.string(), semantic_type: v.string(), missing: v.number(), unique: v.number() })),
  missingness: v.object({ overall_share: v.number(), rows_with_missing: v.number(), columns: v.record(v.string(), v.number()) }),
  duplicate_rows: v.number(),
  target_balance: v.nullable(v.record(v.string(), v.unknown())),
  top_correlations: v.object({
    with_target: v.array(v.object({ column: v.string(), value: v.number(), method: v.string() })),
    feature_pairs: v.array(v.object({ a: v.string(), b: v.string(), value: v.number(), method: v.string() })),
    methods: v.record(v.string(), v.string()),
  }),
  alerts: v.array(v.looseObject({ column: v.string(), alert: v.string() })),
  leakage_flags: v.array(Flag),
  sampling: v.array(v.string()),
  time_column: v.nullable(v.string()),
  semantic_types: v.record(v.string(), v.number()),
  dataset_label: v.nullish(v.string()),
  content_hash: v.nullish(v.string()),
  thresholds: v.record(v.string(), v.unknown()),
});
type S = v.InferOutput<typeof Summary>;

export default defineVerb({
  name: "eda",
  description: "Profile a data object: shape, types, missingness, target balance, top correlations, alerts, leakage flags (→ EdaFlow/N)",
  tier: "read-only",
  args: {
    dataset: { type: "string", description: "data object: its label, IngestDataset/N, FeaturesFlow/latest or a run-id prefix" },
    target: { type: "string", description: "target column (enables target balance, associations with it and the leakage checks)" },
    time: { type: "string", description: "prediction-time column: flags timestamps filled after the outcome or lying after it" },
    task: { type: "enum", options: ["classification", "regression"], description: "override the inferred task" },
  },
  input: v.object({
    dataset: DatasetPathspec,
    target: v.optional(Column),
    time: v.optional(Column),
    task: v.optional(v.picklist(["classification", "regression"], "must be classification or regression")),
  }),
  summary: Summary,
  human: (out) => {
    const s = out.summary as S;
    const lines = [
      kv("profiled", `${s.dataset}: ${s.shape.rows.toLocaleString()} rows × ${s.shape.columns} columns, ${s.duplicate_rows} duplicate rows`),
      kv("missing", `${(s.missingness.overall_share * 100).toFixed(1)}% of cells`),
    ];
    if (s.target) lines.push(kv("target", `${s.target} (${s.task})`));
    const top = s.top_correlations.with_target.slice(0, 3).map((r) => `${r.column} ${r.value.toFixed(2)} (${r.method})`);
    if (top.length) lines.push(kv("top assoc.", top.join(", ")));
    lines.push(kv("alerts", s.alerts.length ? s.alerts.slice(0, 6).map((a) => `${a.column}: ${a.alert}`).join("; ") : "none"));
    lines.push(kv("leakage", s.leakage_flags.length ? s.leakage_flags.map((f) => `${f.column} (${f.reason})`).join(", ") : "no flags"));
    for (const n of s.sampling) lines.push(kv("sampling", n));
    return lines;
  },
  run: (input, ctx) =>
    ctx.flow({
      flow: "eda_flow.py",
      flowName: "EdaFlow",
      prepare: "loom_py.verbs.eda:prepare",
      params: { dataset: input.dataset, target: input.target, time: input.time, task: input.task },
    }),
});
