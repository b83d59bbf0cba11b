/**
 * validate end to end through build/loom, on generated data: clean data PASS (exit 0) and FAIL (exit 1,
 * well-formed) against two bars, planted leaks named, a time-ordered set under purged K-fold, a model
 * biased on a synthetic sensitive attribute, the seal counted across runs, bad input exit 2 with one line.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expectNoTraceback, loom, loomPython, plainMetaflow, tempWorkspace } from "../helpers";

type R = Awaited<ReturnType<typeof loom>>;

/** The card's content: Metaflow embeds it as base64 JSON in the HTML. */
export function cardText(path: string): string {
  const html = readFileSync(path, "utf8");
  const m = html.match(/__MF_DATA__\[[^\]]*\] = "([A-Za-z0-9+/=]+)"/);
  return m ? Buffer.from(m[1]!, "base64").toString("utf8") : html;
}

const GEN = `
import sys, numpy as np, pandas as pd
d = sys.argv[1]
def base(n, seed):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 4))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
    logit = 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3]
    df["cat"] = r.choice(["a", "b", "c"], n)
    df["y"] = (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df, r
df, r = base(1500, 0)
df["one"] = "same"
df.to_csv(f"{d}/clean.csv", index=False)
df, r = base(1500, 1)
df["leak"] = df.y + r.normal(scale=0.01, size=len(df))
df.to_csv(f"{d}/leaky.csv", index=False)
df, r = base(1200, 2)
df["day"] = pd.date_range("2022-01-01", periods=len(df), freq="D").strftime("%Y-%m-%d")
df.to_csv(f"{d}/timed.csv", index=False)
df, r = base(2000, 3)
df["grp"] = r.choice(["p", "q"], len(df))
q = df.grp == "q"
df.loc[q, "y"] = (r.random(q.sum()) < 0.9).astype(int)
df.loc[~q, "y"] = (r.random((~q).sum()) < 0.1).astype(int)
df.to_csv(f"{d}/biased.csv", index=False)
`;

describe("validate", () => {
  const ws = tempWorkspace();
  const ds: Record<string, string> = {};
  const v: Record<string, R> = {};

  beforeAll(async () => {
    const p = Bun.spawnSync([loomPython(), "-c", GEN, ws], { stdout: "pipe", stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(p.stderr.toString());
    for (const name of ["clean", "leaky", "timed", "biased"]) {
      const r = await loom(["ingest", "--source", `${name}.csv`, "--json"], { cwd: ws });
      if (r.code !== 0) throw new Error(r.stdout + r.stderr);
      ds[name] = r.json.pathspec;
    }
    v.pass = await loom(["validate", "--dataset", ds.clean, "--target", "y", "--threshold", "0.7", "--json"], { cwd: ws });
    v.fail = await loom(["validate", "--dataset", ds.clean, "--target", "y", "--threshold", "0.99", "--json"], { cwd: ws });
    v.leaky = await loom(["validate", "--dataset", ds.leaky, "--target", "y", "--json"], { cwd: ws });
    v.timed = await loom(["validate", "--dataset", ds.timed, "--target", "y", "--time", "day", "--horizon", "5D", "--json"], { cwd: ws });
    v.biased = await loom(["validate", "--dataset", ds.biased, "--target", "y", "--sensitive", "grp", "--sensitive", "cat"], { cwd: ws });
  }, 240_000);

  test("clean data, a bar it reaches: VERDICT PASS, exit 0, the summary's sections", () => {
    const r = v.pass;
    expect(r.code).toBe(0);
    const j = r.json;
    expect(j.verb).toBe("validate");
    expect(j.tier).toBe("read-only");
    expect(j.verdict).toBe("PASS");
    expect(j.pathspec).toMatch(/^ValidateFlow\/\d+$/);
    expect(j.inputs).toEqual([ds.clean]);
    const s = j.summary;
    expect(s.reasons).toEqual([]);
    expect(s.cv.scheme).toBe("stratified_kfold");
    expect(s.cv.per_fold.length).toBe(5);
    expect(s.holdout.metric).toBe("roc_auc");
    expect(s.holdout.value).toBeGreaterThanOrEqual(0.7);
    expect(s.calibration.bins).toBe(15);
    expect(s.leakage.found).toBe(false);
    expect(s.model.name).toContain("HistGradientBoosting");
    expect(s.thresholds.max_ece).toBe(0.1);
    expect(s.seal.evaluations).toBe(1);
    expect(j.next).toContain(`loom report --run ${j.pathspec}`);
  });

  test("the same data, a bar it cannot reach: VERDICT FAIL, exit 1, well-formed, one reason; the seal counts 2", () => {
    const r = v.fail;
    expect(r.code).toBe(1);
    expect(r.json.verdict).toBe("FAIL");
    expect(r.json.status).toBe("FAIL");
    expect(r.json.summary.reasons.length).toBe(1);
    expect(r.json.summary.reasons[0]).toContain("misses the bar");
    expect(r.json.summary.seal.id).toBe(v.pass.json.summary.seal.id);
    expect(r.json.summary.seal.rows_hash).toBe(v.pass.json.summary.seal.rows_hash);
    expect(r.json.summary.seal.evaluations).toBe(2);
    expect(r.json.messages.join(" ")).toContain("evaluated 2 times");
  });

  test("planted leak: FAIL with the leak named", () => {
    const r = v.leaky;
    expect(r.code).toBe(1);
    expect(r.json.verdict).toBe("FAIL");
    expect(r.json.summary.leakage.flags.map((f: any) => f.column)).toContain("leak");
    expect(r.json.summary.reasons.some((x: string) => x.includes("'leak'"))).toBe(true);
  });

  test("time-ordered data: purged K-fold, rows purged and embargoed, holdout = latest rows", () => {
    const s = v.timed.json.summary;
    expect([0, 1]).toContain(v.timed.code);
    expect(s.cv.scheme).toBe("purged_kfold");
    expect(s.cv.purged).toBeGreaterThan(0);
    expect(s.cv.embargoed).toBeGreaterThan(0);
    expect(s.cv.horizon).toBe("5D");
    expect(s.seal.how).toContain("latest rows by day");
    for (const f of s.cv.per_fold) expect(f.train_rows + f.test_rows + f.purged + f.embargoed).toBe(s.cv.rows);
  });

  test("a model biased on a sensitive attribute: the disparity is found (human output)", () => {
    const r = v.biased;
    expect(r.code).toBe(1);
    expectNoTraceback(r);
    expect(r.stdout).toContain("VERDICT     : FAIL");
    expect(r.stdout).toMatch(/fairness on grp: demographic-parity difference (0\.[5-9]|1\b)/);
    expect(r.stdout).toMatch(/fairness\s+: grp: gap in positive-prediction rates (0\.[5-9]|1\.0)/);
    expect(r.stdout).toMatch(/fairness\s+: cat: gap in positive-prediction rates 0\.[0-4]/);
    expect(r.stdout).not.toContain("fairness on cat");
  });

  test("plain Metaflow reads the verdict and the seal back; the card has the reliability diagram", () => {
    const got = plainMetaflow(ws, `import json
from metaflow import Run, namespace
namespace(None)
r = Run("${v.pass.json.pathspec}")
print(json.dumps({"verdict": r.data.verdict, "seal": r.data.seal_id, "n": len(r.data.holdout_positions)}))`);
    expect(got).toEqual({ verdict: "PASS", seal: v.pass.json.summary.seal.id, n: v.pass.json.summary.holdout.rows });
    const text = cardText(v.pass.json.card_path);
    expect(text.includes("Calibration (holdout)")).toBe(true);
    expect(text.includes("VERDICT: PASS")).toBe(true);
    expect(text.includes("Reliability diagram (holdout)")).toBe(true); // a Vega-Lite chart the card draws
    expect(text.includes("mean predicted probability")).toBe(true);
  });

  test("the warm image forks the run's tasks and card render; fresh interpreters give the same result", async () => {
    const log = join(ws, "warm.log");
    const args = ["validate", "--dataset", ds.clean, "--target", "y", "--threshold", "0.7", "--json"];
    const warm = await loom(args, { cwd: ws, env: { LOOM_WARM_LOG: log } });
    const fresh = await loom(args, { cwd: ws, env: { LOOM_WARM: "0", LOOM_SIDECAR: "0" } });
    expect([warm.code, fresh.code]).toEqual([0, 0]);
    const served = readFileSync(log, "utf8").trim().split("\n").map((l) => l.split(" ").slice(1).join(" "));
    expect(served).toEqual(["serve step start", "serve card create", "serve step end"]);
    // the seal's evaluation count differs between the two runs by design (each look is counted), in the caveat too
    const looks = (xs?: string[]) => xs?.map((c) => c.replace(/evaluated \d+ times/, "evaluated N times"));
    const same = (r: R) => ({ ...r.json.summary, timings: undefined, caveats: looks(r.json.summary.caveats), seal: { ...r.json.summary.seal, evaluations: undefined, earlier_runs: undefined } });
    expect(same(warm)).toEqual(same(fresh));
    expect(cardText(warm.json.card_path).includes("VERDICT: PASS")).toBe(true);
  });

  const bad: [string, string[], RegExp][] = [
    ["constant target", ["--target", "one"], /is constant/],
    ["absent target", ["--target", "nope"], /unknown target column 'nope'/],
    ["a metric that does not fit", ["--target", "y", "--metric", "rmse"], /is for regression/],
    ["a time column that does not parse", ["--target", "y", "--time", "cat"], /does not parse/],
    ["folds more than the rows allow", ["--target", "y", "--group", "cat", "--folds", "5"], /more than the data allows/],
    ["a sensitive column with one group", ["--target", "y", "--sensitive", "one"], /single group/],
  ];
  test.each(bad)("%s: exit 2, one line, no run", async (_n, args, msg) => {
    const count = () => {
      const d = join(ws, ".loom", ".metaflow", "ValidateFlow");
      return existsSync(d) ? readdirSync(d).filter((n) => /^\d+$/.test(n)).length : 0;
    };
    const before = count();
    const r = await loom(["validate", "--dataset", ds.clean, ...args], { cwd: ws });
    expect(r.code).toBe(2);
    expectNoTraceback(r);
    expect(r.stderr.trim().split("\n").filter((l) => l.trim()).length).toBe(1);
    expect(r.stderr).toMatch(msg);
    expect(count()).toBe(before);
  });
});
