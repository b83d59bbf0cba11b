import { describe, expect, test } from "bun:test";
import { age, runsTable } from "../../src/verbs/runs";

const row = (pathspec: string, status: any, verdict: string | null, label: string | null, s: number) => ({
  pathspec, flow: pathspec.split("/")[0]!, status, verdict, result: null, label, created: null, age_seconds: s, why: null,
});
const rows = [
  row("ValidateFlow/1796124963625055", "succeeded", "FAIL", "churn-features-minimal", 42),
  row("OptimizeFlow/1796124924776914", "interrupted", null, "churn", 3700),
  row("IngestDataset/1796124914791612", "never_finished", null, null, 200000),
];

describe("loom runs' table", () => {
  test("ages as people read them", () => {
    expect([age(5), age(61), age(3700), age(200000), age(null)]).toEqual(["5s", "1m", "1h", "2d", "?"]);
  });
  test("wide: every column; narrow: the label is cut, then left out, then the verdict; pathspecs never cut", () => {
    const wide = runsTable(rows, 200);
    expect(wide[0]).toMatch(/^run\s+status\s+verdict\s+label\s+age$/);
    expect(wide[1]).toContain("churn-features-minimal");
    expect(wide[3]).toContain("never finished");
    for (const w of [80, 70, 60, 55]) {
      const t = runsTable(rows, w);
      for (const l of t) expect(l.length, `${w}: ${l}`).toBeLessThanOrEqual(w);
      for (const r of rows) expect(t.join("\n")).toContain(r.pathspec);
    }
    expect(runsTable(rows, 75)[1]).toContain("…"); // the label cut to fit
    expect(runsTable(rows, 60)[0]).not.toContain("label");
    expect(runsTable(rows, 50)[0]).not.toContain("verdict"); // (narrower than a pathspec and a status: they stay whole)
  });
});
