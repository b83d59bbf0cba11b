/** Talks to py/loom_py/runtime/bridge.py: one Python process per verb. */
import { join } from "node:path";
import { materialize } from "./assets";
import { UsageError } from "./errors";
import { loomHome } from "./home";
import { requirePython } from "./pyenv";
import { workspaceDatastoreEnv, type Workspace } from "./workspace";

export const EVENT_MARKER = "@@loom ";

export type LoomEvent = { kind: string; [k: string]: unknown };

export interface BridgeRequest {
  mode: "flow" | "call";
  flow?: string;
  flow_name?: string;
  fn?: string;
  params: Record<string, unknown>;
  prepare?: string;
  flow_options?: string[];
  debug?: boolean;
}

export interface BridgeReply {
  ok: boolean;
  exit_code: number;
  message?: string;
  pathspec?: string | null;
  card_path?: string | null;
  status?: string;
  verdict?: string | null;
  summary?: unknown;
  inputs?: string[];
  messages?: string[];
  next?: string[];
  traceback?: string | null;
  log_tail?: string[];
  [k: string]: unknown;
}

/**
 * Variables that never reach Python: the model providers' keys, tokens and endpoints stay in this process
 * (the proposer server holds them; the flow gets only its loopback URL), and so does anything named like an
 * API key. Python's own credentials (PGPASSWORD or the --password-env a connection names, MODAL_TOKEN_*)
 * still pass: ingest and train read them. The sandbox's allowlist removes everything else from candidates.
 */
export const PROVIDER_SECRET = /^(ANTHROPIC_|OPENAI_|AZURE_OPENAI_|CLAUDE_|GEMINI_|GOOGLE_API|MISTRAL_|COHERE_|GROQ_|TOGETHER_|DEEPSEEK_|XAI_|OPENROUTER_|FIREWORKS_|PERPLEXITY_)|(^|_)API_KEY$|^LOOM_PROPOSER_URL$/;

export function withoutSecrets(env: Record<string, string>): Record<string, string> {
  for (const k of Object.keys(env)) if (PROVIDER_SECRET.test(k)) delete env[k];
  return env;
}

/** The environment every Python process of Loom gets. Pure, so it can be table-tested. `datastore` is the
 * METAFLOW_* set for the workspace's datastore (scaleout.ts datastoreEnv; default: local in the workspace). */
export function bridgeEnv(
  base: NodeJS.ProcessEnv,
  ws: Workspace,
  rt: { pyPath: string; flowsDir: string },
  extra: Record<string, string> = {},
  datastore?: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  withoutSecrets(env); // `extra` (below) may add LOOM_PROPOSER_URL: the loopback proposer, never a key
  delete env.METAFLOW_CARD_LOCALROOT; // cards are found from the datastore root (cwd = .loom)
  Object.assign(env, {
    METAFLOW_USER: base.METAFLOW_USER || base.USER || base.LOGNAME || "loom",
    ...(datastore ?? { METAFLOW_DEFAULT_METADATA: "local", METAFLOW_DEFAULT_DATASTORE: "local", METAFLOW_DATASTORE_SYSROOT_LOCAL: ws.dir, LOOM_DATASTORE: "local" }),
    LOOM_WORKSPACE_DIR: ws.dir,
    LOOM_TMP: join(ws.dir, "tmp"),
    // the Client's artifact cache per workspace, not Metaflow's machine-wide /tmp/metaflow_client: the first
    // cache write of every process walks that whole folder (every flow's, every workspace's; Metaflow never
    // evicts from it), 0.16 s of CPU per verb here at 17k cached files (docs/decisions/0700)
    METAFLOW_CLIENT_CACHE_PATH: base.METAFLOW_CLIENT_CACHE_PATH || join(ws.dir, "cache", "metaflow_client"),
    LOOM_FLOWS_DIR: rt.flowsDir,
    PYTHONPATH: [rt.pyPath, base.PYTHONPATH].filter(Boolean).join(":"),
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
    MPLBACKEND: "Agg",
    ...extra,
  });
  return env;
}

export interface BridgeOptions {
  ws: Workspace;
  debug: boolean;
  onEvent?: (ev: LoomEvent) => void;
  env?: Record<string, string>;
}

export async function callBridge(req: BridgeRequest, opts: BridgeOptions): Promise<BridgeReply> {
  const py = requirePython();
  const rt = materialize(loomHome());
  const env = bridgeEnv(process.env, opts.ws, rt, opts.env, workspaceDatastoreEnv(opts.ws));
  let proc;
  try {
    proc = Bun.spawn([py.python, "-m", "loom_py.runtime.bridge"], {
      cwd: opts.ws.dir,
      env,
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
  } catch (e) {
    throw new UsageError(`cannot start Loom's Python (${py.python}): run \`loom setup\` (or \`loom doctor\`)`);
  }
  proc.stdin.write(JSON.stringify({ ...req, debug: opts.debug }));
  await proc.stdin.end();

  const tail: string[] = [];
  const readErr = (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        handleLine(line);
      }
    }
    if (buf) handleLine(buf);
  })();
  function handleLine(line: string) {
    if (line.startsWith(EVENT_MARKER)) {
      try {
        opts.onEvent?.(JSON.parse(line.slice(EVENT_MARKER.length)));
      } catch {
        /* a malformed event is dropped */
      }
      return;
    }
    if (opts.debug) process.stderr.write(line + "\n");
    tail.push(line);
    if (tail.length > 50) tail.shift();
  }
  const out = await new Response(proc.stdout).text();
  await readErr;
  const code = await proc.exited;
  try {
    const reply = JSON.parse(out) as BridgeReply;
    if (reply.traceback && opts.debug) process.stderr.write(reply.traceback);
    return reply;
  } catch {
    const last = tail.filter((l) => l.trim()).pop() ?? `exit code ${code}`;
    throw new UsageError(
      `Loom's Python environment is broken (${last.slice(0, 200)}): run \`loom setup\` (or \`loom doctor\`)`,
    );
  }
}
