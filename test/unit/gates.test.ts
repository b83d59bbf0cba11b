/** Gates that fail closed: the workspace limits, the unpriced model, --budget-usd 0, --price-per-mtok, and the
 * proposer server's cap checked before every call with calls in flight counted (issue 21, item 8). */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../../src/core/errors";
import { needsConfirmation, runGate } from "../../src/core/gate";
import { DEFAULT_LIMITS, parseLimits, readLimits } from "../../src/core/workspace";
import { parsePricePerMtok } from "../../src/optimize/pricing";
import type { Completion } from "../../src/optimize/proposers";
import { Budget, startProposerServer } from "../../src/optimize/server";
import { budgetRefusal, priceFor } from "../../src/verbs/optimize";

describe("parseLimits: a key that does not parse is an error naming it", () => {
  test.each([
    [{ limits: { max_usd_without_confirm: "5" } }, "limits.max_usd_without_confirm"],
    [{ limits: { max_usd_without_confirm: [5] } }, "limits.max_usd_without_confirm"],
    [{ limits: { max_usd_without_confirm: -1 } }, "limits.max_usd_without_confirm"],
    [{ limits: { max_usd_without_confirm: null } }, "limits.max_usd_without_confirm"],
    [{ limits: { confirm_data_leaving_machine: "no" } }, "limits.confirm_data_leaving_machine"],
    [{ limits: { confirm_data_leaving_machine: 0 } }, "limits.confirm_data_leaving_machine"],
    [{ limits: [] }, "limits must be an object"],
    [{ limits: "lots" }, "limits must be an object"],
    [[1, 2], "JSON object"],
  ])("%j → %s", (cfg, msg) => {
    const r = parseLimits(cfg);
    expect(typeof r).toBe("string");
    expect(r as string).toContain(msg);
  });

  test.each([
    [{}, DEFAULT_LIMITS],
    [{ limits: {} }, DEFAULT_LIMITS],
    [{ limits: { max_usd_without_confirm: 2.5 } }, { ...DEFAULT_LIMITS, max_usd_without_confirm: 2.5 }],
    [{ limits: { confirm_data_leaving_machine: false, max_usd_without_confirm: 0 } }, { max_usd_without_confirm: 0, confirm_data_leaving_machine: false }],
  ])("%j parses", (cfg, want) => {
    expect(parseLimits(cfg)).toEqual(want);
  });

  test("readLimits: a file that is not JSON, or a bad key, is a UsageError with the path", () => {
    const dir = mkdtempSync(join(tmpdir(), "loom-limits-"));
    const ws = { dir, root: dir, exists: true };
    writeFileSync(join(dir, "config.json"), "{ not json");
    expect(() => readLimits(ws)).toThrow(UsageError);
    expect(() => readLimits(ws)).toThrow("config.json is not valid JSON");
    writeFileSync(join(dir, "config.json"), JSON.stringify({ limits: { max_usd_without_confirm: "1000" } }));
    expect(() => readLimits(ws)).toThrow("limits.max_usd_without_confirm must be a number");
  });
});

describe("prices and caps", () => {
  test.each([
    ["3,15", { input: 3, output: 15 }],
    ["0,0", { input: 0, output: 0 }],
    [" 0.5 , 2 ", { input: 0.5, output: 2 }],
  ])("--price-per-mtok %s", (t, want) => expect(parsePricePerMtok(t)).toEqual(want));

  test.each(["3", "3,", ",15", "a,b", "-1,2", "1,2,3", "Infinity,1", ""])("--price-per-mtok %j is refused", (t) => {
    expect(typeof parsePricePerMtok(t)).toBe("string");
  });

  test.each([
    [{ "budget-usd": 0 }, true, "claude-sonnet-4-6", "allows no spend"],
    [{ "budget-usd": -2 }, true, "claude-sonnet-4-6", "0 or more"],
    [{ "budget-usd": 1 }, true, "llama3.1:8b", "no price for llama3.1:8b"],
    [{ "budget-usd": 1 }, true, "claude-sonnet-4-6", null],
    [{ "budget-usd": 1, "price-per-mtok": "0,0" }, true, "llama3.1:8b", null],
    [{ "budget-usd": 0 }, false, "offline library + TPE", null],
    [{}, true, "llama3.1:8b", null],
  ])("budgetRefusal %j remote=%s %s", (input, remote, model, msg) => {
    const r = budgetRefusal(input as any, remote, model);
    if (msg === null) expect(r).toBeNull();
    else expect(r).toContain(msg);
  });

  test("priceFor: the override wins; a bad override is a UsageError", () => {
    expect(priceFor({ "price-per-mtok": "1,2" }, "claude-sonnet-4-6")).toEqual({ input: 1, output: 2 });
    expect(priceFor({}, "mystery-model")).toBeNull();
    expect(() => priceFor({ "price-per-mtok": "x" }, "m")).toThrow(UsageError);
  });

  test("an unpriced model always needs a confirmation, whatever the limits; so does a non-finite estimate", async () => {
    expect(needsConfirmation({ lines: [], usd: 0, unpriced: "llama3.1:8b" }, { ...DEFAULT_LIMITS, max_usd_without_confirm: 1e9 })).toContain("price of llama3.1:8b is unknown");
    expect(needsConfirmation({ lines: [], usd: NaN }, { ...DEFAULT_LIMITS, max_usd_without_confirm: 1e9 })).toContain("not a number");
    const io = { said: [] as string[], say(l: string) { this.said.push(l); }, canAsk: false, async confirm() { return true; } };
    const d = await runGate("expensive", "run", { cost: { lines: [], usd: 0, unpriced: "m" }, limits: DEFAULT_LIMITS, yes: false }, io);
    expect(d.allowed).toBe(false);
  });
});

describe("the proposer server's cap: checked before every call, calls in flight counted", () => {
  const price = { input: 3, output: 15 };
  // each completion: 1000 input + 500 output tokens = $0.0105 at 3/15
  const slow = (ms: number) => async (): Promise<Completion> => {
    await Bun.sleep(ms);
    return { text: "ok", input_tokens: 1000, output_tokens: 500, usd: 0.0105, model: "m" };
  };
  const post = (url: string, user = "x".repeat(4000)) =>
    fetch(url + "/propose", { method: "POST", body: JSON.stringify({ system: "s", user, max_tokens: 100 }) }).then((r) => r.json() as any);

  test.each([1, 2, 4, 8])("%i calls at once against a $0.03 cap never spend past it", async (parallel) => {
    const server = startProposerServer(slow(30), { capUsd: 0.03, price });
    try {
      let ok = 0;
      for (let round = 0; round < 4; round++) {
        const res = await Promise.all(Array.from({ length: parallel }, () => post(server.url)));
        ok += res.filter((r) => !r.error).length;
        for (const r of res.filter((r) => r.error)) expect(r).toMatchObject({ fatal: true, budget: true });
      }
      expect(server.spent).toBeLessThanOrEqual(0.03 + 1e-12);
      expect(ok).toBe(2); // $0.021 spent; a third call's estimate (~$0.0105) would pass $0.03
      expect(server.refused).toBe(4 * parallel - 2);
    } finally {
      server.stop();
    }
  });

  test("a cap of 0 refuses the first call; the spend before the search counts", async () => {
    const zero = startProposerServer(slow(1), { capUsd: 0, price });
    const pre = startProposerServer(slow(1), { capUsd: 0.02, price, spentBefore: 0.018 });
    try {
      expect((await post(zero.url)).error).toMatch(/^budget: \$0\.0000 spent of \$0/);
      expect((await post(pre.url)).error).toMatch(/^budget: \$0\.0180 spent of \$0\.02/);
      expect(zero.calls + pre.calls).toBe(0);
    } finally {
      zero.stop();
      pre.stop();
    }
  });

  test("Budget: a failed first call lets the next one be the first again", async () => {
    const b = new Budget({ capUsd: 1, price });
    const a = await b.reserve(4000);
    expect("id" in a).toBe(true);
    b.settle((a as any).id, null, null);
    const c = await b.reserve(4000);
    expect("id" in c).toBe(true);
    expect(b.estimate(4000)).toBeCloseTo(0.003, 10);
  });
});
