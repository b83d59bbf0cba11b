/**
 * Inputs that used to end in an internal error (issue 21), through build/loom in one workspace:
 * - a Parquet file with nested (list/struct) columns and ±inf in every numeric column: validate and run
 *   finish, naming the columns left out and counting the infinities; viz plots it;
 * - a target with no values (all missing or ±inf): validate, run and viz refuse it, exit 2, one line;
 *   so does validate when every other column is nested;
 * - a FIFO, a symlink to /dev/zero and one endless line as --source: named for what they are, exit 2,
 *   no run (and no hang on the pipe);
 * - a table of 1,000 columns: viz draws a bounded number of figures, the rest counted in a note.
 * Seven real runs in all (three ingests); every refusal is made before a run exists.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expectNoTraceback, loom, loomPython, tempWorkspace } from "../helpers";

type R = Awaited<ReturnType<typeof loom>>;

const GEN = `
import sys, numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
d = sys.argv[1]
r = np.random.default_rng(0); n = 400
x = r.normal(size=n); z = r.normal(size=n)
y = (x + 0.5 * r.normal(size=n) > 0).astype(float)
x[::9] = np.inf; z[::13] = -np.inf; y[::50] = np.inf          # ±inf in every numeric column
empty = np.where(np.arange(n) % 2, np.nan, np.inf)            # a column with no value at all
pq.write_table(pa.table({"x": x, "z": z, "empty": empty,
    "tags": [["a", "b", "c"][: i % 3] for i in range(n)],       # a list column
    "meta": [{"k": i % 4, "s": "v"} for i in range(n)],          # a struct column
    "y": y}), f"{d}/nested.parquet")
pq.write_table(pa.table({"y": y, "tags": [["a"]] * n, "meta": [{"k": 1}] * n}), f"{d}/only_nested.parquet")
W = 1000
m = r.normal(size=(200, W)).round(3)
w = pd.DataFrame(m, columns=[f"f{i}" for i in range(W)])
w["y"] = (w.f500 + w.f999 > 0).astype(int)
w.to_parquet(f"{d}/wide.parquet", index=False)
`;

/** The runs of one flow in the workspace's datastore. */
function runsOf(ws: string, flow: string): string[] {
  const d = join(ws, ".loom", ".metaflow", flow);
  return existsSync(d) ? readdirSync(d).filter((n) => /^\d+$/.test(n)) : [];
}

function oneLine(r: R): string {
  const lines = r.stderr.trim().split("\n").filter((l) => l.trim());
  expect(lines.length).toBe(1);
  return lines[0]!;
}

describe("inputs that used to crash", () => {
  const ws = tempWorkspace();
  let nested = "", wide = "", onlyNested = "";
  let val: R, run: R, viz: R, vizWide: R;

  beforeAll(async () => {
    const p = Bun.spawnSync([loomPython(), "-c", GEN, ws], { stdout: "pipe", stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(p.stderr.toString());
    const ds: string[] = [];
    for (const file of ["nested.parquet", "wide.parquet", "only_nested.parquet"]) {
      const r = await loom(["ingest", "--source", file, "--json"], { cwd: ws });
      if (r.code !== 0) throw new Error(r.stdout + r.stderr);
      ds.push(r.json.pathspec);
    }
    [nested, wide, onlyNested] = ds as [string, string, string];
    [val, run, viz, vizWide] = await Promise.all([
      loom(["validate", "--dataset", nested, "--target", "y", "--folds", "3", "--json"], { cwd: ws }),
      loom(["run", "--dataset", nested, "--target", "y", "--metric", "Maximize ROC-AUC", "--steps", "1",
        "--model-provider", "offline", "--json"], { cwd: ws }),
      loom(["viz", "--dataset", nested, "--target", "y", "--json"], { cwd: ws }),
      loom(["viz", "--dataset", wide, "--target", "y", "--json"], { cwd: ws }),
    ]);
  }, 240_000);

  test("validate on nested columns and ±inf: a verdict, the columns left out and the infinities named", () => {
    expectNoTraceback(val);
    expect([0, 1]).toContain(val.code);
    expect(["PASS", "FAIL"]).toContain(val.json.summary.verdict);
    expect(val.json.summary.holdout.value).toBeGreaterThan(0.6); // x carries the signal
    const notes = val.json.messages.join("\n");
    expect(notes).toMatch(/left out 2 nested \(list\/struct\) column\(s\) a model cannot take as they are: tags, meta/);
    // x: 400/9 → 45, z: 400/13 → 31, y: 400/50 → 8, empty: 200
    expect(notes).toMatch(/treated 284 ±inf value\(s\) as missing: empty \(200\), x \(45\), z \(31\), y \(8\)/);
    expect(notes).toMatch(/8 rows without a target value were left out/);
  });

  test("run on the same data: the search scores a node and says what it left out", () => {
    expectNoTraceback(run);
    expect(run.code).toBe(0);
    expect(run.json.summary.best.score).toBeGreaterThan(0.6);
    expect(run.json.summary.data_notes.join("\n")).toMatch(/left out 2 nested .*: tags, meta/);
    expect(run.json.messages.join("\n")).toMatch(/treated 284 ±inf value\(s\) as missing/);
  });

  test("viz on the same data: every plot drawn, the infinities counted", () => {
    expectNoTraceback(viz);
    expect(viz.code).toBe(0);
    expect(viz.json.summary.plots.map((p: any) => p.name)).toEqual(["distributions_1", "correlation", "target", "features_vs_target"]);
    expect(viz.json.summary.notes.join("\n")).toMatch(/treated 284 ±inf value\(s\) as missing/);
  });

  test("a table of 1,000 columns: two distribution figures of the most informative, the rest counted", () => {
    expectNoTraceback(vizWide);
    expect(vizWide.code).toBe(0);
    const names = vizWide.json.summary.plots.map((p: any) => p.name);
    expect(names).toEqual(["distributions_1", "distributions_2", "correlation", "target", "features_vs_target"]);
    const notes = vizWide.json.messages.join("\n");
    expect(notes).toMatch(/distributions: plotted the 48 most informative of 1000 columns; 952 left out/);
    expect(notes).toMatch(/features vs target: the 12 columns most associated with 'y' of 1000/);
  });

  const emptyTarget: [string, string[]][] = [
    ["validate", ["validate", "--dataset", "__DS__", "--target", "empty"]],
    ["run", ["run", "--dataset", "__DS__", "--target", "empty", "--metric", "Minimize RMSE", "--model-provider", "offline"]],
    ["viz", ["viz", "--dataset", "__DS__", "--target", "empty"]],
  ];
  test.each(emptyTarget)("%s with a target of no values: exit 2, one line, no run", async (verb, args) => {
    const flow = { validate: "ValidateFlow", run: "OptimizeFlow", viz: "VizFlow" }[verb]!;
    const before = runsOf(ws, flow).length;
    const r = await loom(args.map((a) => (a === "__DS__" ? nested : a)), { cwd: ws });
    expect(r.code).toBe(2);
    expectNoTraceback(r);
    expect(oneLine(r)).toMatch(/target 'empty' has no values \(all 400 rows missing, 200 of them ±inf\)/);
    expect(runsOf(ws, flow).length).toBe(before);
  }, 60_000);

  test("validate where every column but the target is nested: exit 2, one line, no run", async () => {
    const before = runsOf(ws, "ValidateFlow").length;
    const r = await loom(["validate", "--dataset", onlyNested, "--target", "y"], { cwd: ws });
    expect(r.code).toBe(2);
    expectNoTraceback(r);
    expect(oneLine(r)).toMatch(/every column but the target 'y' is nested \(list\/struct\): tags, meta; nothing is left for a model/);
    expect(runsOf(ws, "ValidateFlow").length).toBe(before);
  }, 60_000);

  const special: [string, (d: string) => string, RegExp][] = [
    ["a FIFO", (d) => {
      const p = join(d, "pipe.csv");
      Bun.spawnSync(["mkfifo", p]);
      return p;
    }, /pipe\.csv is a FIFO \(named pipe\), not a file/],
    ["a symlink to /dev/zero", (d) => {
      const p = join(d, "zero.csv");
      symlinkSync("/dev/zero", p);
      return p;
    }, /zero\.csv is a character device \(a symlink to \/dev\/zero\), not a file/],
    ["a single line of 20 MB", (d) => {
      const p = join(d, "line.csv");
      writeFileSync(p, "a,".repeat(10_000_000));
      return p;
    }, /line\.csv is a single line of 20 MB with no line breaks/],
  ];
  test.each(special)("ingest of %s: named for what it is, exit 2, no run, no hang", async (_n, make, msg) => {
    const before = runsOf(ws, "IngestDataset").length;
    const r = await loom(["ingest", "--source", make(ws)], { cwd: ws });
    expect(r.code).toBe(2);
    expectNoTraceback(r);
    expect(oneLine(r)).toMatch(msg);
    expect(runsOf(ws, "IngestDataset").length).toBe(before);
  }, 30_000);
});
