import { describe, expect, test } from "bun:test";
import { interruptedLines, type JournalEntry } from "../../src/core/deploy-journal";

const e = (over: Partial<JournalEntry>): JournalEntry => ({
  run: "DeployFlow/1", state: "moved", why: "promote", name: "m", alias: "champion", from: null, to: 1, registry: "sqlite:///r", when_ns: 1, ...over,
});

describe("deploy journal (doctor)", () => {
  test("completed moves say nothing", () => {
    expect(interruptedLines([e({}), e({ run: "DeployFlow/2", from: 1, to: 2, when_ns: 2 })])).toEqual([]);
  });
  test("killed after registering: the version without an alias and where the alias still points", () => {
    const [line] = interruptedLines([e({}), e({ run: "DeployFlow/2", state: "registered", from: 1, to: 2, when_ns: 2 })]);
    expect(line).toContain("DeployFlow/2 (promote) registered m version 2 but was stopped before moving the alias: m@champion still points at version 1");
  });
  test("killed before registering, on a new alias", () => {
    expect(interruptedLines([e({ state: "started", to: null })])[0]).toContain("was stopped before registering anything: m@champion had no version");
  });
  test("a later completed move of the same alias settles it; another alias's does not", () => {
    const cut = e({ run: "DeployFlow/2", state: "registered", from: 1, to: 2, when_ns: 2 });
    expect(interruptedLines([cut, e({ run: "DeployFlow/3", from: 1, to: 3, when_ns: 3 })])).toEqual([]);
    expect(interruptedLines([cut, e({ run: "DeployFlow/3", alias: "challenger", when_ns: 3 })]).length).toBe(1);
    expect(interruptedLines([cut, e({ run: "DeployFlow/0", when_ns: 1 })]).length).toBe(1); // an earlier one does not
  });
});
