/**
 * deploy end to end through build/loom, one chain on one validate run of an offline search's best solution
 * (model-written code, served only by MLflow's processes): validate FAIL → refused; wrong or
 * unknown pathspec → exit 2, nothing written; PLAN stages a pyfunc model + manifest whose hashes check;
 * --apply denied without a terminal and declined at a real pty's "n" (nothing registered); a tampered
 * staged file or manifest refused (exit 2); "y" in a pty registers version 1 under @champion; MLflow's own
 * server and pyfunc.load_model in a fresh process predict exactly what validate scored; rollback at the
 * first version refused; kill -9 mid-apply leaves the alias at the old version and doctor says so; two
 * racing applies end with one holder and both moves recorded; rollback moves the alias back.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expectNoTraceback, loom, LOOM, loomPython, mlflowRegistry as registry, ROOT, runsOf, tempWorkspace } from "../helpers";

const GEN = `
import sys, numpy as np, pandas as pd
r = np.random.default_rng(0)
n = 1500
X = r.normal(size=(n, 4))
df = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
logit = 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3]
df["cat"] = r.choice(["a", "b", "c"], n)
df["y"] = (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
df.to_csv(sys.argv[1] + "/clean.csv", index=False)
`;

const sha = (p: string) => "sha256:" + createHash("sha256").update(readFileSync(p)).digest("hex");

/** the terminal session: a real pty answering the gate (test/fixtures/pty_answer.py) */
async function inPty(answer: "y" | "n", args: string[], cwd: string, kill?: [string, string]) {
  const argv = [loomPython(), join(ROOT, "test", "fixtures", "pty_answer.py"), ...(kill ? ["--kill-when", ...kill] : []), answer, LOOM, ...args];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "METAFLOW_USER") env[k] = v;
  if (kill) env.LOOM_DEPLOY_FAULT_PAUSE_S = "60";
  const p = Bun.spawn(argv, { cwd, env, stdout: "pipe", stderr: "pipe" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return JSON.parse(out) as { code: number; asked: boolean; killed: boolean; output: string };
}

const aliasOf = (ws: string) => registry(ws, `print(json.dumps(int(c.get_model_version_by_alias("m", "champion").version)))`);
const journal = (ws: string) => {
  const d = join(ws, ".loom", "deploy", "journal");
  return existsSync(d) ? readdirSync(d).filter((n) => n.endsWith(".json")).map((n) => JSON.parse(readFileSync(join(d, n), "utf8"))) : [];
};

describe("deploy", () => {
  const ws = tempWorkspace();
  let pass = "";
  let fail = "";
  let plan: any;
  const db = join(ws, ".loom", "mlflow", "mlflow.db");

  beforeAll(async () => {
    const g = Bun.spawnSync([loomPython(), "-c", GEN, ws], { stdout: "pipe", stderr: "pipe" });
    if (g.exitCode !== 0) throw new Error(g.stderr.toString());
    const ing = await loom(["ingest", "--source", "clean.csv", "--json"], { cwd: ws });
    if (ing.code !== 0) throw new Error(ing.stdout + ing.stderr);
    const ds = ing.json.pathspec;
    // the model promoted is an offline search's best solution: model-written code (the FAIL is the default model)
    const [o, f] = await Promise.all([
      loom(["run", "--dataset", ds, "--target", "y", "--metric", "Maximize ROC-AUC on a held-out split.", "--steps", "2", "--model-provider", "offline", "--json"], { cwd: ws }),
      loom(["validate", "--dataset", ds, "--target", "y", "--threshold", "0.99", "--json"], { cwd: ws }),
    ]);
    if (o.code !== 0) throw new Error(o.stdout + o.stderr);
    const p = await loom(["validate", "--dataset", ds, "--target", "y", "--threshold", "0.7", "--max-ece", "0.2", "--calibrate", "sigmoid", "--model", o.json.pathspec, "--json"], { cwd: ws });
    if (p.json?.verdict !== "PASS" || f.json?.verdict !== "FAIL") throw new Error(p.stdout + p.stderr + f.stdout);
    pass = p.json.pathspec;
    fail = f.json.pathspec;
    expect(p.json.next[0]).toBe(`loom deploy --validate ${pass}`); // validate PASS suggests deploy
  }, 300_000); // generous: on a loaded 2-core box one step of the chain took up to 135 s

  test("validate FAIL: refused with its reasons (exit 1); wrong flow / unknown run: exit 2; nothing written", async () => {
    const r = await loom(["deploy", "--validate", fail, "--json"], { cwd: ws });
    expect(r.code).toBe(1);
    expect(r.json.status).toBe("REFUSED");
    expect(r.json.messages[0]).toMatch(/^deploy refused: validate VERDICT FAIL: holdout roc_auc .* misses the bar/);
    const wrong = await loom(["deploy", "--validate", "IngestDataset/1"], { cwd: ws });
    const unknown = await loom(["deploy", "--validate", "ValidateFlow/999999"], { cwd: ws });
    for (const x of [wrong, unknown]) {
      expect(x.code).toBe(2);
      expect(x.stderr.trim().split("\n").length).toBe(1);
      expectNoTraceback(x);
    }
    expect(unknown.stderr).toContain("ValidateFlow/999999 does not exist");
    expect(runsOf(ws, "DeployFlow")).toBe(0);
    expect(existsSync(join(ws, ".loom", "artifacts", "deploy"))).toBe(false);
  }, 300_000); // generous: on a loaded 2-core box one step of the chain took up to 135 s

  test("PLAN stages a pyfunc model and a manifest whose hashes check; the registry is untouched", async () => {
    const r = await loom(["deploy", "--validate", pass, "--name", "m", "--json"], { cwd: ws });
    expect(r.code).toBe(0);
    plan = r.json;
    expect(plan.tier).toBe("workspace-write");
    expect(plan.status).toBe("PLANNED");
    expect(existsSync(plan.card_path)).toBe(true);
    expect(plan.next[0]).toBe(`loom deploy --validate ${pass} --name m --alias champion --apply`);
    const s = plan.summary;
    expect(s.stage_dir).toBe(join(ws, ".loom", "artifacts", "deploy", plan.pathspec.split("/")[1]));
    const m = JSON.parse(readFileSync(join(s.stage_dir, "manifest.json"), "utf8"));
    expect(sha(join(s.stage_dir, "manifest.json"))).toBe(s.manifest_sha256);
    for (const [rel, h] of Object.entries(m.files)) expect(sha(join(s.stage_dir, rel))).toBe(h as string);
    for (const f of ["model/MLmodel", "model/artifacts/model.pkl", "model/pyfunc_model.py", "model/code/loom_py/stats/tabular.py", "model/input_example.json"])
      expect(m.files[f]).toMatch(/^sha256:/);
    expect(m.validate).toBe(pass);
    expect(m.holdout.metric).toBe("roc_auc");
    expect(m.threshold).toBe(0.7);
    expect(m.seal_id).toMatch(/^seal-/);
    expect(m.model.model_written_code).toBe(true); // said in the manifest and the plan's notes
    expect(m.model.source).toMatch(/^OptimizeFlow\//);
    expect(m.files["model/artifacts/solution.py"]).toMatch(/^sha256:/);
    expect(readFileSync(join(s.stage_dir, "model", "artifacts", "solution.py"), "utf8")).toContain("def make_model");
    expect(plan.messages[0]).toContain("code a language model wrote");
    expect(m.lineage.slice(0, 2)).toEqual([pass, m.dataset.pathspec]);
    expect(m.apply_will).toMatchObject({ model_name: "m", alias: "champion", alias_from: null });
    const mlmodel = readFileSync(join(s.stage_dir, "model", "MLmodel"), "utf8").replace(/\n\s+/g, " ");
    expect(mlmodel).toContain("signature:");
    expect(mlmodel).toContain('{"type": "string", "name": "cat", "required": true}');
    expect(mlmodel).not.toContain('"name": "y"'); // the target is not an input
    // the input example is made from the schema, not copied from the data
    const ex = JSON.parse(readFileSync(join(s.stage_dir, "model", "input_example.json"), "utf8"));
    expect(ex.data).toEqual([[0, 0, 0, 0, ""]]);
    expect(existsSync(db)).toBe(false);
  }, 300_000); // generous: on a loaded 2-core box one step of the chain took up to 135 s

  test("--apply: denied without a terminal, declined at a pty's n, tampered staging refused; nothing registered", async () => {
    const denied = await loom(["deploy", "--validate", pass, "--name", "m", "--apply", "--json"], { cwd: ws });
    expect(denied.code).toBe(1);
    expect(denied.json.status).toBe("DENIED");
    expect(denied.json.tier).toBe("irreversible");
    const no = await inPty("n", ["deploy", "--validate", pass, "--name", "m", "--apply"], ws);
    expect(no.asked).toBe(true);
    expect(no.code).toBe(1);
    expect(no.output).toContain("declined at the prompt");
    expect(existsSync(db)).toBe(false);

    const dir = plan.summary.stage_dir;
    for (const rel of ["model/artifacts/model.pkl", "manifest.json"]) {
      const p = join(dir, rel);
      const orig = readFileSync(p);
      writeFileSync(p, Buffer.concat([orig, Buffer.from("x")]));
      const t = await loom(["deploy", "--validate", pass, "--name", "m", "--apply"], { cwd: ws });
      writeFileSync(p, orig);
      expect(t.code).toBe(2);
      expect(t.stderr).toMatch(rel === "manifest.json" ? /staged manifest .* changed since the plan/ : /staged file model\/artifacts\/model.pkl .* changed since the plan/);
    }
    expect(existsSync(db)).toBe(false);
  }, 300_000); // generous: on a loaded 2-core box one step of the chain took up to 135 s

  test("y in a pty: version 1 registered under @champion; served and loaded predictions equal validate's", async () => {
    const yes = await inPty("y", ["deploy", "--validate", pass, "--name", "m", "--apply", "--json"], ws);
    expect(yes.asked).toBe(true);
    expect(yes.code).toBe(0);
    const j = JSON.parse(yes.output.slice(yes.output.indexOf('{"verb"')).trim());
    expect(j.status).toBe("APPLIED");
    expect(j.summary).toMatchObject({ version: 1, alias_move: { from: null, to: 1 }, model_uri: "models:/m@champion" });
    expect(j.summary.serve).toContain("mlflow models serve -m models:/m@champion --env-manager local");
    const tags = registry(ws, `print(json.dumps(c.get_model_version_by_alias("m", "champion").tags))`);
    expect(tags["loom.validate"]).toBe(pass);
    expect(tags["loom.manifest_sha256"]).toBe(plan.summary.manifest_sha256);
    expect(tags["loom.previous_alias_holder"]).toBe("none");
    expect(tags["loom.model_written_code"]).toBe("true");
    expect(yes.output).toContain("the model is model-written code"); // said at the gate, before the y/N
    expect(yes.output.indexOf("model-written code")).toBeLessThan(yes.output.indexOf("Proceed?"));

    const p = Bun.spawnSync([loomPython(), join(ROOT, "test", "fixtures", "deploy_serve.py"), ws, pass, "models:/m@champion"], {
      env: { ...process.env, MLFLOW_TRACKING_URI: `sqlite:///${db}` },
      stdout: "pipe",
      stderr: "pipe",
    });
    const res = JSON.parse(p.stdout.toString().trim().split("\n").pop()!);
    expect(res.served).toEqual({ rows: 300, labels_equal: true, max_abs_diff: 0 });
    expect(res.loaded).toEqual({ rows: 300, labels_equal: true, max_abs_diff: 0 });

    const first = await loom(["deploy", "--rollback", "m", "--json"], { cwd: ws });
    expect(first.code).toBe(1);
    expect(first.json.messages[0]).toMatch(/rollback refused: m@champion is at version 1, the first version/);
    // ops health shows what the alias points at now
    const ops = await loom(["ops", "--json"], { cwd: ws });
    expect(ops.json.summary.deployed).toEqual([expect.objectContaining({ name: "m", alias: "champion", version: 1, interrupted_since: [] })]);
  }, 300_000); // generous: on a loaded 2-core box one step of the chain took up to 135 s

  test("kill -9 mid-apply: the alias stays at the old version and doctor names the interrupted apply", async () => {
    const k = await inPty("y", ["deploy", "--validate", pass, "--name", "m", "--apply"], ws, [join(ws, ".loom", "deploy", "journal", "*.json"), '"state": "registered"']);
    expect(k.killed).toBe(true);
    expect(aliasOf(ws)).toBe(1);
    const cut = journal(ws).filter((e) => e.state === "registered");
    expect(cut.length).toBe(1);
    expect(cut[0].to).toBe(2);
    const d = await loom(["doctor", "--json"], { cwd: ws });
    const c = d.json.summary.checks.find((x: any) => x.name === "deploy");
    expect(c.status).toBe("WARN");
    expect(c.detail).toContain("registered m version 2 but was stopped before moving the alias: m@champion still points at version 1");
    const ops = await loom(["ops", "--json"], { cwd: ws });
    expect(ops.code).toBe(1);
    expect(ops.json.summary.deployed[0]).toMatchObject({ name: "m", alias: "champion", version: 1 });
    expect(ops.json.summary.deployed[0].interrupted_since.length).toBe(1);
  }, 300_000); // generous: on a loaded 2-core box one step of the chain took up to 135 s

  test("two racing applies: one holder, both moves recorded in order; rollback moves the alias back", async () => {
    const [a, b] = await Promise.all([
      inPty("y", ["deploy", "--validate", pass, "--name", "m", "--apply", "--json"], ws),
      inPty("y", ["deploy", "--validate", pass, "--name", "m", "--apply", "--json"], ws),
    ]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const moves = journal(ws)
      .filter((e) => e.state === "moved")
      .sort((x, y) => x.when_ns - y.when_ns);
    expect(moves.map((m) => [m.from, m.to])).toEqual([
      [null, 1],
      [1, moves[1].to],
      [moves[1].to, moves[2].to],
    ]);
    expect(new Set([moves[1].to, moves[2].to])).toEqual(new Set([3, 4]));
    expect(aliasOf(ws)).toBe(moves[2].to);

    const rp = await loom(["deploy", "--rollback", "m", "--json"], { cwd: ws });
    expect(rp.code).toBe(0);
    expect(rp.json.status).toBe("PLANNED");
    expect(rp.json.summary.alias_move).toEqual({ from: moves[2].to, to: moves[1].to });
    expect(aliasOf(ws)).toBe(moves[2].to); // a plan moves nothing
    const ra = await inPty("y", ["deploy", "--rollback", "m", "--apply", "--json"], ws);
    expect(ra.code).toBe(0);
    expect(aliasOf(ws)).toBe(moves[1].to);
    const d = await loom(["doctor", "--json"], { cwd: ws });
    expect(d.json.summary.checks.find((x: any) => x.name === "deploy")).toBeUndefined(); // later moves settled it

    // a plan names the alias's holder from Loom's record while the registry is unchanged since Loom's move, and
    // from the registry once anyone else moved it
    const p1 = await loom(["deploy", "--validate", pass, "--name", "m", "--json"], { cwd: ws });
    expect(p1.json.summary.apply_will.alias_from).toBe(moves[1].to);
    expect(journal(ws).find((e) => e.why === "rollback").registry_stamp).toBeTruthy(); // the rollback's two commits alone
    registry(ws, `c.set_registered_model_alias("m", "champion", "2")\nprint(json.dumps(2))`); // moved outside Loom
    const p2 = await loom(["deploy", "--validate", pass, "--name", "m", "--json"], { cwd: ws });
    expect(p2.json.summary.apply_will.alias_from).toBe(2);
    const rb = await loom(["deploy", "--rollback", "m", "--json"], { cwd: ws });
    expect(rb.code).toBe(1);
    expect(rb.json.messages[0]).toContain("it was moved outside Loom");
  }, 300_000); // generous: on a loaded 2-core box one step of the chain took up to 135 s
});
