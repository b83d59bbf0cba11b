/** Progress and prose on stderr (stdout is reserved for the result). */
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
    progress(message) {
      if (!opts.quiet) process.stderr.write(`  · ${message}\n`);
    },
    line(message) {
      process.stderr.write(message + "\n");
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
