import * as v from "valibot";
import { resolve } from "node:path";
import { defineVerb } from "../core/define";
import { resolveConnection } from "../core/connections";
import { SchemaField } from "../core/schemas";
import { kv } from "../core/ui";

const Summary = v.object({
  label: v.string(),
  rows: v.number(),
  columns: v.number(),
  schema: v.array(SchemaField),
  content_hash: v.pipe(v.string(), v.startsWith("sha256:")),
  source: v.record(v.string(), v.unknown()),
  read: v.record(v.string(), v.unknown()),
  size_bytes: v.number(),
});

export default defineVerb({
  name: "ingest",
  description: "Bring outside data in as a versioned Metaflow data object (→ IngestDataset/N)",
  tier: "workspace-write",
  createsWorkspace: true,
  args: {
    source: { type: "string", description: "a file (CSV/TSV, Parquet, JSON lines), sqlite:///x.db, postgresql://user@host:port/db, or @NAME from `loom connect`" },
    table: { type: "string", description: "table to read (database sources; a file inside a directory connection)" },
    query: { type: "string", description: "SQL query to read (database sources)" },
    name: { type: "string", description: "a label for the data object (default: file or table name)" },
    delimiter: { type: "string", description: "override the detected delimiter (CSV/TSV)" },
    encoding: { type: "string", description: "override the detected text encoding (e.g. latin-1, utf-16)" },
    format: { type: "enum", options: ["csv", "parquet", "jsonl"], description: "override the format guessed from the extension" },
    "on-bad-rows": { type: "enum", options: ["error", "skip"], description: "rows with the wrong number of fields: refuse (default) or skip and count them" },
    new: { type: "boolean", description: "a new data object even when one with the same content and label exists (default: return that one)" },
  },
  input: v.object({
    source: v.pipe(v.string("is required: pass a file path, a database URI or @NAME"), v.minLength(1, "is required")),
    table: v.optional(v.string()),
    query: v.optional(v.string()),
    name: v.optional(v.string()),
    delimiter: v.optional(v.pipe(v.string(), v.transform((d) => (d === "\\t" || d === "tab" ? "\t" : d)), v.length(1, "must be one character (\\t for tab)"))),
    encoding: v.optional(v.string()),
    format: v.optional(v.picklist(["csv", "parquet", "jsonl"])),
    "on-bad-rows": v.optional(v.picklist(["error", "skip"]), "error"),
    new: v.optional(v.boolean()),
  }),
  summary: Summary,
  writes: (input, ctx) => `reads ${input.source} (read-only) and writes a new IngestDataset run under ${ctx.workspace.dir}`,
  human: (out) => {
    const s = out.summary as v.InferOutput<typeof Summary>;
    const cols = s.schema.map((f) => `${f.name}:${f.type}`).join(", ");
    return [kv("data object", `${out.pathspec} (${s.label})`), kv("shape", `${s.rows} rows × ${s.columns} columns`), kv("columns", cols.length > 200 ? cols.slice(0, 197) + "…" : cols), kv("hash", s.content_hash)];
  },
  async run(input, ctx) {
    let source = input.source;
    let password_env: string | undefined;
    let connection: string | undefined;
    if (source.startsWith("@")) {
      const c = resolveConnection(ctx.workspace, source);
      source = c.uri;
      password_env = c.password_env;
      connection = c.name;
    } else if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
      source = resolve(source);
    } else if (source.startsWith("sqlite:///") && !source.startsWith("sqlite:////")) {
      source = "sqlite:///" + resolve(source.slice("sqlite:///".length)); // relative to where the user stands
    }
    return ctx.flow({
      flow: "ingest_flow.py",
      flowName: "IngestDataset",
      prepare: "loom_py.verbs.ingest:prepare",
      params: {
        source,
        table: input.table,
        query: input.query,
        name: input.name,
        delimiter: input.delimiter,
        encoding: input.encoding,
        format: input.format,
        on_bad_rows: input["on-bad-rows"],
        password_env,
        connection,
        new: input.new,
      },
    });
  },
});
