/**
 * collab end to end through build/loom: ingest (a distinctive raw row, a column named like a token, a
 * connection whose password lives in an environment variable) → eda → report → `collab --run ReportFlow/N
 * --include-lineage`: the bundle holds cards, summaries, the model card, OpenLineage events and a manifest
 * whose sha256s match, and none of the planted values. `--send` is irreversible: denied without a terminal,
 * denied on "n" in a real pty, and only after "y" uploaded to a local S3-compatible server (moto, loopback)
 * or a local HTTP server, byte for byte, with where it went recorded.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expectNoTraceback, LOOM, loom, loomPython, ROOT, tempDir, tempWorkspace } from "../helpers";

type R = Awaited<ReturnType<typeof loom>>;

const RAW = "Zebediah-Quux-88231";
const TOKEN_COL = "ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7c";
const DB_PASS = "Vx9-planted-DBpass-7431";
const SVC_TOKEN = "tok_PLANTED_4e8c1d2b9a7f6e5d";

function csv(n: number): string {
  const rows = [`customer,spend,plan,${TOKEN_COL},churn`];
  rows.push(`${RAW},98765.4321,pro,1,1`); // first: in ingest's sample of the first 20 rows
  for (let i = 1; i < n; i++) rows.push(`cust-${String(i).padStart(5, "0")},${(i * 7.31) % 500},${["basic", "pro", "team"][i % 3]},${i % 2},${i % 3 === 0 ? 1 : 0}`);
  return rows.join("\n") + "\n";
}

const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));

/** Drive build/loom in a real pseudo-terminal; answer the gate's y/N with `answer`. */

/** async: the test's own HTTP server must keep answering while loom runs */
/** the gate answered in a real pty by test/fixtures/pty_answer.py, which reads the terminal to its end */
async function inPty(args: string[], answer: string, cwd: string, env: Record<string, string>) {
  const p = Bun.spawn([loomPython(), join(ROOT, "test", "fixtures", "pty_answer.py"), answer, LOOM, ...args], { cwd, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if ((await p.exited) !== 0) throw new Error(err);
  const r = JSON.parse(out) as { code: number; output: string; asked: boolean };
  return { code: r.code, out: r.output, asked: r.asked };
}

describe("collab", () => {
  const ws = tempWorkspace();
  const env = { DB_PASS, MY_SERVICE_TOKEN: SVC_TOKEN };
  let report: R, bundle: R, moto: ReturnType<typeof Bun.spawn> | undefined, motoUrl = "";
  const puts: { url: string; body: Uint8Array }[] = [];
  const http = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      if (req.method !== "PUT") return new Response("no", { status: 405 });
      puts.push({ url: req.url, body: new Uint8Array(await req.arrayBuffer()) });
      return new Response("ok");
    },
  });

  beforeAll(async () => {
    writeFileSync(join(ws, "customers.csv"), csv(400));
    const ing = await loom(["ingest", "--source", "customers.csv", "--json"], { cwd: ws, env });
    if (ing.code) throw new Error(ing.stdout + ing.stderr);
    const c = await loom(["connect", "warehouse", "--uri", "postgresql://loom@127.0.0.1:1/prod", "--password-env", "DB_PASS"], { cwd: ws, env });
    if (c.code) throw new Error(c.stdout + c.stderr);
    const eda = await loom(["eda", "--dataset", ing.json.pathspec, "--target", "churn", "--json"], { cwd: ws, env });
    report = await loom(["report", "--run", eda.json.pathspec, "--json"], { cwd: ws, env });
    if (report.code) throw new Error(report.stdout + report.stderr);
    bundle = await loom(["collab", "--run", report.json.pathspec, "--include-lineage", "--json"], { cwd: ws, env });
  }, 120_000);

  afterAll(() => {
    http.stop(true);
    moto?.kill();
  });

  test("builds a bundle: workspace-write, CollabFlow/N, files with matching sha256s, lineage as OpenLineage", () => {
    expect(bundle.code).toBe(0);
    const j = bundle.json;
    expect(j.tier).toBe("workspace-write");
    expect(j.pathspec).toMatch(/^CollabFlow\/\d+$/);
    const s = j.summary;
    expect(s.bundle_path.startsWith(join(ws, ".loom", "artifacts", "collab", j.pathspec.split("/")[1]!))).toBe(true);
    expect(sha(s.bundle_path)).toBe(s.sha256);
    expect(s.runs).toHaveLength(3);
    expect(s.secrets_found_after_sanitizing).toBe(0);
    expect(s.raw_rows_included).toBe(0);
    expect(s.removed.raw_rows).toBeGreaterThanOrEqual(20); // ingest's sample table
    expect(s.removed.absolute_path).toBeGreaterThan(0);
    const out = tempDir("loom-bundle-");
    expect(Bun.spawnSync(["tar", "-xzf", s.bundle_path, "-C", out]).exitCode).toBe(0);
    const files = walk(out).map((p) => p.slice(out.length + 1)).sort();
    expect(files).toContain("manifest.json");
    expect(files).toContain("lineage/openlineage.jsonl");
    expect(files.some((f) => /^report\/ReportFlow-\d+-model_card\.md$/.test(f))).toBe(true);
    expect(files.filter((f) => f.endsWith("/card.md")).length).toBe(3);
    const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
    expect(manifest.files.map((f: any) => f.path).sort()).toEqual(files.filter((f) => f !== "manifest.json"));
    for (const f of manifest.files) expect(sha(join(out, f.path))).toBe(f.sha256);
    const events = readFileSync(join(out, "lineage/openlineage.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(events.map((e) => e.job.name)).toEqual(["IngestDataset", "EdaFlow", "ReportFlow"]);
    expect(events[1].inputs[0].name).toBe(events[0].outputs[0].name);
    expect(events[0].outputs[0].facets.loom_contentHash.sha256).toMatch(/^[0-9a-f]{64}$/);

    // the planted values: none in any file
    const all = files.map((f) => readFileSync(join(out, f), "utf8")).join("\n");
    for (const planted of [RAW, TOKEN_COL, DB_PASS, SVC_TOKEN, ws]) expect(all).not.toContain(planted);
    expect(all).not.toMatch(/\/tmp\/loom-ws-/);
    expect(all).toContain("<workspace>");
  });

  test("--send without a terminal is denied: nothing is built or sent", async () => {
    const before = readdirSync(join(ws, ".loom", ".metaflow", "CollabFlow")).length;
    const r = await loom(["collab", "--run", report.json.pathspec, "--send", `http://127.0.0.1:${http.port}/up`, "--json"], { cwd: ws });
    expectNoTraceback(r);
    expect(r.code).toBe(1);
    expect(r.json.status).toBe("DENIED");
    expect(r.json.tier).toBe("irreversible");
    expect(r.json.messages[0]).toMatch(/need a human at a terminal/);
    expect(readdirSync(join(ws, ".loom", ".metaflow", "CollabFlow")).length).toBe(before);
    expect(puts).toHaveLength(0);
  });

  test("--send to a local S3-compatible server: denied on n, sent after y in a real pty, byte for byte", async () => {
    const probe = Bun.spawnSync([loomPython(), "-c", "import moto.server"], { stderr: "pipe" });
    if (probe.exitCode !== 0) return; // moto is a test-only dependency (py/requirements-test.txt)
    const port = 20000 + Math.floor(Math.random() * 20000);
    moto = Bun.spawn([loomPython(), "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)], { stdout: "ignore", stderr: "ignore" });
    motoUrl = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      try {
        await fetch(motoUrl);
        break;
      } catch {
        await Bun.sleep(100);
      }
    }
    const aws = { AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing", AWS_DEFAULT_REGION: "us-east-1", AWS_ENDPOINT_URL: motoUrl };
    const s3 = (code: string) => {
      const p = Bun.spawnSync([loomPython(), "-c", `import boto3, hashlib, json\ns3 = boto3.client("s3")\n${code}`], { env: { ...process.env, ...aws }, stdout: "pipe", stderr: "pipe" });
      if (p.exitCode !== 0) throw new Error(p.stderr.toString());
      return JSON.parse(p.stdout.toString() || "null");
    };
    s3(`s3.create_bucket(Bucket="loom-share"); print("null")`);
    const list = async (): Promise<string[]> => s3(`print(json.dumps([o["Key"] for o in s3.list_objects_v2(Bucket="loom-share").get("Contents", [])]))`);

    const no = await inPty(["collab", "--run", report.json.pathspec, "--send", "s3://loom-share/team"], "n", ws, aws);
    expect(no.asked).toBe(true);
    expect(no.code).toBe(1);
    expect(no.out).toMatch(/declined at the prompt/);
    expect(await list()).toHaveLength(0);

    const yes = await inPty(["collab", "--run", report.json.pathspec, "--send", "s3://loom-share/team"], "y", ws, aws);
    expect(yes.out).toMatch(/irreversible\/external/);
    expect(yes.code).toBe(0);
    const keys = await list();
    expect(keys).toHaveLength(1);
    const key = keys[0]!;
    expect(key).toMatch(/^team\/loom-collab-\d+-bundle\.tar\.gz$/);
    const stored = s3(`print(json.dumps(hashlib.sha256(s3.get_object(Bucket="loom-share", Key="${key}")["Body"].read()).hexdigest()))`);
    const id = key.match(/loom-collab-(\d+)-/)![1]!;
    const onDisk = join(ws, ".loom", "artifacts", "collab", id, "bundle.tar.gz");
    expect(stored).toBe(sha(onDisk));
    const record = JSON.parse(readFileSync(join(ws, ".loom", "artifacts", "collab", id, "sent.json"), "utf8"));
    expect(record[0]).toMatchObject({ dest: `s3://loom-share/${key}`, sha256: sha(onDisk) });
  }, 120_000);

  test("--send a built bundle to an https-style PUT URL (local server): the query string is not recorded", async () => {
    const dest = `http://127.0.0.1:${http.port}/upload/bundle.tgz?X-Amz-Signature=planted-signature`;
    const r = await inPty(["collab", "--run", bundle.json.pathspec, "--send", dest], "y", ws, {});
    expect(r.code).toBe(0);
    expect(puts).toHaveLength(1);
    expect(createHash("sha256").update(puts[0]!.body).digest("hex")).toBe(bundle.json.summary.sha256);
    const rec = readFileSync(join(bundle.json.summary.bundle_path, "..", "sent.json"), "utf8");
    expect(rec).toContain(`http://127.0.0.1:${http.port}/upload/bundle.tgz`);
    expect(rec).not.toContain("planted-signature");
  }, 60_000);

  test("a drift run's card (category values, Vega-Lite data) is bundled without the planted values", async () => {
    const later = csv(400).replace(/,pro,/g, ",enterprise,") + `cust-99999,1.5,Quasimodo-Planted-771,1,0\n`;
    writeFileSync(join(ws, "later.csv"), later);
    const ing2 = await loom(["ingest", "--source", "later.csv", "--json"], { cwd: ws });
    const first = bundle.json.summary.runs[0];
    const ops = await loom(["ops", "--dataset", ing2.json.pathspec, "--reference", first, "--json"], { cwd: ws });
    expect(ops.json.summary.columns.find((c: any) => c.column === "plan").new_categories.values).toContain("Quasimodo-Planted-771");
    const b = await loom(["collab", "--run", ops.json.pathspec, "--include-lineage", "--json"], { cwd: ws, env });
    expect(b.code).toBe(0);
    const out = tempDir("loom-bundle-");
    Bun.spawnSync(["tar", "-xzf", b.json.summary.bundle_path, "-C", out]);
    const all = walk(out).map((f) => readFileSync(f, "utf8")).join("\n");
    expect(all).toContain("enterprise"); // an aggregate (a new category of 130 rows) stays
    expect(all).toContain("vega-lite");
    for (const planted of [RAW, "Quasimodo-Planted-771", TOKEN_COL, ws]) expect(all).not.toContain(planted);
  }, 60_000);

  test("bad input exits 2 with one line", async () => {
    for (const [args, re] of [
      [["--run", "ReportFlow/99999"], /does not exist/],
      [["--run", bundle.json.pathspec], /already a bundle/],
      [["--run", report.json.pathspec, "--send", "ftp://x/y"], /s3:\/\/BUCKET\/PREFIX or an https/],
    ] as const) {
      const r = await loom(["collab", ...args], { cwd: ws });
      expect(r.code).toBe(2);
      expectNoTraceback(r);
      expect(r.stderr.trim().split("\n").filter((l) => !l.startsWith("loom collab: workspace-write")).length).toBe(1);
      expect(r.stderr).toMatch(re);
    }
  }, 60_000);
});
