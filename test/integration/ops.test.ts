/**
 * ops end to end through build/loom: the drift check (a column shifted on purpose is flagged, an unchanged
 * one is not, the verdicts equal Evidently's on the same data; DRIFT exits 1; misaligned schemas exit 2
 * naming the columns), and health after a failed and a killed run (real Metaflow runs in the workspace).
 * With a deployed champion (an offline search's solution: model-written code, validated and deployed in the
 * test's own workspace), the drift check scores both tables with it in the sandbox: predictions drift on a
 * shifted table and not on an unchanged one; missing feature columns, an unknown model and several champions
 * exit 2; files that no longer match deploy's manifest are not scored.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expectNoTraceback, LOOM, loom, loomPython, mlflowRegistry as mlflowClient, rng, ROOT, runsOf, tempWorkspace } from "../helpers";

type R = Awaited<ReturnType<typeof loom>>;

function csv(n: number, seed: number, shift: number, extra = false): string {
  const r = rng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  const rows = [extra ? "amount,steady,plan,label,extra" : "amount,steady,plan,label"];
  for (let i = 0; i < n; i++) {
    const plan = r() < 0.5 + shift / 4 ? "basic" : r() < 0.5 ? "pro" : "team";
    rows.push(`${(100 + 15 * normal() + 15 * shift).toFixed(3)},${(5 * normal()).toFixed(3)},${plan},${r() < 0.3 ? 1 : 0}${extra ? ",1" : ""}`);
  }
  return rows.join("\n") + "\n";
}

const FLOWS = `
import os, time
from metaflow import FlowSpec, step

class PlantedFailureFlow(FlowSpec):
    @step
    def start(self):
        raise ValueError("planted failure: the amount column exploded")
        self.next(self.end)
    @step
    def end(self):
        pass

class SleepyFlow(FlowSpec):
    @step
    def start(self):
        time.sleep(120)
        self.next(self.end)
    @step
    def end(self):
        pass

if __name__ == "__main__":
    import sys
    {"fail": PlantedFailureFlow, "sleep": SleepyFlow}[os.environ["WHICH"]]()
`;

describe("ops", () => {
  const ws = tempWorkspace();
  let a: R, b: R, drift: R, same: R;

  beforeAll(async () => {
    writeFileSync(join(ws, "a.csv"), csv(600, 1, 0));
    writeFileSync(join(ws, "b.csv"), csv(600, 2, 1));
    writeFileSync(join(ws, "a2.csv"), csv(600, 3, 0));
    a = await loom(["ingest", "--source", "a.csv", "--json"], { cwd: ws });
    b = await loom(["ingest", "--source", "b.csv", "--json"], { cwd: ws });
    const a2 = await loom(["ingest", "--source", "a2.csv", "--json"], { cwd: ws });
    if (a.code || b.code || a2.code) throw new Error(a.stdout + b.stdout + a2.stdout);
    drift = await loom(["ops", "--dataset", b.json.pathspec, "--reference", a.json.pathspec, "--target", "label", "--json"], { cwd: ws });
    same = await loom(["ops", "--dataset", a2.json.pathspec, "--reference", a.json.pathspec], { cwd: ws });
  }, 120_000);

  test("drift: the shifted column is flagged, the unchanged one is not; DRIFT exits 1 with a card", () => {
    expect(drift.code).toBe(1);
    const j = drift.json;
    expect(j.verb).toBe("ops");
    expect(j.tier).toBe("read-only");
    expect(j.verdict).toBe("DRIFT");
    expect(j.pathspec).toMatch(/^OpsFlow\/\d+$/);
    expect(j.inputs).toEqual([b.json.pathspec, a.json.pathspec]);
    const col = (c: string) => j.summary.columns.find((x: any) => x.column === c);
    expect(col("amount")).toMatchObject({ test: "ks", drifted: true, threshold: 0.05 });
    expect(col("amount").statistic).toBeLessThan(1e-6);
    expect(col("steady").drifted).toBe(false);
    expect(col("plan").test).toBe("chisquare");
    expect(j.summary.columns.map((c: any) => c.column)).not.toContain("label");
    expect(j.summary.target).toMatchObject({ column: "label", test: "z" });
    const html = readFileSync(j.card_path, "utf8");
    const card = Buffer.from(html.match(/__MF_DATA__\[[^\]]*\] = "([A-Za-z0-9+/=]+)"/)![1]!, "base64").toString("utf8");
    expect(card).toContain("Per-column drift");
    expect(card).toContain("Target drift");
    expect((card.match(/"vegaChart"/g) ?? []).length).toBe(3); // the three tested columns, most drifted first
    expect(card.indexOf("amount: K-S p_value")).toBeGreaterThan(0);
    // no registry in this workspace: prediction drift is not assessed (not an error), and ops creates none
    expect(j.summary.prediction_drift).toEqual({ assessed: false, reason: "not assessed: no deployed champion", model: null, columns: [], drifted: false, drifted_columns: [], rows: null });
    expect(j.messages).toContain("prediction drift not assessed: no deployed champion");
    expect(card).toContain("Prediction drift: not assessed: no deployed champion");
    expect(existsSync(join(ws, ".loom", "mlflow"))).toBe(false);
  });

  test("drift: Loom's per-column statistic and verdict equal Evidently's on the same files", () => {
    const cols = drift.json.summary.columns;
    const kinds = Object.fromEntries(cols.map((c: any) => [c.column, c.kind]));
    const code = `
import json, pandas as pd
from evidently.legacy.report import Report
from evidently.legacy.metrics import DataDriftTable
from evidently.legacy.pipeline.column_mapping import ColumnMapping
kinds = json.loads(${JSON.stringify(JSON.stringify(kinds))})
ref, cur = pd.read_csv("a.csv").drop(columns=["label"]), pd.read_csv("b.csv").drop(columns=["label"])
r = Report(metrics=[DataDriftTable()])
r.run(reference_data=ref, current_data=cur, column_mapping=ColumnMapping(
    numerical_features=[c for c, k in kinds.items() if k == "numeric"],
    categorical_features=[c for c, k in kinds.items() if k == "categorical"], target=None, prediction=None))
res = r.as_dict()["metrics"][0]["result"]
print(json.dumps({c: [v["drift_score"], bool(v["drift_detected"])] for c, v in res["drift_by_columns"].items()}))`;
    const p = Bun.spawnSync([loomPython(), "-c", code], { cwd: ws, stdout: "pipe", stderr: "pipe" });
    if (p.exitCode !== 0) {
      if (/No module named 'evidently'/.test(p.stderr.toString())) return; // test-only dependency absent
      throw new Error(p.stderr.toString());
    }
    const ev = JSON.parse(p.stdout.toString());
    for (const c of cols) {
      expect(c.drifted).toBe(ev[c.column][1]);
      expect(c.statistic).toBeCloseTo(ev[c.column][0], 9);
    }
  }, 60_000);

  test("drift: an unchanged table is NO_DRIFT, exit 0 (human output)", () => {
    expectNoTraceback(same);
    expect(same.code).toBe(0);
    expect(same.stdout).toContain("VERDICT     : NO_DRIFT");
    expect(same.stdout).toMatch(/amount\s+K-S p_value/);
    expect(same.stdout).toMatch(/^predictions : prediction drift not assessed: no deployed champion$/m);
  });

  test("drift: schemas that do not line up exit 2 naming the columns", async () => {
    writeFileSync(join(ws, "c.csv"), csv(100, 4, 0, true));
    const c = await loom(["ingest", "--source", "c.csv", "--json"], { cwd: ws });
    const r = await loom(["ops", "--dataset", c.json.pathspec, "--reference", a.json.pathspec], { cwd: ws });
    expect(r.code).toBe(2);
    expectNoTraceback(r);
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(r.stderr).toMatch(/not in the reference .*: extra/);
    const ok = await loom(["ops", "--dataset", c.json.pathspec, "--reference", a.json.pathspec, "--columns", "amount,steady", "--json"], { cwd: ws });
    expect(ok.json.summary.columns.map((x: any) => x.column)).toEqual(["amount", "steady"]);
    writeFileSync(join(ws, "t.csv"), csv(50, 5, 0).replace(/^(-?[\d.]+),/gm, "n$1,"));
    const t = await loom(["ingest", "--source", "t.csv", "--json"], { cwd: ws });
    const typed = await loom(["ops", "--dataset", t.json.pathspec, "--reference", a.json.pathspec], { cwd: ws });
    expect(typed.code).toBe(2);
    expect(typed.stderr).toMatch(/numeric in one table and not in the other: amount \(double in the reference, string now\)/);
    const half = await loom(["ops", "--dataset", a.json.pathspec], { cwd: ws });
    expect(half.code).toBe(2);
    expect(half.stderr).toMatch(/both --dataset CURRENT and --reference/);
  }, 60_000);

  test("health: a failed and a killed run need attention (exit 1); the failure's one line is shown", async () => {
    const flowFile = join(ws, "planted_flows.py");
    writeFileSync(flowFile, FLOWS);
    const env = { ...process.env, METAFLOW_USER: "loom", METAFLOW_DATASTORE_SYSROOT_LOCAL: join(ws, ".loom"), METAFLOW_DEFAULT_METADATA: "local", METAFLOW_DEFAULT_DATASTORE: "local" };
    const failed = Bun.spawnSync([loomPython(), flowFile, "--quiet", "--no-pylint", "run"], { cwd: join(ws, ".loom"), env: { ...env, WHICH: "fail" }, stdout: "pipe", stderr: "pipe" });
    expect(failed.exitCode).not.toBe(0);
    // a run whose processes are killed mid-step: it started and never finished
    const sleepy = spawn(loomPython(), [flowFile, "--quiet", "--no-pylint", "run"], { cwd: join(ws, ".loom"), env: { ...env, WHICH: "sleep" }, detached: true, stdio: "ignore" });
    const runsDir = join(ws, ".loom", ".metaflow", "SleepyFlow");
    const started = () => existsSync(runsDir) && readdirSync(runsDir).some((d) => /^\d+$/.test(d) && existsSync(join(runsDir, d, "start")));
    for (let i = 0; i < 200 && !started(); i++) await Bun.sleep(100);
    await Bun.sleep(500);
    // while it runs, health counts it as running
    const during = await loom(["ops", "--json"], { cwd: ws });
    expect(during.json.summary.flows.find((f: any) => f.flow === "SleepyFlow").running).toBe(1);
    process.kill(-sleepy.pid!, "SIGKILL");
    await Bun.sleep(300);

    const h = await loom(["ops", "--json"], { cwd: ws });
    expectNoTraceback(h);
    expect(h.code).toBe(1);
    expect(h.json.verdict).toBe("ATTENTION");
    const s = h.json.summary;
    const flow = (f: string) => s.flows.find((x: any) => x.flow === f);
    const ingests = runsOf(ws, "IngestDataset");
    expect(ingests).toBeGreaterThanOrEqual(3);
    expect(flow("IngestDataset")).toMatchObject({ runs: ingests, succeeded: ingests, failed: 0, never_finished: 0 });
    expect(flow("IngestDataset").median_seconds).toBeGreaterThan(0);
    expect(flow("OpsFlow").succeeded).toBeGreaterThanOrEqual(3);
    expect(flow("PlantedFailureFlow")).toMatchObject({ failed: 1, latest: "failed" });
    expect(flow("SleepyFlow")).toMatchObject({ never_finished: 1, running: 0 });
    expect(s.last_failures[0].why).toContain("planted failure: the amount column exploded");
    expect(s.never_finished[0].pathspec).toMatch(/^SleepyFlow\/\d+$/);
    expect(s.datastore.metaflow_bytes).toBeGreaterThan(10_000);
    const human = await loom(["ops"], { cwd: ws });
    expect(human.stdout).toMatch(/PlantedFailureFlow\s+1\s+0\s+1/);
    expect(human.stdout).toContain("planted failure");
    expect(human.stdout.trim().split("\n").pop()).toMatch(/^VERDICT\s+: ATTENTION$/);
  }, 90_000);

  test("leaderboard: a search's best, read without creating a run; filters; bad combinations exit 2", async () => {
    const opt = await loom(["run", "--dataset", a.json.pathspec, "--goal", "predict label", "--metric", "Maximize ROC-AUC", "--target", "label",
                            "--steps", "1", "--model-provider", "offline", "--yes", "--json"], { cwd: ws });
    expect(opt.code).toBe(0);
    const r = await loom(["ops", "--leaderboard", "--json"], { cwd: ws });
    expect(r.code).toBe(0);
    expect(r.json.summary.mode).toBe("leaderboard");
    expect(r.json.pathspec).toBeNull();
    const best = opt.json.summary.best;
    expect(r.json.summary.rows[0]).toMatchObject({ rank: 1, kind: "search", pathspec: opt.json.pathspec, dataset: a.json.pathspec,
                                                  score: best.score, node: best.node, model: best.model });
    const none = await loom(["ops", "--leaderboard", "--dataset", b.json.pathspec, "--json"], { cwd: ws });
    expect(none.json.summary.rows).toEqual([]);
    const human = await loom(["ops", "--leaderboard", "--metric", "roc"], { cwd: ws });
    expect(human.stdout).toContain(opt.json.pathspec);
    const bad = await loom(["ops", "--leaderboard", "--reference", a.json.pathspec], { cwd: ws });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--leaderboard takes only/);
  }, 120_000);
});

const GEN = `
import sys, numpy as np, pandas as pd
def table(seed, n, shift=0.0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 4))
    X[:, 0] += shift
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
    logit = 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3]
    df["cat"] = r.choice(["a", "b", "c"], n)
    df["y"] = (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df
table(0, 1500).to_csv(sys.argv[1] + "/train.csv", index=False)
table(1, 1200).to_csv(sys.argv[1] + "/same.csv", index=False)
table(2, 1200, shift=1.0).to_csv(sys.argv[1] + "/shifted.csv", index=False)
table(3, 300, shift=1.0).drop(columns=["x3"]).to_csv(sys.argv[1] + "/nox3.csv", index=False)
`;


const cardText = (path: string) => {
  const html = readFileSync(path, "utf8");
  return Buffer.from(html.match(/__MF_DATA__\[[^\]]*\] = "([A-Za-z0-9+/=]+)"/)![1]!, "base64").toString("utf8");
};

describe("ops: prediction drift of the deployed champion", () => {
  const ws = tempWorkspace();
  const ds: Record<string, string> = {};
  let validate = "";
  let shifted: R, same: R, miss: R, unknown: R;
  let opsRuns = 0;

  beforeAll(async () => {
    const g = Bun.spawnSync([loomPython(), "-c", GEN, ws], { stdout: "pipe", stderr: "pipe" });
    if (g.exitCode !== 0) throw new Error(g.stderr.toString());
    for (const name of ["train", "same", "shifted", "nox3"]) {
      const r = await loom(["ingest", "--source", `${name}.csv`, "--json"], { cwd: ws });
      if (r.code !== 0) throw new Error(r.stdout + r.stderr);
      ds[name] = r.json.pathspec;
    }
    // the champion is an offline search's best solution (model-written code), validated and deployed as deploy's tests do
    const o = await loom(["run", "--dataset", ds.train!, "--target", "y", "--metric", "Maximize ROC-AUC on a held-out split.", "--steps", "1", "--model-provider", "offline", "--json"], { cwd: ws });
    if (o.code !== 0) throw new Error(o.stdout + o.stderr);
    const v = await loom(["validate", "--dataset", ds.train!, "--target", "y", "--threshold", "0.7", "--max-ece", "0.2", "--calibrate", "sigmoid", "--model", o.json.pathspec, "--json"], { cwd: ws });
    if (v.json?.verdict !== "PASS") throw new Error(v.stdout + v.stderr);
    validate = v.json.pathspec;
    const plan = await loom(["deploy", "--validate", validate, "--name", "m", "--json"], { cwd: ws });
    if (plan.code !== 0) throw new Error(plan.stdout + plan.stderr);
    const env: Record<string, string> = {};
    for (const [k, x] of Object.entries(process.env)) if (x !== undefined && k !== "METAFLOW_USER") env[k] = x;
    const pty = Bun.spawn([loomPython(), join(ROOT, "test", "fixtures", "pty_answer.py"), "y", LOOM, "deploy", "--validate", validate, "--name", "m", "--apply"], { cwd: ws, env, stdout: "pipe", stderr: "pipe" });
    const applied = JSON.parse(await new Response(pty.stdout).text());
    if (applied.code !== 0) throw new Error(applied.output);
    // no --target: the shifted table's only drift that reaches the verdict is the model's predictions
    [shifted, same, miss, unknown] = await Promise.all([
      loom(["ops", "--dataset", ds.shifted!, "--reference", ds.train!, "--json"], { cwd: ws }),
      loom(["ops", "--dataset", ds.same!, "--reference", ds.train!], { cwd: ws }),
      loom(["ops", "--dataset", ds.nox3!, "--reference", ds.train!, "--columns", "x0,x1,x2,cat"], { cwd: ws }),
      loom(["ops", "--dataset", ds.same!, "--reference", ds.train!, "--model", "mm"], { cwd: ws }),
    ]);
    opsRuns = runsOf(ws, "OpsFlow");
  }, 300_000); // generous: on a loaded 2-core box one step of a deploy chain took up to 135 s

  test("a shifted table: the champion's predictions drift, which alone makes the VERDICT DRIFT (exit 1), with a plot of both", () => {
    expectNoTraceback(shifted);
    expect(shifted.code).toBe(1);
    const j = shifted.json;
    expect(j.verdict).toBe("DRIFT");
    expect(j.summary.dataset_drift).toBe(false); // x0 (and y) of six columns: under the 0.5 share
    expect(j.summary.drifted_columns).toContain("x0");
    const p = j.summary.prediction_drift;
    expect(p.assessed).toBe(true);
    expect(p.model).toMatchObject({ name: "m", alias: "champion", version: 1, task: "classification", target: "y", validate, model_written_code: true, verified: true });
    expect(p.model.features).toEqual(["x0", "x1", "x2", "x3", "cat"]); // the target is not an input
    expect(p.rows).toEqual({ reference: 1500, current: 1200 });
    const col = (c: string) => p.columns.find((x: any) => x.column === c);
    expect(col("prediction")).toMatchObject({ kind: "categorical", test: "jensenshannon", threshold: 0.1, drifted: true });
    expect(col("proba_1")).toMatchObject({ kind: "numeric", test: "wasserstein", threshold: 0.1, drifted: true });
    expect(col("proba_1").statistic).toBeGreaterThan(0.3);
    expect(p.drifted).toBe(true);
    expect(j.summary.reasons).toEqual([expect.stringMatching(/^the predictions of the deployed m@champion \(version 1\) drifted \(prediction Jensen-Shannon distance [\d.]+; proba_1 Wasserstein distance \(normed\) [\d.]+\)$/)]);
    const card = cardText(j.card_path);
    expect(card).toMatch(/VERDICT: <b>DRIFT<\/b> \\u2014 the predictions of the deployed m@champion \(version 1\) drifted/); // — as JSON writes it
    expect(card).toContain("Prediction drift: the deployed <code>m@champion</code> (version 1) on both tables");
    expect(card).toContain('"title": "proba_1: Wasserstein distance (normed)');
    expect(card).toContain('"title": "prediction: Jensen-Shannon distance');
    expect((card.match(/"vegaChart"/g) ?? []).length).toBe(6); // the two prediction outputs + the four most drifted columns
  });

  test("an unchanged table: the predictions do not drift, NO_DRIFT (exit 0, human output)", () => {
    expectNoTraceback(same);
    expect(same.code).toBe(0);
    expect(same.stdout).toContain("VERDICT     : NO_DRIFT");
    expect(same.stdout).toMatch(/^predictions : m@champion \(version 1\): prediction Jensen-Shannon distance [\d.]+\s+→ no drift; proba_1 Wasserstein distance \(normed\) [\d.]+\s+→ no\s+drift$/m);
  });

  test("missing feature columns and an unknown model exit 2 naming them; nothing is run", async () => {
    expect(miss.code).toBe(2);
    expectNoTraceback(miss);
    expect(miss.stderr.trim().split("\n")).toEqual([`loom ops: the deployed model m@champion (version 1) needs feature columns that the current table ${ds.nox3} does not have: x3 (pass --model NAME for another model)`]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--model mm: no registered model of that name in the registry \(did you mean 'm'\?\)/);
    expect(opsRuns).toBe(2); // the two that scored; neither refusal made a run
    const alone = await loom(["ops", "--model", "m"], { cwd: ws });
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain("--model and --alias choose the deployed model of the drift check");
  });

  test("files that no longer match deploy's manifest are not scored: prediction drift not assessed, said so", async () => {
    const src: string = mlflowClient(ws, `print(json.dumps(c.get_model_version_by_alias("m", "champion").source))`);
    const pkl = join(src.replace(/^file:\/\//, ""), "artifacts", "model.pkl");
    const orig = readFileSync(pkl);
    writeFileSync(pkl, Buffer.concat([orig, Buffer.from("tampered")]));
    try {
      const r = await loom(["ops", "--dataset", ds.same!, "--reference", ds.train!, "--json"], { cwd: ws });
      expect(r.code).toBe(0);
      expect(r.json.verdict).toBe("NO_DRIFT");
      expect(r.json.summary.prediction_drift).toMatchObject({ assessed: false, drifted: false, reason: "not assessed: the files of m@champion (version 1) were not scored: model/artifacts/model.pkl does not match the sha256 in the deploy manifest" });
      expect(r.json.messages).toContain(`prediction drift ${r.json.summary.prediction_drift.reason}`);
    } finally {
      writeFileSync(pkl, orig);
    }
  }, 60_000);

  test("several models with the champion alias: exit 2 listing them; --model chooses", async () => {
    mlflowClient(ws, `src = c.get_model_version_by_alias("m", "champion")
c.create_registered_model("other")
mv = c.create_model_version("other", source=src.source, run_id=src.run_id, tags=src.tags)
c.set_registered_model_alias("other", "champion", mv.version)
print(json.dumps(mv.version))`);
    const [r, chosen] = await Promise.all([
      loom(["ops", "--dataset", ds.same!, "--reference", ds.train!], { cwd: ws }),
      loom(["ops", "--dataset", ds.shifted!, "--reference", ds.train!, "--model", "other", "--json"], { cwd: ws }),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual(["loom ops: 2 models have the @champion alias (m@champion (version 1), other@champion (version 1)): pass --model NAME to choose the one whose prediction drift to check"]);
    expect(chosen.code).toBe(1);
    expect(chosen.json.summary.prediction_drift).toMatchObject({ assessed: true, drifted: true, model: { name: "other", version: 1, verified: true } });
  }, 60_000);
});
