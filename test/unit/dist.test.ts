/** Pure parts of distribution: wheelhouse platforms and Python versions, pip's missing-wheel lines. */
import { describe, expect, test } from "bun:test";
import { missingFromPip, pipPlatforms, pipPythonVersion, PIP_PLATFORMS } from "../../src/verbs/setup";

describe("pipPlatforms", () => {
  test("Loom's names map to the tags of their CPU only", () => {
    for (const [name, arch] of [["linux-x64", "x86_64"], ["linux-arm64", "aarch64"], ["darwin-x64", "x86_64"], ["darwin-arm64", "arm64"]] as const) {
      const tags = pipPlatforms(name);
      expect(tags.length).toBeGreaterThan(0);
      for (const t of tags) expect(t.endsWith(`_${arch}`)).toBe(true);
      expect(tags.every((t) => (name.startsWith("linux") ? /^manylinux/.test(t) : /^macosx_/.test(t)))).toBe(true);
    }
  });
  test("linux covers glibc 2.17 (manylinux2014) through 2.28, newest first", () => {
    const t = PIP_PLATFORMS["linux-x64"]!;
    expect(t[0]).toBe("manylinux_2_28_x86_64");
    expect(t).toContain("manylinux_2_17_x86_64");
    expect(t).toContain("manylinux2014_x86_64");
    expect(t).not.toContain("manylinux_2_29_x86_64");
  });
  test.each([
    ["manylinux_2_31_aarch64", ["manylinux_2_31_aarch64"]],
    ["macosx_12_0_arm64, macosx_11_0_arm64", ["macosx_12_0_arm64", "macosx_11_0_arm64"]],
  ])("pip tags pass through: %s", (arg, want) => expect(pipPlatforms(arg)).toEqual(want));
  test.each([
    ["windows-x64", /does not run natively on Windows/],
    ["win_amd64", /does not run natively on Windows/],
    ["solaris-sparc", /give one of linux-x64, linux-arm64, darwin-x64, darwin-arm64/],
    ["", /give one of/],
  ])("%j is refused", (arg, re) => expect(() => pipPlatforms(arg)).toThrow(re));
});

describe("pipPythonVersion", () => {
  test.each([
    ["3.12", "3.12"],
    ["3.11.7", "3.11"],
    ["312", "3.12"],
    [" 3.10 ", "3.10"],
  ])("%j → %s", (a, b) => expect(pipPythonVersion(a)).toBe(b));
  test.each(["3.9", "2.7", "python3", "3.x", "4.0"])("%j is refused", (a) => expect(() => pipPythonVersion(a)).toThrow(/3\.10 or newer/));
});

test("missingFromPip reads every 'No matching distribution' line once", () => {
  const stderr = [
    "Looking in links: /tmp/wh",
    "Processing /tmp/wh/pandas-2.3.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "ERROR: Could not find a version that satisfies the requirement lightgbm==4.6.0 (from versions: none)",
    "ERROR: No matching distribution found for lightgbm==4.6.0",
    "ERROR: No matching distribution found for lightgbm==4.6.0",
    "ERROR: No matching distribution found for tzdata>=2022.7",
  ].join("\n");
  expect(missingFromPip(stderr)).toEqual(["lightgbm==4.6.0", "tzdata>=2022.7"]);
  expect(missingFromPip("ERROR: Could not install packages due to an OSError")).toEqual([]);
});
