import type { ArgDef } from "citty";
import * as v from "valibot";
import { defineVerb } from "../core/define";
import { onInterrupt } from "../core/interrupt";
import { Column, DatasetPathspec, Num, Pathspec, PositiveInt, Repeated } from "../core/schemas";
import { kv } from "../core/ui";

const METRICS = ["roc_auc", "log_loss", "accuracy", "f1", "pr_auc", "rmse", "mae", "r2"] as const;
const NumOrNull = v.nullable(v.number());

const Fold = v.object({
  fold: v.number(),
  train_rows: v.number(),
  test_rows: v.number(),
  value: NumOrNull,
  purged: v.number(),
  embargoed: v.number(),
});
const Flag = v.object({ column: v.string(), reason: v.string(), evidence: v.record(v.string(), v.unknown()) });
const Slice = v.looseObject({
  groups: v.array(v.looseObject({ group: v.string(), rows: v.number(), judged: v.boolean() })),
  too_small: v.array(v.object({ group: v.string(), rows: v.number(), reason: v.string() })),
  demographic_parity_difference: NumOrNull,
  demographic_parity_ratio: NumOrNull,
  equalized_odds_difference: NumOrNull,
});

const Summary = v.looseObject({
  verdict: v.picklist(["PASS", "FAIL"]),
  dataset: v.object({ pathspec: v.string(), label: v.nullable(v.string()), rows: NumOrNull, content_hash: v.nullable(v.string()) }),
  target: v.string(),
  task: v.picklist(["classification", "regression"]),
  metric: v.picklist(METRICS),
  model: v.looseObject({ name: v.string(), source: v.string(), model_written: v.optional(v.boolean()) }),
  seal: v.looseObject({ id: v.string(), how: v.string(), rows: v.number(), rows_hash: v.string(), evaluations: v.number() }),
  cv: v.looseObject({
    scheme: v.string(),
    folds: v.number(),
    per_fold: v.array(Fold),
    mean: NumOrNull,
    std: NumOrNull,
    purged: v.number(),
    embargoed: v.number(),
  }),
  holdout: v.looseObject({ metric: v.string(), value: NumOrNull, rows: v.number() }),
  calibration: v.nullable(v.looseObject({ ece: NumOrNull, bins: v.number(), brier: NumOrNull, slope: NumOrNull, intercept: NumOrNull })),
  fairness: v.nullable(v.record(v.string(), Slice)),
  leakage: v.looseObject({
    flags: v.array(Flag),
    duplicates: v.looseObject({ holdout_rows_in_cv: v.number(), flagged: v.boolean() }),
    holdout_above_cv: v.boolean(),
    found: v.boolean(),
  }),
  reasons: v.array(v.string()),
  checks: v.array(v.looseObject({ check: v.string(), passed: v.boolean(), detail: v.string() })),
  thresholds: v.record(v.string(), v.unknown()),
});
type S = v.InferOutput<typeof Summary>;
/** Ctrl-C during validate: the folds that finished, where it stopped; no verdict, the holdout not scored. */
const Interrupted = v.looseObject({
  interrupted: v.literal(true),
  verdict: v.null(),
  stopped_at: v.nullable(v.string()),
  folds_finished: v.number(),
  cv: v.looseObject({ scheme: v.nullable(v.string()), folds: v.number(), per_fold: v.array(Fold) }),
  dataset: v.looseObject({ pathspec: v.string() }),
  target: v.string(),
  model: v.looseObject({ name: v.string(), source: v.string() }),
  holdout_scored: v.literal(false),
});
type I = v.InferOutput<typeof Interrupted>;

const share = (what: string) => v.optional(Num(what));
/** How each cross-validation scheme reads in human output (the JSON keeps the scheme's name). */
const SCHEME_WORDS: Record<string, string> = {
  stratified_kfold: "random folds keeping the target's class balance",
  kfold: "random folds",
  purged_kfold: "time-ordered folds",
  group_kfold: "folds by group",
  stratified_group_kfold: "folds by group, balanced on the target",
};

export default defineVerb({
  name: "validate",
  description:
    "Check a model before you trust it: one score on rows held back from everything (the sealed holdout), cross-validation (time-aware with --time), calibration, fairness per group (--sensitive) and leakage checks; the VERDICT deploy requires (→ ValidateFlow/N)",
  tier: "read-only",
  emitsVerdict: true,
  args: {
    dataset: { type: "string", description: "data object: its label, IngestDataset/N, FeaturesFlow/latest or a run-id prefix (with --model: the search's, unless given)" },
    target: { type: "string", description: "the column to predict (with --model: the search's, unless given)" },
    metric: { type: "enum", options: [...METRICS], description: "holdout/CV metric (default: roc_auc for classification, rmse for regression)" },
    threshold: { type: "string", description: "the bar the holdout metric must reach (>= for scores, <= for errors)" },
    time: { type: "string", description: "time column: the newest rows are held back, and no fold trains on rows that overlap its test rows in time (purged K-fold with embargo)" },
    horizon: { type: "string", description: "how far ahead the target looks: a duration (7D, 12h) or a number in the time column's units; training rows whose outcome overlaps a test fold are dropped" },
    embargo: { type: "string", description: "share of rows skipped after each test fold, so training never sees what comes right after it (default 0.01)" },
    group: { type: "string", description: "entity column (a customer, a patient): all rows of one entity stay on the same side of every split" },
    sensitive: { type: "string", repeatable: true, description: "sensitive column whose groups are compared for fairness (repeatable)" } as ArgDef,
    folds: { type: "string", description: "number of CV folds (default 5)" },
    model: { type: "string", description: "the search (OptimizeFlow/N) whose best solution is checked (default: Loom's default gradient-boosting model)" },
    seed: { type: "string", description: "seed for the cross-validation split and the model (default 0)" },
    holdout: { type: "string", description: "share of rows held back for the one final score (default 0.2)" },
    "cv-tolerance": { type: "string", description: "allowed |holdout − CV mean| (default 0.05 for scores, 10% of the CV mean for errors; at least 3 CV std)" },
    "max-ece": { type: "string", description: "the largest calibration error allowed: how far predicted probabilities sit from observed rates (ECE, 15 bins; default 0.10)" },
    "max-dp-diff": { type: "string", description: "the largest gap allowed between groups' rates of positive predictions (demographic parity; default 0.10)" },
    "max-eo-diff": { type: "string", description: "the largest gap allowed between groups' true- and false-positive rates (equalized odds; default 0.10)" },
    "min-group": { type: "string", description: "groups with fewer holdout rows are named as too small to judge (default 30)" },
    "decision-threshold": { type: "string", description: "the probability above which a row counts as predicted positive in the fairness checks (default: the cut that predicts as many positives as the training rows have)" },
    calibrate: { type: "enum", options: ["sigmoid", "isotonic"], description: "recalibrate the model's probabilities (scikit-learn's CalibratedClassifierCV)" },
  },
  input: v.object({
    dataset: v.optional(DatasetPathspec),
    target: v.optional(Column),
    metric: v.optional(v.picklist(METRICS, `must be one of ${METRICS.join(", ")}`)),
    threshold: v.optional(Num("--threshold")),
    time: v.optional(Column),
    horizon: v.optional(v.string()),
    embargo: share("--embargo"),
    group: v.optional(Column),
    sensitive: v.optional(Repeated),
    folds: v.optional(PositiveInt("--folds")),
    model: v.optional(Pathspec("solution run")),
    seed: v.optional(v.pipe(v.union([v.string(), v.number()]), v.transform(Number), v.number("--seed must be a number"), v.integer("--seed must be a whole number"))),
    holdout: share("--holdout"),
    "cv-tolerance": share("--cv-tolerance"),
    "max-ece": share("--max-ece"),
    "max-dp-diff": share("--max-dp-diff"),
    "max-eo-diff": share("--max-eo-diff"),
    "min-group": v.optional(PositiveInt("--min-group")),
    "decision-threshold": v.optional(Num("--decision-threshold")),
    calibrate: v.optional(v.picklist(["sigmoid", "isotonic"], "--calibrate must be sigmoid or isotonic")),
  }),
  // (a missing --target is refused by loom_py.verbs.validate with one line: "validate needs --target COL …")
  summary: v.union([Summary, Interrupted]),
  human: (out) => {
    const f = (x: number | null | undefined) => (x === null || x === undefined ? "n/a" : x.toFixed(4));
    if ((out.summary as I).interrupted) {
      const i = out.summary as I;
      return [
        kv("data", `${i.dataset.pathspec} → ${i.target}`),
        kv("model", i.model.name),
        kv("folds", `${i.folds_finished} of ${i.cv.folds} finished${i.cv.per_fold.length ? `: ${i.cv.per_fold.map((p) => f(p.value)).join(", ")}` : ""}; stopped at ${i.stopped_at}`),
      ];
    }
    const s = out.summary as S;
    const lines = [
      kv("data", `${s.dataset.pathspec} → ${s.target} (${s.task})`),
      kv("model", s.model.name),
      kv("holdout", `${s.holdout.metric} ${f(s.holdout.value)} on ${s.holdout.rows} rows held back (sealed ${s.seal.how}; scored ${s.seal.evaluations}× so far)`),
      kv(
        "cross-val",
        `${s.cv.folds} ${SCHEME_WORDS[s.cv.scheme] ?? `folds (${s.cv.scheme})`}: ${f(s.cv.mean)} ± ${f(s.cv.std)}` +
          (s.cv.scheme === "purged_kfold" ? ` (${s.cv.purged} training rows dropped for overlapping a test fold in time, ${s.cv.embargoed} skipped right after one)` : ""),
      ),
    ];
    const base = (s.holdout as Record<string, unknown>).baseline as
      | { baseline: number; improvement: number; required: number; beats: boolean; what: string }
      | null
      | undefined;
    if (base)
      lines.push(
        kv(
          "baseline",
          `${base.beats ? "beaten" : "NOT beaten"}: trivial model (${base.what}) ${f(base.baseline)}; improvement ${f(base.improvement)} (needed > ${f(base.required)})`,
        ),
      );
    if (s.calibration) {
      const failed = ((s.calibration as Record<string, unknown>).judged as { failed?: string[] } | undefined)?.failed ?? [];
      lines.push(
        kv(
          "calibration",
          `ECE ${f(s.calibration.ece)} · Brier ${f(s.calibration.brier)} · slope ${f(s.calibration.slope)} · intercept ${f(s.calibration.intercept)}` +
            (failed.length ? ` — failed: ${failed.join("; ")}` : ""),
        ),
      );
    }
    for (const [col, fr] of Object.entries(s.fairness ?? {})) {
      const x = fr as Record<string, unknown>;
      const dec = x.decision as { threshold: number; how: string } | undefined;
      const gaps =
        fr.demographic_parity_difference === null
          ? `${s.metric} by group ${fr.groups.map((g) => `${g.group} ${f((g as Record<string, unknown>)[s.metric] as number | null)}`).join(", ")}`
          : `gap in positive-prediction rates ${f(fr.demographic_parity_difference)} (demographic parity), in error rates ${f(fr.equalized_odds_difference)} (equalized odds)`;
      const aucs = fr.groups
        .filter((g) => (g as Record<string, unknown>).auc !== undefined)
        .map((g) => `${g.group} ${f((g as Record<string, unknown>).auc as number | null)}`);
      lines.push(
        kv(
          "fairness",
          `${col}: ${x.assessable === false ? "NOT ASSESSABLE (" + (x.not_assessable_because as string[]).join("; ") + "); " : ""}${gaps}` +
            (dec ? ` at decision threshold ${f(dec.threshold)}` : "") +
            (aucs.length ? `; ROC-AUC by group ${aucs.join(", ")} (gap ${f(x.auc_gap as number | null)})` : "") +
            (fr.too_small.length ? `; too small to judge: ${fr.too_small.map((g) => g.group).join(", ")}` : ""),
        ),
      );
    }
    lines.push(kv("leakage", s.leakage.found ? "FOUND" : "none found"));
    for (const r of s.reasons) lines.push(kv("reason", r));
    return lines;
  },
  run: (input, ctx) => {
    const bounds: Record<string, number> = {};
    const map: [keyof typeof input, string][] = [
      ["cv-tolerance", "cv_tolerance"],
      ["max-ece", "max_ece"],
      ["max-dp-diff", "max_dp_diff"],
      ["max-eo-diff", "max_eo_diff"],
      ["min-group", "min_group"],
    ];
    for (const [flag, key] of map) if (input[flag] !== undefined) bounds[key] = input[flag] as number;
    const interrupt = onInterrupt(ctx, "stopping the running fold and recording the folds that finished");
    return ctx.flow({
      env: interrupt.env,
      flow: "validate_flow.py",
      flowName: "ValidateFlow",
      prepare: "loom_py.verbs.validate:prepare",
      params: {
        dataset: input.dataset,
        target: input.target,
        metric: input.metric,
        threshold: input.threshold,
        time: input.time,
        horizon: input.horizon,
        embargo: input.embargo,
        group: input.group,
        sensitive: input.sensitive,
        folds: input.folds,
        model: input.model,
        seed: input.seed,
        holdout: input.holdout,
        decision_threshold: input["decision-threshold"],
        calibrate: input.calibrate,
        bounds,
      },
    }).finally(() => interrupt.done());
  },
});
