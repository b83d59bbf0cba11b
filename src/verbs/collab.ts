/**
 * `loom collab --run PATHSPEC [--include-lineage]` → CollabFlow/N and a sanitized bundle under
 * .loom/artifacts/collab/<id>/ (workspace-write). `--send DEST` (s3://… or https://…) is irreversible /
 * external: the gate asks y/N first (denied without a terminal), the bundle is built, its sha256 is
 * re-checked and it is uploaded exactly as built; `--run CollabFlow/N --send DEST` sends a built one.
 */
import * as v from "valibot";
import { defineVerb, type Outcome } from "../core/define";
import { Pathspec } from "../core/schemas";
import { kv } from "../core/ui";

const Sent = v.looseObject({ dest: v.string(), sha256: v.string(), bytes: v.number(), at: v.string() });
const Summary = v.looseObject({
  run: v.string(),
  include_lineage: v.boolean(),
  bundle_path: v.string(),
  sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  bytes: v.number(),
  runs: v.array(v.string()),
  files: v.array(v.object({ path: v.string(), sha256: v.string(), bytes: v.number() })),
  removed: v.record(v.string(), v.number()),
  removed_total: v.number(),
  secrets_found_after_sanitizing: v.literal(0),
  raw_rows_included: v.literal(0),
  build_seconds: v.number(),
  sent: v.array(Sent),
});
type S = v.InferOutput<typeof Summary>;

const Input = v.object({
  run: Pathspec("run"),
  "include-lineage": v.optional(v.boolean(), false),
  send: v.optional(v.pipe(v.string(), v.regex(/^(s3:\/\/[^/\s]+(\/\S*)?|https?:\/\/\S+)$/, "takes s3://BUCKET/PREFIX or an https:// URL"))),
});
type I = v.InferOutput<typeof Input>;

export default defineVerb<I>({
  name: "collab",
  description:
    "Pack a run into a bundle safe to share (card, summary, model card, lineage events, checksums; no raw rows, secrets or machine paths) → CollabFlow/N; --send DEST uploads it (irreversible, asks first)",
  tier: (input) => (input.send ? "irreversible" : "workspace-write"),
  tierLabel: "workspace-write (irreversible / external with --send)",
  createsWorkspace: false,
  args: {
    run: { type: "string", description: "the run to bundle (e.g. ReportFlow/12); with --send, a CollabFlow/N sends that bundle" },
    "include-lineage": { type: "boolean", description: "also bundle every run it came from (inputs and data-object lineage)" },
    send: { type: "string", description: "upload the bundle to s3://BUCKET/PREFIX (boto3; AWS_ENDPOINT_URL for S3-compatible stores) or an https:// PUT URL" },
  },
  input: Input,
  summary: Summary,
  writes: (input) => `reads ${input.run} and writes a CollabFlow run and a bundle under .loom/artifacts/collab/`,
  human: (out) => {
    const s = out.summary as S;
    const removed = Object.entries(s.removed).map(([k, n]) => `${n} × ${k}`);
    const lines = [
      kv("bundle", `${s.bundle_path} (${s.bytes.toLocaleString()} bytes)`),
      kv("sha256", s.sha256),
      kv("runs", s.runs.join(" → ")),
      kv("removed", removed.length ? removed.join(", ") : "nothing to remove"),
      kv("scan", "0 secrets, 0 raw rows left (detect-secrets + Loom's checks)"),
    ];
    for (const x of s.sent) lines.push(kv("sent", `${x.dest} at ${x.at}`));
    return lines;
  },
  run: async (input, ctx) => {
    let built: Outcome;
    let bundleRun = input.run;
    if (input.run.startsWith("CollabFlow/") && input.send) {
      built = { status: "OK", exit_code: 0, pathspec: input.run, card_path: null, inputs: [], summary: {}, messages: [], next: [] };
    } else {
      built = await ctx.flow({
        flow: "collab_flow.py",
        flowName: "CollabFlow",
        prepare: "loom_py.verbs.collab:prepare",
        params: { run: input.run, include_lineage: input["include-lineage"], send: input.send },
      });
      if (!input.send || built.exit_code !== 0 || !built.pathspec) return built;
      bundleRun = built.pathspec;
    }
    const sent = await ctx.call("loom_py.verbs.collab:send", { run: bundleRun, send: input.send });
    if (sent.exit_code !== 0) return { ...sent, pathspec: bundleRun, card_path: built.card_path };
    return { ...sent, card_path: built.card_path, messages: [...built.messages, ...sent.messages], next: [] };
  },
});
