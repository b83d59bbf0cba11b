/**
 * eda end to end through build/loom: planted leaks are flagged with their reasons, the same data without
 * them and scikit-learn's breast cancer data get no flags, bad input is refused with exit 2 and one line.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { expectNoTraceback, loom, plainMetaflow, tempWorkspace } from "../helpers";
import { cardText, makeCsvs, sklearnCsv } from "./eda_helpers";

describe("eda", () => {
  const ws = tempWorkspace();
  const ds: Record<string, string> = {};
  const eda: Record<string, Awaited<ReturnType<typeof loom>>> = {};

  beforeAll(async () => {
    makeCsvs(ws);
    sklearnCsv(join(ws, "breast_cancer.csv"));
    for (const name of ["planted", "clean", "breast_cancer"]) {
      const r = await loom(["ingest", "--source", `${name}.csv`, "--json"], { cwd: ws });
      if (r.code !== 0) throw new Error(r.stdout + r.stderr);
      ds[name] = r.json.pathspec;
    }
    eda.planted = await loom(["eda", "--dataset", ds.planted, "--target", "target", "--time", "signup", "--json"], { cwd: ws });
    eda.clean = await loom(["eda", "--dataset", ds.clean, "--target", "target", "--json"], { cwd: ws });
    eda.cancer = await loom(["eda", "--dataset", ds.breast_cancer, "--target", "target", "--json"], { cwd: ws });
  }, 120_000);

  test("planted leaks: WARN, exit 0, every leak flagged with its reason and evidence", () => {
    const r = eda.planted;
    expect(r.code).toBe(0);
    expect(r.json.verb).toBe("eda");
    expect(r.json.tier).toBe("read-only");
    expect(r.json.status).toBe("WARN");
    expect(r.json.pathspec).toMatch(/^EdaFlow\/\d+$/);
    expect(r.json.inputs).toEqual([ds.planted]);
    const flags = Object.fromEntries(r.json.summary.leakage_flags.map((f: any) => [f.column, f.reason]));
    expect(flags).toEqual({ row_id: "identifier", noisy_copy: "target_copy", closed_at: "post_outcome_timestamp", score_exp: "target_copy" });
    for (const f of r.json.summary.leakage_flags) expect(Object.keys(f.evidence).length).toBeGreaterThan(0);
    expect(r.json.next.join(" ")).toContain(`--from ${r.json.pathspec}`);
  });

  test("planted: the profile sections", () => {
    const s = eda.planted.json.summary;
    expect(s.shape).toEqual({ rows: 1500, columns: 13 });
    const types = Object.fromEntries(s.dtypes.map((d: any) => [d.column, d.semantic_type]));
    expect(types.row_id).toBe("identifier");
    expect(types.region).toBe("categorical");
    expect(types.income).toBe("numeric");
    expect(s.missingness.columns.closed_at).toBeCloseTo(0.7, 1);
    expect(s.target_balance.task).toBe("classification");
    expect(s.target_balance.classes["0"] + s.target_balance.classes["1"]).toBe(1500);
    expect(s.top_correlations.with_target.length).toBeGreaterThan(3);
    expect(s.alerts.some((a: any) => a.column === "city" && a.alert === "high_cardinality" && a.threshold === 50)).toBe(true);
  });

  test("the card holds a table per section and the plots", () => {
    const text = cardText(eda.planted.json.card_path);
    const missing = ["Leakage flags", "Target balance", "Alerts", "missingness", "top correlations", "noisy_copy"].filter((h) => !text.includes(h));
    expect(missing).toEqual([]);
    // the three section plots and one small distribution chart per column (the per-column cards)
    expect((text.match(/"type": ?"vegaChart"/g) ?? []).length).toBe(3 + Math.min(60, eda.planted.json.summary.shape.columns));
  });

  test("the same data without the leaks: OK, no flags", () => {
    expect(eda.clean.code).toBe(0);
    expect(eda.clean.json.status).toBe("OK");
    expect(eda.clean.json.summary.leakage_flags).toEqual([]);
  });

  test("scikit-learn's breast cancer data: no false leak flags", () => {
    expect(eda.cancer.code).toBe(0);
    expect(eda.cancer.json.summary.leakage_flags).toEqual([]);
    expect(eda.cancer.json.summary.shape).toEqual({ rows: 569, columns: 31 });
    expect(eda.cancer.json.status).toBe("OK");
  });

  test("plain Metaflow reads the flags back from the run", () => {
    const got = plainMetaflow(ws, `import json
from metaflow import Run, namespace
namespace(None)
r = Run("${eda.planted.json.pathspec}")
print(json.dumps({"flags": [f["column"] for f in r.data.leakage_flags], "ds": r.data.profiled_dataset}))`);
    expect(got.ds).toBe(ds.planted);
    expect(got.flags.sort()).toEqual(["closed_at", "noisy_copy", "row_id", "score_exp"]);
  });

  const bad: [string, string[], RegExp][] = [
    ["unknown target", ["--target", "nope"], /'nope' is not a column/],
    ["unknown time column", ["--target", "target", "--time", "when"], /'when' is not a column/],
    ["a datetime target as regression", ["--target", "signup", "--task", "regression"], /not numeric/],
  ];
  test.each(bad)("%s: exit 2, one line, no run", async (_name, args, msg) => {
    const before = existsSync(join(ws, ".loom", ".metaflow", "EdaFlow")) ? 1 : 0;
    const r = await loom(["eda", "--dataset", ds.planted, ...args], { cwd: ws });
    expect(r.code).toBe(2);
    expectNoTraceback(r);
    expect(r.stderr.trim().split("\n").filter((l) => l.trim()).length).toBe(1);
    expect(r.stderr).toMatch(msg);
    expect(before).toBe(1);
  });

  test("a run that is not a data object is refused", async () => {
    const notData = await loom(["eda", "--dataset", eda.clean.json.pathspec], { cwd: ws });
    expect(notData.code).toBe(2);
    expect(notData.stderr).toContain("not a data object");
  });
});
