import * as v from "valibot";
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { defineVerb } from "../core/define";
import { classifyUri, listConnections, NAME_RE, saveConnection, type Connection } from "../core/connections";
import { UsageError } from "../core/errors";
import { ensureWorkspace } from "../core/workspace";
import { kv } from "../core/ui";

const Conn = v.object({
  name: v.string(),
  uri: v.string(),
  kind: v.picklist(["file", "directory", "sqlite", "postgresql"]),
  password_env: v.optional(v.string()),
  created: v.string(),
});

export default defineVerb({
  name: "connect",
  description: "Register a named source (file, directory, SQLite, PostgreSQL) for `loom ingest --source @NAME`",
  tier: (input: { list?: boolean }) => (input.list ? "read-only" : "workspace-write"),
  tierLabel: "workspace-write (read-only with --list)",
  needsPython: false,
  createsWorkspace: true,
  args: {
    name: { type: "positional", required: false, description: "connection name" },
    uri: { type: "string", description: "a path, sqlite:///path.db or postgresql://user@host:port/db (no password)" },
    "password-env": { type: "string", description: "environment variable holding the password (PostgreSQL; default PGPASSWORD)" },
    list: { type: "boolean", description: "list the registered connections" },
  },
  input: v.object({
    name: v.optional(v.pipe(v.string(), v.regex(NAME_RE, "must start with a letter and use letters, digits, - or _"))),
    uri: v.optional(v.string()),
    "password-env": v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name"))),
    list: v.optional(v.boolean()),
  }),
  summary: v.union([v.object({ connection: Conn, secret: v.nullable(v.string()) }), v.object({ connections: v.array(Conn) })]),
  writes: (input, ctx) => `records connection '${input.name}' in ${ctx.workspace.dir}/connections.json (no secrets)`,
  human: (out) => {
    const s = out.summary as { connection?: Connection; connections?: Connection[]; secret?: string | null };
    if (s.connections) return s.connections.length ? s.connections.map((c) => kv("@" + c.name, `${c.kind}  ${c.uri}`)) : ["no connections: `loom connect NAME --uri URI`"];
    const c = s.connection!;
    return [kv("connection", `@${c.name} → ${c.uri} (${c.kind})`), ...(s.secret ? [kv("secret", s.secret)] : [])];
  },
  async run(input, ctx) {
    if (input.list) {
      return { status: "OK", exit_code: 0, pathspec: null, card_path: null, inputs: [], summary: { connections: listConnections(ctx.workspace) }, messages: [], next: [] };
    }
    if (!input.name) throw new UsageError("give the connection a name: `loom connect NAME --uri URI` (or `loom connect --list`)");
    if (!input.uri) throw new UsageError(`give a source: \`loom connect ${input.name} --uri PATH|sqlite:///x.db|postgresql://user@host:port/db\``);
    let kind = classifyUri(input.uri);
    let uri = input.uri;
    if (kind === "file") {
      uri = resolve(input.uri);
      if (!existsSync(uri)) throw new UsageError(`no such file or directory: ${uri}`);
      if (statSync(uri).isDirectory()) kind = "directory";
    } else if (kind === "sqlite") {
      const path = uri.replace(/^sqlite:\/\//, "").replace(/^\/(?!\/)/, "");
      const abs = uri.startsWith("sqlite:////") ? "/" + uri.slice("sqlite:////".length) : resolve(path);
      if (!existsSync(abs)) throw new UsageError(`no such SQLite database: ${abs}`);
      uri = "sqlite:///" + abs; // sqlite:////abs/path: four slashes for an absolute path
    }
    const c: Connection = { name: input.name, uri, kind, created: new Date().toISOString() };
    let secret: string | null = null;
    if (kind === "postgresql") {
      c.password_env = input["password-env"] ?? "PGPASSWORD";
      secret = `the password is read from $${c.password_env} at ingest time and never written to disk`;
    }
    ctx.workspace = ensureWorkspace(ctx.workspace);
    saveConnection(ctx.workspace, c);
    return {
      status: "OK",
      exit_code: 0,
      pathspec: null,
      card_path: null,
      inputs: [],
      summary: { connection: c, secret },
      messages: secret ? [secret] : [],
      next: [`loom ingest --source @${c.name}${kind === "sqlite" || kind === "postgresql" ? " --table T" : kind === "directory" ? " --table FILE" : ""}`],
    };
  },
});
