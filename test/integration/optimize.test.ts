/**
 * optimize (`loom run` / `loom optimize`) end to end through build/loom with real Metaflow runs:
 * the product-page example (offline, twice: deterministic), resume, the keyless refusal, a bad metric,
 * and the anthropic / openai proposers against local servers speaking the real protocols (good code, a
 * crash then debugged, no code block, an endless loop, a socket, a write outside the sandbox, a tool call,
 * streaming) plus the --budget-usd cap, both executors (local pool, Metaflow foreach), and --metric text
 * the rules cannot map, mapped by the model when a key is present (never offline).
 * Real runs: 1 ingest + 9 OptimizeFlow + 1 OptimizeRoundFlow.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CRASH, LOOP, NO_BLOCK, SOCKET, TOOL_CALL, WRITE, fakeAnthropic, fakeOpenAI } from "../fixtures/llm-servers";
import { expectNoTraceback, loom, plainMetaflow, rng, runsOf as runsOfFlow, tempWorkspace } from "../helpers";

const runsOf = (ws: string, flow = "OptimizeFlow") => runsOfFlow(ws, flow);


/** 600 rows: a nonlinear binary target (an interaction a linear model misses), a category, missing values,
 * and 60 rows with no target (the "test.csv" rows). */
function dataCsv(): string {
  const r = rng(7);
  const rows = ["id,x1,x2,x3,x4,region,target"];
  for (let i = 0; i < 600; i++) {
    const x1 = r() * 2 - 1, x2 = r() * 2 - 1, x3 = r(), x4 = r();
    const region = ["north", "south", "east"][Math.floor(r() * 3)]!;
    const z = 3 * x1 * x2 + 2 * Math.sin(3 * x3) + (region === "east" ? 0.8 : 0) - 0.5;
    const y = r() < 1 / (1 + Math.exp(-2 * z)) ? 1 : 0;
    rows.push(`${i},${x1.toFixed(4)},${x2.toFixed(4)},${r() < 0.05 ? "" : x3.toFixed(4)},${x4.toFixed(4)},${region},${i >= 540 ? "" : y}`);
  }
  return rows.join("\n") + "\n";
}

const ws = tempWorkspace();
let ds = "";
const example = (extra: string[] = []) => [
  "run", "--dataset", ds, "--goal", "Predict the target for each row in test.csv.", "--metric", "Maximize ROC-AUC on a held-out split.", "--steps", "10", ...extra,
];

beforeAll(async () => {
  writeFileSync(join(ws, "data.csv"), dataCsv());
  const r = await loom(["ingest", "--source", "data.csv", "--json"], { cwd: ws });
  expect(r.code).toBe(0);
  ds = r.json.pathspec;
}, 120_000);

describe("refusals: exit 2, one line, no run", () => {
  test("the product-page example with no key and no --model-provider", async () => {
    const r = await loom(example(), { cwd: ws });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n").pop()).toBe("loom run: set ANTHROPIC_API_KEY … or pick a --model-provider (offline runs keyless)");
    expectNoTraceback(r);
    expect(runsOf(ws)).toBe(0);
  });

  test("a metric Loom cannot map lists what it understands; a task mismatch says so", async () => {
    const r = await loom(["optimize", "--dataset", ds, "--metric", "make the customers happy", "--model-provider", "offline", "--json"], { cwd: ws });
    expect(r.code).toBe(2);
    expect(r.json.messages[0]).toContain("understood: ROC-AUC");
    const m = await loom(["run", "--dataset", ds, "--metric", "Minimize RMSE", "--model-provider", "offline"], { cwd: ws });
    expect(m.code).toBe(2);
    expect(m.stderr).toContain("RMSE is a regression metric but the target looks like classification");
    const t = await loom(["run", "--dataset", ds, "--metric", "accuracy", "--target", "nope", "--model-provider", "offline"], { cwd: ws });
    expect(t.code).toBe(2);
    expect(t.stderr).toContain("--target nope is not a column");
    expect(runsOf(ws)).toBe(0);
  });
});

describe("offline: the product-page example, deterministic, resumable", () => {
  let a: any, b: any, res: any, art: any;
  beforeAll(async () => {
    const ra = await loom([...example(["--model-provider", "offline", "--json"])], { cwd: ws });
    expect(ra.code).toBe(0);
    a = ra.json;
    const rb = await loom([...example(["--model-provider", "offline", "--json"])], { cwd: ws });
    b = rb.json;
    const rr = await loom(["optimize", "--resume", a.pathspec, "--steps", "2", "--model-provider", "offline", "--json"], { cwd: ws });
    expect(rr.code).toBe(0);
    res = rr.json;
    art = plainMetaflow(ws, `
import json
from metaflow import Run, namespace
namespace(None)
d = Run("${a.pathspec}").data
tp = d.test_predictions
print(json.dumps({"leaderboard": d.leaderboard, "journal": [{k: n[k] for k in ("id", "parent", "operator", "status", "score", "plan", "code", "output", "timings", "tokens")} for n in d.journal],
  "best_code": d.best_code, "model_bytes": len(d.best_model or b""), "test_rows": len(tp), "test_cols": list(tp.columns), "metric_spec": d.metric_spec}, default=str))
`);
  }, 600_000);

  test("the contract: OptimizeFlow/N, the spec it used, best, top-10 leaderboard, node counts, spend, why it stopped", () => {
    expect(a.verb).toBe("run");
    expect(a.pathspec).toMatch(/^OptimizeFlow\/\d+$/);
    const s = a.summary;
    expect(s.metric_spec).toMatchObject({ metric: "roc_auc", direction: "maximize", split: { kind: "holdout", fraction: 0.2 }, source: "rules", text: "Maximize ROC-AUC on a held-out split." });
    expect(s.leaderboard.length).toBe(10);  // the top 10 of 10 searched nodes + the ensemble node when one is built
    expect(s.nodes.total).toBe(10 + (s.ensemble?.node ? 1 : 0));
    expect(s.spend.usd).toBe(0);
    expect(s.stopped_because).toBe("steps: 10 of 10 done");
    expect(s.best.score).toBe(Math.max(...s.leaderboard.map((r: any) => r.score ?? -1)));
    for (const k of ["rank", "node", "operator", "model", "score", "seconds", "status"]) expect(s.leaderboard[0]).toHaveProperty(k);
  });

  test("the leaderboard improves over the first draft (the linear baseline misses the interaction)", () => {
    const first = art.journal.find((n: any) => n.operator === "draft" && n.plan.startsWith("Draft: LogisticRegression"));
    expect(first.operator).toBe("draft");
    expect(a.summary.best.score).toBeGreaterThan(first.score + 0.02);
  });

  test("deterministic for a seed: the same nodes, codes and scores", () => {
    expect(b.pathspec).not.toBe(a.pathspec);
    expect(b.summary.leaderboard).toEqual(a.summary.leaderboard.map((r: any, i: number) => ({ ...r, seconds: b.summary.leaderboard[i].seconds })));
  });

  test("the run records journal, leaderboard, best code, fitted model, test predictions (for the unlabeled rows)", () => {
    // ten searched nodes, then the ensemble over their out-of-fold predictions when a mix beats the best single one
    const searched = art.journal.filter((n: any) => n.operator !== "ensemble");
    expect(art.leaderboard.length).toBe(art.journal.length);
    expect(searched.map((n: any) => n.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(searched.slice(5).every((n: any) => n.parent !== null && ["improve", "debug"].includes(n.operator))).toBe(true);
    const ens = art.journal.filter((n: any) => n.operator === "ensemble");
    expect(ens.length).toBe(a.summary.ensemble?.node ? 1 : 0);
    expect(a.summary.ensemble.why.length).toBeGreaterThan(0);
    if (ens.length) expect(ens[0].id).toBe(11);
    expect(a.summary.time.search_s).toBeGreaterThan(0);
    expect(art.best_code).toContain("def make_model()");
    expect(art.model_bytes).toBeGreaterThan(1000);
    expect(art.test_rows).toBe(60);
    expect(art.test_cols).toEqual(["prediction", "proba_0", "proba_1"]);
    expect(art.metric_spec.metric).toBe("roc_auc");
  });

  test("--resume continues the journal", () => {
    expect(res.summary.nodes.total).toBe(a.summary.nodes.total + 2 + (res.summary.ensemble?.node ? 1 : 0));
    expect(res.inputs).toContain(a.pathspec);
    const ids = res.summary.leaderboard.map((r: any) => r.node);
    expect(Math.max(...ids)).toBeGreaterThanOrEqual(10);
    expect(res.summary.best.score).toBeGreaterThanOrEqual(a.summary.best.score);
  });
});

describe("--executor metaflow: a round's candidates as a Metaflow foreach", () => {
  let local: any, mf: any, rounds: any;
  beforeAll(async () => {
    const args = ["run", "--dataset", ds, "--metric", "Maximize ROC-AUC", "--steps", "3", "--parallel", "3", "--model-provider", "offline", "--yes", "--json"];
    const before = runsOf(ws, "OptimizeRoundFlow");
    const rl = await loom(args, { cwd: ws });
    expect(rl.code).toBe(0);
    local = rl.json;
    expect(runsOf(ws, "OptimizeRoundFlow")).toBe(before);
    const rm = await loom([...args, "--executor", "metaflow"], { cwd: ws });
    expect(rm.code).toBe(0);
    mf = rm.json;
    rounds = plainMetaflow(ws, `
import json
from metaflow import Flow, Run, namespace
namespace(None)
r = list(Flow("OptimizeRoundFlow"))[0]
o = Run("${mf.pathspec}").data
print(json.dumps({"tasks": len(list(r["candidate"])), "ids": sorted(r.data.results), "isolation": o.isolation,
                  "executor": o.search_config["executor"], "model_bytes": len(o.best_model or b""), "test_rows": len(o.test_predictions)}))
`);
  }, 600_000);

  test("the same candidates score the same on both executors (Loom scores them in the parent either way)", () => {
    expect(mf.summary.nodes).toEqual(local.summary.nodes);
    expect(mf.summary.leaderboard.filter((r: any) => r.operator !== "ensemble").length).toBe(3);
    expect(mf.summary.leaderboard.map((r: any) => [r.node, r.model, r.score])).toEqual(local.summary.leaderboard.map((r: any) => [r.node, r.model, r.score]));
    expect(mf.summary.best).toEqual(local.summary.best);
    expect(mf.summary.selection).toMatchObject({ kind: "cv", folds: 5 });
  });

  test("one OptimizeRoundFlow run per round, one foreach task per candidate; the best's model and test predictions recorded", () => {
    expect(rounds.tasks).toBe(3);
    expect(rounds.ids).toEqual([1, 2, 3]);
    expect(rounds.executor).toBe("metaflow");
    expect(rounds.isolation.launcher).toBe("metaflow foreach");
    expect(rounds.model_bytes).toBeGreaterThan(1000);
    expect(rounds.test_rows).toBe(60);
  });
});

describe("anthropic against a local Messages API server (the real SDK path)", () => {
  const server = fakeAnthropic([CRASH, NO_BLOCK, LOOP, SOCKET, WRITE]);
  let r: any, journal: any[];
  const env = { ANTHROPIC_API_KEY: "test-key", ANTHROPIC_BASE_URL: server.url };
  beforeAll(async () => {
    r = await loom(["run", "--dataset", ds, "--metric", "Maximize ROC-AUC on a held-out split.", "--steps", "8", "--node-timeout", "4", "--yes", "--json"], { cwd: ws, env });
    journal = plainMetaflow(ws, `
import json
from metaflow import Run, namespace
namespace(None)
print(json.dumps([{k: n.get(k) for k in ("id", "parent", "operator", "status", "error", "score", "tokens", "usd")} for n in Run("${r.json.pathspec}").data.journal]))
`);
  }, 600_000);
  afterAll(() => server.stop());

  test("every bad candidate is a failed node with its reason; nothing escaped; the run succeeds", () => {
    expect(r.code).toBe(0);
    const byId = (i: number) => journal.find((n) => n.id === i);
    expect(byId(1).status).toBe("failed");
    expect(byId(1).error).toContain("planted crash");
    expect(byId(2)).toMatchObject({ status: "invalid", error: "no code block in the model's reply" });
    expect(byId(3).status).toBe("timeout");
    expect(byId(4).error).toContain("network access refused");
    expect(byId(5).error).toContain("write outside the candidate directory refused: /tmp/loom-optimize-escape.txt");
    expect(existsSync("/tmp/loom-optimize-escape.txt")).toBe(false);
  });

  test("a failed node is debugged into a scored one; tokens and dollars per node", () => {
    const debugged = journal.filter((n) => n.operator === "debug" && n.status === "ok");
    expect(debugged.length).toBeGreaterThan(0);
    expect(journal.find((n) => n.id === debugged[0].parent).status).not.toBe("ok");
    expect(r.json.summary.best).not.toBeNull();
    expect(journal.every((n) => n.tokens.input === 1000 && n.tokens.output === 500)).toBe(true);
    expect(r.json.summary.spend.usd).toBeCloseTo(8 * (1000 * 3 + 500 * 15) / 1e6, 6);
    expect(server.requests.length).toBe(8); // common phrasing: the rules map it, no mapping call
    expect(server.requests[0].model).toBe("claude-sonnet-4-6");
    // the proposer sees a statistics preview and the memory, never raw rows
    expect(server.requests[7].messages[0].content).toContain("solutions tried so far");
    expect(server.requests[0].messages[0].content).not.toContain("0.1234,");
  });

  test("--budget-usd ends the search cleanly at the cap", async () => {
    const b = await loom(["run", "--dataset", ds, "--metric", "roc auc", "--steps", "10", "--budget-usd", "0.02", "--yes", "--json"], { cwd: ws, env });
    expect(b.code).toBe(0);
    expect(b.json.summary.stopped_because).toMatch(/^budget: \$0\.0105/);
    expect(b.json.summary.spend.usd).toBeLessThanOrEqual(0.02);
    expect(b.json.summary.nodes.total).toBe(1);
  }, 300_000);

  test("--parallel 4 under a cap: checked before every model call, so the spend never passes it", async () => {
    const n = server.requests.length;
    const b = await loom(["run", "--dataset", ds, "--metric", "roc auc", "--steps", "12", "--parallel", "4", "--budget-usd", "0.03", "--node-timeout", "4", "--yes", "--json"], { cwd: ws, env });
    expect(b.code).toBe(0);
    expect(b.json.summary.spend.usd).toBeLessThanOrEqual(0.03);
    expect(b.json.summary.stopped_because).toMatch(/^budget: /);
    expect(server.requests.length - n).toBeLessThanOrEqual(2); // $0.0105 each: a third could pass $0.03
  }, 300_000);

  test("gates fail closed: --budget-usd 0, a cap on an unpriced model, a limit that does not parse — exit 2, no run", async () => {
    const before = runsOf(ws);
    const zero = await loom(["run", "--dataset", ds, "--metric", "roc auc", "--budget-usd", "0", "--yes", "--json"], { cwd: ws, env });
    expect(zero.code).toBe(2);
    expect(zero.json.messages[0]).toContain("--budget-usd 0 allows no spend");
    const unpriced = await loom(["run", "--dataset", ds, "--metric", "roc auc", "--model", "mystery-1", "--budget-usd", "1", "--yes", "--json"], { cwd: ws, env });
    expect(unpriced.code).toBe(2);
    expect(unpriced.json.messages[0]).toContain("--price-per-mtok");
    const noTerm = await loom(["run", "--dataset", ds, "--metric", "roc auc", "--model", "mystery-1", "--steps", "1", "--json"], { cwd: ws, env });
    expect(noTerm.code).toBe(1); // unknown price: the gate asks, and there is no terminal
    expect(noTerm.json.messages[0]).toContain("price of mystery-1 is unknown");
    const cfg = join(ws, ".loom", "config.json");
    const saved = readFileSync(cfg, "utf8");
    try {
      writeFileSync(cfg, JSON.stringify({ limits: { max_usd_without_confirm: "1000" } }));
      const bad = await loom(["run", "--dataset", ds, "--metric", "roc auc", "--steps", "1", "--json"], { cwd: ws, env });
      expect(bad.code).toBe(2);
      expect(bad.json.messages[0]).toContain("limits.max_usd_without_confirm must be a number");
    } finally {
      writeFileSync(cfg, saved);
    }
    expect(runsOf(ws)).toBe(before);
  }, 120_000);
});

describe("openai-compatible endpoint (streaming and plain answers)", () => {
  const server = fakeOpenAI([TOOL_CALL, CRASH]);
  let r: any, journal: any[];
  beforeAll(async () => {
    r = await loom(["optimize", "--dataset", ds, "--metric", "Maximize accuracy", "--steps", "4", "--model-provider", "openai", "--model", "llama3.1:8b", "--yes", "--json"],
      { cwd: ws, env: { OPENAI_BASE_URL: server.url } });
    journal = plainMetaflow(ws, `
import json
from metaflow import Run, namespace
namespace(None)
print(json.dumps([{k: n.get(k) for k in ("id", "operator", "status", "error", "score", "tokens", "usd")} for n in Run("${r.json.pathspec}").data.journal]))
`);
  }, 600_000);
  afterAll(() => server.stop());

  test("a tool call instead of text is a failed node; a crash is recorded; good code scores", () => {
    expect(r.code).toBe(0);
    expect(journal[0]).toMatchObject({ status: "invalid", error: "the model returned no text" });
    expect(journal[1].status).toBe("failed");
    expect(journal.filter((n) => n.status === "ok").length).toBeGreaterThan(0);
    expect(r.json.summary.metric_spec.metric).toBe("accuracy");
  });

  test("usage comes from the stream's last chunk and from plain answers; a local model costs $0", () => {
    expect(server.requests.every((q) => q.stream === true && q.model === "llama3.1:8b")).toBe(true);
    expect(journal.map((n) => n.tokens.input)).toEqual([901, 902, 903, 904]);
    expect(r.json.summary.spend.usd).toBe(0);
  });
});

describe("--metric text the rules cannot map: the model maps it onto the closed set (key present), never offline", () => {
  const text = "Score by the area under the receiver operating characteristic curve, bigger is better";
  const good = fakeAnthropic([], undefined, '{"metric": "roc_auc", "direction": "maximize", "holdout_fraction": null}');
  const bad = fakeOpenAI([], '{"metric": "customer_happiness", "direction": "maximize", "holdout_fraction": 0.2}');
  afterAll(() => {
    good.stop();
    bad.stop();
  });

  test("mapped to ROC-AUC / maximize, recorded with source model and the text; its tokens and dollars count; the run proceeds", async () => {
    const r = await loom(["run", "--dataset", ds, "--metric", text, "--steps", "1", "--yes", "--json"], { cwd: ws, env: { ANTHROPIC_API_KEY: "test-key", ANTHROPIC_BASE_URL: good.url } });
    expect(r.code).toBe(0);
    expect(r.json.summary.metric_spec).toMatchObject({ metric: "roc_auc", direction: "maximize", source: "model", text, split: { kind: "holdout", fraction: 0.2 } });
    expect(good.requests.length).toBe(2); // the mapping, then one proposal
    expect(good.requests[0].messages[0].content).toBe(`Metric text: ${JSON.stringify(text)}`);
    expect(good.requests[0].system).toContain("roc_auc: ROC-AUC");
    expect(r.json.summary.spend.tokens).toEqual({ input: 2000, output: 1000 });
    expect(r.json.summary.spend.usd).toBeCloseTo(2 * 0.0105, 6);
    expect(r.json.summary.nodes.total).toBe(1);
  }, 300_000);

  test("an answer outside the closed set: exit 2 listing what is understood; no run", async () => {
    const before = runsOf(ws);
    const r = await loom(["run", "--dataset", ds, "--metric", "make the customers happy", "--model-provider", "openai", "--model", "llama3.1:8b", "--json"], { cwd: ws, env: { OPENAI_BASE_URL: bad.url } });
    expect(r.code).toBe(2);
    expect(r.json.messages[0]).toContain('names "customer_happiness", which is not one of');
    expect(r.json.messages[0]).toContain("understood: ROC-AUC");
    expect(bad.requests.length).toBe(1);
    expect(runsOf(ws)).toBe(before);
    expectNoTraceback(r);
  });

  test("offline with unusual text: exit 2 without any model call, even with a key set", async () => {
    const n = good.requests.length;
    const r = await loom(["run", "--dataset", ds, "--metric", text, "--model-provider", "offline", "--json"], { cwd: ws, env: { ANTHROPIC_API_KEY: "test-key", ANTHROPIC_BASE_URL: good.url } });
    expect(r.code).toBe(2);
    expect(r.json.messages[0]).toContain("understood: ROC-AUC");
    expect(good.requests.length).toBe(n);
  });
});
