/**
 * pipeline end to end through build/loom in a fresh workspace: the bundled example gives VERDICT PASS with
 * five stage runs (each a verb's own run, tagged pipeline:<id>, validate's VERDICT readable by plain Metaflow,
 * the search's seal the one validate held out); a planted leak is dropped by the features stage and an
 * unreachable --threshold stops the pipeline at validate (exit 1); a denied gate creates no run; bad input
 * exit 2 with no run; --resume after a killed pipeline reuses the finished stages.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fakeAnthropic } from "../fixtures/llm-servers";
import { LOOM, ROOT, expectNoTraceback, loom, loomPython, plainMetaflow, runsOf, tempWorkspace } from "../helpers";

/** The card's content: Metaflow embeds it as base64 JSON in the HTML. */
function cardText(path: string): string {
  const html = readFileSync(path, "utf8");
  const m = html.match(/__MF_DATA__\[[^\]]*\] = "([A-Za-z0-9+/=]+)"/);
  return m ? Buffer.from(m[1]!, "base64").toString("utf8") : html;
}

const METRIC = "Maximize ROC-AUC on a held-out split.";
const FLOWS = ["EdaFlow", "FeaturesFlow", "OptimizeFlow", "ValidateFlow", "ReportFlow"];
const LEAKY = `
import sys, numpy as np, pandas as pd
r = np.random.default_rng(7)
n = 1500
X = r.normal(size=(n, 3))
df = pd.DataFrame(X, columns=["a", "b", "c"])
df["y"] = (r.random(n) < 1 / (1 + np.exp(-(1.2 * X[:, 0] - X[:, 1])))).astype(int)
df["refund_flag"] = df.y + r.normal(scale=0.01, size=n)
df.to_csv(sys.argv[1], index=False)
`;

describe("pipeline", () => {
  const ws = tempWorkspace();
  let ds = "";
  let leaky = "";

  beforeAll(async () => {
    const r = await loom(["ingest", "--source", join(ROOT, "examples", "churn.csv"), "--name", "churn", "--json"], { cwd: ws });
    if (r.code !== 0) throw new Error(r.stdout + r.stderr);
    ds = r.json.pathspec;
    const p = Bun.spawnSync([loomPython(), "-c", LEAKY, join(ws, "leaky.csv")], { stdout: "pipe", stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(p.stderr.toString());
    const l = await loom(["ingest", "--source", "leaky.csv", "--json"], { cwd: ws });
    if (l.code !== 0) throw new Error(l.stdout + l.stderr);
    leaky = l.json.pathspec;
  }, 120_000); // two ingests: more than bun's default 5 s on a loaded machine

  test("the bundled example: VERDICT PASS, five stage runs tagged with the pipeline, the seal kept from the search", async () => {
    const r = await loom(
      ["pipeline", "--dataset", ds, "--target", "churned", "--goal", "Predict churn.", "--metric", METRIC, "--steps", "2", "--model-provider", "offline", "--json"],
      { cwd: ws },
    );
    expectNoTraceback(r);
    expect(r.code).toBe(0);
    expect(r.json.verdict).toBe("PASS");
    expect(r.json.pathspec).toMatch(/^PipelineFlow\/\d+$/);
    const st = r.json.summary.stages;
    expect(st.map((s: any) => s.name)).toEqual(["eda", "features", "optimize", "validate", "report"]);
    st.forEach((s: any, i: number) => expect(s.pathspec).toMatch(new RegExp(`^${FLOWS[i]}/\\d+$`)));
    expect(st[3].verdict).toBe("PASS");
    for (const s of st) expect(typeof s.seconds).toBe("number");
    // progress: one line per stage start and end, plus the search's leaderboard
    for (const n of ["eda", "features", "optimize", "validate", "report"]) expect(r.stderr).toMatch(new RegExp(`stage ${n}: started`));
    expect(r.stderr).toMatch(/step 2\/2 · best ROC-AUC/);
    expect(r.stderr).toMatch(/optimize stage: 2 steps × offline proposer/);
    const id = r.json.pathspec.split("/")[1];
    const back = plainMetaflow(
      ws,
      `
import json
from metaflow import Run, namespace
namespace(None)
st = ${JSON.stringify(st.map((s: any) => s.pathspec))}
runs = [Run(p) for p in st]
v, o = runs[3], runs[2]
print(json.dumps({"tags": [sorted(t for t in r.user_tags if t.startswith(("pipeline:", "stage:"))) for r in runs],
                  "verdict": v.data.verdict, "val_seal": v.data.seal_id, "opt_seal": o.data.search_config["seal"]["id"],
                  "untouched": v.data.validation["seal"]["untouched"], "val_model": v.data.loom_result["inputs"],
                  "stages": Run("${r.json.pathspec}").data.stage_runs}))
`,
    );
    expect(back.tags).toEqual(["eda", "features", "optimize", "validate", "report"].map((n) => [`pipeline:${id}`, `stage:${n}`]));
    expect(back.verdict).toBe("PASS"); // what a later deploy reads
    expect(back.opt_seal).toBe(back.val_seal);
    expect(back.untouched).toBe(true);
    expect(back.val_model).toEqual([st[1].pathspec, st[2].pathspec]);
    expect(Object.values(back.stages)).toEqual(st.map((s: any) => s.pathspec));
    const card = cardText(r.json.card_path);
    for (const s of st) expect(card).toContain(s.pathspec);
    expect(card).toContain("VERDICT PASS");
    // deploy takes the pipeline's pathspec for its validate stage: a PLAN of that ValidateFlow run
    const d = await loom(["deploy", "--validate", r.json.pathspec, "--name", "pipe-model", "--json"], { cwd: ws });
    expectNoTraceback(d);
    expect(d.code).toBe(0);
    expect(d.json.status).toBe("PLANNED");
    expect(d.json.inputs[0]).toBe(st[3].pathspec);
  }, 240_000);

  test("a planted leak is dropped by features; an unreachable --threshold stops the pipeline at validate", async () => {
    const r = await loom(
      ["pipeline", "--dataset", leaky, "--target", "y", "--metric", METRIC, "--steps", "1", "--model-provider", "offline", "--threshold", "0.9999", "--json"],
      { cwd: ws },
    );
    expectNoTraceback(r);
    expect(r.code).toBe(1);
    expect(r.json.verdict).toBe("FAIL");
    expect(r.json.summary.failed_stage).toBe("validate");
    expect(r.json.messages[0]).toMatch(/^stage validate \(ValidateFlow\/\d+\): holdout roc_auc .* misses the bar \(>= 0\.9999\)/);
    const st = r.json.summary.stages;
    expect(st.map((s: any) => s.status)).toEqual(["WARN", "OK", "OK", "FAIL", "SKIPPED"]);
    expect(st[4].pathspec).toBeNull();
    const back = plainMetaflow(
      ws,
      `
import json
from metaflow import Run, namespace
namespace(None)
e, f = Run("${st[0].pathspec}"), Run("${st[1].pathspec}")
print(json.dumps({"flags": [x["column"] for x in e.data.leakage_flags],
                  "dropped": [x["column"] for x in f.data.loom_result["summary"]["dropped_for_leakage"]],
                  "columns": [c["name"] for c in f.data.schema]}))
`,
    );
    expect(back.flags).toContain("refund_flag");
    expect(back.dropped).toContain("refund_flag");
    expect(back.columns).not.toContain("refund_flag");
    // a pipeline that FAILed at validate: deploy refuses it with validate's reason (exit 1)
    const d = await loom(["deploy", "--validate", r.json.pathspec, "--json"], { cwd: ws });
    expect(d.code).toBe(1);
    expect(d.json.messages[0]).toMatch(/^deploy refused: validate VERDICT FAIL/);
  }, 240_000);

  test("the seal: a search that left out another seal keeps validate's caveat", async () => {
    const o = await loom(["run", "--dataset", ds, "--target", "churned", "--metric", METRIC, "--steps", "1", "--model-provider", "offline", "--holdout", "0.3", "--json"], { cwd: ws });
    expect(o.code).toBe(0);
    expect(o.json.summary.seal).toMatchObject({ fraction: 0.3, rows_excluded: 600, rows_searched: 1400 });
    // what the search scored on: every searched row once (k-fold: train and held-out are the same rows)
    const rows = o.json.summary.rows;
    expect(o.json.summary.selection.kind === "cv" ? rows.train : rows.train + rows.held_out).toBe(1400);
    const v = await loom(["validate", "--dataset", ds, "--target", "churned", "--model", o.json.pathspec, "--json"], { cwd: ws });
    expectNoTraceback(v);
    expect(v.json.summary.seal.id).not.toBe(o.json.summary.seal.id);
    expect(v.json.summary.seal.untouched).toBe(false);
    expect(v.json.messages.join(" ")).toMatch(/left out seal seal-\w+, not this one .* so the holdout is optimistic for it/);
  }, 120_000);

  test("a model proposer: the CLI hosts it for the search stage (the key stays in the TypeScript process)", async () => {
    const server = fakeAnthropic([]);
    try {
      const r = await loom(
        ["pipeline", "--dataset", ds, "--target", "churned", "--metric", METRIC, "--steps", "2", "--yes", "--json"],
        { cwd: ws, env: { ANTHROPIC_API_KEY: "test-key", ANTHROPIC_BASE_URL: server.url } },
      );
      expectNoTraceback(r);
      expect(r.stderr).toMatch(/optimize stage: 2 steps × ~\d+ tokens × .* ≈ \$/);
      const opt = r.json.summary.stages[2];
      expect(opt.status).toBe("OK");
      expect(server.requests.length).toBe(2);
      const spend = plainMetaflow(ws, `
import json
from metaflow import Run, namespace
namespace(None)
print(json.dumps(Run("${opt.pathspec}").data.loom_result["summary"]["spend"]))
`);
      expect(spend.provider).toBe("anthropic");
      expect(spend.tokens.input).toBe(2000);
    } finally {
      server.stop();
    }
  }, 180_000);

  test("bad input: exit 2 with one line, no run", async () => {
    const before = runsOf(ws, "PipelineFlow");
    const r = await loom(["pipeline", "--dataset", ds, "--target", "nope", "--metric", METRIC, "--model-provider", "offline"], { cwd: ws });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^loom pipeline: unknown target column 'nope'/)]);
    const m = await loom(["pipeline", "--dataset", ds, "--target", "churned", "--metric", "Minimize RMSE", "--model-provider", "offline"], { cwd: ws });
    expect(m.code).toBe(2);
    expect(runsOf(ws, "PipelineFlow")).toBe(before);
  }, 60_000);

  test("a denied gate (no terminal, above the workspace limit) creates no run at all", async () => {
    const dir = tempWorkspace();
    const i = await loom(["ingest", "--source", join(ROOT, "examples", "churn.csv"), "--json"], { cwd: dir });
    expect(i.code).toBe(0);
    const cfg = join(dir, ".loom", "config.json");
    const c = JSON.parse(readFileSync(cfg, "utf8"));
    writeFileSync(cfg, JSON.stringify({ ...c, limits: { ...c.limits, max_usd_without_confirm: 0 } }));
    const r = await loom(
      ["pipeline", "--dataset", i.json.pathspec, "--target", "churned", "--metric", METRIC, "--steps", "20", "--model-provider", "anthropic", "--json"],
      { cwd: dir, env: { ANTHROPIC_API_KEY: "sk-test-not-used" } },
    );
    expectNoTraceback(r);
    expect(r.code).toBe(1);
    expect(r.json.status).toBe("DENIED");
    expect(r.json.summary.gate.reason).toMatch(/above the workspace limit.*no terminal/);
    expect(r.stderr).toMatch(/optimize stage: 20 steps × .* ≈ \$/);
    for (const f of ["PipelineFlow", ...FLOWS]) expect(runsOf(dir, f)).toBe(0);
  }, 60_000);

  test("--resume after a killed pipeline reuses the stages that finished", async () => {
    const proc = Bun.spawn(
      ["setsid", LOOM, "pipeline", "--dataset", ds, "--target", "churned", "--metric", METRIC, "--steps", "3", "--model-provider", "offline"],
      { cwd: ws, stdout: "pipe", stderr: "pipe", env: { ...process.env, METAFLOW_USER: undefined } as any },
    );
    let err = "";
    let killed = false;
    const dec = new TextDecoder();
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
      err += dec.decode(chunk);
      if (/stage features: FeaturesFlow\/\d+ OK/.test(err)) {
        process.kill(-proc.pid, "SIGKILL");
        killed = true;
        break;
      }
    }
    await proc.exited;
    expect(killed).toBe(true);
    const first = /pipeline (PipelineFlow\/\d+) \(if it is interrupted/.exec(err)![1]!;
    const eda = /stage eda: (EdaFlow\/\d+)/.exec(err)![1]!;
    const feat = /stage features: (FeaturesFlow\/\d+)/.exec(err)![1]!;
    await Bun.sleep(500);
    const r = await loom(["pipeline", "--resume", first, "--json"], { cwd: ws });
    expectNoTraceback(r);
    expect(r.code).toBe(0);
    expect(r.json.verdict).toBe("PASS");
    const st = r.json.summary.stages;
    expect(st[0].pathspec).toBe(eda);
    expect(st[1].pathspec).toBe(feat);
    expect(r.json.summary.reused).toEqual(["eda", "features"]);
    expect(st[2].reused_from).toBeNull();
    expect(st[2].pathspec).toMatch(/^OptimizeFlow\/\d+$/);
    expect(r.stderr).toMatch(/stage eda: reused/);
    expect(r.json.inputs).toContain(first);
    expect(existsSync(r.json.card_path)).toBe(true);
    // the reused runs are this pipeline's stages too: a resume of it finds them by tag the same way
    const id = r.json.pathspec.split("/")[1];
    const tags = plainMetaflow(ws, `
import json
from metaflow import Run, namespace
namespace(None)
print(json.dumps([sorted(Run(p).user_tags) for p in ["${eda}", "${feat}"]]))
`);
    for (const t of tags) expect(t).toEqual(expect.arrayContaining([`pipeline:${first.split("/")[1]}`, `pipeline:${id}`]));
  }, 240_000);
});
