/**
 * train end to end through build/loom: the CPU stand-in builds a real, deterministic backbone that beats
 * popularity on a Markov event log; nemo refuses without a GPU target before any gate, plans with one,
 * and --launch goes through the irreversible gate both ways (a real pseudo-terminal) up to the Modal
 * boundary. Real Metaflow runs: 1 ingest + 3 TrainFlow.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LOOM, expectNoTraceback, loom, plainMetaflow, rng, runsOf, tempWorkspace } from "../helpers";

/** The card's content: Metaflow embeds it as base64 JSON in the HTML. */
function cardText(path: string): string {
  const html = readFileSync(path, "utf8");
  const m = html.match(/__MF_DATA__\[[^\]]*\] = "([A-Za-z0-9+/=]+)"/);
  return m ? Buffer.from(m[1]!, "base64").toString("utf8") : html;
}

const T = 120000;

const trainRuns = (ws: string) => runsOf(ws, "TrainFlow");

/** Users walk a sparse Markov chain over 150 event types (4 successors each, 10% popularity restarts).
 * Extra columns for bad-input checks: `channel` is constant, `row_id` is unique per row. */
function markovCsv(nEvents = 50000, nTypes = 150, nUsers = 2000): string {
  const r = rng(42);
  const succ = Array.from({ length: nTypes }, () => Array.from({ length: 4 }, () => Math.floor(r() * nTypes)));
  const w = Array.from({ length: nTypes }, () => { const x = [r(), r() * 0.5, r() * 0.25, r() * 0.1]; const s = x.reduce((a, b) => a + b); return x.map((v) => v / s); });
  const pop = Array.from({ length: nTypes }, (_, i) => 1 / (i + 1) ** 1.1);
  const popSum = pop.reduce((a, b) => a + b);
  const drawPop = () => { let u = r() * popSum; for (let i = 0; i < nTypes; i++) { u -= pop[i]!; if (u <= 0) return i; } return nTypes - 1; };
  const drawNext = (s: number) => { let u = r(); for (let k = 0; k < 4; k++) { u -= w[s]![k]!; if (u <= 0) return succ[s]![k]!; } return succ[s]![3]!; };
  const rows: string[] = [];
  let id = 0;
  for (let u = 0; u < nUsers; u++) {
    const len = Math.floor(nEvents / nUsers);
    let s = drawPop();
    for (let t = 0; t < len; t++) {
      const ts = new Date(Date.UTC(2024, 0, 1) + t * 60000 + u * 7).toISOString().replace(".000Z", "Z");
      rows.push(`${id++},u${u},${ts},e${s},web`);
      s = r() < 0.1 ? drawPop() : drawNext(s);
    }
  }
  // shuffle so the builder has to order by time itself
  for (let i = rows.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [rows[i], rows[j]] = [rows[j]!, rows[i]!]; }
  return "row_id,user_id,ts,event,channel\n" + rows.join("\n") + "\n";
}

/** Run `loom` in a real pseudo-terminal (util-linux `script`), answer the y/N prompt with `answer`. */
async function loomInPty(args: string[], answer: string, env: Record<string, string>, cwd: string) {
  const cmd = `stty cols 120 rows 40; exec ${LOOM} ${args.join(" ")}`;
  const penv: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) penv[k] = v;
  delete penv.METAFLOW_USER;
  Object.assign(penv, env);
  const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { cwd, env: penv, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  let out = "";
  let answered = false;
  const dec = new TextDecoder();
  const reader = proc.stdout.getReader();
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    out += dec.decode(value);
    if (!answered && out.includes("Proceed?")) {
      answered = true;
      await Bun.sleep(200);
      proc.stdin.write(answer);
      proc.stdin.flush();
    }
  }
  proc.stdin.end();
  const code = await proc.exited;
  return { code, out: out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ""), answered };
}

describe("train", () => {
  const ws = tempWorkspace();
  let ds = "";
  let built: Awaited<ReturnType<typeof loom>>;
  let again: Awaited<ReturnType<typeof loom>>;
  const local = { LOOM_MODEL_BUILDER_PROVIDER: "local", LOOM_GPU_TARGET: undefined };

  beforeAll(async () => {
    writeFileSync(join(ws, "events.csv"), markovCsv());
    const ing = await loom(["ingest", "--source", "events.csv", "--json"], { cwd: ws });
    expect(ing.code).toBe(0);
    ds = ing.json.pathspec;
    built = await loom(["train", "--dataset", ds, "--objective", "next-event", "--budget", "probe", "--json"], { cwd: ws, env: local });
    again = await loom(["train", "--dataset", ds, "--objective", "next-event", "--budget", "probe", "--provider", "local", "--json"], { cwd: ws, env: { LOOM_GPU_TARGET: undefined } });
  }, 180000);

  test("local stand-in: BUILT, a backbone that clearly beats popularity, under 2 s for 50,000 events", () => {
    expect(built.code).toBe(0);
    const j = built.json;
    expect(j.verb).toBe("train");
    expect(j.tier).toBe("expensive");
    expect(j.status).toBe("BUILT");
    expect(j.pathspec).toMatch(/^TrainFlow\/\d+$/);
    expect(j.inputs).toEqual([ds]);
    const s = j.summary;
    expect(s.backbone_pathspec).toBe(j.pathspec);
    expect(s.columns).toEqual({ entity: "user_id", time: "ts", event: "event" });
    expect(s.events).toBe(50000);
    expect(s.metrics.heldout).toBe(2000);
    expect(s.metrics.hit_at_10).toBeGreaterThan(s.metrics.baseline_hit_at_10 + 0.15);
    expect(s.metrics.mrr).toBeGreaterThan(1.5 * s.metrics.baseline_mrr);
    expect(s.build_seconds).toBeGreaterThan(0);
    expect(s.build_seconds).toBeLessThan(2);
    expect(s.cost.usd).toBe(0);
    expect(built.stderr).toContain("cost (gate) : budget=probe: built on this machine's CPU, 0 GPU-hours ($0)");
    const card = cardText(j.card_path);
    expect(card).toContain("Nearest neighbours");
    expect(card).toContain("2-D projection");
  }, T);

  test("deterministic: the same data object and budget give a bit-identical backbone", () => {
    expect(again.code).toBe(0);
    expect(again.json.pathspec).not.toBe(built.json.pathspec);
    expect(again.json.summary.backbone_sha256).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(again.json.summary.backbone_sha256).toBe(built.json.summary.backbone_sha256);
  }, T);

  test("plain Metaflow reads the backbone back, and its bytes hash to backbone_sha256", () => {
    const s = built.json.summary;
    const got = plainMetaflow(ws, `
import hashlib, json, numpy as np
from metaflow import Run, namespace
namespace(None)
d = Run("${built.json.pathspec}").data
h = hashlib.sha256(np.ascontiguousarray(d.embeddings, dtype="<f4").tobytes() + np.ascontiguousarray(d.context_embeddings, dtype="<f4").tobytes())
print(json.dumps({"shape": list(d.embeddings.shape), "vocab": len(d.vocabulary), "sha": "sha256:" + h.hexdigest(), "first": d.vocabulary[0]}))`);
    expect(got.shape).toEqual([s.vocab_size, s.dim]);
    expect(got.vocab).toBe(s.vocab_size);
    expect(got.sha).toBe(s.backbone_sha256);
  }, T);

  test("nemo without LOOM_GPU_TARGET refuses before any gate: the plan, the status line, exit 2, nothing launched", async () => {
    const before = trainRuns(ws);
    const r = await loom(["train", "--dataset", ds, "--objective", "next-event", "--budget", "full"], { cwd: ws, env: { LOOM_GPU_TARGET: undefined, LOOM_MODEL_BUILDER_PROVIDER: undefined } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("cost (gate) : budget=full: 8 GPU x 12 h = 96 GPU-hours (~$288)");
    expect(r.stderr).toContain("STATUS      : REFUSED_NO_GPU_TARGET   (set LOOM_GPU_TARGET, or build on this machine's CPU: --provider local)");
    expect(r.stderr).toContain("LOOM_MODEL_BUILDER_PROVIDER=local");
    expect(r.stderr).not.toContain("gate        :");
    expect(r.stdout).toBe("");
    expectNoTraceback(r);
    const j = await loom(["train", "--dataset", ds, "--budget", "small", "--json"], { cwd: ws, env: { LOOM_GPU_TARGET: undefined, LOOM_MODEL_BUILDER_PROVIDER: undefined } });
    expect(j.code).toBe(2);
    expect(j.json.status).toBe("REFUSED_NO_GPU_TARGET");
    expect(j.json.summary.cost).toMatchObject({ gpus: 2, hours: 4, gpu_hours: 8, usd: 24 });
    expect(trainRuns(ws)).toBe(before);
  }, T);

  test("nemo with LOOM_GPU_TARGET and no --launch: a PLANNED run with its card, $0 at the gate, the launch command", async () => {
    const r = await loom(["train", "--dataset", ds, "--objective", "next-event", "--budget", "full", "--json"], { cwd: ws, env: { LOOM_GPU_TARGET: "modal:H100", LOOM_MODEL_BUILDER_PROVIDER: undefined } });
    expect(r.code).toBe(0);
    expect(r.json.status).toBe("PLANNED");
    expect(r.json.tier).toBe("expensive");
    expect(r.stderr).toContain("96 GPU-hours (~$288): plan only, nothing launches ($0 now");
    expect(r.stderr).toContain("within workspace limits");
    const s = r.json.summary;
    expect(s.cost.line).toBe("budget=full: 8 GPU x 12 h = 96 GPU-hours (~$288)");
    expect(s.plan.recipe).toBe("nemo.collections.llm.recipes.llama32_1b.pretrain_recipe");
    expect(s.plan.trains_on).toContain("Megatron indexed dataset");
    expect(cardText(r.json.card_path)).toContain("PreTrainingDataModule");
    expect(s.plan.target).toBe("modal:H100");
    expect(s.plan.launch_command).toContain(`--dataset ${ds}`);
    expect(s.plan.launch_command).toEndWith("--launch");
    expect(r.json.next).toContain(s.plan.launch_command);
    expect(cardText(r.json.card_path)).toContain("nothing launched");
  }, T);

  test("--launch without a terminal is denied by the gate (exit 1), nothing launched", async () => {
    const before = trainRuns(ws);
    const r = await loom(["train", "--dataset", ds, "--budget", "probe", "--launch", "--json"], { cwd: ws, env: { LOOM_GPU_TARGET: "modal:H100", LOOM_MODEL_BUILDER_PROVIDER: undefined } });
    expect(r.code).toBe(1);
    expect(r.json.status).toBe("DENIED");
    expect(r.json.tier).toBe("irreversible");
    expect(trainRuns(ws)).toBe(before);
  }, T);

  test("--launch in a terminal: 'n' denies; 'y' passes the gate and reaches the Modal boundary (client/credentials → exit 2)", async () => {
    const env = { LOOM_GPU_TARGET: "modal:H100", MODAL_TOKEN_ID: "", MODAL_TOKEN_SECRET: "", MODAL_CONFIG_PATH: join(ws, "no-modal.toml") };
    const args = ["train", "--dataset", ds, "--objective", "next-event", "--budget", "full", "--launch"];
    const before = trainRuns(ws);
    const no = await loomInPty(args, "n\r", env, ws);
    expect(no.answered).toBe(true);
    expect(no.out).toContain("cost (gate) : budget=full: 8 GPU x 12 h = 96 GPU-hours (~$288)");
    expect(no.code).toBe(1);
    expect(no.out).toContain("DENIED");
    const yes = await loomInPty(args, "y\r", env, ws);
    expect(yes.answered).toBe(true);
    expect(yes.code).toBe(2);
    expect(yes.out).not.toContain("DENIED");
    expect(yes.out).toMatch(/pip install modal|modal token new/);
    expect(yes.out).not.toContain("Traceback");
    expect(trainRuns(ws)).toBe(before);
  }, T);

  test("bad input: exit 2 with one line, no run", async () => {
    const before = trainRuns(ws);
    const cases: [string[], Record<string, string | undefined>, RegExp][] = [
      [["--event", "channel"], local, /1 event type/],
      [["--entity", "row_id"], local, /too short to hold out/],
      [["--event", "nope"], local, /column 'nope' \(--event\)/],
      [["--objective", "finetune"], local, /finetune needs a GPU builder: set LOOM_GPU_TARGET/],
      [["--budget", "huge"], local, /--budget/],
      [["--objective", "classify"], local, /--objective/],
      [["--provider", "torch"], {}, /unknown provider 'torch'/],
      [[], { LOOM_MODEL_BUILDER_PROVIDER: "pytorch" }, /unknown provider 'pytorch'/],
      [[], { LOOM_MODEL_BUILDER_PROVIDER: "nemo", LOOM_GPU_TARGET: "slurm:H100" }, /unknown launcher 'slurm'/],
      [[], { LOOM_MODEL_BUILDER_PROVIDER: "nemo", LOOM_GPU_TARGET: "modal:TPU" }, /unknown GPU 'TPU'/],
    ];
    for (const [extra, env, re] of cases) {
      const r = await loom(["train", "--dataset", ds, ...extra], { cwd: ws, env });
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n").pop()!).toMatch(re);
      expectNoTraceback(r);
    }
    const missing = await loom(["train", "--dataset", "IngestDataset/999"], { cwd: ws, env: local });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("does not exist");
    expect(trainRuns(ws)).toBe(before);
  }, T);
});
