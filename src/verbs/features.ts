import type { ArgDef } from "citty";
import * as v from "valibot";
import { defineVerb } from "../core/define";
import { Column, DatasetPathspec, Pathspec, Repeated, SchemaField } from "../core/schemas";
import { kv } from "../core/ui";

const Summary = v.object({
  dataset: v.string(),
  from: v.nullable(v.string()),
  output: v.string(),
  recipe: v.picklist(["minimal", "standard"]),
  target: v.nullable(v.string()),
  rows: v.number(),
  columns: v.number(),
  schema: v.array(SchemaField),
  content_hash: v.pipe(v.string(), v.startsWith("sha256:")),
  dropped_for_leakage: v.array(v.object({ column: v.string(), reason: v.string(), evidence: v.record(v.string(), v.unknown()) })),
  leakage_checked_by: v.string(),
  dropped: v.array(v.object({ column: v.string(), reason: v.string() })),
  manifest: v.array(v.object({ column: v.string(), inputs: v.array(v.string()), transform: v.string() })),
  lineage: v.looseObject({ verb: v.literal("features"), inputs: v.array(v.string()) }),
  target_free: v.boolean(),
  label: v.string(),
  rows_in: v.number(),
  rows_out: v.number(),
  rows_dropped_missing_target: v.number(),
  columns_in: v.number(),
  columns_out: v.number(),
  notes: v.array(v.string()),
  carried_columns: v.optional(v.array(v.string())),
});
type S = v.InferOutput<typeof Summary>;

export default defineVerb({
  name: "features",
  description: "Make model-ready columns into a NEW data object, without columns that leak the target; --from EdaFlow/N drops the columns eda flagged first (→ FeaturesFlow/N)",
  tier: "workspace-write",
  args: {
    dataset: { type: "string", description: "input data object: its label, IngestDataset/N, Flow/latest or a run-id prefix" },
    target: { type: "string", description: "target column (passes through untouched; default: the eda run's target)" },
    from: { type: "string", description: "EdaFlow/N: check it profiled this data object, then drop every column it flagged for leakage" },
    recipe: { type: "enum", options: ["minimal", "standard"], description: "minimal (default) or standard (adds log of skewed, frequency encoding, missing indicators)" },
    time: { type: "string", description: "prediction-time column for the leakage checks run here (without --from)" },
    sensitive: {
      type: "string",
      repeatable: true,
      description: "carry this column unchanged for `validate --sensitive` (kept to compare groups, never a model input; repeatable)",
    } as ArgDef,
  },
  input: v.object({
    dataset: DatasetPathspec,
    target: v.optional(Column),
    from: v.optional(Pathspec("EdaFlow")),
    recipe: v.optional(v.picklist(["minimal", "standard"], "must be minimal or standard"), "minimal"),
    time: v.optional(Column),
    sensitive: v.optional(Repeated),
  }),
  summary: Summary,
  writes: (input, ctx) => `reads ${input.dataset} (unchanged) and writes a new FeaturesFlow data object under ${ctx.workspace.dir}`,
  human: (out) => {
    const s = out.summary as S;
    return [
      kv("data object", `${s.output}: ${s.rows.toLocaleString()} rows × ${s.columns} columns (${s.recipe})`),
      kv("leakage", s.dropped_for_leakage.length
        ? `dropped ${s.dropped_for_leakage.map((f) => `${f.column} (${f.reason})`).join(", ")} — checked by ${s.leakage_checked_by}`
        : `nothing to drop — checked by ${s.leakage_checked_by}`),
      kv("recipe drops", s.dropped.length ? s.dropped.map((d) => `${d.column} (${d.reason})`).join(", ") : "none"),
      ...(s.carried_columns?.length ? [kv("carried", `${s.carried_columns.join(", ")} (for slicing; not model inputs)`)] : []),
      kv("lineage", s.lineage.inputs.join(" + ")),
    ];
  },
  run: (input, ctx) =>
    ctx.flow({
      flow: "features_flow.py",
      flowName: "FeaturesFlow",
      prepare: "loom_py.verbs.features:prepare",
      params: {
        dataset: input.dataset,
        target: input.target,
        from: input.from,
        recipe: input.recipe,
        time: input.time,
        sensitive: input.sensitive,
      },
    }),
});
