/** Terminal conventions, pure where possible: width, colour (never when not a TTY, NO_COLOR or --json),
 * control characters stripped from anything data-derived, wrapping, "did you mean". Imports nothing heavy:
 * `loom --help` and `loom --version` load only this. */

/** The width to lay text out in: $COLUMNS, else the terminal's, else 80 (never below 40). */
export function termWidth(stream: { columns?: number; isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): number {
  const c = Number(env.COLUMNS);
  if (Number.isFinite(c) && c > 0) return Math.max(40, Math.floor(c));
  if (stream.isTTY && stream.columns) return Math.max(40, stream.columns);
  return 80;
}

/** Colour only on a terminal, without NO_COLOR (any value, https://no-color.org), TERM=dumb or --json. */
export function colorAllowed(stream: { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env, json = false): boolean {
  if (json || !stream.isTTY) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.TERM === "dumb") return false;
  return true;
}

const CODES = { red: 31, green: 32, yellow: 33, bold: 1, dim: 2 } as const;
export type Color = keyof typeof CODES;
export const paint = (on: boolean, color: Color, s: string) => (on ? `\x1b[${CODES[color]}m${s}\x1b[0m` : s);

/** The colour of a verdict or status word: PASS/OK green, FAIL/ERROR red, WARN/INTERRUPTED/... yellow. */
export function statusColor(word: string | null | undefined): Color | null {
  const w = (word ?? "").toUpperCase();
  if (["PASS", "OK", "BUILT"].includes(w)) return "green";
  if (["FAIL", "FAILED", "ERROR", "DENIED"].includes(w)) return "red";
  if (w) return "yellow";
  return null;
}

// ESC sequences (CSI, OSC, and 2-byte), then any other C0/C1 control except tab and newline
const ANSI_SEQ = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** Text from data or a model, made safe to print on a terminal: escape sequences and control characters go
 * (a column named `\x1b]0;pwned\x07` cannot retitle the window or clear the screen). */
export function stripControl(s: string): string {
  return s.replace(ANSI_SEQ, "").replace(CONTROL, "");
}

/** Cut a line to `width` columns (an ellipsis marks the cut). */
export function fit(line: string, width: number): string {
  const chars = [...line];
  return chars.length <= width ? line : chars.slice(0, Math.max(1, width - 1)).join("") + "…";
}

/** Wrap `text` into lines of at most `width` characters; continuation lines are prefixed by `indent` spaces
 * (so the caller places the first line after an `indent`-wide label). */
export function wrap(text: string, width: number, indent = 0): string[] {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let cur = "";
  const room = (_first: boolean) => Math.max(10, width);
  for (const w of words) {
    if (cur && [...cur].length + 1 + [...w].length > room(lines.length === 0)) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines.map((l, i) => (i ? " ".repeat(indent) + l : l));
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  return d[a.length]![b.length]!;
}

/** The closest of `choices` to a misspelled `word` (edit distance ≤ 1/3 of its length, at least 1), or null. */
export function closest(word: string, choices: string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of choices) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== null && bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : null;
}
