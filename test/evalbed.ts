/**
 * The examples eval bed: every examples/<name>/assertions.json run through build/loom in a fresh workspace,
 * its assertions checked against each verb's --json contract; prints a pass/fail table and ends with
 * "evalbed: N passed, N failed". Run: `bun test/evalbed.ts [example …]` (or `npm run evalbed`).
 * The assertion language: test/evalbed-lib.ts.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { check, failureLine, table, type Checked, type Example, substitute } from "./evalbed-lib";
import { ROOT, loom, loomPython, tempWorkspace } from "./helpers";

const EXAMPLES = join(ROOT, "examples");
const only = process.argv.slice(2);
const names = readdirSync(EXAMPLES)
  .filter((n) => existsSync(join(EXAMPLES, n, "assertions.json")))
  .filter((n) => !only.length || only.includes(n))
  .sort();

const rows: Checked[] = [];
const t0 = performance.now();
for (const name of names) {
  const dir = join(EXAMPLES, name);
  const ex = JSON.parse(readFileSync(join(dir, "assertions.json"), "utf8")) as Example;
  const ws = tempWorkspace();
  let data = ex.data.file ? join(dir, ex.data.file) : join(ws, `${name}.csv`);
  if (ex.data.make) {
    const p = Bun.spawnSync([loomPython(), join(dir, ex.data.make), data], { stdout: "pipe", stderr: "pipe" });
    if (p.exitCode !== 0) {
      rows.push({ example: name, verb: "data", path: ex.data.make, op: "==", expected: "exit 0", found: p.stderr.toString().trim().split("\n").pop(), pass: false });
      continue;
    }
  }
  const scope: Record<string, unknown> = { data };
  for (const run of ex.runs) {
    const args = run.args.map((a) => String(substitute(a, scope)));
    const t = performance.now();
    const r = await loom([run.verb, ...args, "--json"], { cwd: ws });
    process.stderr.write(`  · ${name}: loom ${run.verb} → ${r.json?.pathspec ?? r.json?.status ?? `exit ${r.code}`} (${((performance.now() - t) / 1000).toFixed(1)} s)\n`);
    if (!r.json) {
      rows.push({ example: name, verb: run.verb, path: "(stdout)", op: "==", expected: "one JSON object", found: (r.stdout + r.stderr).trim().slice(-200), pass: false });
      break;
    }
    scope[run.id] = r.json;
    // the contract itself: the process exits with the envelope's exit_code
    rows.push({ example: name, verb: run.verb, path: "(process exit)", op: "==", expected: r.json.exit_code, found: r.code, pass: r.code === r.json.exit_code });
    for (const a of run.expect) rows.push(check(name, run.verb, a, r.json, scope));
  }
}
const failed = rows.filter((c) => !c.pass);
console.log(table(rows).join("\n"));
for (const c of failed) console.log(failureLine(c));
console.log(`evalbed: ${rows.length - failed.length} passed, ${failed.length} failed (${names.length} examples, ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
process.exit(failed.length ? 1 : 0);
