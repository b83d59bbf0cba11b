/** Which Python Loom runs its flows with, and whether it is ready. */
import { existsSync } from "node:fs";
import { readJson } from "./workspace";
import { loomHome, setupRecordPath, venvPython } from "./home";
import { requirementsHash } from "./assets";
import { UsageError } from "./errors";

export interface SetupRecord {
  python: string;
  python_version: string;
  venv: string;
  venv_python: string;
  requirements_sha256: string;
  packages: Record<string, string>;
  installed_at: string;
  loom_version: string;
}

export interface PythonChoice {
  python: string;
  source: "LOOM_PYTHON" | "venv";
}

export function readSetupRecord(home = loomHome()): SetupRecord | null {
  return readJson<SetupRecord | null>(setupRecordPath(home), null);
}

/** Pure decision: which interpreter to use, or the line that says what to do. */
export function choosePython(
  env: NodeJS.ProcessEnv,
  home: string,
  record: SetupRecord | null,
  exists: (p: string) => boolean,
  reqHash: string,
): PythonChoice | { error: string } {
  if (env.LOOM_PYTHON) {
    if (!exists(env.LOOM_PYTHON)) return { error: `LOOM_PYTHON=${env.LOOM_PYTHON} does not exist: point it at a python3 (3.10+) or unset it and run \`loom setup\`` };
    return { python: env.LOOM_PYTHON, source: "LOOM_PYTHON" };
  }
  const vp = venvPython(home);
  if (!record || !exists(vp)) return { error: "Loom's Python environment is not set up: run `loom setup`" };
  if (record.requirements_sha256 !== reqHash)
    return { error: "Loom's Python environment is out of date for this loom version: run `loom setup`" };
  return { python: vp, source: "venv" };
}

export function requirePython(env: NodeJS.ProcessEnv = process.env): PythonChoice {
  const home = loomHome(env);
  const c = choosePython(env, home, readSetupRecord(home), existsSync, requirementsHash());
  if ("error" in c) throw new UsageError(c.error);
  return c;
}

export interface FoundPython {
  path: string;
  version: string;
}

/** Find a system python3 >= 3.10 (LOOM_SETUP_PYTHON first, then PATH names). */
export function findSystemPython(env: NodeJS.ProcessEnv = process.env): FoundPython | null {
  const names = [env.LOOM_SETUP_PYTHON, "python3", "python3.13", "python3.12", "python3.11", "python3.10", "python"].filter(
    (n): n is string => !!n,
  );
  for (const name of names) {
    const path = name.includes("/") ? name : Bun.which(name, { PATH: env.PATH ?? "" });
    if (!path) continue;
    const v = pythonVersion(path);
    if (v && versionAtLeast(v, [3, 10])) return { path, version: v };
  }
  return null;
}

export function pythonVersion(path: string): string | null {
  try {
    const p = Bun.spawnSync([path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], { stdout: "pipe", stderr: "ignore" });
    if (p.exitCode !== 0) return null;
    return p.stdout.toString().trim() || null;
  } catch {
    return null;
  }
}

export function versionAtLeast(v: string, min: number[]): boolean {
  const parts = v.split(".").map((x) => parseInt(x, 10));
  for (let i = 0; i < min.length; i++) {
    const a = parts[i] ?? 0;
    if (a > min[i]!) return true;
    if (a < min[i]!) return false;
  }
  return true;
}
