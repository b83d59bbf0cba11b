/**
 * The Python side (py/loom_py, flows/, requirements) is embedded in the executable at build time
 * (build/build.ts writes src/generated/embedded.ts) and materialized on first use into
 * $LOOM_HOME/runtime/<hash>/, one directory per distinct content, so binaries of different versions
 * never share stale flow files.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { EMBEDDED } from "../generated/embedded";

export interface Runtime {
  dir: string;
  pyPath: string;
  flowsDir: string;
  requirementsPath: string;
}

export const embeddedHash = (): string => EMBEDDED.hash;
export const requirementsHash = (): string => EMBEDDED.requirementsHash;
export const requirementsText = (): string => EMBEDDED.files["py/requirements.txt"] ?? "";

export function materialize(home: string): Runtime {
  const dir = join(home, "runtime", EMBEDDED.hash);
  const rt: Runtime = {
    dir,
    pyPath: join(dir, "py"),
    flowsDir: join(dir, "flows"),
    requirementsPath: join(dir, "py", "requirements.txt"),
  };
  if (existsSync(join(dir, ".complete"))) return rt;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const [rel, content] of Object.entries(EMBEDDED.files)) {
    const p = join(tmp, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
  writeFileSync(join(tmp, ".complete"), EMBEDDED.hash + "\n");
  try {
    renameSync(tmp, dir);
  } catch {
    // another loom process won the race: its copy is identical
    rmSync(tmp, { recursive: true, force: true });
  }
  return rt;
}
