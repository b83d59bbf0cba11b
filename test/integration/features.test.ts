/**
 * features end to end: the eda → features gate-assert. `--from EdaFlow/N` is asserted (successful, an
 * EdaFlow run, same data object) and its flagged columns are dropped first; the output is a new data
 * object that `loom datasets` lists and `loom eda` accepts; the input object is untouched.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { expectNoTraceback, loom, loomPython, plainMetaflow, ROOT, tempWorkspace } from "../helpers";
import { cardText, makeCsvs } from "./eda_helpers";

describe("features", () => {
  const ws = tempWorkspace();
  const ds: Record<string, string> = {};
  let eda: any, feats: any, own: any, edaOfFeats: any;

  beforeAll(async () => {
    makeCsvs(ws);
    for (const name of ["planted", "clean"]) {
      const r = await loom(["ingest", "--source", `${name}.csv`, "--json"], { cwd: ws });
      if (r.code !== 0) throw new Error(r.stdout + r.stderr);
      ds[name] = r.json.pathspec;
    }
    eda = (await loom(["eda", "--dataset", ds.planted, "--target", "target", "--json"], { cwd: ws })).json;
    const f = await loom(["features", "--dataset", ds.planted, "--from", eda.pathspec, "--json"], { cwd: ws });
    feats = { ...f.json, stderr: f.stderr, code: f.code };
    own = await loom(["features", "--dataset", ds.clean, "--target", "target", "--recipe", "standard", "--json"], { cwd: ws });
    edaOfFeats = await loom(["eda", "--dataset", feats.pathspec, "--target", "target", "--json"], { cwd: ws });
  }, 120_000);

  test("asserts the eda run, drops its flagged columns first, records them with eda's reasons", () => {
    expect(feats.code).toBe(0);
    expect(feats.tier).toBe("workspace-write");
    expect(feats.stderr).toContain("workspace-write");
    expect(feats.pathspec).toMatch(/^FeaturesFlow\/\d+$/);
    const s = feats.summary;
    const edaFlags = Object.fromEntries(eda.summary.leakage_flags.map((f: any) => [f.column, f.reason]));
    expect(Object.fromEntries(s.dropped_for_leakage.map((f: any) => [f.column, f.reason]))).toEqual(edaFlags);
    expect(Object.keys(edaFlags).sort()).toEqual(["closed_at", "noisy_copy", "row_id", "score_exp"]);
    expect(s.leakage_checked_by).toBe("eda");
    expect(s.target).toBe("target"); // taken from the eda run
    const used = new Set(s.manifest.flatMap((m: any) => m.inputs));
    for (const c of Object.keys(edaFlags)) expect(used.has(c)).toBe(false);
    expect(s.manifest.map((m: any) => m.column)).toEqual(s.schema.map((f: any) => f.name));
    expect(s.lineage).toMatchObject({ verb: "features", inputs: [ds.planted, eda.pathspec] });
    expect(feats.inputs).toEqual([ds.planted, eda.pathspec]);
    expect(cardText(feats.card_path)).toContain("Feature manifest");
  });

  test("the output is a data object: datasets lists it, eda profiles it (no leaks left), the input is untouched", async () => {
    const list = await loom(["datasets", "--json"], { cwd: ws });
    expect(list.code).toBe(0);
    expect(JSON.stringify(list.json.summary)).toContain(feats.pathspec);
    expect(edaOfFeats.code).toBe(0);
    expect(edaOfFeats.json.summary.shape).toEqual({ rows: feats.summary.rows, columns: feats.summary.columns });
    expect(edaOfFeats.json.summary.leakage_flags).toEqual([]);
    const got = plainMetaflow(ws, `import json
from metaflow import Run, namespace
namespace(None)
i, f = Run("${ds.planted}"), Run("${feats.pathspec}")
print(json.dumps({"in_cols": i.data.n_columns, "hash": i.data.content_hash, "lineage": f.data.lineage,
  "manifest": len(f.data.feature_manifest), "n": f.data.n_columns}))`);
    expect(got.in_cols).toBe(13);
    expect(got.lineage.inputs).toEqual([ds.planted, eda.pathspec]);
    expect(got.manifest).toBe(got.n);
  });

  test("without --from it runs the leakage checks itself and says so (standard recipe)", () => {
    expect(own.code).toBe(0);
    const s = own.json.summary;
    expect(s.leakage_checked_by).toMatch(/^features/);
    expect(s.dropped_for_leakage).toEqual([]);
    expect(own.json.messages.join(" ")).toContain("no --from eda run");
    const cols = s.schema.map((f: any) => f.name);
    expect(cols).toContain("visits__missing");
    expect(cols).toContain("city__freq");
    expect(cols).toContain("income__log1p");
  });

  test("--from pointing at a run of another flow: exit 2, one line", async () => {
    const r = await loom(["features", "--dataset", ds.planted, "--from", ds.clean], { cwd: ws });
    expect(r.code).toBe(2);
    expectNoTraceback(r);
    expect(r.stderr).toContain("EdaFlow");
    expect(r.stderr.trim().split("\n").filter((l) => l.trim() && !l.includes("workspace-write")).length).toBe(1);
  });

  test("--from an eda run of another data object: exit 2 with the command to run", async () => {
    const r = await loom(["features", "--dataset", ds.clean, "--from", eda.pathspec, "--json"], { cwd: ws });
    expect(r.code).toBe(2);
    expect(r.json.message ?? JSON.stringify(r.json)).toContain(`loom eda --dataset ${ds.clean}`);
  });

  test("--from a failed eda run: exit 2", async () => {
    // a real failed EdaFlow run: the flow started directly on a data object that does not exist
    const p = Bun.spawnSync([loomPython(), join(ROOT, "flows", "eda_flow.py"), "--quiet", "--no-pylint", "run", "--dataset", "IngestDataset/999"], {
      cwd: join(ws, ".loom"),
      env: { ...process.env, PYTHONPATH: join(ROOT, "py"), METAFLOW_USER: "loom", METAFLOW_DEFAULT_METADATA: "local", METAFLOW_DEFAULT_DATASTORE: "local",
        METAFLOW_DATASTORE_SYSROOT_LOCAL: join(ws, ".loom") },
      stdout: "pipe", stderr: "pipe",
    });
    expect(p.exitCode).not.toBe(0);
    const failed = plainMetaflow(ws, `import json
from metaflow import Flow, namespace
namespace(None)
print(json.dumps([r.pathspec for r in Flow("EdaFlow") if not r.successful]))`);
    expect(failed.length).toBe(1);
    const r = await loom(["features", "--dataset", ds.planted, "--from", failed[0]], { cwd: ws });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("did not finish successfully");
    expectNoTraceback(r);
  });

  test("unknown target and unknown recipe: exit 2", async () => {
    const a = await loom(["features", "--dataset", ds.planted, "--target", "nope"], { cwd: ws });
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("'nope' is not a column");
    const b = await loom(["features", "--dataset", ds.planted, "--recipe", "fancy"], { cwd: ws });
    expect(b.code).toBe(2);
    expectNoTraceback(b);
  });
});
