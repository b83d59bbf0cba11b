/** Pure parts of the core, table-style. */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { classifyUri } from "../../src/core/connections";
import { bridgeEnv } from "../../src/core/bridge";
import { envelope } from "../../src/core/contract";
import { scanDatastore } from "../../src/core/datastore-scan";
import { needsConfirmation, runGate, type GateIO } from "../../src/core/gate";
import { choosePython, versionAtLeast } from "../../src/core/pyenv";
import { builtNext, pickDeclared, unknownFlags } from "../../src/core/run";
import { DEFAULT_LIMITS, findUp } from "../../src/core/workspace";

describe("unknownFlags", () => {
  const defs = { source: { type: "string" }, json: { type: "boolean" }, "on-bad-rows": { type: "string" }, n: { type: "string", alias: "k" } } as any;
  test.each([
    [["--source", "x.csv"], []],
    [["--source=x.csv", "--json"], []],
    [["--no-json"], []],
    [["--on-bad-rows", "skip"], []],
    [["-k", "3"], []],
    [["--sorce", "x"], ["--sorce"]],
    [["--source", "-1"], []],
    [["--", "--whatever"], []],
    [["--frob=1", "-z"], ["--frob", "-z"]],
  ])("%j → %j", (args, bad) => expect(unknownFlags(args as string[], defs)).toEqual(bad as string[]));
});

test("pickDeclared keeps declared, non-empty args only", () => {
  expect(pickDeclared({ _: [], source: "a", sourceFile: "dup", json: true, table: "" }, { source: {}, table: {} } as any)).toEqual({ source: "a" });
});

describe("choosePython", () => {
  const rec = { requirements_sha256: "abc" } as any;
  const yes = () => true;
  const no = () => false;
  test.each([
    ["LOOM_PYTHON wins", { LOOM_PYTHON: "/x/python" }, rec, yes, { python: "/x/python", source: "LOOM_PYTHON" }],
    ["LOOM_PYTHON missing", { LOOM_PYTHON: "/x/python" }, rec, no, /LOOM_PYTHON=\/x\/python does not exist/],
    ["no record", {}, null, yes, /not set up: run `loom setup`/],
    ["venv gone", {}, rec, no, /not set up: run `loom setup`/],
    ["stale", {}, { requirements_sha256: "old" }, yes, /out of date.*loom setup/],
    ["ready", {}, rec, yes, { python: "/h/venv/bin/python", source: "venv" }],
  ])("%s", (_name, env, record, exists, want) => {
    const got = choosePython(env as any, "/h", record, exists as any, "abc");
    if (want instanceof RegExp) expect((got as any).error).toMatch(want);
    else expect(got).toEqual(want as any);
  });
  test.each([
    ["3.11.7", true],
    ["3.10.0", true],
    ["3.9.18", false],
    ["4.0.0", true],
  ])("versionAtLeast(%s, 3.10) = %s", (v, ok) => expect(versionAtLeast(v, [3, 10])).toBe(ok));
});

describe("classifyUri", () => {
  test.each([
    ["data/x.csv", "file"],
    ["sqlite:///shop.db", "sqlite"],
    ["postgresql://me@db:5432/w", "postgresql"],
    ["postgres://me@db/w", "postgresql"],
  ])("%s → %s", (uri, kind) => expect(classifyUri(uri)).toBe(kind as any));
  test("refuses a password in the URI and unknown schemes", () => {
    expect(() => classifyUri("postgresql://me:secret@db/w")).toThrow(/password/);
    expect(() => classifyUri("s3://bucket/x.csv")).toThrow(/unsupported/);
  });
});

describe("the gate", () => {
  const io = (answers: boolean[] | null) => {
    const said: string[] = [];
    const asked: string[] = [];
    const g: GateIO = {
      say: (l) => said.push(l),
      canAsk: answers !== null,
      confirm: async (m) => (asked.push(m), answers!.shift()!),
    };
    return { g, said, asked };
  };
  const cost = (usd: number, leaves = false) => ({ lines: [`~$${usd}`], usd, leavesMachine: leaves });

  test("read-only never prompts or speaks", async () => {
    const { g, said, asked } = io([]);
    expect((await runGate("read-only", "eda", { limits: DEFAULT_LIMITS, yes: false }, g)).allowed).toBe(true);
    expect(said).toEqual([]);
    expect(asked).toEqual([]);
  });
  test("workspace-write prints one line and proceeds", async () => {
    const { g, said, asked } = io([]);
    expect((await runGate("workspace-write", "ingest", { writes: "writes a run", limits: DEFAULT_LIMITS, yes: false }, g)).allowed).toBe(true);
    expect(said.length).toBe(1);
    expect(asked.length).toBe(0);
  });
  test("expensive within limits: cost shown, no prompt", async () => {
    const { g, said, asked } = io(null);
    const d = await runGate("expensive", "run", { cost: cost(0), limits: DEFAULT_LIMITS, yes: false }, g);
    expect(d.allowed).toBe(true);
    expect(said[0]).toContain("cost (gate)");
    expect(asked.length).toBe(0);
  });
  test.each([
    ["no terminal denies", null, false, false],
    ["--yes accepts", null, true, true],
    ["terminal yes", [true], false, true],
    ["terminal no", [false], false, false],
  ])("expensive above limits: %s", async (_n, answers, yes, allowed) => {
    const { g } = io(answers as boolean[] | null);
    expect((await runGate("expensive", "run", { cost: cost(2), limits: DEFAULT_LIMITS, yes: yes as boolean }, g)).allowed).toBe(allowed as boolean);
  });
  test.each([
    ["no terminal denies, even with --yes", null, true, false],
    ["terminal no", [false], true, false],
    ["terminal yes", [true], false, true],
  ])("irreversible: %s", async (_n, answers, yes, allowed) => {
    const { g, asked } = io(answers as boolean[] | null);
    const d = await runGate("irreversible", "deploy", { cost: cost(0), limits: DEFAULT_LIMITS, yes: yes as boolean }, g);
    expect(d.allowed).toBe(allowed as boolean);
    if (answers) expect(asked.length).toBe(1);
  });
  test.each([
    [0, false, null],
    [0.01, false, /above the workspace limit/],
    [0, true, /leaves this machine/],
  ])("needsConfirmation(usd=%d, leaves=%s)", (usd, leaves, want) => {
    const r = needsConfirmation(cost(usd as number, leaves as boolean), DEFAULT_LIMITS);
    if (want === null) expect(r).toBeNull();
    else expect(r).toMatch(want as RegExp);
  });
});

test("bridgeEnv: the datastore is the workspace, METAFLOW_USER set only when unset", () => {
  const ws = { dir: "/p/.loom", root: "/p", exists: true };
  const rt = { pyPath: "/h/rt/py", flowsDir: "/h/rt/flows" };
  const e = bridgeEnv({ PATH: "/bin", METAFLOW_CARD_LOCALROOT: "/elsewhere" }, ws, rt);
  expect(e.METAFLOW_DATASTORE_SYSROOT_LOCAL).toBe("/p/.loom");
  expect(e.METAFLOW_USER).toBe("loom");
  expect(e.METAFLOW_CARD_LOCALROOT).toBeUndefined();
  expect(e.PYTHONPATH).toBe("/h/rt/py");
  expect(e.METAFLOW_CLIENT_CACHE_PATH).toBe("/p/.loom/cache/metaflow_client"); // the workspace's, unless set
  expect(bridgeEnv({ METAFLOW_CLIENT_CACHE_PATH: "/c" }, ws, rt).METAFLOW_CLIENT_CACHE_PATH).toBe("/c");
  expect(bridgeEnv({ METAFLOW_USER: "ana" }, ws, rt).METAFLOW_USER).toBe("ana");
  expect(bridgeEnv({ USER: "bo" }, ws, rt).METAFLOW_USER).toBe("bo");
});

test("bridgeEnv: provider keys and endpoints never reach Python; Python's own credentials do", () => {
  const ws = { dir: "/p/.loom", root: "/p", exists: true };
  const rt = { pyPath: "/h/rt/py", flowsDir: "/h/rt/flows" };
  const base = {
    PATH: "/bin", ANTHROPIC_API_KEY: "sk-ant", ANTHROPIC_BASE_URL: "http://x", ANTHROPIC_AUTH_TOKEN: "t",
    OPENAI_API_KEY: "sk-oa", OPENAI_BASE_URL: "http://y", OPENAI_ORG_ID: "o", GEMINI_API_KEY: "g", MY_SERVICE_API_KEY: "m",
    LOOM_PROPOSER_URL: "http://stale", PGPASSWORD: "pg", MODAL_TOKEN_ID: "ak", LOOM_ANTHROPIC_MODEL: "claude-x",
  };
  const e = bridgeEnv(base, ws, rt);
  for (const k of ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL",
    "OPENAI_ORG_ID", "GEMINI_API_KEY", "MY_SERVICE_API_KEY", "LOOM_PROPOSER_URL"]) expect(e[k]).toBeUndefined();
  expect(Object.values(e).some((v) => v.startsWith("sk-"))).toBe(false);
  expect([e.PGPASSWORD, e.MODAL_TOKEN_ID, e.LOOM_ANTHROPIC_MODEL, e.PATH]).toEqual(["pg", "ak", "claude-x", "/bin"]);
  // the flow's own proposer URL (the loopback server) is added explicitly by the verb
  expect(bridgeEnv(base, ws, rt, { LOOM_PROPOSER_URL: "http://127.0.0.1:1" }).LOOM_PROPOSER_URL).toBe("http://127.0.0.1:1");
});

test("findUp finds the nearest .loom", () => {
  const have = new Set(["/a/.loom", "/a/b/c/.loom"]);
  expect(findUp("/a/b/c/d", (p) => have.has(p))).toBe("/a/b/c");
  expect(findUp("/a/b", (p) => have.has(p))).toBe("/a");
  expect(findUp("/z", (p) => have.has(p))).toBeNull();
});

test("envelope rejects an exit code outside 0/1/2 and keeps verdict only where emitted", () => {
  const out = { status: "OK", exit_code: 0 as const, pathspec: null, card_path: null, inputs: [], summary: {}, messages: [], next: [] };
  expect(envelope("eda", "read-only", out)).not.toHaveProperty("verdict");
  expect(envelope("validate", "read-only", { ...out, verdict: "PASS" }, true).verdict).toBe("PASS");
  expect(() => envelope("x", "read-only", { ...out, exit_code: 3 as any })).toThrow();
});

test("scanDatastore reports unparsable metadata and missing artifacts", () => {
  const root = mkdtempSync(join(tmpdir(), "scan-"));
  const task = join(root, "F", "1", "start", "1");
  mkdirSync(join(task, "_meta"), { recursive: true });
  writeFileSync(join(task, "_meta", "sysmeta_ds-root_1.json"), JSON.stringify({ field_name: "ds-root", value: root }));
  writeFileSync(join(task, "0.data.json"), JSON.stringify({ objects: { a: "aa11", b: "bb22" } }));
  mkdirSync(join(root, "F", "data", "aa"), { recursive: true });
  writeFileSync(join(root, "F", "data", "aa", "aa11"), "x");
  let r = scanDatastore(root);
  expect(r.runs).toBe(1);
  expect(r.artifacts).toBe(2);
  expect(r.problems).toEqual(["F/1/start/1: artifact 'b' is missing"]);
  expect(r.recorded_roots).toEqual([root]);
  writeFileSync(join(task, "_meta", "broken.json"), "{nope");
  r = scanDatastore(root);
  expect(r.problems.some((p) => p.includes("does not parse"))).toBe(true);
});

test("next suggestions never name a verb that is not built", () => {
  const built = new Set(["report", "eda"]);
  expect(builtNext(["loom deploy --validate V/1", "loom report --run V/1", "set LOOM_GPU_TARGET"], (v) => built.has(v))).toEqual([
    "loom report --run V/1",
    "set LOOM_GPU_TARGET",
  ]);
});
