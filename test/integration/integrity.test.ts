/**
 * Data objects are immutable: the sha256 of their stored bytes is recorded when they are made and re-checked on
 * every load. A blob rewritten on disk (labels flipped, as a poisoning candidate did) is exit 2 "changed on disk"
 * for every verb, and `loom doctor` names it; staging left by a killed run is found with the command that
 * cleans it (issue 21, item 4/5).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expectNoTraceback, loom, loomPython, tempWorkspace } from "../helpers";

let ws: string, ds: string;

beforeAll(async () => {
  ws = tempWorkspace();
  const rows = ["a,b,y", ...Array.from({ length: 60 }, (_, i) => `${i},${(i * 7) % 11},${i % 2}`)];
  writeFileSync(join(ws, "t.csv"), rows.join("\n") + "\n");
  const r = await loom(["ingest", "--source", "t.csv", "--json"], { cwd: ws });
  expect(r.code).toBe(0);
  ds = r.json.pathspec;
}, 120_000);

describe("a data object whose stored bytes changed", () => {
  test("before: doctor checks every data object and passes", async () => {
    const d = await loom(["doctor", "--json"], { cwd: ws });
    const c = d.json.summary.checks.find((x: any) => x.name === "data objects");
    expect(c).toMatchObject({ status: "PASS" });
    expect(c.detail).toContain("1 data object(s)");
  });

  test("a blob rewritten with flipped labels (valid Parquet) is refused by eda, and doctor names it", async () => {
    // what the poisoning candidate did: find the stored Parquet blob and replace it with a valid one, labels flipped
    const dir = join(ws, ".loom", "data", "IngestDataset");
    const files = readdirSync(dir).map((f) => join(dir, f));
    const code = `
import gzip, io, sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
hit = 0
for p in sys.argv[1:]:
    raw = gzip.decompress(open(p, "rb").read())
    if raw[:4] != b"PAR1":
        continue
    t = pq.read_table(io.BytesIO(raw))
    t = t.set_column(t.schema.get_field_index("y"), "y", pc.subtract(1, t["y"]))
    buf = io.BytesIO(); pq.write_table(t, buf, compression="zstd")
    open(p, "wb").write(gzip.compress(buf.getvalue()))
    hit += 1
print(hit)`;
    const p = Bun.spawnSync([loomPython(), "-c", code, ...files], { stdout: "pipe", stderr: "pipe" });
    expect(p.stdout.toString().trim()).toBe("1");
    const e = await loom(["eda", "--dataset", ds, "--target", "y", "--json"], { cwd: ws });
    expect(e.code).toBe(2);
    expect(e.json.messages[0]).toContain(`data object ${ds} changed on disk since it was made`);
    expectNoTraceback(e);
    const d = await loom(["doctor", "--json"], { cwd: ws });
    expect(d.code).toBe(1);
    const c = d.json.summary.checks.find((x: any) => x.name === "data objects");
    expect(c.status).toBe("FAIL");
    expect(c.detail).toContain(ds);
    expect(d.json.verdict).toBe("FAIL");
  }, 120_000);

  test("staging left by a killed run is a WARN with the command that removes it", async () => {
    const left = join(ws, ".loom", "tmp", "optimize-killed");
    mkdirSync(left, { recursive: true });
    writeFileSync(join(left, "train.parquet"), "x".repeat(2048));
    const old = Date.now() / 1000 - 3600;
    utimesSync(left, old, old);
    // and a sandbox root a SIGKILLed search left in the host's temp directory
    const sbx = mkdtempSync(join(tmpdir(), "loom-sbx-"));
    writeFileSync(join(sbx, "train.parquet"), "y".repeat(1024));
    utimesSync(sbx, old - 7200, old - 7200);
    try {
      const d = await loom(["doctor", "--json"], { cwd: ws });
      const c = d.json.summary.checks.find((x: any) => x.name === "leftover staging");
      expect(c.status).toBe("WARN");
      expect(c.fix).toMatch(/^rm -rf /);
      expect(c.fix).toContain(`"${left}"`);
      expect(c.fix).toContain(`"${sbx}"`);
    } finally {
      rmSync(sbx, { recursive: true, force: true });
    }
  }, 60_000);
});
