/**
 * Drive the built executable (build/loom) the way a user does: real processes, real Metaflow runs,
 * a fresh temporary workspace per test file. LOOM_HOME comes from the environment (CI provisions it once
 * with `loom setup`); every call gets METAFLOW_USER unset unless given, as on CI.
 */
import { existsSync, mkdtempSync, mkdirSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "..");
export const LOOM = join(ROOT, "build", "loom");

export interface LoomResult {
  code: number;
  stdout: string;
  stderr: string;
  /** the parsed stdout when it is one JSON object, else undefined */
  json: any;
}

export function tempDir(prefix = "loom-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A fresh directory to stand in as a user's project (its .loom/ is created by the first write). */
export function tempWorkspace(): string {
  const d = tempDir("loom-ws-");
  mkdirSync(d, { recursive: true });
  return d;
}

export async function loom(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string | undefined>; stdin?: string } = {},
): Promise<LoomResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  delete env.METAFLOW_USER;
  delete env.ANTHROPIC_API_KEY;
  delete env.OPENAI_API_KEY;
  delete env.LOOM_WORKSPACE;
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const proc = Bun.spawn([LOOM, ...args], {
    cwd: opts.cwd ?? tempWorkspace(),
    env,
    stdin: opts.stdin !== undefined ? new Blob([opts.stdin]) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  let json: any;
  try {
    json = JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  return { code, stdout, stderr, json };
}

/** Python from Loom's environment (for reading runs back with plain Metaflow in tests). */
export function loomPython(): string {
  if (process.env.LOOM_PYTHON) return process.env.LOOM_PYTHON;
  const home = process.env.LOOM_HOME ?? join(process.env.HOME ?? "/root", ".local", "share", "loom");
  return join(home, "venv", "bin", "python");
}

/** Run Python with plain Metaflow pointed at a workspace's datastore; returns parsed JSON stdout. */
export function plainMetaflow(workspaceRoot: string, code: string): any {
  const p = Bun.spawnSync([loomPython(), "-c", code], {
    cwd: join(workspaceRoot, ".loom"),
    env: {
      ...process.env,
      METAFLOW_USER: "someone-else",
      METAFLOW_DATASTORE_SYSROOT_LOCAL: join(workspaceRoot, ".loom"),
      METAFLOW_DEFAULT_METADATA: "local",
      METAFLOW_DEFAULT_DATASTORE: "local",
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (p.exitCode !== 0) throw new Error(`python failed: ${p.stderr.toString()}`);
  return JSON.parse(p.stdout.toString());
}

/** How many runs of a flow a workspace's datastore holds ("nothing written" checks). */
export function runsOf(workspaceRoot: string, flow: string): number {
  const d = join(workspaceRoot, ".loom", ".metaflow", flow);
  return existsSync(d) ? readdirSync(d).filter((n) => /^\d+$/.test(n)).length : 0;
}

/** mulberry32: a seeded PRNG so generated test data is the same on every machine. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** No traceback, ever: the user-facing output of a failure. */
export function expectNoTraceback(r: LoomResult): void {
  const all = r.stdout + r.stderr;
  if (/Traceback \(most recent call last\)|^\s+at .*\(.*:\d+:\d+\)/m.test(all)) throw new Error(`traceback leaked:\n${all}`);
}


/** a workspace's MLflow registry (.loom/mlflow/mlflow.db) read or changed with MLflow's own client, not Loom's
 * code: `code` runs with `c = MlflowClient()`; its last printed line is parsed as JSON */
export function mlflowRegistry(ws: string, code: string): any {
  const p = Bun.spawnSync([loomPython(), "-c", `import json, os\nos.environ["MLFLOW_DISABLE_TELEMETRY"]="true"\nfrom mlflow import MlflowClient\nc = MlflowClient()\n${code}`], {
    env: { ...process.env, MLFLOW_TRACKING_URI: `sqlite:///${ws}/.loom/mlflow/mlflow.db` },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  return JSON.parse(p.stdout.toString().trim().split("\n").pop()!);
}

/** the local S3-compatible server (test/fixtures/s3-server.py, moto on loopback, bucket `bucket`): resolves once it
 * listens; `stop()` closes its stdin (it stops by itself when the test process goes, too) */
export async function startS3Server(bucket = "loom"): Promise<{ port: number; stop: () => void }> {
  const server = Bun.spawn([loomPython(), join(ROOT, "test", "fixtures", "s3-server.py"), bucket], { stdin: "pipe", stdout: "pipe", stderr: "ignore" });
  const stop = () => {
    try {
      (server.stdin as { end?: () => void } | undefined)?.end?.();
    } catch {
      /* already gone */
    }
    server.kill();
  };
  const reader = (server.stdout as ReadableStream<Uint8Array>).getReader();
  let buf = "";
  while (!/ready \d+/.test(buf)) {
    const { value, done } = await reader.read();
    if (done) {
      stop();
      throw new Error(`the S3 test server did not start: ${buf}`);
    }
    buf += new TextDecoder().decode(value);
  }
  return { port: Number(/ready (\d+)/.exec(buf)![1]), stop };
}
