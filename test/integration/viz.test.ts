/**
 * viz end to end: plots from a data object (PNG files + card images, lineage named) and the leaderboard
 * of any run that holds a `leaderboard` artifact.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expectNoTraceback, loom, loomPython, tempWorkspace } from "../helpers";
import { cardText, makeCsvs } from "./eda_helpers";

const BOARD_FLOW = `
from metaflow import FlowSpec, step
class BoardFlow(FlowSpec):
    @step
    def start(self):
        self.leaderboard = [{"node": i, "score": s, "model": m, "status": st} for i, (s, m, st) in enumerate(
            [(0.81, "lgbm", "ok"), (0.86, "hgb", "ok"), (None, "broken", "failed"), (0.74, "logreg", "ok")])]
        self.metric_spec = {"metric": "rmse", "label": "RMSE", "direction": "minimize"}
        self.next(self.end)
    @step
    def end(self):
        pass
if __name__ == "__main__":
    BoardFlow()
`;

describe("viz", () => {
  const ws = tempWorkspace();
  let ds = "";
  let plots: any, board: any, boardRun = "";

  beforeAll(async () => {
    makeCsvs(ws);
    const r = await loom(["ingest", "--source", "planted.csv", "--json"], { cwd: ws });
    ds = r.json.pathspec;
    plots = await loom(["viz", "--dataset", ds, "--target", "target", "--json"], { cwd: ws });
    writeFileSync(join(ws, "board_flow.py"), BOARD_FLOW);
    const p = Bun.spawnSync([loomPython(), join(ws, "board_flow.py"), "--quiet", "--no-pylint", "run", "--run-id-file", join(ws, "rid")], {
      cwd: join(ws, ".loom"),
      env: { ...process.env, METAFLOW_USER: "loom", METAFLOW_DEFAULT_METADATA: "local", METAFLOW_DEFAULT_DATASTORE: "local",
        METAFLOW_DATASTORE_SYSROOT_LOCAL: join(ws, ".loom") },
      stdout: "pipe", stderr: "pipe",
    });
    if (p.exitCode !== 0) throw new Error(p.stderr.toString());
    boardRun = `BoardFlow/${Bun.file(join(ws, "rid")).size ? await Bun.file(join(ws, "rid")).text() : ""}`.trim();
    board = await loom(["viz", "--run", boardRun, "--json"], { cwd: ws });
  }, 120_000);

  test("plots from a data object: PNGs in the workspace, listed in the summary, lineage named", () => {
    expect(plots.code).toBe(0);
    const j = plots.json;
    expect(j.tier).toBe("read-only");
    expect(j.pathspec).toMatch(/^VizFlow\/\d+$/);
    expect(j.summary.kinds).toEqual(["distributions", "correlation", "target"]);
    const runId = j.pathspec.split("/")[1];
    expect(j.summary.output_dir).toBe(join(ws, ".loom", "artifacts", "viz", runId));
    expect(j.summary.plots.map((p: any) => p.name)).toEqual(["distributions_1", "correlation", "target", "features_vs_target"]);
    for (const p of j.summary.plots) {
      expect(existsSync(p.path)).toBe(true);
      expect(statSync(p.path).size).toBeGreaterThan(5000);
    }
    expect(j.summary.lineage.dataset).toBe(ds);
    const card = cardText(j.card_path);
    expect(card).toContain(ds);
    expect((card.match(/"type": ?"image"/g) ?? []).length).toBe(4);
  });

  test("the leaderboard of any run holding one, best first in the metric's direction", () => {
    expect(board.code).toBe(0);
    const s = board.json.summary;
    expect(s.kinds).toEqual(["leaderboard"]);
    expect(s.lineage.run).toBe(boardRun);
    expect(s.best).toMatchObject({ node: 3, score: 0.74, model: "logreg" }); // RMSE: lower is better
    expect(s.metric).toBe("RMSE");
    expect(s.order).toBe("lower score first");
    expect(s.entries).toBe(4);
    expect(existsSync(s.plots[0].path)).toBe(true);
    expect(cardText(board.json.card_path)).toContain(boardRun);
  });

  const bad: [string, string[], RegExp][] = [
    ["both --dataset and --run", ["--dataset", "IngestDataset/1", "--run", "X/1"], /exactly one/],
    ["neither", [], /exactly one/],
    ["leaderboard of a data object", ["--dataset", "__DS__", "--kind", "leaderboard"], /leaderboard/],
    ["unknown target", ["--dataset", "__DS__", "--kind", "target", "--target", "nope"], /'nope' is not a column/],
    ["a run without a leaderboard", ["--run", "__DS__", "--kind", "leaderboard"], /no leaderboard/],
  ];
  test.each(bad)("%s: exit 2, no traceback", async (_n, args, msg) => {
    const r = await loom(["viz", ...args.map((a) => (a === "__DS__" ? ds : a))], { cwd: ws });
    expect(r.code).toBe(2);
    expectNoTraceback(r);
    expect(r.stderr).toMatch(msg);
  });
});
