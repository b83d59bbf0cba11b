/** The shape of a verb. One file per verb in src/verbs/, collected by src/verbs/index.ts. */
import type { ArgsDef } from "citty";
import type * as v from "valibot";
import type { LoomEvent } from "./bridge";
import type { Tier } from "./tiers";
import type { UI } from "./ui";
import type { Workspace } from "./workspace";

export interface Outcome {
  status: string;
  verdict?: string | null;
  exit_code: 0 | 1 | 2;
  pathspec: string | null;
  card_path: string | null;
  inputs: string[];
  summary: unknown;
  messages: string[];
  next: string[];
}

export interface Cost {
  /** lines shown at the gate, e.g. `budget=full: 8 GPU x 12 h = 96 GPU-hours (~$288)` */
  lines: string[];
  usd?: number;
  gpuHours?: number;
  tokens?: number;
  rows?: number;
  wallSeconds?: number;
  /** data leaves this machine (an external API, a remote GPU) */
  leavesMachine?: boolean;
  /** the model whose price Loom does not know: its spend cannot be counted, so the gate asks */
  unpriced?: string;
}

export interface FlowRequest {
  /** file under flows/, e.g. "eda_flow.py" */
  flow: string;
  /** the FlowSpec class name, e.g. "EdaFlow" */
  flowName: string;
  params: Record<string, unknown>;
  /** "module:function" run before the flow (asserts, validation; UsageError → exit 2) */
  prepare?: string;
  /** extra environment for the Python process (e.g. a proposer URL) */
  env?: Record<string, string>;
  /** extra Metaflow `run` options, e.g. ["--max-workers", "2"] */
  flowOptions?: string[];
}

export interface VerbContext {
  workspace: Workspace;
  ui: UI;
  json: boolean;
  debug: boolean;
  yes: boolean;
  /** run a flow through the bridge; the workspace is created if needed */
  flow(req: FlowRequest): Promise<Outcome>;
  /** call a Python function through the bridge without creating a run */
  call(fn: string, params: Record<string, unknown>, opts?: { env?: Record<string, string> }): Promise<Outcome>;
}

export interface VerbDef<I = any> {
  name: string;
  aliases?: string[];
  description: string;
  tier: Tier | ((input: I) => Tier);
  /** how help shows a tier that depends on the input, e.g. "expensive (irreversible with --launch)" */
  tierLabel?: string;
  args: ArgsDef;
  input: v.GenericSchema<unknown, I>;
  summary: v.GenericSchema;
  emitsVerdict?: boolean;
  /** false for verbs that run without Loom's Python (setup, doctor, connect) */
  needsPython?: boolean;
  /** false: not one of the agent's tools (e.g. `open`: a model cannot look at a browser) */
  agentTool?: boolean;
  /** creates the workspace if absent (verbs that write); read-only verbs need an existing datastore */
  createsWorkspace?: boolean;
  writes?: (input: I, ctx: VerbContext) => string;
  cost?: (input: I, ctx: VerbContext) => Cost | Promise<Cost>;
  preflight?: (input: I, ctx: VerbContext) => Promise<Outcome | void> | Outcome | void;
  human?: (out: Outcome, input: I) => string[];
  onEvent?: (ev: LoomEvent, ui: UI) => void;
  run: (input: I, ctx: VerbContext) => Promise<Outcome>;
}

export function defineVerb<I>(def: VerbDef<I>): VerbDef<I> {
  return def;
}
