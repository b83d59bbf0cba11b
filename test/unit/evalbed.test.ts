/** The eval bed's assertion language: paths, placeholders, operators, and what a failure says. */
import { describe, expect, test } from "bun:test";
import { check, failureLine, getPath, holds, substitute, table } from "../evalbed-lib";

const R = {
  exit_code: 1,
  verdict: "FAIL",
  summary: { leakage_flags: [{ column: "leak" }, { column: "id" }], holdout: { value: 0.71 }, stages: [{ name: "eda", pathspec: "EdaFlow/3" }], none: null },
};

describe("evalbed", () => {
  test("paths: keys, indexes, [*] maps, missing", () => {
    expect(getPath(R, "summary.leakage_flags[*].column")).toEqual(["leak", "id"]);
    expect(getPath(R, "summary.stages[0].pathspec")).toBe("EdaFlow/3");
    expect(getPath(R, "summary.none")).toBeNull();
    expect(typeof getPath(R, "summary.nope")).toBe("symbol");
    expect(typeof getPath(R, "summary.stages[5].name")).toBe("symbol");
  });
  test("placeholders keep the value's type when they are the whole string", () => {
    const scope = { data: "/x.csv", eda: { pathspec: "EdaFlow/3", summary: { n: 4 } } };
    expect(substitute("{eda.pathspec}", scope)).toBe("EdaFlow/3");
    expect(substitute("{eda.summary.n}", scope)).toBe(4);
    expect(substitute("--from={eda.pathspec} on {data}", scope)).toBe("--from=EdaFlow/3 on /x.csv");
    expect(substitute("{later.pathspec}", scope)).toBe("{later.pathspec}");
  });
  test.each([
    ["==", 1, 1, true], ["==", [1, 2], [1, 2], true], ["==", null, 0, false], ["!=", "a", "b", true],
    [">=", 0.71, 0.7, true], [">=", 0.69, 0.7, false], [">=", "0.9", 0.7, false], ["<", 1, 1, false],
    ["matches", "FeaturesFlow/12", "^FeaturesFlow/\\d+$", true], ["matches", 12, "12", false],
    ["contains", ["leak", "id"], "leak", true], ["contains", ["id"], "leak", false], ["contains", "a leak", "leak", true],
    ["not_contains", ["id"], "leak", true], ["not_contains", ["leak"], "leak", false],
    ["length", [], 0, true], ["length", [1], 0, false], ["length>=", [1, 2], 2, true],
  ] as const)("%s %j %j → %s", (op, found, expected, ok) => {
    expect(holds(op as any, found, expected)).toBe(ok);
  });
  test("a failing assertion names the example, the verb, the JSON path and the value found", () => {
    const c = check("leaky_binary", "eda", { path: "summary.leakage_flags[*].column", op: "contains", value: "refund" }, R, {});
    expect(c.pass).toBe(false);
    expect(failureLine(c)).toBe('FAIL leaky_binary · eda · summary.leakage_flags[*].column contains refund · found ["leak","id"]');
    const m = check("x", "validate", { path: "summary.holdout.rows", op: ">=", value: 10 }, R, {});
    expect(m.pass).toBe(false);
    expect(failureLine(m)).toContain("found (missing)");
    const t = table([c, check("x", "validate", { path: "verdict", op: "==", value: "FAIL" }, R, {})]);
    expect(t[0]).toMatch(/^example\s+verb\s+assertion\s+result$/);
    expect(t[2]).toContain("FAIL (found");
    expect(t[3]).toMatch(/pass$/);
  });
});
