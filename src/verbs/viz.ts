import * as v from "valibot";
import { defineVerb } from "../core/define";
import { Column, DatasetPathspec, Pathspec } from "../core/schemas";
import { kv } from "../core/ui";

const KINDS = ["distributions", "correlation", "target", "leaderboard"] as const;

const Summary = v.object({
  kinds: v.array(v.picklist(KINDS)),
  plots: v.array(v.object({ name: v.string(), path: v.string() })),
  output_dir: v.string(),
  lineage: v.object({ run: v.nullish(v.string()), dataset: v.nullish(v.string()), content_hash: v.optional(v.nullish(v.string())) }),
  // data-object plots
  rows: v.optional(v.number()),
  columns: v.optional(v.number()),
  sampled_for_plots: v.optional(v.boolean()),
  // what the plots changed or left out (±inf as missing, a wide table's columns capped)
  notes: v.optional(v.array(v.string())),
  // leaderboard plots
  entries: v.optional(v.number()),
  best: v.optional(v.nullable(v.looseObject({ score: v.number() }))),
  order: v.optional(v.string()),
  metric: v.optional(v.string()),
});
type S = v.InferOutput<typeof Summary>;

export default defineVerb({
  name: "viz",
  description: "Plots of a data object or a run (distributions, correlation, target, leaderboard), each naming the run it came from, in the card and as PNG files (→ VizFlow/N)",
  tier: "read-only",
  args: {
    dataset: { type: "string", description: "data object: its label, IngestDataset/N, FeaturesFlow/latest or a run-id prefix" },
    run: { type: "string", description: "a run: one with a leaderboard (e.g. OptimizeFlow/N), or one made from a data object (e.g. EdaFlow/N)" },
    kind: { type: "enum", options: [...KINDS], description: "which plots (default: distributions + correlation (+ target with --target); leaderboard for a run with one)" },
    target: { type: "string", description: "target column for the target plots" },
  },
  input: v.pipe(
    v.object({
      dataset: v.optional(DatasetPathspec),
      run: v.optional(Pathspec("run")),
      kind: v.optional(v.picklist(KINDS, `must be one of ${KINDS.join(", ")}`)),
      target: v.optional(Column),
    }),
    v.check((i) => !!i.dataset !== !!i.run, "pass exactly one of --dataset PATHSPEC or --run PATHSPEC"),
  ),
  summary: Summary,
  human: (out) => {
    const s = out.summary as S;
    return [
      kv("from", [s.lineage.run, s.lineage.dataset].filter(Boolean).join(" ← ")),
      kv("plots", s.kinds.join(", ")),
      ...s.plots.map((p) => kv(p.name, p.path)),
    ];
  },
  run: (input, ctx) =>
    ctx.flow({
      flow: "viz_flow.py",
      flowName: "VizFlow",
      prepare: "loom_py.verbs.viz:prepare",
      params: { dataset: input.dataset, run: input.run, kind: input.kind, target: input.target },
    }),
});
