/** The workspace: the nearest `.loom/` from the cwd upward (LOOM_WORKSPACE overrides). */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync, renameSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

export interface Limits {
  /** any dollar spend above this asks for confirmation (default 0: any spend asks) */
  max_usd_without_confirm: number;
  /** data leaving the machine asks for confirmation */
  confirm_data_leaving_machine: boolean;
}

export const DEFAULT_LIMITS: Limits = { max_usd_without_confirm: 0, confirm_data_leaving_machine: true };

export interface Workspace {
  /** the `.loom` directory */
  dir: string;
  /** the directory that holds `.loom` */
  root: string;
  exists: boolean;
}

/** Pure: given a start dir and a predicate, walk upward to the first dir holding `.loom`. */
export function findUp(start: string, has: (p: string) => boolean): string | null {
  let cur = resolve(start);
  for (;;) {
    if (has(join(cur, ".loom"))) return cur;
    const up = dirname(cur);
    if (up === cur) return null;
    cur = up;
  }
}

const isDir = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

export function locateWorkspace(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Workspace {
  const override = env.LOOM_WORKSPACE;
  if (override) {
    const p = resolve(cwd, override);
    const dir = basename(p) === ".loom" ? p : join(p, ".loom");
    return { dir, root: dirname(dir), exists: isDir(dir) };
  }
  const found = findUp(cwd, isDir);
  const root = found ?? resolve(cwd);
  const dir = join(root, ".loom");
  return { dir, root, exists: found !== null };
}

export function ensureWorkspace(ws: Workspace): Workspace {
  for (const sub of ["", "tmp", "artifacts"]) mkdirSync(join(ws.dir, sub), { recursive: true });
  const cfg = join(ws.dir, "config.json");
  if (!existsSync(cfg)) writeJson(cfg, { limits: DEFAULT_LIMITS });
  return { ...ws, exists: true };
}

export function datastoreExists(ws: Workspace): boolean {
  return isDir(join(ws.dir, ".metaflow"));
}

export function readLimits(ws: Workspace): Limits {
  const cfg = readJson<{ limits?: Partial<Limits> }>(join(ws.dir, "config.json"), {});
  return { ...DEFAULT_LIMITS, ...(cfg.limits ?? {}) };
}

export function readJson<T>(path: string, fallback: T): T {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return fallback;
  }
}

export function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
  renameSync(tmp, path);
}
