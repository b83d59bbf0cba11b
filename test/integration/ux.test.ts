/**
 * The everyday experience through build/loom, in one shared workspace (runs are reused across assertions):
 * run addressing (a label, Flow/latest, run-id prefixes, ambiguity), re-ingesting an identical file, and
 * every verb's `next` lines executed as printed (placeholders filled) with exit 0 or 1.
 * Real runs: 2 ingest + the verbs the `next` lines start (eda, features, viz, validate, run, report).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { LOOM, expectNoTraceback, loom, loomPython, rng, runsOf, tempWorkspace } from "../helpers";

export function churnCsv(n = 240): string {
  const r = rng(11);
  const rows = ["id,tenure,spend,plan,churned"];
  for (let i = 0; i < n; i++) {
    const tenure = Math.floor(r() * 60), spend = +(r() * 100).toFixed(2);
    const plan = ["basic", "pro", "team"][Math.floor(r() * 3)]!;
    const z = -0.06 * tenure + 0.02 * spend + (plan === "basic" ? 0.8 : 0) - 0.5;
    rows.push(`${i},${tenure},${spend},${plan},${r() < 1 / (1 + Math.exp(-2 * z)) ? 1 : 0}`);
  }
  return rows.join("\n") + "\n";
}

const ws = tempWorkspace();
let first = "";

beforeAll(async () => {
  writeFileSync(join(ws, "churn.csv"), churnCsv());
  const r = await loom(["ingest", "--source", "churn.csv", "--json"], { cwd: ws });
  expect(r.code).toBe(0);
  first = r.json.pathspec;
}, 120_000);

describe("run addressing", () => {
  test("re-ingesting the same file returns the existing data object; --new makes another", async () => {
    const again = await loom(["ingest", "--source", "churn.csv", "--json"], { cwd: ws });
    expect(again.code).toBe(0);
    expect(again.json.pathspec).toBe(first);
    expect(again.json.messages.join(" ")).toContain("pass --new");
    expect(runsOf(ws, "IngestDataset")).toBe(1);
    const fresh = await loom(["ingest", "--source", "churn.csv", "--new", "--json"], { cwd: ws });
    expect(fresh.code).toBe(0);
    expect(fresh.json.pathspec).not.toBe(first);
    expect(runsOf(ws, "IngestDataset")).toBe(2);
  }, 120_000);

  test("a label, Flow/latest and a prefix resolve; the envelope records the pathspec; ambiguity lists both", async () => {
    const newest = `IngestDataset/${Math.max(...(await ids()))}`;
    // the label (file stem) means the newest data object with it
    const byLabel = await loom(["eda", "--dataset", "churn", "--target", "churned", "--json"], { cwd: ws });
    expect(byLabel.code).toBe(0);
    expect(byLabel.json.inputs).toEqual([newest]);
    expect(byLabel.json.summary.dataset).toBe(newest);
    const eda = byLabel.json.pathspec as string;
    // Flow/latest and a unique prefix of the eda run, through `features --from`
    const rid = eda.split("/")[1]!;
    const viaLatest = await loom(["viz", "--run", "EdaFlow/latest", "--json"], { cwd: ws });
    expect(viaLatest.json?.inputs ?? []).not.toContain("EdaFlow/latest");
    // a shared prefix of the two ingests is ambiguous: exit 2, both candidates named, nothing run
    const [a, b] = (await ids()).map(String);
    let common = 0;
    while (a![common] === b![common]) common++;
    const before = runsOf(ws, "EdaFlow");
    const amb = await loom(["eda", "--dataset", a!.slice(0, common)], { cwd: ws });
    expect(amb.code).toBe(2);
    expect(amb.stderr).toContain(`IngestDataset/${a}`);
    expect(amb.stderr).toContain(`IngestDataset/${b}`);
    expectNoTraceback(amb);
    const unique = await loom(["eda", "--dataset", `IngestDataset/${first.split("/")[1]!.slice(0, common + 1)}`, "--json"], { cwd: ws });
    expect(unique.code).toBe(0);
    expect(unique.json.inputs).toEqual([first]);
    expect(runsOf(ws, "EdaFlow")).toBe(before + 1);
    const pre = await loom(["report", "--run", rid.slice(0, rid.length - 1), "--json"], { cwd: ws });
    expect([0, 2]).toContain(pre.code); // a prefix of every flow's ids: unique or listed
    if (pre.code === 2) expect(pre.json.messages[0]).toContain("matches more than one");
    else expect(pre.json.inputs).toContain(eda);
    // did you mean: a misspelled column
    const typo = await loom(["eda", "--dataset", "churn", "--target", "churn"], { cwd: ws });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("did you mean 'churned'");
  }, 240_000);
});

async function ids(): Promise<number[]> {
  const r = await loom(["datasets", "--json"], { cwd: ws });
  return r.json.summary.datasets.filter((d: any) => d.flow === "IngestDataset").map((d: any) => Number(d.pathspec.split("/")[1]));
}

/** Fill a hint's placeholders the way a person would. */
function fill(line: string): string {
  return line.replace(/\bCOL\b/g, "churned").replace(/\bFILE\b/g, "churn.csv").replace(/\bPATHSPEC\b/g, first);
}

/** Run one printed line in a shell, `loom` on the PATH, as a person pasting it would. */
async function paste(line: string) {
  const proc = Bun.spawn(["bash", "-c", fill(line) + " --json"], {
    cwd: ws,
    env: { ...process.env, PATH: `${dirname(LOOM)}:${process.env.PATH}`, METAFLOW_USER: undefined, ANTHROPIC_API_KEY: undefined } as any,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  let json: any;
  try {
    json = JSON.parse(stdout);
  } catch {}
  return { code, stdout, stderr, json };
}

describe("every `next` line runs as printed", () => {
  test("from ingest through eda, features, run, validate, viz and report: exit 0 or 1", async () => {
    const seen = new Set<string>();
    const verbsSeen = new Set<string>();
    const start = await loom(["ingest", "--source", "churn.csv", "--json"], { cwd: ws });
    let frontier: { from: string; line: string }[] = start.json.next.map((line: string) => ({ from: "ingest", line }));
    const ds = await loom(["datasets", "--json"], { cwd: ws });
    frontier.push(...ds.json.next.map((line: string) => ({ from: "datasets", line })));
    let executed = 0;
    while (frontier.length) {
      const next: typeof frontier = [];
      for (const { from, line } of frontier) {
        const verb = /^(?:\w+=\S+\s+)*loom\s+(\S+)/.exec(line)?.[1];
        expect(verb, `a next line that is not a loom command (from ${from}): ${line}`).toBeDefined();
        // each (from, verb) hint runs once; a verb's own hints are followed the first time it runs
        const key = `${from}->${verb}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const r = await paste(line);
        executed++;
        expect([0, 1], `\`${fill(line)}\` (from ${from}) exited ${r.code}: ${r.json?.messages?.[0] ?? r.stderr.slice(-300)}`).toContain(r.code);
        expectNoTraceback(r);
        expect(r.json, `\`${line}\` printed one JSON object`).toBeDefined();
        if (!verbsSeen.has(verb!)) for (const l of r.json.next ?? []) next.push({ from: verb!, line: l });
        verbsSeen.add(verb!);
      }
      frontier = next;
    }
    // the chain reached the search and the checks of its best solution
    for (const v of ["eda", "features", "run", "validate", "viz", "report"]) expect(verbsSeen.has(v), `no hint led to ${v}`).toBe(true);
    expect(executed).toBeGreaterThanOrEqual(6);
  }, 600_000);
});

/** Run build/loom in a real pseudo-terminal (test/fixtures/pty_run.py), optionally typing Ctrl-C. */
export async function inPty(args: string[], opts: { cwd: string; cols?: number; interruptAfter?: string; env?: Record<string, string> }) {
  const spec = { argv: [LOOM, ...args], cwd: opts.cwd, cols: opts.cols ?? 100, rows: 50, interrupt_after: opts.interruptAfter, timeout: 240, env: { METAFLOW_USER: "", ...(opts.env ?? {}) } };
  const py = Bun.spawn(["python3", join(import.meta.dir, "..", "fixtures", "pty_run.py"), JSON.stringify(spec)], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(py.stdout).text();
  await py.exited;
  return JSON.parse(out) as { code: number | null; signal: number | null; output: string; interrupted: boolean };
}

describe("Ctrl-C in `loom run` keeps the work", () => {
  test("a run killed outright: doctor counts it as never finished and its command cleans it up", async () => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "METAFLOW_USER") env[k] = v;
    const proc = Bun.spawn(["setsid", LOOM, "run", "--dataset", "churn", "--target", "churned", "--metric", "Maximize ROC-AUC", "--model-provider", "offline", "--steps", "30"], { cwd: ws, env, stdout: "ignore", stderr: "pipe" });
    const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
    let seen = "";
    while (!/step 1\//.test(seen)) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    process.kill(-proc.pid, "SIGKILL"); // the whole group: CLI, bridge, launcher, task
    await proc.exited;
    const d = await loom(["doctor", "--json"], { cwd: ws, env: { LOOM_UNFINISHED_MIN_AGE_S: "0" } });
    const check = d.json.summary.checks.find((c: any) => c.name === "unfinished runs");
    expect(check?.status).toBe("WARN");
    expect(check.detail).toMatch(/1 run\(s\) never finished.*OptimizeFlow\/\d+/);
    const cmd = /remove them: (rm -rf .*)$/.exec(check.fix)?.[1];
    expect(cmd).toBeDefined();
    expect(Bun.spawnSync(["bash", "-c", cmd!]).exitCode).toBe(0);
    const after = await loom(["doctor", "--json"], { cwd: ws, env: { LOOM_UNFINISHED_MIN_AGE_S: "0" } });
    expect(after.json.summary.checks.find((c: any) => c.name === "unfinished runs")).toBeUndefined();
  }, 120_000);

  test("a real terminal's SIGINT: INTERRUPTED run with the best so far and the resume command, which continues it", async () => {
    const r = await inPty(
      ["run", "--dataset", "churn", "--target", "churned", "--metric", "Maximize ROC-AUC on a held-out split.", "--model-provider", "offline", "--steps", "4"],
      { cwd: ws, interruptAfter: "step 2/", cols: 60 },
    );
    expect(r.interrupted).toBe(true);
    // the live leaderboard redrew in place at 60 columns (a board that wrapped would leave a header behind at
    // each redraw): one header above the interruption note, one below it
    const screen = emulate(r.output, 60);
    const headers = (from: RegExp, to: RegExp) => {
      const a = screen.findIndex((l) => from.test(l)), b = screen.findIndex((l, i) => i > a && to.test(l));
      return screen.slice(a, b).filter((l) => /^rank\s+node\s+operator/.test(l)).length;
    };
    expect(headers(/^gate/, /^interrupted:/)).toBe(1); // the live board before Ctrl-C, redrawn in place
    expect(headers(/^interrupted:/, /^metric\s+:/)).toBe(1); // and after it, below the message
    expect(r.output).toMatch(/\x1b\[\d+A\x1b\[J/); // it did redraw
    expect(r.output).toMatch(/\x1b\[1m\x1b\[33mINTERRUPTED/); // the STATUS word coloured on a terminal
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/STATUS      : (\x1b\[\d+m)*INTERRUPTED/);
    expect(r.output).not.toMatch(/Traceback|Aborted!/);
    const resume = /next\s+: (loom run --resume OptimizeFlow\/\d+ --steps \d+ --model-provider offline)/.exec(r.output)?.[1];
    expect(resume, r.output.slice(-1500)).toBeDefined();
    expect(r.output).toMatch(/best so far\s+node \d+ = [\d.]+,\s+spent \$0\.0000/); // (wrapped at 60 columns)
    const again = await paste(resume!);
    expect(again.code).toBe(0);
    expect(again.json.status).toBe("OK");
    const prev = resume!.split(" ")[3]!;
    expect(again.json.inputs).toContain(prev);
    // every node of the interrupted run is in the resumed journal, none left interrupted
    expect(again.json.summary.nodes.interrupted ?? 0).toBe(0);
    expect(again.json.summary.nodes.total).toBeGreaterThanOrEqual(4);
  }, 300_000);
});

/** Processes whose command line names `dir` (the sandbox roots live under the TMPDIR a test gives). */
function processesNaming(dir: string): string[] {
  const ps = Bun.spawnSync(["ps", "-eo", "pid=,args="]).stdout.toString();
  return ps.split("\n").filter((l) => l.includes(dir) && !l.includes("ps -eo"));
}

/** Runs the Ctrl-C tests stopped (for `loom runs`, which shows them as interrupted). */
const interruptedRuns: string[] = [];

describe("Ctrl-C in validate's folds and the pipeline's stages", () => {
  test("validate --model: the sandboxed fold ends (no process left), INTERRUPTED with the folds that finished; the printed command runs it again", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "loom-ux-sbx-"));
    const r = await inPty(["validate", "--model", "OptimizeFlow/latest"], { cwd: ws, interruptAfter: "fold 2/", cols: 120, env: { TMPDIR: tmp } });
    expect(r.interrupted).toBe(true);
    expect(r.code).toBe(1);
    expect(r.output).not.toMatch(/Traceback|Aborted!/);
    expect(r.output).toContain("interrupted: stopping the running fold");
    expect(r.output).toMatch(/STATUS      : (\x1b\[\d+m)*INTERRUPTED/);
    const folds = /folds\s+: (\d) of 5 finished/.exec(r.output);
    expect(folds, r.output.slice(-1500)).not.toBeNull();
    expect(Number(folds![1])).toBeLessThan(5);
    expect(r.output).toContain("the sealed holdout was not scored");
    // the fit in the sandbox and its launcher are gone, and so are their directories
    expect(processesNaming(tmp)).toEqual([]);
    expect(readdirSync(tmp).filter((n) => n.startsWith("loom-sbx-"))).toEqual([]);
    const cmd = /next\s+: (loom validate --dataset \S+ --target churned[^\n]*--model OptimizeFlow\/\d+[^\n]*)/.exec(r.output)?.[1]?.trim();
    expect(cmd, r.output.slice(-1500)).toBeDefined();
    const again = await paste(cmd!);
    expect([0, 1]).toContain(again.code);
    expect(["OK", "FAIL"]).toContain(again.json.status);
    expect(again.json.summary.cv.per_fold.length).toBe(5);
    // the interrupted run was no look at the seal: the run after it does not count it
    const stoppedRun = /run\s+: (ValidateFlow\/\d+)/.exec(r.output)![1]!;
    interruptedRuns.push(stoppedRun);
    expect(again.json.summary.seal.earlier_runs).not.toContain(stoppedRun);
  }, 300_000);

  test("validate with the default model: the in-process fit of fold 2 stops; INTERRUPTED with no verdict, listed by loom runs", async () => {
    const gen = `import sys, numpy as np, pandas as pd
r = np.random.default_rng(1); n = 30000
X = r.normal(size=(n, 12)); df = pd.DataFrame(X, columns=[f"x{i}" for i in range(12)])
df["y"] = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + r.normal(size=n) > 0).astype(int)
df.to_csv(sys.argv[1], index=False)`;
    expect(Bun.spawnSync([loomPython(), "-c", gen, join(ws, "wide.csv")]).exitCode).toBe(0);
    expect((await loom(["ingest", "--source", "wide.csv", "--json"], { cwd: ws })).code).toBe(0);
    const r = await inPty(["validate", "--dataset", "wide", "--target", "y"], { cwd: ws, interruptAfter: "fold 2/", cols: 120 });
    expect(r.interrupted).toBe(true);
    expect(r.code).toBe(1);
    expect(r.output).not.toMatch(/Traceback|Aborted!|KeyboardInterrupt/);
    expect(r.output).toMatch(/STATUS      : (\x1b\[\d+m)*INTERRUPTED/);
    const folds = /folds\s+: (\d) of 5 finished/.exec(r.output);
    expect(folds, r.output.slice(-1500)).not.toBeNull();
    expect(Number(folds![1])).toBeLessThanOrEqual(2); // fold 1 finished; fold 2 stopped (or had just finished)
    const run = /run\s+: (ValidateFlow\/\d+)/.exec(r.output)![1]!;
    interruptedRuns.push(run);
    const j = await loom(["runs", "--flow", "validate", "--json"], { cwd: ws });
    expect(j.json.summary.runs.find((x: any) => x.pathspec === run)).toMatchObject({ status: "interrupted", verdict: null, label: "wide" });
  }, 300_000);

  test("pipeline: the search stage stops, eda and features are kept; --resume reuses them and continues the search", async () => {
    const r = await inPty(
      ["pipeline", "--dataset", "churn", "--target", "churned", "--metric", "Maximize ROC-AUC on a held-out split.", "--model-provider", "offline", "--steps", "4", "--yes"],
      { cwd: ws, interruptAfter: "step 2/", cols: 120 },
    );
    expect(r.interrupted).toBe(true);
    expect(r.code).toBe(1);
    expect(r.output).not.toMatch(/Traceback|Aborted!/);
    expect(r.output).toContain("interrupted: stopping the current stage");
    expect(r.output).toMatch(/optimize\s+: OptimizeFlow\/\d+\s+INTERRUPTED/);
    expect(r.output).toMatch(/validate\s+: —\s+SKIPPED/);
    expect(r.output).toMatch(/STATUS      : (\x1b\[\d+m)*INTERRUPTED/);
    const stopped = /optimize\s+: (OptimizeFlow\/\d+)/.exec(r.output)![1]!;
    interruptedRuns.push(stopped, /run\s+: (PipelineFlow\/\d+)/.exec(r.output)![1]!);
    const resume = /next\s+: (loom pipeline --resume PipelineFlow\/\d+)/.exec(r.output)?.[1];
    expect(resume, r.output.slice(-1500)).toBeDefined();
    const again = await paste(resume! + " --yes");
    expect([0, 1], again.stderr.slice(-800)).toContain(again.code);
    expect(again.json.status).not.toBe("INTERRUPTED");
    const st = Object.fromEntries(again.json.summary.stages.map((x: any) => [x.name, x]));
    expect(st.eda.reused_from).toBe(resume!.split(" ")[3]);
    expect(st.features.reused_from).toBe(resume!.split(" ")[3]);
    expect(st.optimize.pathspec).not.toBe(stopped);
    expect(st.optimize.status).toBe("OK");
    expect(again.stderr).toContain(`continues ${stopped}`); // the gate says the search is continued
    // the continued search holds the stopped one's scored candidates and new ones: more than the 2 a fresh search of the rest makes
    expect(again.json.summary.search.nodes_finished).toBeGreaterThanOrEqual(4);
  }, 400_000);
});

describe("loom runs", () => {
  test("every flow's newest runs, newest first, with status, verdict, label and age; --flow, --limit; width-aware", async () => {
    const eda = await loom(["eda", "--dataset", "churn", "--target", "churned", "--json"], { cwd: ws });
    expect(eda.code).toBe(0);
    const r = await loom(["runs", "--json", "--limit", "200"], { cwd: ws });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n").length).toBe(1);
    const rows = r.json.summary.runs as any[];
    expect(rows.length).toBeGreaterThanOrEqual(2);
    const created = rows.map((x) => x.created as string);
    expect([...created].sort().reverse()).toEqual(created); // newest first, across flows
    expect(new Set(rows.map((x) => x.flow)).size).toBeGreaterThanOrEqual(2);
    const mine = rows.find((x) => x.pathspec === eda.json.pathspec);
    expect(mine).toMatchObject({ status: "succeeded", verdict: eda.json.verdict ?? null, label: "churn", flow: "EdaFlow" });
    expect(mine.age_seconds).toBeGreaterThanOrEqual(0);
    expect(mine.age_seconds).toBeLessThan(600);
    expect(rows[0].pathspec).toBe(eda.json.pathspec);
    for (const p of interruptedRuns) expect(rows.find((x) => x.pathspec === p)?.status, p).toBe("interrupted");
    expect(rows.find((x) => x.pathspec === first)?.label).toBe("churn"); // a data object: its own label
    // --flow takes the flow's name or its verb; an unknown one is refused with the flows there are
    const val = await loom(["runs", "--flow", "eda", "--json"], { cwd: ws });
    expect(val.json.summary.runs.every((x: any) => x.flow === "EdaFlow")).toBe(true);
    expect(val.json.summary.flow).toBe("EdaFlow");
    const bad = await loom(["runs", "--flow", "EdaFlw"], { cwd: ws });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("did you mean 'EdaFlow'");
    const two = await loom(["runs", "--limit", "2", "--json"], { cwd: ws });
    expect(two.json.summary.runs.map((x: any) => x.pathspec)).toEqual(rows.slice(0, 2).map((x) => x.pathspec));
    // the table fits the width; the pathspec (what one pastes) is never cut
    for (const cols of [60, 120]) {
      const h = await loom(["runs", "--limit", "200"], { cwd: ws, env: { COLUMNS: String(cols) } });
      const table = h.stdout.split("\n").filter((l) => !/^\S.{10} : /.test(l) && l.trim());
      expect(table[0]).toMatch(/^run\s+status/);
      expect(table.filter((l) => l.length > cols), `at ${cols}`).toEqual([]);
      for (const x of rows) expect(h.stdout).toContain(x.pathspec);
      if (cols === 120) expect(table[0]).toContain("label");
    }
  }, 120_000);
});

/** A $BROWSER that records what it was asked to open. */
function fakeBrowser(): { env: Record<string, string>; opened: () => Promise<string | null> } {
  const dir = mkdtempSync(join(tmpdir(), "loom-ux-browser-"));
  const script = join(dir, "browser");
  writeFileSync(script, `#!/bin/sh\nprintf '%s' "$1" > ${dir}/opened\n`, { mode: 0o755 });
  return {
    env: { BROWSER: script, DISPLAY: "", WAYLAND_DISPLAY: "" },
    async opened() {
      for (let i = 0; i < 100; i++) {
        if (existsSync(join(dir, "opened"))) return readFileSync(join(dir, "opened"), "utf8");
        await Bun.sleep(50);
      }
      return null;
    },
  };
}

describe("loom open and --open", () => {
  const noDisplay = { DISPLAY: undefined, WAYLAND_DISPLAY: undefined, BROWSER: undefined };
  test("no display: the card's path is printed (human and --json), for Flow/latest, a label and a prefix", async () => {
    expect((await loom(["eda", "--dataset", "churn", "--target", "churned", "--json"], { cwd: ws })).code).toBe(0);
    const h = await loom(["open", "EdaFlow/latest"], { cwd: ws, env: noDisplay });
    expect(h.code).toBe(0);
    const path = /card\s+: (\S+)/.exec(h.stdout)?.[1];
    expect(path, h.stdout).toBeDefined();
    expect(existsSync(path!)).toBe(true);
    expect(path).toContain("/EdaFlow/");
    expect(h.stdout).toContain("no display");
    const j = await loom(["open", "churn", "--json"], { cwd: ws, env: noDisplay });
    expect(j.code).toBe(0);
    expect(j.stdout.trim().split("\n").length).toBe(1);
    expect(j.json.card_path).toBe(j.json.summary.card_path);
    expect(j.json.summary.opened_with).toBeNull();
    expect(j.json.summary.run).toMatch(/^IngestDataset\/\d+$/); // the label resolved to the newest data object
    expect(readFileSync(j.json.card_path, "utf8")).toContain("<html");
    const eda = /EdaFlow\/runs\/(\d+)/.exec(path!)![1]!;
    const pre = await loom(["open", `EdaFlow/${eda.slice(0, 12)}`, "--json"], { cwd: ws, env: noDisplay });
    expect(pre.json.summary.run).toBe(`EdaFlow/${eda}`);
    const none = await loom(["open"], { cwd: ws, env: noDisplay });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("open needs a run");
  }, 120_000);

  test("$BROWSER is called with the card's path, by `loom open` and by --open on a verb", async () => {
    const b = fakeBrowser();
    const r = await loom(["open", "EdaFlow/latest", "--json"], { cwd: ws, env: b.env });
    expect(r.code).toBe(0);
    expect(r.json.summary.opened_with).toBe(b.env.BROWSER);
    expect(await b.opened()).toBe(r.json.card_path);
    const b2 = fakeBrowser();
    const e = await loom(["eda", "--dataset", "churn", "--target", "churned", "--open", "--json"], { cwd: ws, env: b2.env });
    expect(e.code).toBe(0);
    expect(e.stdout.trim().split("\n").length).toBe(1); // still exactly one JSON object
    expect(await b2.opened()).toBe(e.json.card_path);
  }, 120_000);
});

/** What a terminal `cols` wide shows after `out`: text wraps at the width, \r, \n, ESC[nA (up), ESC[J (clear
 * below), colour codes ignored. Enough to see whether a redraw left stale lines behind. */
function emulate(out: string, cols: number): string[] {
  const rows: string[][] = [[]];
  let y = 0, x = 0;
  const row = () => (rows[y] ??= []);
  for (let i = 0; i < out.length; i++) {
    const ch = out[i]!;
    if (ch === "\x1b") {
      const m = /^\x1b\[(\d*)([A-Za-z])/.exec(out.slice(i));
      if (m) {
        if (m[2] === "A") y = Math.max(0, y - Number(m[1] || 1));
        if (m[2] === "J") rows.length = y + 1, (rows[y] = row().slice(0, x));
        i += m[0].length - 1;
      }
      continue;
    }
    if (ch === "\r") x = 0;
    else if (ch === "\n") (y++, (x = 0), row());
    else {
      if (x >= cols) (y++, (x = 0));
      row()[x++] = ch;
    }
  }
  return rows.map((r) => (r ?? []).join("").trimEnd());
}

describe("terminal conventions", () => {
  test("-V, did-you-mean for verbs and flags, one JSON object for an unknown verb", async () => {
    const v = await loom(["-V"]);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^loom \d+\.\d+\.\d+ \(runtime [0-9a-f]{16}/);
    const verb = await loom(["edaa"]);
    expect(verb.code).toBe(2);
    expect(verb.stderr).toContain("did you mean `loom eda`?");
    const j = await loom(["edaa", "--json"]);
    expect(j.code).toBe(2);
    expect(j.json.exit_code).toBe(2);
    expect(j.stdout.trim().split("\n").length).toBe(1);
    const flag = await loom(["run", "--dataset", "churn", "--stpes", "3"], { cwd: ws });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("did you mean --steps?");
  });

  test("completion scripts for bash, zsh and fish name every verb; bash's parses", async () => {
    for (const sh of ["bash", "zsh", "fish"]) {
      const r = await loom(["completion", sh]);
      expect(r.code).toBe(0);
      for (const verb of ["ingest", "eda", "validate", "run"]) expect(r.stdout).toContain(verb);
    }
    const bash = await loom(["completion", "bash"]);
    const p = Bun.spawnSync(["bash", "-n"], { stdin: new Blob([bash.stdout]) });
    expect(p.exitCode).toBe(0);
    const done = Bun.spawnSync(["bash", "-c", `${bash.stdout}\nCOMP_WORDS=(loom va); COMP_CWORD=1; _loom; echo "\${COMPREPLY[@]}"`]);
    expect(done.stdout.toString().trim()).toBe("validate");
    expect((await loom(["completion", "tcsh"])).code).toBe(2);
  });

  test("help: required flags marked, examples last, wrapped to COLUMNS 60 and 120", async () => {
    const h = await loom(["eda", "--help"], { env: { COLUMNS: "120" } });
    expect(h.stdout).toContain("* --dataset");
    expect(h.stdout).toContain("    --target");
    expect(h.stdout.trim().split("\n").slice(-2).every((l) => l.startsWith("  loom eda"))).toBe(true);
    for (const cols of [60, 120]) {
      for (const args of [["--help"], ["eda", "--help"], ["run", "--help"]]) {
        const r = await loom(args, { env: { COLUMNS: String(cols) } });
        const long = r.stdout.split("\n").filter((l) => l.length > cols && !l.trimStart().startsWith("loom ") && l.trim().includes(" "));
        expect(long, `${args.join(" ")} at ${cols}`).toEqual([]);
        if (cols === 120) expect(r.stdout.split("\n").some((l) => l.length > 60)).toBe(true); // it uses the room
      }
    }
  });

  test("no escape bytes through a pipe or with NO_COLOR; colour on a terminal; data escapes stripped", async () => {
    writeFileSync(join(ws, "ansi.csv"), "a,\x1b]0;pwned\x07b\x1b[2J,churned\n1,x,0\n2,y,1\n3,x,0\n4,y,1\n");
    const piped = await loom(["ingest", "--source", "ansi.csv"], { cwd: ws });
    expect(piped.code).toBe(0);
    expect(piped.stdout + piped.stderr).not.toContain("\x1b");
    expect(piped.stdout).toContain("columns     : a:int64, b:string");
    const pj = await loom(["ingest", "--source", "ansi.csv", "--json"], { cwd: ws });
    expect(pj.json.summary.schema[1].name).toContain("\x1b]0;pwned"); // --json keeps the real name, escaped as JSON
    const tty = await inPty(["doctor"], { cwd: ws, cols: 120 });
    expect(tty.output).toMatch(/VERDICT     : \x1b\[1m\x1b\[3[12]m(PASS|FAIL)/);
    const nc = await inPty(["doctor"], { cwd: ws, cols: 120, env: { NO_COLOR: "1" } });
    expect(nc.output).not.toContain("\x1b[");
    const dj = await inPty(["ingest", "--source", "ansi.csv", "--json"], { cwd: ws, cols: 120 });
    expect(dj.output).not.toContain("\x1b[1m");
  }, 120_000);
});
