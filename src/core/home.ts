/** Loom's home (LOOM_HOME): the Python environment, its setup record, the materialized runtime. */
import { homedir, platform } from "node:os";
import { join } from "node:path";

export function loomHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LOOM_HOME) return env.LOOM_HOME;
  const home = env.HOME || homedir();
  if (platform() === "darwin") return join(home, "Library", "Application Support", "loom");
  return join(env.XDG_DATA_HOME || join(home, ".local", "share"), "loom");
}

export const venvDir = (home: string) => join(home, "venv");
export const venvPython = (home: string) =>
  platform() === "win32" ? join(venvDir(home), "Scripts", "python.exe") : join(venvDir(home), "bin", "python");
export const setupRecordPath = (home: string) => join(home, "setup.json");
