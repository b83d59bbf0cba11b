/**
 * The foundation end to end through build/loom: ingest → datasets → plain Metaflow reads it back,
 * every bad input refused with exit 2 and one line, nothing written, the source untouched.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { createHash } from "node:crypto";
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { expectNoTraceback, loom, plainMetaflow, runsOf as runsOfFlow, tempWorkspace } from "../helpers";

const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
const runsOf = (ws: string) => runsOfFlow(ws, "IngestDataset");

function csv(rows: number): string {
  const out = ["id,age,income,city,churned"];
  for (let i = 0; i < rows; i++) out.push(`${i},${20 + (i % 50)},${(1000 + i * 7.5).toFixed(2)},${["Oslo", "Lima", "Pune"][i % 3]},${i % 4 === 0 ? 1 : 0}`);
  return out.join("\n") + "\n";
}

describe("ingest → datasets → plain Metaflow", () => {
  const ws = tempWorkspace();
  const src = join(ws, "customers.csv");
  let ingest: Awaited<ReturnType<typeof loom>>;
  let before: string;

  beforeAll(async () => {
    writeFileSync(src, csv(500));
    before = sha(src);
    ingest = await loom(["ingest", "--source", "customers.csv", "--json"], { cwd: ws });
  });

  test("one JSON object on stdout, the contract's fields, exit 0", () => {
    expect(ingest.code).toBe(0);
    const j = ingest.json;
    expect(j).toBeDefined();
    for (const k of ["verb", "tier", "status", "exit_code", "pathspec", "card_path", "inputs", "summary", "messages", "next"]) expect(j).toHaveProperty(k);
    expect(j.verb).toBe("ingest");
    expect(j.tier).toBe("workspace-write");
    expect(j.status).toBe("OK");
    expect(j.pathspec).toMatch(/^IngestDataset\/\d+$/);
    expect(j.summary.rows).toBe(500);
    expect(j.summary.columns).toBe(5);
    expect(j.summary.schema.map((f: any) => f.name)).toEqual(["id", "age", "income", "city", "churned"]);
    expect(j.summary.schema.find((f: any) => f.name === "income").type).toBe("double");
    expect(j.summary.content_hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(existsSync(j.card_path)).toBe(true);
    expect(readFileSync(j.card_path, "utf8")).toContain("<html");
  });

  test("the workspace-write note is one line on stderr; the source is untouched", () => {
    expect(ingest.stderr).toContain("workspace-write");
    expect(sha(src)).toBe(before);
  });

  test("plain Metaflow (another user, same root) reads the run and its data back", () => {
    const ps = ingest.json.pathspec;
    const got = plainMetaflow(
      ws,
      `import json, io
from metaflow import Run, namespace
import pyarrow.parquet as pq
namespace(None)
r = Run("${ps}")
t = pq.read_table(io.BytesIO(r.data.data_parquet))
print(json.dumps({"ok": r.successful, "rows": r.data.rows, "n": t.num_rows, "hash": r.data.content_hash,
  "first": t.slice(0,1).to_pylist()[0], "label": r.data.label}))`,
    );
    expect(got.ok).toBe(true);
    expect(got.rows).toBe(500);
    expect(got.n).toBe(500);
    expect(got.hash).toBe(ingest.json.summary.content_hash);
    expect(got.first).toEqual({ id: 0, age: 20, income: 1000, city: "Oslo", churned: 1 });
    expect(got.label).toBe("customers");
  });

  test("datasets lists it (human and JSON)", async () => {
    const j = await loom(["datasets", "--json"], { cwd: ws });
    expect(j.code).toBe(0);
    expect(j.json.summary.count).toBe(1);
    expect(j.json.summary.datasets[0].pathspec).toBe(ingest.json.pathspec);
    expect(j.json.summary.datasets[0].rows).toBe(500);
    const h = await loom(["datasets"], { cwd: ws });
    expect(h.stdout).toContain(ingest.json.pathspec);
    expect(h.stdout.trim().split("\n").pop()).toMatch(/^STATUS\s+: OK$/);
  });

  test("the same data ingested again gets the same content hash and a new run", async () => {
    const again = await loom(["ingest", "--source", src, "--name", "again", "--json"], { cwd: ws });
    expect(again.code).toBe(0);
    expect(again.json.pathspec).not.toBe(ingest.json.pathspec);
    expect(again.json.summary.content_hash).toBe(ingest.json.summary.content_hash);
    expect(again.json.summary.label).toBe("again");
  });
});

describe("formats and quirks, read correctly and said so", () => {
  const ws = tempWorkspace();
  const cases: [string, string | Buffer, (j: any) => void][] = [
    ["semi.csv", "a;b;c\n1;2;x\n3;4;y\n", (j) => {
      expect(j.summary.columns).toBe(3);
      expect(j.summary.read.delimiter).toBe(";");
    }],
    ["tabs.tsv", "a\tb\n1\t2\n", (j) => expect(j.summary.read.delimiter).toBe("\t")],
    ["latin.csv", Buffer.from("name,city\nJos\xe9,S\xe3o Paulo\n", "latin1"), (j) => {
      expect(j.messages.join(" ")).toContain("Windows-1252");
    }],
    ["dups.csv", "a,a,,b\n1,2,3,4\n", (j) => {
      expect(j.summary.schema.map((f: any) => f.name)).toEqual(["a", "a_2", "column_3", "b"]);
      expect(j.messages.join(" ")).toContain("renamed columns");
    }],
    ["events.jsonl", '{"u":1,"e":"view"}\n{"u":2,"e":"buy"}\n', (j) => {
      expect(j.summary.rows).toBe(2);
      expect(j.summary.read.format).toBe("jsonl");
    }],
  ];
  for (const [name, content, check] of cases) {
    test(name, async () => {
      writeFileSync(join(ws, name), content);
      const r = await loom(["ingest", "--source", name, "--json"], { cwd: ws });
      expectNoTraceback(r);
      expect(r.code).toBe(0);
      check(r.json);
    });
  }

  test("Parquet (written by the previous data object) round-trips", async () => {
    const first = await loom(["datasets", "--json"], { cwd: ws });
    const ps = first.json.summary.datasets.find((d: any) => d.label === "events").pathspec;
    const out = join(ws, "events.parquet");
    plainMetaflow(ws, `import json
from metaflow import Run, namespace
namespace(None)
open(${JSON.stringify(out)}, "wb").write(Run("${ps}").data.data_parquet)
print("{}")`);
    const r = await loom(["ingest", "--source", "events.parquet", "--new", "--json"], { cwd: ws }); // same table and label: --new reads it again
    expect(r.code).toBe(0);
    expect(r.json.summary.read.format).toBe("parquet");
    expect(r.json.summary.content_hash).toBe(first.json.summary.datasets.find((d: any) => d.label === "events").content_hash);
  });

  test("ragged rows: refused with the line to run, or skipped and counted", async () => {
    writeFileSync(join(ws, "ragged.csv"), "a,b,c\n1,2,3\n4,5\n6,7,8\n");
    const refused = await loom(["ingest", "--source", "ragged.csv"], { cwd: ws });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--on-bad-rows skip");
    const skipped = await loom(["ingest", "--source", "ragged.csv", "--on-bad-rows", "skip", "--json"], { cwd: ws });
    expect(skipped.code).toBe(0);
    expect(skipped.json.summary.rows).toBe(2);
    expect(skipped.json.messages.join(" ")).toContain("skipped 1 ragged row");
  });
});

describe("SQLite and named connections", () => {
  const ws = tempWorkspace();
  const db = join(ws, "shop.db");
  beforeAll(() => {
    const d = new Database(db);
    d.run("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL, region TEXT)");
    for (let i = 0; i < 40; i++) d.run("INSERT INTO orders (amount, region) VALUES (?, ?)", [i * 1.5, i % 2 ? "north" : "south"]);
    d.close();
  });

  test("a table, a query, and @NAME; the database is never written", async () => {
    const before = sha(db);
    const t = await loom(["ingest", "--source", `sqlite:///${db}`, "--table", "orders", "--json"], { cwd: ws });
    expect(t.code).toBe(0);
    expect(t.json.summary.rows).toBe(40);
    expect(t.json.summary.label).toBe("orders");
    const c = await loom(["connect", "shop", "--uri", "sqlite:///shop.db", "--json"], { cwd: ws });
    expect(c.code).toBe(0);
    expect(c.json.summary.connection.kind).toBe("sqlite");
    const q = await loom(["ingest", "--source", "@shop", "--query", "SELECT region, SUM(amount) AS total FROM orders GROUP BY region", "--json"], { cwd: ws });
    expect(q.code).toBe(0);
    expect(q.json.summary.rows).toBe(2);
    expect(q.json.summary.source.connection).toBe("shop");
    const list = await loom(["connect", "--list", "--json"], { cwd: ws });
    expect(list.json.tier).toBe("read-only");
    expect(list.json.summary.connections.map((x: any) => x.name)).toEqual(["shop"]);
    expect(sha(db)).toBe(before);
  });

  test("a PostgreSQL connection never stores a password", async () => {
    const c = await loom(["connect", "wh", "--uri", "postgresql://analyst@db.internal:5432/warehouse", "--json"], { cwd: ws });
    expect(c.code).toBe(0);
    expect(c.json.summary.connection.password_env).toBe("PGPASSWORD");
    expect(c.json.messages.join(" ")).toContain("PGPASSWORD");
    const withPw = await loom(["connect", "bad", "--uri", "postgresql://analyst:hunter2@db:5432/w"], { cwd: ws });
    expect(withPw.code).toBe(2);
    expect(readFileSync(join(ws, ".loom", "connections.json"), "utf8")).not.toContain("hunter2");
  });
});

describe("bad input: exit 2, one actionable line, no traceback, nothing written", () => {
  const ws = tempWorkspace();
  const w = (name: string, content: string | Buffer) => (writeFileSync(join(ws, name), content), name);
  const bin = Buffer.alloc(2048);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 37) % 256;
  const cases: [string, string[], RegExp][] = [
    ["missing file", ["--source", "nope.csv"], /no such file/],
    ["empty file", ["--source", w("empty.csv", "")], /empty/],
    ["binary file", ["--source", w("blob.csv", bin)], /binary/],
    ["header, no rows", ["--source", w("header.csv", "a,b,c\n")], /no data rows/],
    ["unterminated quote", ["--source", w("quote.csv", 'a,b\n1,"oops\n2,3\n')], /quot/i],
    ["unknown connection", ["--source", "@nowhere"], /unknown connection @nowhere.*loom connect/],
    ["SQL error", ["--source", `sqlite:///${join(ws, "x.db")}`, "--query", "SELEC nonsense"], /no such SQLite database|SQL error/],
    ["unknown flag", ["--source", "a.csv", "--frobnicate"], /unknown option --frobnicate/],
    ["missing --source", [], /--source/],
  ];
  for (const [what, args, re] of cases) {
    test(what, async () => {
      const r = await loom(["ingest", ...args], { cwd: ws });
      expectNoTraceback(r);
      expect(r.code).toBe(2);
      const lines = r.stderr.split("\n").filter((l) => l.trim());
      expect(lines.length).toBe(1);
      expect(lines[0]).toMatch(re);
      expect(r.stdout).toBe("");
      expect(runsOf(ws)).toBe(0);
    });
  }

  test("a real SQL error on a real database", async () => {
    const db = join(ws, "real.db");
    const d = new Database(db);
    d.run("CREATE TABLE t (a INTEGER)");
    d.close();
    const r = await loom(["ingest", "--source", `sqlite:///${db}`, "--query", "SELECT nope FROM t", "--json"], { cwd: ws });
    expect(r.code).toBe(2);
    expect(r.json.status).toBe("ERROR");
    expect(r.json.messages[0]).toMatch(/SQL error: no such column: nope/);
    expect(runsOf(ws)).toBe(0);
  });
});

describe("datastore absent or damaged", () => {
  test("absent: read verbs say what to run", async () => {
    const r = await loom(["datasets"], { cwd: tempWorkspace() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no Loom datastore.*loom ingest.*loom doctor/);
  });

  test("damaged: doctor catches a truncated artifact and a moved datastore", async () => {
    const ws = tempWorkspace();
    writeFileSync(join(ws, "d.csv"), csv(50));
    const ok = await loom(["ingest", "--source", "d.csv", "--json"], { cwd: ws });
    expect(ok.code).toBe(0);
    const healthy = await loom(["doctor", "--json"], { cwd: ws });
    expect(healthy.json.summary.checks.find((c: any) => c.name === "datastore").status).toBe("PASS");
    // truncate the largest artifact blob
    const dataDir = join(ws, ".loom", ".metaflow", "IngestDataset", "data");
    const blobs = readdirSync(dataDir).flatMap((p) => readdirSync(join(dataDir, p)).map((f) => join(dataDir, p, f)));
    const big = blobs.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    truncateSync(big, 0);
    const sick = await loom(["doctor", "--json"], { cwd: ws });
    expect(sick.code).toBe(1);
    expect(sick.json.verdict).toBe("FAIL");
    const ds = sick.json.summary.checks.find((c: any) => c.name === "datastore");
    expect(ds.status).toBe("FAIL");
    expect(ds.detail).toMatch(/empty|missing/);
    const human = await loom(["doctor"], { cwd: ws });
    expect(human.stdout.trim().split("\n").pop()).toMatch(/^VERDICT\s+: FAIL$/);
  });

  test("moved: doctor says where the runs expect to live", async () => {
    const ws = tempWorkspace();
    writeFileSync(join(ws, "d.csv"), csv(30));
    expect((await loom(["ingest", "--source", "d.csv"], { cwd: ws })).code).toBe(0);
    const elsewhere = tempWorkspace();
    cpSync(join(ws, ".loom"), join(elsewhere, ".loom"), { recursive: true });
    const d = await loom(["doctor", "--json"], { cwd: elsewhere });
    const ds = d.json.summary.checks.find((c: any) => c.name === "datastore");
    expect(ds.status).toBe("FAIL");
    expect(ds.detail).toContain("moved");
    expect(ds.fix).toContain(ws);
  });

  test("a pathspec that does not exist, or names the wrong flow: exit 2, one line", async () => {
    const ws = tempWorkspace();
    writeFileSync(join(ws, "d.csv"), csv(30));
    const ing = await loom(["ingest", "--source", "d.csv", "--json"], { cwd: ws });
    const id = ing.json.pathspec.split("/")[1];
    for (const [ps, re] of [
      ["IngestDataset/1", /does not exist/],
      [`NoSuchFlow/${id}`, /does not exist|not a data object/],
      ["not-a-pathspec", /pathspec/],
    ] as const) {
      const r = await loom(["eda", "--dataset", ps], { cwd: ws });
      expectNoTraceback(r);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n").length).toBe(1);
      expect(r.stderr).toMatch(re);
    }
  });
});

describe("binary basics", () => {
  test("--version, --help, verb --help need no Python and list only built verbs", async () => {
    const v = await loom(["--version"], { env: { LOOM_HOME: tempDir0() } });
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^loom \d+\.\d+\.\d+ \(runtime [0-9a-f]{16}, [a-z0-9]+-[a-z0-9]+, bun [\d.]+\)$/);
    const h = await loom(["--help"], { env: { LOOM_HOME: tempDir0() } });
    expect(h.code).toBe(0);
    for (const verb of ["setup", "doctor", "connect", "ingest", "datasets"]) expect(h.stdout).toContain(verb);
    // the help lists exactly the registry's verbs: an unbuilt verb is absent, not pretend
    const listed = [...h.stdout.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]);
    const { VERBS } = await import("../../src/verbs/index");
    expect(listed).toEqual(VERBS.map((v) => v.name));
    const vh = await loom(["ingest", "--help"], { env: { LOOM_HOME: tempDir0() } });
    expect(vh.code).toBe(0);
    expect(vh.stdout).toContain("--source");
    const unknown = await loom(["frobnicate"]);
    expect(unknown.code).toBe(2);
  });

  test("no environment: verbs that need Python exit 2 with `loom setup`; doctor still runs", async () => {
    const home = tempDir0();
    const r = await loom(["datasets"], { env: { LOOM_HOME: home, LOOM_PYTHON: undefined } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe("loom datasets: Loom's Python environment is not set up: run `loom setup`");
    const d = await loom(["doctor", "--json"], { env: { LOOM_HOME: home, LOOM_PYTHON: undefined, PATH: "/nonexistent" } });
    expect(d.code).toBe(1);
    expect(d.json.verdict).toBe("FAIL");
    const py = d.json.summary.checks.find((c: any) => c.name === "python");
    expect(py.status).toBe("FAIL");
    expect(py.fix).toContain("python3");
    expect(d.json.summary.checks.find((c: any) => c.name === "loom environment").fix).toContain("loom setup");
  });
});

function tempDir0(): string {
  return tempWorkspace();
}
