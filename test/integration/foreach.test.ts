/**
 * Optimize's Metaflow foreach executor through build/loom on the local datastore: the search's data goes into
 * OptimizeRoundFlow's content-addressed store once and every round's run gets only a reference (key, sha256,
 * size); the round's tasks hold no data bytes in their artifacts, verify the hash they load, and refuse a
 * tampered reference or altered bytes. Real runs: 1 ingest + 1 OptimizeFlow (2 rounds) + 2 refused rounds.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, loom, loomPython, plainMetaflow, rng, tempWorkspace } from "../helpers";

function dataCsv(n: number): string {
  const r = rng(21);
  const rows = ["x1,x2,x3,region,y"];
  for (let i = 0; i < n; i++) {
    const x1 = r() * 2 - 1, x2 = r() * 2 - 1, x3 = r();
    const region = ["north", "south", "east"][Math.floor(r() * 3)]!;
    rows.push(`${x1.toFixed(4)},${x2.toFixed(4)},${x3.toFixed(4)},${region},${x1 + 0.6 * x2 + (r() - 0.5) > 0 ? 1 : 0}`);
  }
  return rows.join("\n") + "\n";
}

const ws = tempWorkspace();
let search: any;
let rounds: any;

/** A round run started by hand from the flow file (as the search starts it), with the given data reference. */
function roundWith(ref: unknown): { code: number; out: string } {
  const p = Bun.spawnSync([loomPython(), "-c", `
import json, os, pickle, subprocess, sys, tempfile
d = tempfile.mkdtemp()
from loom_py.verbs.optimize import library
cand = {"id": 1, "code": library.render("linear", "classification", {"C": 1.0}, plan="p", drop=[], seed=0), "timeout": 60}
pickle.dump({"candidates": [cand], "limits": {"mem_mb": 4096}}, open(os.path.join(d, "p.pkl"), "wb"))
p = subprocess.run([sys.executable, os.path.join(${JSON.stringify(ROOT)}, "flows", "optimize_round_flow.py"), "--no-pylint", "run",
                    "--payload", os.path.join(d, "p.pkl"), "--data_ref", sys.argv[1]], capture_output=True, text=True)
print(json.dumps({"code": p.returncode, "out": p.stdout + p.stderr}))
`, JSON.stringify(ref)], {
    cwd: join(ws, ".loom"),
    env: { ...process.env, PYTHONPATH: join(ROOT, "py"), METAFLOW_USER: "loom", METAFLOW_DEFAULT_METADATA: "local",
           METAFLOW_DEFAULT_DATASTORE: "local", METAFLOW_DATASTORE_SYSROOT_LOCAL: join(ws, ".loom") },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (p.exitCode !== 0) throw new Error(p.stderr.toString().slice(-2000));
  return JSON.parse(p.stdout.toString().trim().split("\n").pop()!);
}

beforeAll(async () => {
  writeFileSync(join(ws, "data.csv"), dataCsv(400));
  const ing = await loom(["ingest", "--source", "data.csv", "--json"], { cwd: ws });
  expect(ing.code).toBe(0);
  const r = await loom(["run", "--dataset", ing.json.pathspec, "--metric", "Maximize ROC-AUC", "--target", "y", "--steps", "3", "--parallel", "2",
                        "--executor", "metaflow", "--model-provider", "offline", "--yes", "--json"], { cwd: ws });
  if (r.code !== 0) throw new Error(r.stdout + r.stderr);
  search = r.json;
  rounds = plainMetaflow(ws, `
import hashlib, io, json, os, pickle, zipfile
from metaflow import Flow, namespace
namespace(None)
out = []
for r in sorted(Flow("OptimizeRoundFlow"), key=lambda r: r.created_at):
    ref = json.loads(r["start"].task["data_ref"].data)
    blob_path = os.path.join(os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"], ".metaflow", "OptimizeRoundFlow", "data", ref["key"][:2], ref["key"])
    blob = open(blob_path, "rb").read()
    z = zipfile.ZipFile(io.BytesIO(blob))
    train = z.read("0/train.parquet")
    arts = {}
    for step in ("start", "candidate"):
        for t in r[step]:
            for a in t:
                v = a.data
                raw = v if isinstance(v, bytes) else pickle.dumps(v)
                arts[f"{step}/{t.id}/{a.id}"] = {"size": len(raw), "has_data": train in raw}
    out.append({"ref": ref, "blob_sha256": hashlib.sha256(blob).hexdigest(), "blob_sha1": hashlib.sha1(blob).hexdigest(),
                "members": len(z.namelist()), "train_bytes": len(train), "arts": arts,
                "verified": sorted({v.get("data_sha256") for v in r.data.results.values()}), "tasks": len(list(r["candidate"]))})
print(json.dumps(out))
`);
}, 300_000);

describe("--executor metaflow passes the search's data by reference", () => {
  test("two rounds, one data blob: every round's reference names the same key, and it hashes to the reference", () => {
    expect(search.summary.nodes.total).toBeGreaterThanOrEqual(3);
    expect(rounds.length).toBeGreaterThanOrEqual(2);
    const keys = new Set(rounds.map((r: any) => r.ref.key));
    expect(keys.size).toBe(1);
    for (const r of rounds) {
      expect(r.blob_sha1).toBe(r.ref.key);
      expect(r.blob_sha256).toBe(r.ref.sha256);
      expect(r.ref.folds).toEqual(["fold-1", "fold-2", "fold-3", "fold-4", "fold-5"]); // 400 rows: 5-fold CV
      expect(r.members).toBe(5 * 4);
    }
  });

  test("no artifact of a round's start or candidate tasks holds the data's bytes; each is far smaller than the data", () => {
    for (const r of rounds) {
      expect(r.train_bytes).toBeGreaterThan(2000);
      const arts = Object.entries(r.arts) as [string, { size: number; has_data: boolean }][];
      expect(arts.some(([k]) => k.endsWith("/data_ref"))).toBe(true);
      for (const [k, a] of arts) {
        expect({ k, has: a.has_data }).toEqual({ k, has: false });
        if (k.endsWith("/data_ref") || k.endsWith("/ref")) expect(a.size).toBeLessThan(1000);
      }
    }
  });

  test("each candidate task reports the sha256 it verified: the reference's", () => {
    for (const r of rounds) {
      expect(r.tasks).toBeGreaterThanOrEqual(1);
      expect(r.verified).toEqual([r.ref.sha256]);
    }
  });

  test("a tampered reference is refused: another sha256 for the stored key, a key not in the store", () => {
    const ref = rounds[0].ref;
    const wrongHash = roundWith({ ...ref, sha256: ref.sha256.replace(/^./, (c: string) => (c === "0" ? "1" : "0")) });
    expect(wrongHash.code).not.toBe(0);
    expect(wrongHash.out).toContain("the round's data does not match its reference");
    const missing = roundWith({ ...ref, key: "0".repeat(40) });
    expect(missing.code).not.toBe(0);
    expect(missing.out).toContain("which is not in the datastore: refused");
  }, 120_000);
});
