/** Terminal conventions, pure parts: width, colour rules, control characters, wrapping, did-you-mean. */
import { describe, expect, test } from "bun:test";
import { envelope, renderHuman } from "../../src/core/contract";
import { closest, colorAllowed, fit, stripControl, termWidth, wrap } from "../../src/core/term";

describe("term", () => {
  test("width: COLUMNS first, then the terminal's, else 80; never below 40", () => {
    expect(termWidth({ isTTY: true, columns: 100 }, { COLUMNS: "60" })).toBe(60);
    expect(termWidth({ isTTY: true, columns: 100 }, {})).toBe(100);
    expect(termWidth({ isTTY: false }, {})).toBe(80);
    expect(termWidth({ isTTY: true, columns: 10 }, {})).toBe(40);
  });

  test("colour only on a TTY, without NO_COLOR, TERM=dumb or --json", () => {
    expect(colorAllowed({ isTTY: true }, {})).toBe(true);
    expect(colorAllowed({ isTTY: false }, {})).toBe(false);
    expect(colorAllowed({ isTTY: true }, { NO_COLOR: "1" })).toBe(false);
    expect(colorAllowed({ isTTY: true }, { TERM: "dumb" })).toBe(false);
    expect(colorAllowed({ isTTY: true }, {}, true)).toBe(false);
  });

  test("control characters and escape sequences are stripped, text kept", () => {
    expect(stripControl("col\x1b]0;pwned\x07name\x1b[2J\x1b[31m!\x1b[0m\r\x00")).toBe("colname!");
    expect(stripControl("tab\there\nnext")).toBe("tab\there\nnext");
    expect(stripControl("\x9b31mC1")).toBe("31mC1");
  });

  test("wrap and fit respect the width", () => {
    const lines = wrap("one two three four five six seven eight nine ten", 12, 4);
    expect(lines.every((l) => l.length <= 16)).toBe(true);
    expect(lines.slice(1).every((l) => l.startsWith("    "))).toBe(true);
    expect(fit("abcdefghij", 5)).toBe("abcd…");
    expect(fit("abc", 5)).toBe("abc");
  });

  test("did you mean", () => {
    expect(closest("edaa", ["eda", "viz", "validate"])).toBe("eda");
    expect(closest("stpes", ["steps", "seed", "target"])).toBe("steps");
    expect(closest("zzzz", ["eda", "viz"])).toBeNull();
  });

  test("the VERDICT word is coloured only when allowed; data lines lose their escapes", () => {
    const env = envelope("validate", "read-only", { status: "FAIL", verdict: "FAIL", exit_code: 1, pathspec: "ValidateFlow/1", card_path: null, inputs: [], summary: {}, messages: ["class \x1b[2Jx"], next: [] }, true);
    const plain = renderHuman(env, ["col : \x1b]0;t\x07a"]);
    expect(plain).not.toContain("\x1b");
    expect(plain).toContain("VERDICT     : FAIL");
    const coloured = renderHuman(env, [], { color: true });
    expect(coloured).toContain("\x1b[31mFAIL");
    const ok = renderHuman({ ...env, verdict: "PASS" }, [], { color: true });
    expect(ok).toContain("\x1b[32mPASS");
  });
});
