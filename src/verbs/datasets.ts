import * as v from "valibot";
import { defineVerb } from "../core/define";

const Row = v.object({
  pathspec: v.string(),
  label: v.string(),
  rows: v.nullable(v.number()),
  columns: v.nullable(v.number()),
  content_hash: v.nullable(v.string()),
  created: v.nullable(v.string()),
  source: v.string(),
  flow: v.string(),
});

export default defineVerb({
  name: "datasets",
  description: "List the data objects in this workspace (ingested, or made by features), newest first",
  tier: "read-only",
  args: {},
  input: v.object({}),
  summary: v.object({ count: v.number(), datasets: v.array(Row) }),
  human: (out) => {
    const rows = (out.summary as { datasets: v.InferOutput<typeof Row>[] }).datasets;
    if (!rows.length) return ["no data objects yet: `loom ingest --source FILE`"];
    const head = ["pathspec", "label", "rows", "cols", "hash", "created", "source"];
    const table = rows.map((r) => [r.pathspec, r.label, String(r.rows ?? ""), String(r.columns ?? ""), (r.content_hash ?? "").replace("sha256:", "").slice(0, 12), (r.created ?? "").slice(0, 19), r.source]);
    const widths = head.map((h, i) => Math.min(48, Math.max(h.length, ...table.map((t) => t[i]!.length))));
    const fmt = (cells: string[]) => cells.map((c, i) => c.slice(0, widths[i]).padEnd(widths[i]!)).join("  ").trimEnd();
    return [fmt(head), ...table.map(fmt)];
  },
  run: (_input, ctx) => ctx.call("loom_py.verbs.datasets:list_datasets", {}),
});
