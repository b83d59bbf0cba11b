/** The workspace: the nearest `.loom/` from the cwd upward (LOOM_WORKSPACE overrides). */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync, renameSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { UsageError } from "./errors";
import { datastoreEnv, readMetaflowProfile, resolveDatastore, type DatastoreChoice, type Profile, type RecordedDatastore } from "./scaleout";

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

export function ensureWorkspace(ws: Workspace, env: NodeJS.ProcessEnv = process.env): Workspace {
  const ds = workspaceDatastore(ws, env); // refuses a configuration that disagrees with the record before writing
  for (const sub of ["", "tmp", "artifacts"]) mkdirSync(join(ws.dir, sub), { recursive: true });
  const cfg = join(ws.dir, "config.json");
  if (!existsSync(cfg)) writeJson(cfg, { limits: DEFAULT_LIMITS, datastore: recordOf(ds) });
  else {
    // a workspace made before the record existed keeps what it has used since (its first verb records it)
    const cur = readJson<Record<string, unknown> | null>(cfg, null);
    if (cur && typeof cur === "object" && !Array.isArray(cur) && cur.datastore === undefined) writeJson(cfg, { ...cur, datastore: recordOf(ds) });
  }
  return { ...ws, exists: true };
}

const recordOf = (ds: DatastoreChoice) => (ds.type === "local" ? { type: "local" } : { type: ds.type, root: ds.root });

/** The workspace's config.json as an object (null when absent or not an object). */
export function readConfig(ws: Workspace): Record<string, unknown> | null {
  const c = readJson<unknown>(join(ws.dir, "config.json"), null);
  return c && typeof c === "object" && !Array.isArray(c) ? (c as Record<string, unknown>) : null;
}

export function recordedDatastore(ws: Workspace): RecordedDatastore | null {
  const d = readConfig(ws)?.datastore as RecordedDatastore | undefined;
  return d && typeof d === "object" && typeof d.type === "string" ? d : null;
}

/** The datastore this workspace's flows use (Metaflow's configuration, else the record), or exit 2. */
export function workspaceDatastore(ws: Workspace, env: NodeJS.ProcessEnv = process.env): DatastoreChoice & { profile: Profile } {
  const prof = readMetaflowProfile(env);
  if (typeof prof === "string") throw new UsageError(prof);
  const ds = resolveDatastore(env, prof.profile, recordedDatastore(ws));
  if (typeof ds === "string") throw new UsageError(ds);
  return { ...ds, profile: prof.profile };
}

/** The METAFLOW_* environment for this workspace's datastore (for bridgeEnv). */
export function workspaceDatastoreEnv(ws: Workspace, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return datastoreEnv(workspaceDatastore(ws, env), ws.dir);
}

export function datastoreExists(ws: Workspace): boolean {
  if (isDir(join(ws.dir, ".metaflow"))) return true;
  const rec = recordedDatastore(ws);
  return !!rec && rec.type !== "local"; // a remote datastore with service metadata keeps nothing here
}

/**
 * Pure: the gate limits from a config object, failing closed. A key that is present but not of its type
 * (a string, a list, a negative or non-finite number) is an error naming the key, never a silent default.
 */
export function parseLimits(cfg: unknown): Limits | string {
  if (cfg === undefined || cfg === null) return { ...DEFAULT_LIMITS };
  if (typeof cfg !== "object" || Array.isArray(cfg)) return "config.json must hold a JSON object";
  const raw = (cfg as { limits?: unknown }).limits;
  if (raw === undefined) return { ...DEFAULT_LIMITS };
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return "limits must be an object";
  const l = raw as Record<string, unknown>;
  const out: Limits = { ...DEFAULT_LIMITS };
  if ("max_usd_without_confirm" in l) {
    const x = l.max_usd_without_confirm;
    if (typeof x !== "number" || !Number.isFinite(x) || x < 0)
      return `limits.max_usd_without_confirm must be a number of dollars, 0 or more (got ${JSON.stringify(x)})`;
    out.max_usd_without_confirm = x;
  }
  if ("confirm_data_leaving_machine" in l) {
    const x = l.confirm_data_leaving_machine;
    if (typeof x !== "boolean") return `limits.confirm_data_leaving_machine must be true or false (got ${JSON.stringify(x)})`;
    out.confirm_data_leaving_machine = x;
  }
  return out;
}

export function readLimits(ws: Workspace): Limits {
  const path = join(ws.dir, "config.json");
  if (!existsSync(path)) return { ...DEFAULT_LIMITS };
  let cfg: unknown;
  try {
    cfg = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UsageError(`${path} is not valid JSON (${(e as Error).message}): fix it, or delete it to get the defaults`);
  }
  const r = parseLimits(cfg);
  if (typeof r === "string") throw new UsageError(`${path}: ${r}: fix it, or delete the key to get the default`);
  return r;
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
