/**
 * PostgreSQL at the ingest boundary against a real server. .ci/run starts one (test/pg-start.sh) and
 * exports LOOM_TEST_PG_URI / LOOM_TEST_PG_PASSWORD; on a machine without a server these tests cannot
 * run, which is the one reason they are skipped.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { expectNoTraceback, loom, tempWorkspace } from "../helpers";

const URI = process.env.LOOM_TEST_PG_URI;
const PW = process.env.LOOM_TEST_PG_PASSWORD;

function psql(sql: string) {
  const u = new URL(URI!);
  const p = Bun.spawnSync(["psql", "-h", u.hostname, "-p", u.port, "-U", u.username, "-d", u.pathname.slice(1), "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], {
    env: { ...process.env, PGPASSWORD: PW! },
    stderr: "pipe",
  });
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
}

describe.skipIf(!URI)("PostgreSQL (needs a server: LOOM_TEST_PG_URI)", () => {
  const ws = tempWorkspace();
  beforeAll(() => {
    psql("DROP TABLE IF EXISTS sales; CREATE TABLE sales (id serial PRIMARY KEY, amount numeric(10,2), region text, sold_at timestamp); INSERT INTO sales (amount, region, sold_at) SELECT g * 1.25, CASE WHEN g % 2 = 0 THEN 'north' ELSE 'south' END, timestamp '2024-01-01' + g * interval '1 day' FROM generate_series(1, 120) g;");
  });

  test("a table and a query through a named connection; the password only from the environment", async () => {
    const c = await loom(["connect", "wh", "--uri", URI!, "--password-env", "WH_PASSWORD", "--json"], { cwd: ws });
    expect(c.code).toBe(0);
    const t = await loom(["ingest", "--source", "@wh", "--table", "sales", "--json"], { cwd: ws, env: { WH_PASSWORD: PW } });
    expectNoTraceback(t);
    expect(t.code).toBe(0);
    expect(t.json.summary.rows).toBe(120);
    expect(t.json.summary.schema.find((f: any) => f.name === "amount").type).toBe("double");
    const q = await loom(["ingest", "--source", "@wh", "--query", "SELECT region, count(*) AS n FROM sales GROUP BY region ORDER BY region", "--json"], { cwd: ws, env: { WH_PASSWORD: PW } });
    expect(q.code).toBe(0);
    expect(q.json.summary.rows).toBe(2);
  });

  test("a wrong password and a SQL error: exit 2, one line", async () => {
    const bad = await loom(["ingest", "--source", "@wh", "--table", "sales"], { cwd: ws, env: { WH_PASSWORD: "wrong" } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/cannot connect to PostgreSQL.*\$WH_PASSWORD/);
    const sql = await loom(["ingest", "--source", "@wh", "--query", "SELECT nope FROM sales"], { cwd: ws, env: { WH_PASSWORD: PW } });
    expect(sql.code).toBe(2);
    expect(sql.stderr).toMatch(/SQL error: column "nope" does not exist/);
  });
});
