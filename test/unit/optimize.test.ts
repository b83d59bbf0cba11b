/** optimize's pure TypeScript pieces: proposer resolution (the keyless refusal), pricing, the leaderboard
 * renderer, and the loopback proposer server against a scripted completion function. */
import { describe, expect, test } from "bun:test";
import { UsageError } from "../../src/core/errors";
import { renderBoard, progressLine } from "../../src/optimize/leaderboard";
import { priceOf, usd } from "../../src/optimize/pricing";
import { ProposerFailure } from "../../src/optimize/proposers";
import { mapMetric, mappingPrompt, type ClosedSet } from "../../src/optimize/metric";
import { startProposerServer } from "../../src/optimize/server";
import { MISSING_KEY, resolveProposer } from "../../src/verbs/optimize";

describe("resolveProposer", () => {
  test.each([
    [{}, {}, MISSING_KEY],
    [{ "model-provider": "anthropic" as const }, {}, MISSING_KEY],
    [{ "model-provider": "openai" as const }, {}, "set OPENAI_API_KEY"],
  ])("refuses without a key: %j", (input, env, msg) => {
    expect(() => resolveProposer(input, env)).toThrow(UsageError);
    expect(() => resolveProposer(input, env)).toThrow(msg);
  });

  test("offline is keyless; a local OpenAI-compatible server needs no key; defaults and overrides", () => {
    expect(resolveProposer({ "model-provider": "offline" }, {}).remote).toBe(false);
    const o = resolveProposer({ "model-provider": "openai", model: "llama3.1:8b" }, { OPENAI_BASE_URL: "http://127.0.0.1:11434/v1" });
    expect(o).toMatchObject({ provider: "openai", model: "llama3.1:8b", baseURL: "http://127.0.0.1:11434/v1" });
    const a = resolveProposer({}, { ANTHROPIC_API_KEY: "k" });
    expect(a).toMatchObject({ provider: "anthropic", model: "claude-sonnet-4-6", apiKey: "k" });
  });
});

test("pricing: known models priced, local models $0", () => {
  expect(priceOf("claude-sonnet-4-6")).toEqual({ input: 3, output: 15 });
  expect(usd("claude-sonnet-4-6", 1000, 500)).toBeCloseTo(0.0105, 10);
  expect(usd("gpt-4o-mini", 1e6, 0)).toBeCloseTo(0.15, 10);
  expect(usd("llama3.1:8b", 1e6, 1e6)).toBe(0);
});

test("leaderboard: aligned columns, failed rows unranked, progress line", () => {
  const ev = {
    step: 3, steps: 10, metric: "ROC-AUC", best: { node: 2, score: 0.91234 }, spend_usd: 0.0315,
    rows: [
      { rank: 1, node: 2, operator: "draft", model: "LightGBM", score: 0.91234, seconds: 1.24, status: "ok" },
      { rank: null, node: 1, operator: "draft", model: "?", score: null, seconds: 0.5, status: "failed" },
    ],
  };
  const lines = renderBoard(ev);
  expect(lines[0]).toMatch(/^rank\s+node\s+operator\s+model\s+ROC-AUC\s+seconds\s+status$/);
  expect(lines[1]).toMatch(/^1\s+2\s+draft\s+LightGBM\s+0\.91234\s+1\.2\s+ok$/);
  expect(lines[2]).toMatch(/^-\s+1\s+draft\s+\?\s+—/);
  expect(progressLine(ev)).toBe("step 3/10 · best ROC-AUC 0.91234 (node 2) · spend $0.0315");
});

test("proposer server: token-guarded, relays completions and fatal/non-fatal failures", async () => {
  let n = 0;
  const server = startProposerServer(async (p) => {
    n++;
    if (p.user === "auth") throw new ProposerFailure("HTTP 401", true);
    if (p.user === "flaky") throw new Error("overloaded");
    return { text: `echo ${p.user}`, input_tokens: 3, output_tokens: 4, usd: 0.001, model: "m" };
  });
  try {
    const post = (path: string, body: unknown) => fetch(server.url.replace(/\/[^/]+$/, "") + path, { method: "POST", body: JSON.stringify(body) });
    const token = server.url.split("/").pop();
    expect((await post("/propose", { system: "s", user: "hi" })).status).toBe(404);
    expect(await (await post(`/${token}/propose`, { system: "s", user: "hi" })).json()).toMatchObject({ text: "echo hi", input_tokens: 3 });
    expect(await (await post(`/${token}/propose`, { system: "s", user: "auth" })).json()).toEqual({ error: "HTTP 401", fatal: true });
    expect(await (await post(`/${token}/propose`, { system: "s", user: "flaky" })).json()).toEqual({ error: "overloaded", fatal: false });
    expect((await post(`/${token}/propose`, { nope: 1 })).status).toBe(400);
    expect(n).toBe(3);
  } finally {
    server.stop();
  }
});

describe("metric mapping (the model fallback for unusual --metric text)", () => {
  const set: ClosedSet = {
    metrics: { roc_auc: { label: "ROC-AUC", direction: "maximize", task: "classification" }, rmse: { label: "RMSE", direction: "minimize", task: "regression" } },
    directions: ["maximize", "minimize"],
    holdout_fraction: [0.05, 0.5],
  };
  test("the prompt names the closed set and asks for strict JSON; the answer comes back raw with its spend", async () => {
    const seen: any[] = [];
    const m = await mapMetric(async (p) => (seen.push(p), { text: '{"metric": "roc_auc"}', input_tokens: 7, output_tokens: 3, usd: 0.5, model: "m1" }), "bigger AUC", set, "ROC-AUC, RMSE");
    expect(m).toEqual({ answer: '{"metric": "roc_auc"}', model: "m1", tokens: { input: 7, output: 3 }, usd: 0.5 });
    expect(seen[0]).toEqual(mappingPrompt("bigger AUC", set));
    expect(seen[0].system).toContain("- roc_auc: ROC-AUC (classification, maximize)");
    expect(seen[0].system).toContain("0.05..0.5");
    expect(seen[0].user).toBe('Metric text: "bigger AUC"');
  });
  test("a failed call is exit 2 listing what is understood", async () => {
    const p = mapMetric(async () => { throw new ProposerFailure("anthropic: HTTP 401: bad key", true); }, "bigger AUC", set, "ROC-AUC, RMSE");
    await expect(p).rejects.toBeInstanceOf(UsageError);
    await expect(mapMetric(async () => { throw new Error("HTTP 401"); }, "x", set, "ROC-AUC, RMSE")).rejects.toThrow("understood: ROC-AUC, RMSE");
  });
});
