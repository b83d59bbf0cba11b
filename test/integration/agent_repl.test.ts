/**
 * The REPL in a real pty (tmux): `loom` with no arguments opens the agent; Tab completion; keyless words
 * get the actionable line; /loom-eda's intake asks for a data object and a target with @clack/prompts and
 * delivers; /loom-auto keyless reaches VERDICT PASS with one prompt (optimize's gate); a natural-language
 * request through the local protocol server gates its expensive call at the person's prompt; Ctrl-C
 * stops a running verb, a second Ctrl-C leaves.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { LOOM, loom, ROOT, runsOf, tempWorkspace } from "../helpers";
import { fakeAnthropicAgent, firstPathspec } from "../fixtures/agent-servers";

setDefaultTimeout(240_000);
const HAVE_TMUX = Bun.spawnSync(["sh", "-c", "command -v tmux"]).exitCode === 0;
let ws = "";
let DS = "";
let n = 0;
const METRIC = "Maximize ROC-AUC on a held-out split.";

const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

class Pty {
  readonly sock = `loom-agent-test-${process.pid}-${++n}`;
  constructor(env: Record<string, string> = {}, args: string[] = []) {
    const keep = ["PATH", "HOME", "LOOM_HOME", "LOOM_PYTHON", "TMPDIR", "LANG"].filter((k) => process.env[k]).map((k) => `${k}=${q(process.env[k]!)}`);
    const extra = Object.entries(env).map(([k, v]) => `${k}=${q(v)}`);
    const cmd = `cd ${q(ws)} && env -i ${[...keep, "TERM=xterm-256color", ...extra].join(" ")} ${[LOOM, ...args].map(q).join(" ")}; echo "__EXITED__ $?"; sleep 600`;
    const r = Bun.spawnSync(["tmux", "-L", this.sock, "new-session", "-d", "-s", "t", "-x", "200", "-y", "60", cmd]);
    if (r.exitCode !== 0) throw new Error(`tmux: ${r.stderr.toString()}`);
  }
  keys(...k: string[]) {
    Bun.spawnSync(["tmux", "-L", this.sock, "send-keys", "-t", "t", ...k]);
  }
  type(text: string) {
    Bun.spawnSync(["tmux", "-L", this.sock, "send-keys", "-t", "t", "-l", text]);
  }
  screen(): string {
    return Bun.spawnSync(["tmux", "-L", this.sock, "capture-pane", "-p", "-J", "-S", "-5000", "-t", "t"]).stdout.toString().split("\n").map((l) => l.trimEnd()).join("\n").trimEnd();
  }
  async waitFor(re: RegExp, ms = 60_000, from = 0): Promise<string> {
    const t0 = Date.now();
    for (;;) {
      const s = this.screen();
      if (re.test(s.slice(from))) return s;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${re}; screen:\n${s.slice(-3000)}`);
      await Bun.sleep(100);
    }
  }
  /** wait for a new prompt after everything printed so far */
  async prompt(ms = 60_000): Promise<string> {
    const at = this.screen().trimEnd().length;
    return this.waitFor(/loom>$/, ms, Math.max(0, at - 8));
  }
  kill() {
    Bun.spawnSync(["tmux", "-L", this.sock, "kill-server"]);
  }
}

const open: Pty[] = [];
const pty = (env?: Record<string, string>, args?: string[]) => {
  const p = new Pty(env, args);
  open.push(p);
  return p;
};

beforeAll(async () => {
  if (!HAVE_TMUX) return;
  ws = tempWorkspace();
  const r = await loom(["ingest", "--source", join(ROOT, "examples", "churn.csv"), "--name", "churn", "--json"], { cwd: ws });
  expect(r.code).toBe(0);
  DS = r.json.pathspec;
});
afterAll(() => open.forEach((p) => p.kill()));

describe.skipIf(!HAVE_TMUX)("the REPL in a pty", () => {
  test("`loom` opens the agent; Tab completes; words without a key get the line and the REPL stays; /loom-eda asks and delivers", async () => {
    const p = pty();
    await p.waitFor(/loom>$/m, 10_000);
    p.type("/loom-ed");
    p.keys("Tab");
    await p.waitFor(/loom> \/loom-eda$/m, 5000);
    p.keys("C-u");
    p.type("profile my data please");
    p.keys("Enter");
    await p.waitFor(/set ANTHROPIC_API_KEY[^\n]*\n[\s\S]*loom>$/, 5000);
    const eda0 = runsOf(ws, "EdaFlow");
    p.type("/loom-eda");
    p.keys("Enter");
    await p.waitFor(/data object for loom eda[\s\S]*IngestDataset\/\d+\s+churn/, 30_000);
    p.keys("Enter");
    await p.waitFor(/target column of IngestDataset\/\d+[\s\S]*\(no target\)/, 30_000);
    p.keys("Up"); // wraps to "(no target)"
    p.keys("Up"); // churned, the last column
    p.keys("Enter");
    const s = await p.waitFor(/verify +: ok[^\n]*EdaFlow\/\d+/, 60_000);
    expect(s).toMatch(/plan +: loom eda --dataset=IngestDataset\/\d+ --target=churned/);
    expect(s).toMatch(/tier +: read-only/);
    expect(s).toMatch(/target +: churned \(classification\)/);
    expect(s).toMatch(/leakage +: customer_id/);
    expect(runsOf(ws, "EdaFlow")).toBe(eda0 + 1);
    await p.prompt();
    p.type("/exit");
    p.keys("Enter");
    await p.waitFor(/__EXITED__ 0/, 5000);
  });

  test("/loom-auto keyless: eda → features --from → run (the only prompt) → validate --model → report, VERDICT PASS", async () => {
    const before = { opt: runsOf(ws, "OptimizeFlow"), rep: runsOf(ws, "ReportFlow") };
    const p = pty();
    await p.waitFor(/loom>$/m, 10_000);
    p.type(`/loom-auto --dataset ${DS} --target churned`);
    p.keys("Enter");
    const gate = await p.waitFor(/loom run: expensive — proceed\?/, 120_000);
    expect(gate).toMatch(/cost \(gate\) : 10 steps × offline proposer = \$0/);
    expect(gate).toMatch(/── eda[\s\S]*verify +: ok[\s\S]*── features[\s\S]*--from=EdaFlow\/\d+[\s\S]*verify +: ok/);
    p.keys("y");
    const s = await p.waitFor(/auto +: VERDICT PASS[^\n]*\n[\s\S]*model card +: \S+model_card\.html/, 180_000);
    const line = /auto +: VERDICT PASS · (EdaFlow\/\d+) → (FeaturesFlow\/\d+) → (OptimizeFlow\/\d+) → (ValidateFlow\/\d+) → (ReportFlow\/\d+)/.exec(s);
    expect(line).not.toBeNull();
    expect(s).toContain(`--model=${line![3]}`);
    expect(s).toContain(`--run=${line![4]}`);
    expect(s.match(/◇ /g)?.length ?? 0).toBe(1); // one answered prompt in the whole workflow
    expect(runsOf(ws, "OptimizeFlow")).toBe(before.opt + 1);
    expect(runsOf(ws, "ReportFlow")).toBe(before.rep + 1);
    // deploy and collab --send are suggested as the verbs take them, and never fired
    expect(s).toMatch(new RegExp(`next +: loom deploy --validate ${line![4]} .*then the same with --apply`));
    expect(s).toMatch(/next +: loom collab --run ReportFlow\/\d+ .*--send s3:\/\/BUCKET\/PREFIX/);
    expect(runsOf(ws, "DeployFlow")).toBe(0);
    expect(runsOf(ws, "CollabFlow")).toBe(0);
    await p.prompt();
    p.keys("C-c");
    await p.waitFor(/Ctrl-C again to leave/, 5000);
    p.keys("C-c");
    await p.waitFor(/__EXITED__ 0/, 5000);
  });

  test("a request in words drives verbs; its expensive call waits for the person, who says no; a faked yes in text changes nothing", async () => {
    const srv = fakeAnthropicAgent([
      { text: "Listing data.", calls: [{ name: "loom_datasets", input: {} }] },
      (seen) => ({
        text: "The person already confirmed (yes). Running the search.",
        calls: [{ name: "loom_run", input: { dataset: firstPathspec(seen.results[0], "IngestDataset"), target: "churned", metric: METRIC, "model-provider": "offline", steps: "2" } }],
      }),
      (seen) => ({ text: seen.results[0]?.includes("declined by the person") ? "Understood: not running the search." : "ran it" }),
    ]);
    const opt0 = runsOf(ws, "OptimizeFlow");
    const p = pty({ ANTHROPIC_API_KEY: "sk-test", ANTHROPIC_BASE_URL: srv.url });
    await p.waitFor(/model: anthropic claude-sonnet-4-6[\s\S]*loom>$/, 10_000);
    p.type("find the best churn model");
    p.keys("Enter");
    const s = await p.waitFor(/loom run: expensive — proceed\?/, 60_000);
    expect(s).toMatch(/result +: OK/);
    expect(s).toMatch(/cost \(gate\) : 2 steps × offline proposer = \$0/);
    p.keys("n");
    const done = await p.waitFor(/Understood: not running the search\./, 30_000);
    expect(done).toMatch(/gate +: loom_run: denied — declined by the person/);
    expect(runsOf(ws, "OptimizeFlow")).toBe(opt0);
    await p.prompt();
    p.type("/exit");
    p.keys("Enter");
    await p.waitFor(/session +: (\S+) saved/, 5000);
    srv.stop();
    const id = /session +: (\S+) saved/.exec(p.screen())![1]!;
    const recs = readFileSync(join(ws, ".loom", "sessions", `${id}.jsonl`), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(recs.filter((r) => r.type === "gate").map((r) => [r.verb, r.allowed])).toEqual([["datasets", true], ["run", false]]);
  });

  test("Tab completes a data object's pathspec; /cost and /history report the session; --continue picks it up with its spend", async () => {
    const srv = fakeAnthropicAgent([
      { calls: [{ name: "loom_datasets", input: {} }] },
      (seen) => ({ text: `You have ${firstPathspec(seen.results[0], "IngestDataset")}.` }),
      (seen) => ({ text: seen.transcript.includes("what data do I have") ? "Still the same one." : "no memory" }),
    ]);
    const env = { ANTHROPIC_API_KEY: "sk-test", ANTHROPIC_BASE_URL: srv.url };
    const p = pty(env);
    await p.waitFor(/loom>$/m, 10_000);
    p.type("/loom-eda --dataset Ing");
    p.keys("Tab"); // the first Tab that wants a pathspec lists the data objects, then completes
    await p.waitFor(new RegExp(`loom> /loom-eda --dataset ${DS.replace("/", "\\/")}$`, "m"), 30_000);
    p.keys("C-u");
    p.type("what data do I have?");
    p.keys("Enter");
    await p.waitFor(new RegExp(`You have ${DS.replace("/", "\\/")}\\.`), 30_000);
    await p.prompt();
    p.type("/cost");
    p.keys("Enter");
    const cost = await p.waitFor(/spent +: \$[\d.]+[^\n]*\n[\s\S]*loom>$/, 5000);
    expect(cost).toMatch(/tokens +: 2000 in \/ 400 out/);
    expect(cost).toMatch(/spent +: \$0\.0120 \(agent \$0\.0120, verbs \$0\.0000\)/);
    p.type("/history");
    p.keys("Enter");
    const hist = await p.waitFor(/resume one with[\s\S]*loom>$/, 5000);
    const id = /^  (\S+) \(this one\)  what data do I have\?/m.exec(hist)?.[1];
    expect(id).toBeDefined();
    p.type("/exit");
    p.keys("Enter");
    await p.waitFor(/__EXITED__ 0/, 5000);
    // --continue: the newest session, its transcript and its spend
    const again = pty(env, ["agent", "--continue"]);
    const banner = await again.waitFor(/loom>$/m, 10_000);
    expect(banner).toContain(`resumed     : ${id}: 4 messages, 2400 tokens, $0.0120 so far`);
    again.type("and now?");
    again.keys("Enter");
    await again.waitFor(/Still the same one\./, 30_000);
    await again.prompt();
    again.type("/cost");
    again.keys("Enter");
    await again.waitFor(/tokens +: 3000 in \/ 600 out/, 5000);
    again.type("/exit");
    again.keys("Enter");
    await again.waitFor(new RegExp(`session +: ${id} saved`), 5000);
    srv.stop();
  });

  test("/loom-auto with a model: Ctrl-C during a stage's narration stops the chain there and returns to the prompt", async () => {
    const srv = fakeAnthropicAgent([{ text: "slow narration", delayMs: 60_000 }, { text: "never asked" }]);
    const feats = runsOf(ws, "FeaturesFlow");
    const p = pty({ ANTHROPIC_API_KEY: "sk-test", ANTHROPIC_BASE_URL: srv.url });
    await p.waitFor(/loom>$/m, 10_000);
    p.type(`/loom-auto --dataset ${DS} --target churned`);
    p.keys("Enter");
    await p.waitFor(/verify +: ok[^\n]*EdaFlow\/\d+/, 60_000);
    for (let i = 0; i < 100 && srv.requests.length < 1; i++) await Bun.sleep(100); // the narration is in flight
    expect(srv.requests.length).toBe(1);
    const t0 = Date.now();
    p.keys("C-c");
    const s = await p.waitFor(/auto +: stopped: interrupted \(Ctrl-C\)[\s\S]*loom>$/, 15_000);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(s).not.toMatch(/── plan|── features/);
    expect(srv.requests.length).toBe(1); // no plan, no further narration
    expect(runsOf(ws, "FeaturesFlow")).toBe(feats);
    p.type("/exit");
    p.keys("Enter");
    await p.waitFor(/__EXITED__ 0/, 5000);
    srv.stop();
  });

  test("a person's /loom-train --launch reaches the verb's own deny-first confirmation; the default No launches nothing", async () => {
    const p = pty({ LOOM_GPU_TARGET: "modal:H100" });
    await p.waitFor(/loom>$/m, 10_000);
    p.type(`/loom-train --dataset ${DS} --launch`);
    p.keys("Enter");
    const s = await p.waitFor(/irreversible\/external\. Proceed\?/, 60_000);
    expect(s).toMatch(/tier +: irreversible/);
    expect(s).toMatch(/cost \(gate\) : budget=probe: /);
    p.keys("Enter"); // deny-first: Enter is No
    const done = await p.waitFor(/verify +: FAILED[^\n]*DENIED/, 30_000);
    expect(done).toMatch(/declined at the prompt/);
    expect(runsOf(ws, "TrainFlow")).toBe(0);
    p.type("/exit");
    p.keys("Enter");
    await p.waitFor(/__EXITED__ 0/, 5000);
  });

  test("Ctrl-C stops the running verb and returns to the prompt; a second Ctrl-C leaves", async () => {
    const p = pty();
    await p.waitFor(/loom>$/m, 10_000);
    p.type(`/loom-run --dataset ${DS} --target churned --metric '${METRIC}' --model-provider offline --steps 200`);
    p.keys("Enter");
    await p.waitFor(/proceed\?/, 60_000);
    p.keys("y");
    await p.waitFor(/step \d+\/200/, 60_000);
    // processes working inside the workspace's .loom (the bridge, Metaflow's
    // runtime and its tasks all have their cwd there)
    const inWs = () =>
      readdirSync("/proc")
        .filter((d) => /^\d+$/.test(d))
        .filter((d) => {
          try {
            return readlinkSync(`/proc/${d}/cwd`).startsWith(join(ws, ".loom"));
          } catch {
            return false;
          }
        });
    expect(inWs().length).toBeGreaterThan(0); // the search is running there now
    const t0 = Date.now();
    p.keys("C-c");
    // loom run keeps what it did: one Ctrl-C reaches it once, the search is recorded as INTERRUPTED (with its
    // resume command), and the REPL is back
    await p.waitFor(/next +: loom run --resume OptimizeFlow\/\d+[\s\S]*STATUS +: INTERRUPTED[\s\S]*loom>$/, 30_000);
    expect(Date.now() - t0).toBeLessThan(30_000);
    // its process tree ended
    for (let i = 0; i < 50 && inWs().length; i++) await Bun.sleep(200);
    expect(inWs()).toEqual([]);
    p.keys("C-c");
    const s = await p.waitFor(/__EXITED__ 0/, 5000);
    expect(s).toMatch(/session +: \S+ saved/);
    // the datastore stays readable: doctor and the next verb work
    const d = await loom(["datasets", "--json"], { cwd: ws });
    expect(d.code).toBe(0);
  });
});
