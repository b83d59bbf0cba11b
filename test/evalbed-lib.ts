/**
 * The examples eval bed's assertion language over the --json contract (pure; test/unit/evalbed.test.ts).
 *
 * An example is examples/<name>/assertions.json: { description, data: {make: "make_data.py"} | {file: "x.csv"},
 * runs: [{ id, verb, args, expect: [{ path, op, value }] }] }. `args` and `value` may name earlier results:
 * "{data}" is the example's CSV, "{ingest.pathspec}" a field of the run with id `ingest` (any JSON path).
 * Paths: dotted keys, `[n]` for an index, `[*]` to map over an array (`summary.leakage_flags[*].column`).
 */

export type Op = "==" | "!=" | ">=" | "<=" | ">" | "<" | "matches" | "contains" | "not_contains" | "length" | "length>=";
export interface Assertion {
  path: string;
  op: Op;
  value: unknown;
}
export interface Run {
  id: string;
  verb: string;
  args: string[];
  expect: Assertion[];
}
export interface Example {
  description: string;
  data: { make?: string; file?: string };
  runs: Run[];
}
export interface Checked {
  example: string;
  verb: string;
  path: string;
  op: Op;
  expected: unknown;
  found: unknown;
  pass: boolean;
}

const MISSING = Symbol("missing");

/** The value at `path` in `obj` (MISSING where a key is absent). */
export function getPath(obj: unknown, path: string): unknown {
  const parts = path.match(/[^.[\]]+|\[\d+\]|\[\*\]/g) ?? [];
  let cur: unknown = obj;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (cur === MISSING) return MISSING;
    if (p === "[*]") {
      if (!Array.isArray(cur)) return MISSING;
      const rest = parts.slice(i + 1).join(".").replace(/\.\[/g, "[");
      return rest ? cur.map((x) => getPath(x, rest)) : cur;
    }
    const m = /^\[(\d+)\]$/.exec(p);
    if (m) cur = Array.isArray(cur) && Number(m[1]) < cur.length ? cur[Number(m[1])] : MISSING;
    else cur = cur !== null && typeof cur === "object" && p in (cur as object) ? (cur as Record<string, unknown>)[p] : MISSING;
  }
  return cur;
}

/** "{data}" / "{id.path}" replaced from the results so far; a string that is exactly one placeholder keeps the value's type. */
export function substitute(v: unknown, scope: Record<string, unknown>): unknown {
  if (typeof v !== "string") return Array.isArray(v) ? v.map((x) => substitute(x, scope)) : v;
  const one = /^\{([\w-]+)((?:\.|\[)[^{}]*)?\}$/.exec(v);
  const look = (id: string, rest?: string) => {
    const base = scope[id];
    if (base === undefined) return MISSING;
    return rest ? getPath(base, rest.replace(/^\./, "")) : base;
  };
  if (one) {
    const x = look(one[1]!, one[2]);
    return x === MISSING ? v : x;
  }
  return v.replace(/\{([\w-]+)((?:\.|\[)[^{}]*)?\}/g, (all, id, rest) => {
    const x = look(id, rest);
    return x === MISSING ? all : String(x);
  });
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function holds(op: Op, found: unknown, expected: unknown): boolean {
  if (found === MISSING) return false;
  switch (op) {
    case "==":
      return same(found, expected);
    case "!=":
      return !same(found, expected);
    case ">=":
      return typeof found === "number" && found >= (expected as number);
    case "<=":
      return typeof found === "number" && found <= (expected as number);
    case ">":
      return typeof found === "number" && found > (expected as number);
    case "<":
      return typeof found === "number" && found < (expected as number);
    case "matches":
      return typeof found === "string" && new RegExp(String(expected)).test(found);
    case "contains":
      return Array.isArray(found) ? found.some((x) => same(x, expected)) : typeof found === "string" && found.includes(String(expected));
    case "not_contains":
      return Array.isArray(found) ? !found.some((x) => same(x, expected)) : typeof found === "string" && !found.includes(String(expected));
    case "length":
      return Array.isArray(found) && found.length === expected;
    case "length>=":
      return Array.isArray(found) && found.length >= (expected as number);
  }
  return false;
}

export function check(example: string, verb: string, a: Assertion, result: unknown, scope: Record<string, unknown>): Checked {
  const expected = substitute(a.value, scope);
  const found = getPath(result, a.path);
  return { example, verb, path: a.path, op: a.op, expected, found: found === MISSING ? "(missing)" : found, pass: holds(a.op, found, expected) };
}

export function show(v: unknown, width = 60): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s.length > width ? s.slice(0, width - 1) + "…" : s;
}

/** One line for a failed assertion: example, verb, JSON path, what was expected and the value found. */
export function failureLine(c: Checked): string {
  return `FAIL ${c.example} · ${c.verb} · ${c.path} ${c.op} ${show(c.expected, 80)} · found ${show(c.found, 200)}`;
}

/** The pass/fail table. */
export function table(rows: Checked[]): string[] {
  const head = ["example", "verb", "assertion", "result"];
  const body = rows.map((c) => [c.example, c.verb, `${c.path} ${c.op} ${show(c.expected, 40)}`, c.pass ? "pass" : `FAIL (found ${show(c.found, 40)})`]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((x, i) => x.padEnd(w[i]!)).join("  ").trimEnd();
  return [line(head), line(w.map((n) => "-".repeat(n))), ...body.map(line)];
}
