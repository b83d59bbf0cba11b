/**
 * Optimize's Metaflow foreach executor through build/loom on the local datastore: the search's data goes into
 * OptimizeRoundFlow's content-addressed store once and every round's run gets only a reference (key, sha256,
 * size); the round's tasks hold no data bytes in their artifacts, verify the hash they load, and refuse a
 * tampered reference. The heavy steps' @resources are sized from the data object (rows x columns, stored bytes)
 * through Metaflow's Config `loom_resources`: recorded with the run, shown in the summary and the card, and what an
 * Argo template compiled with that config requests. Real runs: 1 ingest + 1 OptimizeFlow (2 rounds) + 2 refused
 * rounds + 1 ValidateFlow; one Argo compile against a local S3 server.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, loom, loomPython, plainMetaflow, rng, startS3Server, tempDir, tempWorkspace } from "../helpers";

/** The card's content: Metaflow embeds it as base64 JSON in the HTML. */
function cardText(path: string): string {
  const html = readFileSync(path, "utf8");
  const m = html.match(/__MF_DATA__\[[^\]]*\] = "([A-Za-z0-9+/=]+)"/);
  return m ? Buffer.from(m[1]!, "base64").toString("utf8") : html;
}

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
let validate: any;
let configs: any;
let dataset = "";

/** A round run through foreach.run_round (as the search runs one) with the given data reference in place of the
 * search's: the error each candidate's fold result records. */
function roundWith(ref: unknown): { errors: string[] } {
  const p = Bun.spawnSync([loomPython(), "-c", `
import json, sys, tempfile
from loom_py.verbs.optimize import foreach, library
ref = json.loads(sys.argv[1])
foreach.stage_data = lambda folds, emit=None: ref  # the tampered reference instead of the search's
code = library.render("linear", "classification", {"C": 1.0}, plan="p", drop=[], seed=0)
res = foreach.run_round([{"id": 1, "code": code}], [{"name": n, "data_dir": "/nonexistent"} for n in ref["folds"]],
                        {"mem_mb": 4096, "parallel": 1}, None, 60.0, lambda *a, **k: None, tempfile.mkdtemp())
print(json.dumps({"errors": [r["error"] for r in res[1]]}))
`, JSON.stringify(ref)], {
    cwd: join(ws, ".loom"),
    env: { ...process.env, PYTHONPATH: join(ROOT, "py"), LOOM_FLOWS_DIR: join(ROOT, "flows"), METAFLOW_USER: "loom",
           METAFLOW_DEFAULT_METADATA: "local", METAFLOW_DEFAULT_DATASTORE: "local", METAFLOW_DATASTORE_SYSROOT_LOCAL: join(ws, ".loom") },
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
  dataset = ing.json.pathspec;
  // a floor from the environment: the sizing is configurable, and the round's launch inherits it
  const r = await loom(["run", "--dataset", ing.json.pathspec, "--metric", "Maximize ROC-AUC", "--target", "y", "--steps", "3", "--parallel", "2",
                        "--executor", "metaflow", "--model-provider", "offline", "--yes", "--json"], { cwd: ws, env: { LOOM_RESOURCES_MIN_MEMORY_MB: "6144" } });
  if (r.code !== 0) throw new Error(r.stdout + r.stderr);
  search = r.json;
  const v = await loom(["validate", "--dataset", dataset, "--target", "y", "--json"], { cwd: ws });
  if (![0, 1].includes(v.code) || !v.json?.pathspec) throw new Error(v.stdout + v.stderr);
  validate = v.json;
  configs = plainMetaflow(ws, `
import json
from metaflow import Flow, Run, namespace
namespace(None)
d = Run("IngestDataset/" + "${dataset}".split("/")[1]).data
print(json.dumps({"search": Run("${search.pathspec}")["start"].task["loom_resources"].data,
                  "validate": Run("${validate.pathspec}")["start"].task["loom_resources"].data,
                  "rounds": [r["candidate"].task["loom_resources"].data for r in Flow("OptimizeRoundFlow")],
                  "rows": d.rows, "columns": d.n_columns}))
`);
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
    train = z.read("0/train.arrow")
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
    expect(wrongHash.errors).toHaveLength(5);
    for (const e of wrongHash.errors) expect(e).toMatch(/^the Metaflow foreach for this round failed \(OptimizeRoundFlow\/\d+\): the round's data does not match its reference \(sha256 [0-9a-f]{12} ≠ [0-9a-f]{12}/);
    const missing = roundWith({ ...ref, key: "0".repeat(40) });
    expect(missing.errors[0]).toContain("the round's data reference names blob 000000000000, which is not in the datastore: refused");
  }, 120_000);
});

describe("@resources sized from the data, recorded with the run", () => {
  test("the search's step: from the data object's rows x columns, the floor from the environment, in the summary and the card", () => {
    const res = search.summary.resources;
    expect(res.basis).toMatchObject({ rows: configs.rows, columns: configs.columns, parallel: 2, folds: 5, executor: "metaflow" });
    expect(res.basis.stored_bytes).toBeGreaterThan(1000);
    expect(res.cpu).toBe(1); // the metaflow executor: the fits run in the round's tasks
    expect(res.memory).toBe(6144); // LOOM_RESOURCES_MIN_MEMORY_MB above the estimate for 400 rows
    expect(configs.search).toEqual(res); // Metaflow's Config artifact: what @resources read
    expect(cardText(search.card_path)).toContain("remote compute asked for: 1 cpu, 6144 MiB (1536 MiB + 4 x");
  });

  test("each round's candidate tasks: sized from the staged blob and the folds they fit at once", () => {
    expect(configs.rounds.length).toBe(rounds.length);
    for (const c of configs.rounds) {
      expect(c.cpu).toBe(5);
      expect(c.memory).toBe(6144);
      expect(c.basis).toMatchObject({ stored_bytes: rounds[0].ref.bytes, folds: 5 });
    }
  });

  test("validate's fit step: from the same data object, without the override it falls to the default floor", () => {
    const res = validate.summary.resources;
    expect(res.basis).toMatchObject({ rows: configs.rows, columns: configs.columns });
    expect([res.cpu, res.memory]).toEqual([1, 4096]);
    expect(configs.validate).toEqual(res);
    expect(cardText(validate.card_path)).toContain("remote compute asked for: 1 cpu, 4096 MiB");
  });
});

test("an Argo template compiled with the loom_resources config requests those resources (scaleout.test.ts checks the default)", async () => {
  const server = await startS3Server("loom");
  try {
    const port = server.port;
    const wsDir = join(tempDir("loom-argo-"), ".loom");
    mkdirSync(wsDir, { recursive: true });
    const compile = (extra: string[]) => {
      const p = Bun.spawnSync([loomPython(), join(ROOT, "flows", "validate_flow.py"), "--no-pylint", ...extra, "argo-workflows", "create", "--only-json"], {
        cwd: wsDir,
        env: {
          ...process.env, METAFLOW_HOME: tempDir("loom-mfhome-"), METAFLOW_DEFAULT_DATASTORE: "s3", METAFLOW_DATASTORE_SYSROOT_S3: "s3://loom/argo-sized",
          METAFLOW_S3_ENDPOINT_URL: `http://127.0.0.1:${port}`, AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_DEFAULT_REGION: "us-east-1",
          METAFLOW_USER: "loom", METAFLOW_DEFAULT_METADATA: "local", METAFLOW_DATASTORE_SYSROOT_LOCAL: wsDir,
          METAFLOW_KUBERNETES_CONTAINER_IMAGE: "registry.example/loom-runtime:0.1", PYTHONPATH: join(ROOT, "py"),
        },
        stdout: "pipe",
        stderr: "pipe",
      });
      if (p.exitCode !== 0) throw new Error(p.stderr.toString().slice(-2000));
      const out = p.stdout.toString();
      const tpl = JSON.parse(out.slice(out.indexOf("{")));
      return tpl.spec.templates.find((t: { name: string }) => t.name === "start").container.resources.requests;
    };
    // what validate's prepare hands the flow for this workspace's 400-row data object, then a large one
    expect(compile(["--config-value", "loom_resources", JSON.stringify(validate.summary.resources)])).toMatchObject({ cpu: "1.0", memory: "4096.0M" });
    expect(compile(["--config-value", "loom_resources", JSON.stringify({ cpu: 2, memory: 7168, basis: { rows: 2000000, columns: 50 }, rule: "t" })]))
      .toMatchObject({ cpu: "2.0", memory: "7168.0M" });
  } finally {
    server.stop();
  }
}, 120_000);
