import * as v from "valibot";
import { defineVerb } from "../core/define";
import { Pathspec } from "../core/schemas";
import { kv } from "../core/ui";

const RunRow = v.object({
  pathspec: v.string(),
  flow: v.string(),
  status: v.nullable(v.string()),
  verdict: v.nullable(v.string()),
  created: v.nullable(v.string()),
  inputs: v.array(v.string()),
});

const Summary = v.object({
  root: v.nullable(v.string()),
  experiment: v.nullable(v.string()),
  runs: v.array(RunRow),
  validate: v.nullable(v.string()),
  metrics: v.nullable(
    v.object({
      metric: v.nullable(v.string()),
      cv_mean: v.nullable(v.number()),
      cv_std: v.nullable(v.number()),
      holdout: v.nullable(v.number()),
      verdict: v.nullable(v.string()),
      caveats: v.optional(v.array(v.string())),
    }),
  ),
  sections_filled: v.array(v.string()),
  sections_unfilled: v.array(v.string()),
  caveats: v.array(v.object({ pathspec: v.string(), status: v.nullable(v.string()), items: v.array(v.string()) })),
  markdown_path: v.string(),
  html_path: v.string(),
});
type S = v.InferOutput<typeof Summary>;

export default defineVerb({
  name: "report",
  description:
    "Write a model card (Markdown + HTML) for a run and every run it came from (--run), or for an experiment's runs (--experiment NAME: runs made with LOOM_EXPERIMENT=NAME) (→ ReportFlow/N)",
  tier: "read-only",
  args: {
    run: { type: "string", description: "the run to report on, usually ValidateFlow/N" },
    experiment: { type: "string", description: "every run tagged experiment:NAME (verbs run with LOOM_EXPERIMENT=NAME get the tag)" },
  },
  input: v.pipe(
    v.object({
      run: v.optional(Pathspec("run")),
      experiment: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.:-]+$/, "letters, digits, _ . : - only"))),
    }),
    v.check((i) => !!i.run !== !!i.experiment, "pass exactly one of --run PATHSPEC or --experiment NAME"),
  ),
  summary: Summary,
  human: (out) => {
    const s = out.summary as S;
    const f = (x: number | null | undefined) => (x === null || x === undefined ? "n/a" : x.toFixed(4));
    const lines = [kv("report", s.experiment ? `experiment ${s.experiment}` : `${s.root}`), kv("lineage", s.runs.map((r) => r.pathspec).join(" → "))];
    if (s.metrics)
    {
      const vc = s.metrics?.caveats ?? [];
      if (s.metrics)
        lines.push(
          kv(
            "metrics",
            `${s.metrics.metric}: CV ${f(s.metrics.cv_mean)} ± ${f(s.metrics.cv_std)}, holdout ${f(s.metrics.holdout)} (${s.metrics.verdict}${vc.length ? `, with ${vc.length} caveat${vc.length === 1 ? "" : "s"}` : ""})`,
          ),
        );
      for (const c of vc) lines.push(kv("caveat", c));
    }
    lines.push(
      kv("caveats", s.caveats.length ? s.caveats.map((c) => `${c.pathspec} ${c.status} (${c.items.length})`).join(", ") : "none on the path"),
    );
    if (s.sections_unfilled.length) lines.push(kv("not filled", s.sections_unfilled.join(", ")));
    lines.push(kv("markdown", s.markdown_path), kv("html", s.html_path));
    return lines;
  },
  run: (input, ctx) =>
    ctx.flow({
      flow: "report_flow.py",
      flowName: "ReportFlow",
      prepare: "loom_py.verbs.report:prepare",
      params: { run: input.run, experiment: input.experiment },
    }),
});
