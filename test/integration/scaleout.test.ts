/**
 * Scale-out through build/loom: a fresh workspace configured for an S3 datastore (Metaflow's own variables,
 * against a local S3-compatible server on loopback: test/fixtures/s3-server.py) runs the happy path
 * ingest → eda → features → run (offline, --executor metaflow) → validate → report; every artifact and card is
 * read back through the Client API from a directory outside the workspace, and nothing but metadata lands in
 * the local datastore. Then, with the files those flows wrote on this machine removed (a remote task writes
 * them in its container) and from a directory outside the workspace, the verbs that read runs: ops (health,
 * leaderboard), collab (a bundle from the S3-stored cards), deploy's PLAN, viz, and pipeline --deploy-to argo
 * (Metaflow's Argo Workflows template, no cluster). Then the files those runs wrote are removed here as well
 * (deploy's stage, collab's bundle, viz's PNGs; the report's model card already was): `deploy --apply` in a
 * real pty, `collab --send` and `loom open` bring them back from the runs' artifacts (runtime/wsfiles.py) with
 * equal sha256s. Then the remote-compute preflights: one line, exit 2, no
 * run, before the gate.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { LOOM, ROOT, expectNoTraceback, loom, loomPython, rng, startS3Server, tempDir, tempWorkspace } from "../helpers";

const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
/** every file under a directory with its sha256 (relative paths) */
const hashes = (dir: string) => Object.fromEntries(walk(dir).sort().map((f) => [f, sha(join(dir, f))]));

type R = Awaited<ReturnType<typeof loom>>;

function csv(n: number): string {
  const r = rng(16);
  const rows = ["a,b,g,y"];
  for (let i = 0; i < n; i++) {
    const a = r() * 2 - 1;
    const b = r() * 2 - 1;
    rows.push(`${a.toFixed(4)},${b.toFixed(4)},${i % 2 ? "u" : "v"},${a + 0.5 * b + (r() - 0.5) * 0.8 > 0 ? 1 : 0}`);
  }
  return rows.join("\n") + "\n";
}

/** A small event log for train's next-event objective: 100 users × 20 events over 20 types. */
function events(): string {
  const r = rng(7);
  const rows = ["user_id,ts,event"];
  for (let u = 0; u < 100; u++) {
    let e = Math.floor(r() * 20);
    for (let t = 0; t < 20; t++) {
      rows.push(`u${u},2024-01-01T${String(Math.floor(t / 6)).padStart(2, "0")}:${String((t * 10) % 60).padStart(2, "0")}:${String(u % 60).padStart(2, "0")}Z,e${e}`);
      e = r() < 0.8 ? (e * 3 + 1) % 20 : Math.floor(r() * 20);
    }
  }
  return rows.join("\n") + "\n";
}

/** every file under a directory (relative paths) */
function walk(dir: string, base = dir): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p, base) : [p.slice(base.length + 1)];
  });
}

let server: Awaited<ReturnType<typeof startS3Server>> | null = null;
let port = 0;
const mfHome = tempDir("loom-mfhome-"); // no user profile leaks in
const s3env = (prefix: string): Record<string, string> => ({
  METAFLOW_HOME: mfHome,
  METAFLOW_DEFAULT_DATASTORE: "s3",
  METAFLOW_DATASTORE_SYSROOT_S3: `s3://loom/${prefix}`,
  METAFLOW_S3_ENDPOINT_URL: `http://127.0.0.1:${port}`,
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
  AWS_DEFAULT_REGION: "us-east-1",
});

beforeAll(async () => {
  server = await startS3Server("loom");
  port = server.port;
}, 60_000);

afterAll(() => server?.stop());

/** Python with plain Metaflow, from a directory outside any workspace, pointed at the S3 datastore. */
function clientFrom(cwd: string, wsRoot: string, env: Record<string, string>, code: string): any {
  const p = Bun.spawnSync([loomPython(), "-c", code], {
    cwd,
    env: { ...process.env, ...env, METAFLOW_USER: "someone-else", METAFLOW_DEFAULT_METADATA: "local", METAFLOW_DATASTORE_SYSROOT_LOCAL: join(wsRoot, ".loom") },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (p.exitCode !== 0) throw new Error(`python failed: ${p.stderr.toString().slice(-2000)}`);
  return JSON.parse(p.stdout.toString().trim().split("\n").pop()!);
}

describe("the happy path on an S3 datastore", () => {
  const ws = tempWorkspace();
  let env: Record<string, string>;
  let ingest: R, eda: R, features: R, run: R, validate: R, report: R, datasets: R, doctor: R;
  // read back from elsewhere, with the launcher's own files gone
  let health: R, board: R, collab: R, deploy: R, viz: R, argo: R, evIngest: R, train: R;
  // the files those runs wrote, removed (a remote task leaves them in its container) and brought back from the datastore
  let reportMd = "", stageBefore: Record<string, string> = {}, bundleBefore = "", pngBefore: string[] = [];
  let apply: { code: number; asked: boolean; output: string }, send: { code: number; asked: boolean; output: string };
  let openReport: R, openViz: R, sentSha = "";
  const cardHtml: Record<string, string> = {};
  const elsewhere = tempDir("loom-elsewhere-");

  beforeAll(async () => {
    env = s3env("happy");
    writeFileSync(join(ws, "data.csv"), csv(300));
    writeFileSync(join(ws, "events.csv"), events());
    const go = async (args: string[], ok = [0]) => {
      const r = await loom([...args, "--json"], { cwd: ws, env });
      if (!ok.includes(r.code)) throw new Error(`loom ${args[0]} exit ${r.code}: ${r.stdout.slice(0, 1500)}${r.stderr.slice(-1500)}`);
      return r;
    };
    ingest = await go(["ingest", "--source", "data.csv"]);
    const ds = ingest.json.pathspec;
    // train's event log is ingested beside eda (the workspace exists by now; the two runs share the machine's wait on S3)
    [eda, evIngest] = await Promise.all([go(["eda", "--dataset", ds, "--target", "y"], [0, 1]), go(["ingest", "--source", "events.csv"])]);
    features = await go(["features", "--dataset", ds, "--target", "y", "--recipe", "standard"]);
    const fs = features.json.pathspec;
    run = await go(["run", "--dataset", fs, "--metric", "Maximize ROC-AUC", "--target", "y", "--steps", "2", "--parallel", "2",
                    "--executor", "metaflow", "--model-provider", "offline", "--yes"]);
    // --max-ece 0.2: 300 rows make an uncalibrated ECE near 0.14; deploy below needs a PASS
    validate = await go(["validate", "--dataset", fs, "--target", "y", "--model", run.json.pathspec, "--max-ece", "0.2"], [0, 1]);
    report = await go(["report", "--run", validate.json.pathspec]);
    [datasets, doctor] = await Promise.all([go(["datasets"]), loom(["doctor", "--json"], { cwd: ws, env })]);
    for (const r of [ingest, eda, features, validate, report]) cardHtml[r.json.pathspec] = readFileSync(r.json.card_path, "utf8");
    reportMd = sha(report.json.summary.markdown_path);
    // what the flows wrote into this workspace (cards fetched, reports, work dirs) would be in a remote task's
    // container: gone, so the verbs below can only have read the runs from the datastore
    rmSync(join(ws, ".loom", "cards"), { recursive: true, force: true });
    rmSync(join(ws, ".loom", "artifacts"), { recursive: true, force: true });
    const away = async (args: string[], extra: Record<string, string> = {}, ok = [0]) => {
      const r = await loom([...args, "--json"], { cwd: elsewhere, env: { ...env, LOOM_WORKSPACE: ws, ...extra } });
      if (!ok.includes(r.code)) throw new Error(`loom ${args.join(" ")} exit ${r.code}: ${r.stdout.slice(0, 1500)}${r.stderr.slice(-1500)}`);
      return r;
    };
    // health first, while no run is in flight (one in flight is "running", or "never finished" to a launcher it cannot see)
    [health, board] = await Promise.all([away(["ops"]), away(["ops", "--leaderboard"])]);
    // the rest are independent runs and files, side by side: most of each is waiting on S3 and process starts
    [collab, deploy, viz, train, argo] = await Promise.all([
      away(["collab", "--run", report.json.pathspec]),
      away(["deploy", "--validate", validate.json.pathspec, "--name", "m"], {}, [0, 1, 2]),
      away(["viz", "--run", run.json.pathspec]),
      away(["train", "--dataset", evIngest.json.pathspec, "--objective", "next-event", "--budget", "probe"], { LOOM_MODEL_BUILDER_PROVIDER: "local", LOOM_GPU_TARGET: "" }),
      away(["pipeline", "--dataset", ds, "--target", "y", "--metric", "Maximize ROC-AUC", "--steps", "3", "--deploy-to", "argo"],
        { METAFLOW_KUBERNETES_CONTAINER_IMAGE: "registry.example/loom-runtime:0.1" }),
    ]);
    // the plan's stage, the bundle and the PNGs as a remote task leaves them: in its container, not here. What
    // reads them on this machine brings them back from the runs' kept files (runtime/wsfiles.py), sha256-checked
    stageBefore = hashes(deploy.json.summary.stage_dir);
    bundleBefore = sha(collab.json.summary.bundle_path);
    pngBefore = (viz.json.summary.plots as { path: string }[]).map((p) => sha(p.path));
    for (const d of ["deploy", "collab", "viz"]) rmSync(join(ws, ".loom", "artifacts", d), { recursive: true, force: true });
    const aws = { ...env, LOOM_WORKSPACE: ws, AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` };
    const inPty = async (args: string[]) => {
      const p = Bun.spawn([loomPython(), join(ROOT, "test", "fixtures", "pty_answer.py"), "y", LOOM, ...args],
        { cwd: elsewhere, env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "METAFLOW_USER" && k !== "LOOM_WORKSPACE")), ...aws }, stdout: "pipe", stderr: "pipe" });
      const out = await new Response(p.stdout).text();
      await p.exited;
      return JSON.parse(out) as { code: number; asked: boolean; output: string };
    };
    [apply, send, openReport, openViz] = await Promise.all([
      inPty(["deploy", "--validate", validate.json.pathspec, "--name", "m", "--apply", "--json"]),
      inPty(["collab", "--run", collab.json.pathspec, "--send", "s3://loom/shared", "--json"]),
      away(["open", report.json.pathspec], { BROWSER: "", DISPLAY: "", WAYLAND_DISPLAY: "" }),
      away(["open", viz.json.pathspec], { BROWSER: "", DISPLAY: "", WAYLAND_DISPLAY: "" }),
    ]);
    const got = clientFrom(tempDir(), ws, env, `
import json, boto3, hashlib, os
s3 = boto3.client("s3", endpoint_url=os.environ["METAFLOW_S3_ENDPOINT_URL"])
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="loom", Prefix="shared/").get("Contents", [])]
print(json.dumps(hashlib.sha256(s3.get_object(Bucket="loom", Key=keys[0])["Body"].read()).hexdigest() if len(keys) == 1 else len(keys)))
`);
    sentSha = String(got);
  }, 900_000);

  test("the workspace records its datastore; Loom's env came from Metaflow's own variables", () => {
    const cfg = JSON.parse(readFileSync(join(ws, ".loom", "config.json"), "utf8"));
    expect(cfg.datastore).toEqual({ type: "s3", root: "s3://loom/happy" });
  });

  test("every verb ran and names its inputs; datasets lists both data objects through the Client", () => {
    expect(features.json.inputs).toContain(ingest.json.pathspec);
    expect(validate.json.inputs).toEqual([features.json.pathspec, run.json.pathspec]);
    expect(["PASS", "FAIL"]).toContain(validate.json.verdict);
    const listed = datasets.json.summary.datasets.map((d: { pathspec: string }) => d.pathspec);
    expect(listed).toEqual(expect.arrayContaining([ingest.json.pathspec, features.json.pathspec]));
  });

  test("nothing but metadata in the local datastore: no artifact blob, no data.json, no card file", () => {
    const files = walk(join(ws, ".loom", ".metaflow"));
    expect(files.length).toBeGreaterThan(0); // local metadata (the Client's index) lives here
    const content = files.filter((f) => f.split("/").includes("data") || /\.data\.json$/.test(f) || f.startsWith("mf.cards"));
    expect(content).toEqual([]);
  });

  test("the artifacts, code packages and cards are in the bucket", () => {
    const got = clientFrom(tempDir(), ws, env, `
import json, boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["METAFLOW_S3_ENDPOINT_URL"])
keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="loom", Prefix="happy/") for o in p.get("Contents", [])]
flows = sorted({k.split("/")[1] for k in keys})
print(json.dumps({"flows": flows, "cards": sum("/mf.cards/" in "/" + k for k in keys), "blobs": sum("/data/" in k for k in keys)}))
`);
    expect(got.flows).toEqual(expect.arrayContaining(["IngestDataset", "EdaFlow", "FeaturesFlow", "OptimizeFlow", "OptimizeRoundFlow", "ValidateFlow", "ReportFlow", "mf.cards"]));
    expect(got.blobs).toBeGreaterThan(10);
    expect(got.cards).toBeGreaterThanOrEqual(6);
  }, 60_000);

  test("cards are fetched from S3 into .loom/cards and open as HTML", () => {
    for (const r of [ingest, eda, features, validate, report]) {
      expect(r.json.card_path).toStartWith(join(ws, ".loom", "cards") + "/");
      expect(cardHtml[r.json.pathspec]).toContain("<html");
    }
  });

  test("from a directory outside the workspace, the Client reads every run's artifacts and cards back", () => {
    const elsewhere = tempDir("loom-elsewhere-");
    const got = clientFrom(elsewhere, ws, env, `
import json
from metaflow import Run, namespace
from metaflow.cards import get_cards
namespace(None)
out = {}
for ps in ${JSON.stringify([ingest.json.pathspec, eda.json.pathspec, features.json.pathspec, run.json.pathspec, validate.json.pathspec, report.json.pathspec])}:
    r = Run(ps)
    res = r.data.loom_result
    cards = []
    for s in (r if ps.split("/")[0] in ("IngestDataset", "ValidateFlow", "ReportFlow") else []):  # the first card is enough (S3 requests each)
        for t in s:
            try:
                cards += list(get_cards(t))
            except Exception:  # a step without a card (end) raises CardNotPresentException on S3
                pass
        if cards:
            break
    out[ps.split("/")[0]] = {"ok": r.successful, "ds": r["start"].task.metadata_dict.get("ds-type"), "status": res.get("status"), "card": len(cards[0].get()) if cards else 0}
out["rows"] = Run(${JSON.stringify(ingest.json.pathspec)}).data.rows
print(json.dumps(out))
`);
    expect(got.rows).toBe(300);
    for (const f of ["IngestDataset", "EdaFlow", "FeaturesFlow", "OptimizeFlow", "ValidateFlow", "ReportFlow"]) {
      expect(got[f].ok).toBe(true);
      expect(got[f].ds).toBe("s3");
    }
    for (const f of ["IngestDataset", "ValidateFlow", "ReportFlow"]) expect(got[f].card).toBeGreaterThan(1000);
  }, 120_000);

  test("ops health counts every flow's runs from the datastore and sizes the bucket, not only this disk", () => {
    expect(health.json.status).toBe("HEALTHY");
    const flows = Object.fromEntries((health.json.summary.flows as { flow: string; succeeded: number; failed: number }[]).map((f) => [f.flow, f]));
    for (const f of ["IngestDataset", "EdaFlow", "FeaturesFlow", "OptimizeFlow", "ValidateFlow", "ReportFlow"]) {
      expect(flows[f]?.succeeded).toBeGreaterThanOrEqual(1);
      expect(flows[f]?.failed).toBe(0);
    }
    const localBytes = walk(join(ws, ".loom", ".metaflow")).reduce((n, f) => n + statSync(join(ws, ".loom", ".metaflow", f)).size, 0);
    // the code packages alone are ~1.7 MiB a run, and they are in the bucket only
    expect(health.json.summary.datastore.metaflow_bytes).toBeGreaterThan(localBytes + 5 * 1024 * 1024);
  });

  test("ops --leaderboard ranks the search and the validation read through the Client", () => {
    const rows = board.json.summary.rows as { kind: string; pathspec: string; score: number }[];
    expect(rows.find((r) => r.kind === "search")?.pathspec).toBe(run.json.pathspec);
    expect(rows.find((r) => r.kind === "validate")?.pathspec).toBe(validate.json.pathspec);
    expect(rows.every((r) => Number.isFinite(r.score))).toBe(true);
  });

  test("collab bundles the report from its S3-stored card and model-card artifact", () => {
    const id = report.json.pathspec.split("/")[1];
    const files = (collab.json.summary.files as { path: string; bytes: number }[]).map((f) => [f.path, f.bytes] as const);
    const byPath = Object.fromEntries(files);
    expect(byPath[`runs/ReportFlow-${id}/card.md`]).toBeGreaterThan(500); // the card, read through the card API
    expect(byPath[`report/ReportFlow-${id}-model_card.md`]).toBeGreaterThan(500); // the report's artifact
    expect(statSync(collab.json.summary.bundle_path).size).toBe(collab.json.summary.bytes);
    expect(collab.json.card_path).toStartWith(join(ws, ".loom", "cards") + "/");
  });

  test("deploy's PLAN stages a PASS validation's model read from the datastore", () => {
    expect(validate.json.verdict).toBe("PASS");
    expect(deploy.code).toBe(0);
    expect(deploy.json.status).toBe("PLANNED");
    expect(deploy.json.inputs).toContain(validate.json.pathspec);
    expect(deploy.json.summary.files).toBeGreaterThan(3);
    expect(existsSync(join(deploy.json.summary.stage_dir, "model"))).toBe(true);
  });

  test("files a run wrote and this machine lost come back from the datastore with equal hashes; --apply and --send use them", () => {
    // deploy PLAN → the stage removed here → --apply (confirmed in a real pty) brings it back and re-verifies the manifest
    expect(apply.asked).toBe(true);
    expect(apply.code).toBe(0);
    const j = JSON.parse(apply.output.slice(apply.output.indexOf('{"verb"')).trim());
    expect(j.status).toBe("APPLIED");
    expect(j.summary.version).toBe(1);
    expect(Object.keys(stageBefore).length).toBeGreaterThan(3);
    expect(hashes(deploy.json.summary.stage_dir)).toEqual(stageBefore);
    // collab --send: the bundle brought back, sent byte for byte
    expect(send.asked).toBe(true);
    expect(send.code).toBe(0);
    expect(sha(collab.json.summary.bundle_path)).toBe(bundleBefore);
    expect(sentSha).toBe(bundleBefore);
    // loom open: the report's model card (removed before any read-back verb ran) and the PNGs are back
    expect(openReport.code).toBe(0);
    expect(sha(report.json.summary.markdown_path)).toBe(reportMd);
    expect(existsSync(report.json.summary.html_path)).toBe(true);
    const rid = report.json.pathspec.split("/")[1];
    expect(openReport.json.summary.files_restored).toEqual([`artifacts/reports/${rid}/model_card.html`, `artifacts/reports/${rid}/model_card.md`]);
    expect(openViz.code).toBe(0);
    expect((viz.json.summary.plots as { path: string }[]).map((p) => sha(p.path))).toEqual(pngBefore);
  });

  test("viz plots the search's leaderboard and its card comes from S3", () => {
    const search = (board.json.summary.rows as { kind: string; score: number }[]).find((r) => r.kind === "search")!;
    expect(viz.json.summary.entries).toBeGreaterThanOrEqual(2); // the two drafts (and an ensemble node where one was made)
    expect(viz.json.summary.best.score).toBeCloseTo(search.score, 9);
    expect(statSync(viz.json.summary.plots[0].path).size).toBeGreaterThan(1000);
    expect(readFileSync(viz.json.card_path, "utf8")).toContain("<html");
  });

  test("train's CPU stand-in builds from the event log it reads through the Client; its card comes from S3", () => {
    expect(train.json.status).toBe("BUILT");
    expect(train.json.pathspec).toMatch(/^TrainFlow\/\d+$/);
    expect(train.json.inputs).toEqual([evIngest.json.pathspec]);
    expect(train.json.card_path).toStartWith(join(ws, ".loom", "cards") + "/");
    expect(readFileSync(train.json.card_path, "utf8")).toContain("<html");
  });

  test("pipeline --deploy-to argo: Metaflow's WorkflowTemplate naming the code package, the image, each step and its @resources", () => {
    expect(argo.json.tier).toBe("workspace-write");
    expect(argo.json.status).toBe("OK");
    expect(argo.json.pathspec).toBeNull(); // compiled, not run
    const s = argo.json.summary;
    expect(s.template_path).toStartWith(join(ws, ".loom", "artifacts", "pipeline") + "/");
    const tpl = JSON.parse(readFileSync(s.template_path, "utf8"));
    expect(tpl.kind).toBe("WorkflowTemplate");
    expect(tpl.metadata.name).toBe(s.workflow_template);
    expect(s.steps.map((x: { name: string }) => x.name)).toEqual(["start", "end"]);
    const start = tpl.spec.templates.find((t: { name: string }) => t.name === "start");
    expect(start.container.image).toBe("registry.example/loom-runtime:0.1");
    expect(s.image).toBe("registry.example/loom-runtime:0.1");
    expect(start.container.resources.requests).toMatchObject({ cpu: "4.0", memory: "16384.0M" }); // @resources(**task_resources("optimize"))
    const cmd = JSON.stringify(start.container);
    expect(s.code_package).toMatch(/^s3:\/\/loom\/happy\/PipelineFlow\/data\/[0-9a-f]{2}\/[0-9a-f]{40}$/);
    expect(cmd).toContain(s.code_package); // the pod downloads exactly the package that was uploaded
    expect(cmd).toContain(".mf_code"); // PYTHONPATH of the extracted package: loom_py comes from there
    // the options this machine checked are the template's default: a submitted workflow runs this pipeline
    const opt = tpl.spec.arguments.parameters.find((p: { name: string }) => p.name === "options");
    const opts = JSON.parse(JSON.parse(opt.value));
    expect(opts).toMatchObject({ dataset: ingest.json.pathspec, target: "y", steps: 3, model_provider: "offline" });
    // the package really is in the bucket
    const got = clientFrom(tempDir(), ws, env, `
import io, json, boto3, os, tarfile
s3 = boto3.client("s3", endpoint_url=os.environ["METAFLOW_S3_ENDPOINT_URL"])
blob = s3.get_object(Bucket="loom", Key=${JSON.stringify(s.code_package.replace("s3://loom/", ""))})["Body"].read()
names = tarfile.open(fileobj=io.BytesIO(blob)).getnames()
print(json.dumps({"size": len(blob), "names": [n.removeprefix("./") for n in names]}))
`);
    expect(got.size).toBeGreaterThan(100_000);
    // what the pod's start step needs: the stages' flows beside pipeline_flow.py, loom_py under .mf_code
    for (const f of ["pipeline_flow.py", "eda_flow.py", "features_flow.py", "optimize_flow.py", "validate_flow.py", "report_flow.py",
                     ".mf_code/loom_py/verbs/pipeline.py", ".mf_code/loom_py/runtime/bridge.py"])
      expect(got.names).toContain(f);
    expect(argo.json.messages.join(" ")).toContain("METAFLOW_DEFAULT_METADATA=service"); // local metadata: said, not hidden
    expect(argo.json.next[0]).toBe(`argo template create ${s.template_path}`);
  }, 60_000);

  test("doctor checks the S3 datastore: reachable, credentials, bucket, metadata", () => {
    const checks = doctor.json.summary.checks as { name: string; status: string; detail: string }[];
    const ds = checks.find((c) => c.name === "datastore")!;
    expect(ds.status).toBe("PASS");
    expect(ds.detail).toContain("s3://loom/happy");
    expect(checks.find((c) => c.name === "metadata")!.status).toBe("PASS");
    expect(checks.find((c) => c.name === "data objects")!.detail).toMatch(/^3 data object/); // + train's event log
  });

  test("doctor: a dead endpoint and a missing bucket are one actionable line each", async () => {
    const other = tempWorkspace();
    mkdirSync(join(other, ".loom"));
    // three independent doctors side by side (each is mostly imports and S3 round trips)
    const [dead, nob, warn] = await Promise.all([
      loom(["doctor", "--json"], { cwd: ws, env: { ...env, METAFLOW_S3_ENDPOINT_URL: "http://127.0.0.1:9" } }),
      loom(["doctor", "--json"], { cwd: other, env: { ...env, METAFLOW_DATASTORE_SYSROOT_S3: "s3://no-such-bucket/x" } }),
      loom(["doctor", "--json"], { cwd: ws, env: { ...env, LOOM_METAFLOW_WITH: "kubernetes" } }),
    ]);
    const c1 = dead.json.summary.checks.find((c: { name: string }) => c.name === "datastore");
    expect(c1.status).toBe("FAIL");
    expect(c1.fix).toContain("METAFLOW_S3_ENDPOINT_URL");
    const c2 = nob.json.summary.checks.find((c: { name: string }) => c.name === "datastore");
    expect(c2.status).toBe("FAIL");
    expect(c2.detail).toContain("'no-such-bucket' does not exist");
    // remote compute with local metadata: a warning, not a failure (the runs launched here stay visible here)
    const c3 = warn.json.summary.checks.find((c: { name: string }) => c.name === "remote metadata");
    expect(c3.status).toBe("WARN");
    expect(c3.fix).toContain("METAFLOW_DEFAULT_METADATA=service");
  }, 90_000);

  test("a shell pointing at another datastore is refused in one line (the runs are where the record says)", async () => {
    const r = await loom(["datasets"], { cwd: ws, env: { ...env, METAFLOW_DEFAULT_DATASTORE: "local" } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("this workspace's runs are on the s3 datastore s3://loom/happy");
    expectNoTraceback(r);
  });

  test("--with kubernetes without a cluster: one line, exit 2, within seconds, no run", async () => {
    const before = walk(join(ws, ".loom", ".metaflow", "EdaFlow")).length;
    const t0 = Date.now();
    const r = await loom(["eda", "--dataset", ingest.json.pathspec, "--target", "y", "--with", "kubernetes"], { cwd: ws, env: { ...env, KUBECONFIG: join(ws, "no-kubeconfig") } });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    // which of the prerequisites is missing first depends on the machine: the package, then the kubeconfig
    expect(lines[0]).toMatch(/^loom eda: --with kubernetes (needs the `kubernetes` Python package|finds no kubeconfig \(KUBECONFIG=)/);
    expect(walk(join(ws, ".loom", ".metaflow", "EdaFlow")).length).toBe(before);
    expectNoTraceback(r);
  });

  test("LOOM_METAFLOW_WITH=batch and the workspace config's compute.with pass through the same preflight", async () => {
    const r = await loom(["features", "--dataset", ingest.json.pathspec, "--target", "y"], { cwd: ws, env: { ...env, LOOM_METAFLOW_WITH: "batch" } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe("loom features: --with batch needs METAFLOW_BATCH_JOB_QUEUE (in the environment or the Metaflow profile)");
    const cfgPath = join(ws, ".loom", "config.json");
    const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, compute: { with: ["batch:cpu=4"] } }));
    try {
      const c = await loom(["validate", "--dataset", ingest.json.pathspec, "--target", "y"], { cwd: ws, env: { ...env, METAFLOW_BATCH_JOB_QUEUE: "q" } });
      expect(c.code).toBe(2);
      expect(c.stderr.trim()).toBe("loom validate: --with batch needs an image with Loom's pinned requirements: set METAFLOW_BATCH_CONTAINER_IMAGE (or --with batch:image=IMAGE)");
    } finally {
      writeFileSync(cfgPath, JSON.stringify(cfg));
    }
  });
});

test("--with kubernetes on the local datastore: one line, exit 2, no workspace made", async () => {
  const ws = tempWorkspace();
  writeFileSync(join(ws, "d.csv"), csv(20));
  const r = await loom(["ingest", "--source", "d.csv", "--with", "kubernetes"], { cwd: ws, env: { METAFLOW_HOME: mfHome } });
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split("\n")).toEqual([
    "loom ingest: --with kubernetes needs a shared datastore: remote tasks cannot read this machine's .loom; set METAFLOW_DEFAULT_DATASTORE=s3 and METAFLOW_DATASTORE_SYSROOT_S3=s3://BUCKET/PREFIX (or a Metaflow profile) in a new workspace",
  ]);
  expect(existsSync(join(ws, ".loom"))).toBe(false);
});

test("a Metaflow profile names the datastore: METAFLOW_PROFILE → config_<name>.json", async () => {
  const home = tempDir("loom-mfprofile-");
  writeFileSync(join(home, "config_shared.json"), JSON.stringify({ METAFLOW_DEFAULT_DATASTORE: "s3", METAFLOW_DATASTORE_SYSROOT_S3: "s3://loom/profiled", METAFLOW_S3_ENDPOINT_URL: `http://127.0.0.1:${port}` }));
  const ws = tempWorkspace();
  mkdirSync(join(ws, ".loom"));
  const env = { METAFLOW_HOME: home, METAFLOW_PROFILE: "shared", AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_DEFAULT_REGION: "us-east-1" };
  const [d, missing] = await Promise.all([
    loom(["doctor", "--json"], { cwd: ws, env }),
    loom(["doctor", "--json"], { cwd: ws, env: { ...env, METAFLOW_PROFILE: "nope" } }),
  ]);
  const c = d.json.summary.checks.find((x: { name: string }) => x.name === "datastore");
  expect(c.status).toBe("PASS");
  expect(c.detail).toContain("s3://loom/profiled");
  const m = missing.json.summary.checks.find((x: { name: string }) => x.name === "datastore config");
  expect(m.status).toBe("FAIL");
  expect(m.detail).toContain("METAFLOW_PROFILE=nope but");
}, 60_000);

test("pipeline --deploy-to argo: the local datastore, a missing image, a keyed proposer: one line, exit 2, nothing written", async () => {
  const ws = tempWorkspace();
  mkdirSync(join(ws, ".loom", ".metaflow"), { recursive: true }); // a local workspace
  const args = ["pipeline", "--dataset", "IngestDataset/1", "--target", "y", "--metric", "Maximize ROC-AUC", "--deploy-to", "argo"];
  const img = { METAFLOW_HOME: mfHome, METAFLOW_KUBERNETES_CONTAINER_IMAGE: "registry.example/loom-runtime:0.1" };
  const local = await loom(args, { cwd: ws, env: img });
  expect(local.code).toBe(2);
  expect(local.stderr.trim().split("\n")).toEqual([
    "loom pipeline: --deploy-to argo needs a shared datastore: a cluster's pods cannot read this machine's .loom; set METAFLOW_DEFAULT_DATASTORE=s3 and METAFLOW_DATASTORE_SYSROOT_S3=s3://BUCKET/PREFIX (or a Metaflow profile) in a new workspace",
  ]);
  const s3 = s3env("argo-refused");
  const other = tempWorkspace();
  mkdirSync(join(other, ".loom"));
  writeFileSync(join(other, ".loom", "config.json"), JSON.stringify({ datastore: { type: "s3", root: "s3://loom/argo-refused" } }));
  const noImage = await loom(args, { cwd: other, env: { ...s3, METAFLOW_KUBERNETES_CONTAINER_IMAGE: undefined } });
  expect(noImage.code).toBe(2);
  expect(noImage.stderr.trim()).toStartWith("loom pipeline: --deploy-to argo needs an image with Loom's pinned requirements: set METAFLOW_KUBERNETES_CONTAINER_IMAGE");
  const keyed = await loom([...args, "--model-provider", "anthropic"], { cwd: other, env: { ...s3, ...img, METAFLOW_HOME: mfHome } });
  expect(keyed.code).toBe(2);
  expect(keyed.stderr.trim()).toBe("loom pipeline: --deploy-to argo runs the search on the cluster, where the anthropic API key must not go: use --model-provider offline");
  expect(existsSync(join(ws, ".loom", "artifacts"))).toBe(false);
  expect(existsSync(join(other, ".loom", "artifacts"))).toBe(false);
});
