/**
 * report end to end through build/loom: ingest → validate (tagged with LOOM_EXPERIMENT) → a model card
 * from --run and from --experiment, written as Markdown + HTML in the workspace and as the run's card.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expectNoTraceback, loom, plainMetaflow, tempWorkspace } from "../helpers";

type R = Awaited<ReturnType<typeof loom>>;

function cardText(path: string): string {
  const html = readFileSync(path, "utf8");
  const m = html.match(/__MF_DATA__\[[^\]]*\] = "([A-Za-z0-9+/=]+)"/);
  return m ? Buffer.from(m[1]!, "base64").toString("utf8") : html;
}

function csv(n: number): string {
  // deterministic, learnable: y depends on a and b; g is a two-level attribute
  const rows = ["a,b,g,y"];
  let s = 7;
  const rnd = () => ((s = (s * 48271) % 2147483647) / 2147483647);
  for (let i = 0; i < n; i++) {
    const a = rnd() * 2 - 1;
    const b = rnd() * 2 - 1;
    const y = a + 0.5 * b + (rnd() - 0.5) * 0.8 > 0 ? 1 : 0;
    rows.push(`${a.toFixed(4)},${b.toFixed(4)},${i % 2 ? "u" : "v"},${y}`);
  }
  return rows.join("\n") + "\n";
}

describe("report", () => {
  const ws = tempWorkspace();
  const env = { LOOM_EXPERIMENT: "churn-v1" };
  let ingest: R, validate: R, byRun: R, byExp: R, optimize: R, withModel: R;

  beforeAll(async () => {
    writeFileSync(join(ws, "data.csv"), csv(800));
    ingest = await loom(["ingest", "--source", "data.csv", "--json"], { cwd: ws, env });
    if (ingest.code !== 0) throw new Error(ingest.stdout + ingest.stderr);
    validate = await loom(["validate", "--dataset", ingest.json.pathspec, "--target", "y", "--sensitive", "g", "--json"], { cwd: ws, env });
    if (![0, 1].includes(validate.code)) throw new Error(validate.stdout + validate.stderr);
    byRun = await loom(["report", "--run", validate.json.pathspec, "--json"], { cwd: ws });
    // the optimize verb's offline search (keyless) gives a solution run for validate --model
    optimize = await loom(
      ["run", "--dataset", ingest.json.pathspec, "--goal", "Flag accounts likely to churn next month", "--metric", "Maximize ROC-AUC",
       "--target", "y", "--steps", "2", "--model-provider", "offline", "--yes", "--json"],
      { cwd: ws, env },
    );
    if (optimize.code !== 0) throw new Error(optimize.stdout + optimize.stderr);
    withModel = await loom(["validate", "--dataset", ingest.json.pathspec, "--target", "y", "--model", optimize.json.pathspec, "--json"], { cwd: ws, env });
    byExp = await loom(["report", "--experiment", "churn-v1"], { cwd: ws });
  }, 240_000);

  test("validate --model: the optimize run's best solution is evaluated on the same seal", () => {
    expect([0, 1]).toContain(withModel.code);
    const s = withModel.json.summary;
    expect(withModel.json.inputs).toEqual([ingest.json.pathspec, optimize.json.pathspec]);
    expect(s.model.source).toBe(optimize.json.pathspec);
    expect(s.model.name).toContain(`best solution of ${optimize.json.pathspec}`);
    expect(s.seal.id).toBe(validate.json.summary.seal.id);
    expect(s.seal.evaluations).toBe(2);
    // the search left out this very seal (verbs/optimize/seal.py): the holdout is untouched, no "optimistic" caveat
    expect(optimize.json.summary.seal.id).toBe(s.seal.id);
    expect(s.seal.untouched).toBe(true);
    expect(withModel.json.messages.join(" ")).toContain("searched without the");
    expect(withModel.json.messages.join(" ")).not.toContain("optimistic");
  });

  test("--run: lineage walked back to the ingest boundary, read-only, exit 0", () => {
    const j = byRun.json;
    expect(byRun.code).toBe(0);
    expect(j.verb).toBe("report");
    expect(j.tier).toBe("read-only");
    expect(j.pathspec).toMatch(/^ReportFlow\/\d+$/);
    expect(j.inputs).toEqual([validate.json.pathspec]);
    expect(j.summary.runs.map((r: any) => r.pathspec)).toEqual([ingest.json.pathspec, validate.json.pathspec]);
    expect(j.summary.validate).toBe(validate.json.pathspec);
    expect(j.summary.metrics.holdout).toBeCloseTo(validate.json.summary.holdout.value, 10);
    expect(j.summary.sections_unfilled).toContain("Ethical considerations");
    expect(j.summary.sections_unfilled).toContain("Intended use");
    expect(j.summary.sections_filled).toEqual(expect.arrayContaining(["Metrics", "Training data", "Factors", "Quantitative analyses"]));
  });

  test("--run: Markdown and HTML in the workspace and as the run's card, with the numbers and pathspecs", () => {
    const j = byRun.json;
    expect(j.summary.markdown_path.startsWith(join(ws, ".loom", "artifacts", "reports"))).toBe(true);
    expect(existsSync(j.summary.html_path)).toBe(true);
    const md = readFileSync(j.summary.markdown_path, "utf8");
    for (const h of ["## Model details", "## Metrics", "## Training data", "## Quantitative analyses", "## Caveats and recommendations", "## Reproduce"])
      expect(md).toContain(h);
    expect(md).toContain(ingest.json.pathspec);
    expect(md).toContain(ingest.json.summary.content_hash);
    expect(md).toContain(validate.json.summary.seal.id);
    expect(md).toContain("Per-slice results for `g`");
    const html = readFileSync(j.summary.html_path, "utf8");
    expect(html).toContain("<h2>Metrics</h2>");
    expect(html).toContain("<table>");
    expect(cardText(j.card_path)).toContain("Model card");
    const got = plainMetaflow(ws, `import json
from metaflow import Run, namespace
namespace(None)
r = Run("${j.pathspec}")
print(json.dumps({"lineage": r.data.report_lineage, "md": r.data.model_card_md[:40]}))`);
    expect(got.lineage).toEqual([ingest.json.pathspec, validate.json.pathspec]);
    expect(got.md).toContain("# Model card");
  });

  test("--experiment: every run tagged experiment:NAME; the goal fills intended use (human output)", () => {
    expect(byExp.code).toBe(0);
    expectNoTraceback(byExp);
    expect(byExp.stdout).toContain("experiment churn-v1");
    for (const r of [ingest, validate, optimize, withModel]) expect(byExp.stdout).toContain(r.json.pathspec);
    expect(byExp.stdout).not.toContain("Intended use");
    expect(byExp.stdout).toContain("STATUS      : OK");
    const md = readFileSync(byExp.stdout.match(/markdown\s+: (\S+)/)![1]!, "utf8");
    expect(md).toContain("goal (from `--goal`): Flag accounts likely to churn next month");
    expect(md).toContain(`best solution of ${optimize.json.pathspec}`);
  });

  const bad: [string, string[], RegExp][] = [
    ["neither --run nor --experiment", [], /exactly one of --run/],
    ["an experiment with no runs", ["--experiment", "nothing-here"], /no runs tagged experiment:nothing-here/],
    ["an unknown run", ["--run", "ValidateFlow/999999"], /does not exist/],
  ];
  test.each(bad)("%s: exit 2, one line", async (_n, args, msg) => {
    const r = await loom(["report", ...args], { cwd: ws });
    expect(r.code).toBe(2);
    expectNoTraceback(r);
    expect(r.stderr.trim().split("\n").filter((l) => l.trim()).length).toBe(1);
    expect(r.stderr).toMatch(msg);
  });
});
