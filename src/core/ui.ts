/** Progress and prose on stderr (stdout is reserved for the result). */
import { stripControl } from "./term";

export interface UI {
  /** one progress line (suppressed by --quiet) */
  progress(message: string): void;
  /** a line of prose */
  line(message: string): void;
  /** write raw text (e.g. a redrawn leaderboard); TTY-aware callers check `isTTY` */
  raw(text: string): void;
  isTTY: boolean;
}

export function makeUI(opts: { quiet?: boolean } = {}): UI {
  const isTTY = !!process.stderr.isTTY;
  return {
    isTTY,
    // progress and prose carry data-derived text (column names, a candidate's error): control characters go
    progress(message) {
      if (!opts.quiet) process.stderr.write(`  · ${stripControl(message)}\n`);
    },
    line(message) {
      process.stderr.write(stripControl(message) + "\n");
    },
    raw(text) {
      process.stderr.write(text);
    },
  };
}

/** `key        : value` lines, aligned like the product page (`cost (gate) : …`, `STATUS      : …`). */
export function kv(key: string, value: string): string {
  return `${key.padEnd(11)} : ${value}`;
}
