/**
 * Trustworthy verdicts through the built binary (issue 17), on one generated table with a near-copy of the
 * label that disagrees with it on 3% of the rows (a status code: under the single-feature and target-copy
 * bars) and a region column: eda flags the near-copy, features drops it and carries region for slicing,
 * validate slices by region after one-hot encoding (decision threshold and per-group AUC reported), and an
 * offline search on the raw (leaky) data drops the near-copy with a message. Five real runs.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { expectNoTraceback, loom, loomPython, ROOT, tempWorkspace } from "../helpers";

const ws = tempWorkspace();
let ds = "";
let eda: any, feats: any, val: any, search: any;

beforeAll(async () => {
  const code = `import sys; sys.path.insert(0, ${JSON.stringify(join(ROOT, "py", "tests"))})
import numpy as np
from leakdata import clean
df = clean(1500, 3).drop(columns=["city"])
y = df["target"].to_numpy()
flip = np.random.default_rng(3).random(len(y)) < 0.03
df["status"] = np.where(np.where(flip, 1 - y, y) == 1, "closed", "open")
df.to_csv(${JSON.stringify(join(ws, "near_copy.csv"))}, index=False)`;
  const p = Bun.spawnSync([loomPython(), "-c", code], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  const ing = await loom(["ingest", "--source", "near_copy.csv", "--json"], { cwd: ws });
  if (ing.code !== 0) throw new Error(ing.stdout + ing.stderr);
  ds = ing.json.pathspec;
  eda = await loom(["eda", "--dataset", ds, "--target", "target", "--json"], { cwd: ws });
  feats = await loom(["features", "--dataset", ds, "--from", eda.json.pathspec, "--sensitive", "region", "--json"], { cwd: ws });
  val = await loom(["validate", "--dataset", feats.json.pathspec, "--target", "target", "--sensitive", "region"], { cwd: ws, env: { COLUMNS: "1000" } }); // one line per field, as a wide terminal shows it
  search = await loom(
    ["run", "--dataset", ds, "--metric", "Maximize ROC-AUC on a held-out split.", "--target", "target", "--steps", "2", "--model-provider", "offline", "--json"],
    { cwd: ws },
  );
}, 240_000);

describe("a near-copy leak at 3% noise", () => {
  test("eda flags it with a model-relative reason; features drops it and carries region", () => {
    expect(eda.code).toBe(0);
    const flags = Object.fromEntries(eda.json.summary.leakage_flags.map((f: any) => [f.column, f.reason]));
    expect(Object.keys(flags)).toEqual(["status"]);
    expect(["near_deterministic", "dominant_predictor"]).toContain(flags.status);
    expect(feats.code).toBe(0);
    const s = feats.json.summary;
    expect(s.dropped_for_leakage.map((f: any) => f.column)).toEqual(["status"]);
    expect(s.carried_columns).toEqual(["region"]);
    const cols = s.schema.map((f: any) => f.name);
    expect(cols).toContain("region");
    expect(cols).toContain("region__north");
    expect(cols).not.toContain("status");
  });

  test("validate --sensitive region works after one-hot encoding and reports the decision threshold and per-group AUC", () => {
    expectNoTraceback(val);
    expect([0, 1]).toContain(val.code);
    expect(val.stdout).toMatch(/fairness +: region: .*at decision threshold 0\.\d+; ROC-AUC by group .*east .*north .*south .*west/);
    expect(val.stdout).toMatch(/baseline +: beaten: trivial model/);
    expect(val.stdout).toMatch(/VERDICT +: (PASS|FAIL)/);
  });

  test("a search on the raw data drops it before searching, with a message naming it", () => {
    expect(search.code).toBe(0);
    expect(search.json.summary.leakage.dropped).toEqual(["status"]);
    expect(search.json.messages.join("\n")).toMatch(/dropped for leakage before the search: status \((near_deterministic|dominant_predictor)\)/);
  });
});
