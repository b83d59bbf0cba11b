/** `loom open RUN`: a run's card in the browser (where there is a display), else its path. Any addressing form:
 * a pathspec, Flow/latest, a run-id prefix, a data object's label. `--open` on any verb does the same with the
 * card of the run it made (src/core/run.ts). Not one of the agent's tools (a model cannot look at a browser). */
import * as v from "valibot";
import { defineVerb, type Outcome } from "../core/define";
import { openCard } from "../core/open";
import { kv } from "../core/ui";

const Summary = v.object({
  card_path: v.string(),
  opened_with: v.nullable(v.string()),
  run: v.string(),
  files_restored: v.optional(v.array(v.string())), // the run's files brought back from the datastore (runtime/wsfiles.py)
});

export default defineVerb({
  name: "open",
  description: "Open a run's card: in the browser where there is a display, else print its path",
  tier: "read-only",
  agentTool: false,
  args: {
    run: { type: "positional", required: false, description: "the run: Flow/RunId, Flow/latest, a run-id prefix or a data object's label" },
  },
  input: v.object({ run: v.optional(v.string()) }), // a missing run is refused by loom_py.verbs.open with one line
  summary: Summary,
  human: (out) => {
    const s = out.summary as v.InferOutput<typeof Summary>;
    return [s.opened_with ? kv("opened", `${s.run}'s card with ${s.opened_with}`) : kv("open", `no display to open ${s.run}'s card: open the file below in a browser`)];
  },
  async run(input, ctx): Promise<Outcome> {
    const out = await ctx.call("loom_py.verbs.open:card", { run: input.run });
    const path = out.card_path!;
    const opened = openCard(path);
    const restored = ((out.summary ?? {}) as { files_restored?: string[] }).files_restored ?? [];
    out.summary = { card_path: path, opened_with: opened, run: out.inputs[0] ?? input.run, files_restored: restored };
    return out;
  },
});
