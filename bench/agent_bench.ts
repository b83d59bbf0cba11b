/**
 * The agent's costs, each against a reference measured in the same invocation (medians, alternated):
 *  1. `loom` to a ready prompt in a pty (script(1)) vs `loom --version` in the same pty; and whether any
 *     Python process exists when the prompt appears (goal: < 150 ms, none).
 *  2. `loom agent -p` overhead per tool call beyond the verb: a scripted session of K calls (one per
 *     model turn, through the local Anthropic streaming server) vs the same K `loom <verb> --json`
 *     commands run directly; overhead/call = (agent − agent with no call − K × direct) / K (goal < 50 ms).
 *  3. `/loom-auto` keyless on examples/churn.csv vs scripts/demo.sh's same stages as direct commands
 *     (goal ≤ 1.1×).
 * Every section prints the load average before and after it (the machine is shared: the figures move with it).
 * Usage: bun bench/agent_bench.ts [--rounds N] [--auto-rounds N] [--skip-auto] [--skip-calls]
 *                                 [--baseline PATH]   (another build's prompt, timed in the same alternation)
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fakeAnthropicAgent } from "../test/fixtures/agent-servers";

const ROOT = resolve(import.meta.dir, "..");
const LOOM = join(ROOT, "build", "loom");
const arg = (k: string, d: string) => {
  const i = process.argv.indexOf(k);
  return i > 0 ? process.argv[i + 1]! : d;
};
const ROUNDS = Number(arg("--rounds", "10"));
const AUTO_ROUNDS = Number(arg("--auto-rounds", "3"));
const BASELINE = process.argv.includes("--baseline") ? resolve(arg("--baseline", "")) : null;
const load = () => loadavg().map((x) => x.toFixed(2)).join(" ");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const env = (extra: Record<string, string> = {}) => {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) e[k] = v;
  delete e.ANTHROPIC_API_KEY;
  return { ...e, ...extra };
};

/** ms from spawn until `needle` appears on the pty; then the process tree is checked for python */
async function ptyUntil(cmd: string, needle: string, cwd: string): Promise<{ ms: number; python: boolean }> {
  const t0 = performance.now();
  const p = Bun.spawn(["script", "-qfec", cmd, "/dev/null"], { cwd, env: env({ TERM: "xterm" }), stdin: "pipe", stdout: "pipe", stderr: "ignore" });
  const dec = new TextDecoder();
  let buf = "";
  let ms = -1;
  for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
    buf += dec.decode(chunk, { stream: true });
    if (buf.includes(needle)) {
      ms = performance.now() - t0;
      break;
    }
  }
  const python = descendants(p.pid).some((pid) => /python/.test(cmdline(pid)));
  p.kill("SIGKILL");
  for (const pid of descendants(p.pid)) try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
  await p.exited;
  return { ms, python };
}
function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
  } catch {
    return "";
  }
}
function descendants(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch { /* raced */ }
  }
  const out: number[] = [];
  const walk = (p: number) => (kids.get(p) ?? []).forEach((k) => (out.push(k), walk(k)));
  walk(root);
  return out;
}

async function run(args: string[], cwd: string, extra: Record<string, string> = {}): Promise<{ ms: number; out: any }> {
  const t0 = performance.now();
  const p = Bun.spawn([LOOM, ...args], { cwd, env: env(extra), stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  const text = await new Response(p.stdout).text();
  await p.exited;
  const ms = performance.now() - t0;
  let out: any;
  try {
    out = JSON.parse(text.trim().split("\n").pop()!);
  } catch { /* human output */ }
  return { ms, out };
}

const ws = mkdtempSync(join(tmpdir(), "loom-agent-bench-"));
const ing = await run(["ingest", "--source", join(ROOT, "examples", "churn.csv"), "--name", "churn", "--json"], ws);
const DS = ing.out.pathspec as string;
if (!DS) throw new Error(`ingest failed: ${JSON.stringify(ing.out?.messages ?? ing.out)}`);
console.log(`workspace ${ws} · data object ${DS} · ${ROUNDS} rounds · ${readdirSync("/sys/devices/system/cpu").filter((d) => /^cpu\d+$/.test(d)).length} CPUs`);

// 1. startup to the prompt
{
  const l0 = load();
  const prompt: number[] = [];
  const version: number[] = [];
  const base: number[] = [];
  let python = false;
  for (let i = 0; i < ROUNDS; i++) {
    const a = await ptyUntil(`${LOOM}`, "loom> ", ws);
    prompt.push(a.ms);
    python ||= a.python;
    version.push((await ptyUntil(`${LOOM} --version`, "0.", ws)).ms);
    if (BASELINE) base.push((await ptyUntil(BASELINE, "loom> ", ws)).ms);
  }
  console.log(`\n1. loom → ready prompt (pty): median ${median(prompt).toFixed(1)} ms  vs  loom --version ${median(version).toFixed(1)} ms  (ratio ${(median(prompt) / median(version)).toFixed(2)}×; goal < 150 ms)`);
  if (BASELINE) console.log(`   baseline ${BASELINE} → prompt: median ${median(base).toFixed(1)} ms (this build ${(median(prompt) / median(base)).toFixed(2)}× of it)`);
  console.log(`   python running at the prompt: ${python ? "YES" : "no"} · load average ${l0} → ${load()}`);
}

// 2. per-call overhead
// connect --list: a verb without Python (tens of ms), so the verb's own variance does not swamp the overhead;
// datasets: a verb with one Python call
for (const [verb, input, direct] of process.argv.includes("--skip-calls") ? [] : ([["connect", { list: true }, ["connect", "--list"]], ["datasets", {}, ["datasets"]]] as const)) {
  const K = 8;
  const l0 = load();
  const agentMs: number[] = [];
  const zeroMs: number[] = [];
  const directMs: number[] = [];
  for (let i = 0; i < Math.max(3, Math.floor(ROUNDS / 2)); i++) {
    const srv = fakeAnthropicAgent([...Array.from({ length: K }, () => ({ calls: [{ name: `loom_${verb}`, input }] })), { text: "done" }]);
    const a = await run(["agent", "-p", "go", "--json"], ws, { ANTHROPIC_API_KEY: "sk-bench", ANTHROPIC_BASE_URL: srv.url });
    srv.stop();
    if (a.out?.calls?.length !== K) throw new Error(`agent made ${a.out?.calls?.length} calls`);
    agentMs.push(a.ms);
    const z = fakeAnthropicAgent([{ text: "done" }]);
    zeroMs.push((await run(["agent", "-p", "go", "--json"], ws, { ANTHROPIC_API_KEY: "sk-bench", ANTHROPIC_BASE_URL: z.url })).ms);
    z.stop();
    let d = 0;
    for (let k = 0; k < K; k++) d += (await run([...direct, "--json"], ws)).ms;
    directMs.push(d);
  }
  const over = (median(agentMs) - median(zeroMs) - median(directMs)) / K;
  console.log(`\n2. agent -p, ${K} × loom_${verb}: agent ${median(agentMs).toFixed(0)} ms, agent with no call ${median(zeroMs).toFixed(0)} ms, ${K} direct \`loom ${direct.join(" ")} --json\` ${median(directMs).toFixed(0)} ms`);
  console.log(`   overhead per tool call beyond the verb: ${over.toFixed(1)} ms (goal < 50 ms; per-call verb ${(median(directMs) / K).toFixed(0)} ms) · load average ${l0} → ${load()}`);
}

// 3. /loom-auto vs the demo's stages
if (!process.argv.includes("--skip-auto")) {
  const METRIC = "Maximize ROC-AUC on a held-out split.";
  const l0 = load();
  const auto: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < AUTO_ROUNDS; i++) {
    const a = await run(["agent", "-p", `/loom-auto --dataset ${DS} --target churned`, "--yes", "--json"], ws);
    if (a.out?.status !== "OK") throw new Error(`/loom-auto: ${JSON.stringify(a.out).slice(0, 300)}`);
    auto.push(a.ms);
    const t0 = performance.now();
    const eda = await run(["eda", "--dataset", DS, "--target", "churned", "--json"], ws);
    const feat = await run(["features", "--dataset", DS, "--target", "churned", "--from", eda.out.pathspec, "--recipe", "standard", "--json"], ws);
    const opt = await run(["run", "--dataset", feat.out.pathspec, "--target", "churned", "--goal", "Predict churned for each row.", "--metric", METRIC, "--steps", "10", "--model-provider", "offline", "--json"], ws);
    const val = await run(["validate", "--dataset", feat.out.pathspec, "--target", "churned", "--model", opt.out.pathspec, "--json"], ws);
    const rep = await run(["report", "--run", val.out.pathspec, "--json"], ws);
    if (rep.out?.exit_code !== 0) throw new Error("direct stages failed");
    direct.push(performance.now() - t0);
  }
  console.log(`\n3. /loom-auto keyless ${(median(auto) / 1000).toFixed(2)} s  vs  demo.sh's stages run directly ${(median(direct) / 1000).toFixed(2)} s  (ratio ${(median(auto) / median(direct)).toFixed(3)}×; goal ≤ 1.1×)`);
  console.log(`   rounds: auto ${auto.map((x) => (x / 1000).toFixed(2)).join(", ")} · direct ${direct.map((x) => (x / 1000).toFixed(2)).join(", ")} · load average ${l0} → ${load()}`);
}
