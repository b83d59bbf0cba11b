import { describe, expect, test } from "bun:test";
import { openerFor } from "../../src/core/open";

const P = "/w/.loom/card.html";
const all = () => true;
const none = () => false;

describe("openerFor: where a card can be shown", () => {
  test("$BROWSER wins, with %s or the path appended; an entry not on PATH is passed over", () => {
    expect(openerFor(P, { BROWSER: "firefox" }, "linux", all)).toEqual(["firefox", P]);
    expect(openerFor(P, { BROWSER: "chromium --new-window %s" }, "linux", all)).toEqual(["chromium", "--new-window", P]);
    expect(openerFor(P, { BROWSER: "nope:w3m" }, "linux", (c) => c === "w3m")).toEqual(["w3m", P]);
  });
  test("Linux needs a display for xdg-open; macOS has open; nothing else", () => {
    expect(openerFor(P, {}, "linux", all)).toBeNull();
    expect(openerFor(P, { DISPLAY: ":0" }, "linux", all)).toEqual(["xdg-open", P]);
    expect(openerFor(P, { WAYLAND_DISPLAY: "wayland-0" }, "linux", all)).toEqual(["xdg-open", P]);
    expect(openerFor(P, { DISPLAY: ":0" }, "linux", none)).toBeNull();
    expect(openerFor(P, {}, "darwin", none)).toEqual(["open", P]);
    expect(openerFor(P, { BROWSER: "" }, "win32", all)).toBeNull();
  });
});
