/** Named sources (`loom connect`). Stored in .loom/connections.json; secrets never are. */
import { join } from "node:path";
import { UsageError } from "./errors";
import { readJson, writeJson, type Workspace } from "./workspace";

export interface Connection {
  name: string;
  uri: string;
  kind: "file" | "directory" | "sqlite" | "postgresql";
  password_env?: string;
  created: string;
}

export const NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/** Pure: classify a URI; refuse one that carries a password. */
export function classifyUri(uri: string): Connection["kind"] {
  if (/^sqlite:\/\//.test(uri)) return "sqlite";
  if (/^postgres(ql)?:\/\//.test(uri)) {
    const m = /^postgres(?:ql)?:\/\/([^@/]*)@/.exec(uri);
    if (m && m[1]!.includes(":"))
      throw new UsageError("do not put a password in the URI: set it in an environment variable (default PGPASSWORD; --password-env NAME)");
    return "postgresql";
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri))
    throw new UsageError(`unsupported URI '${uri}': use a file or directory path, sqlite:///path.db or postgresql://user@host:port/db`);
  return "file";
}

const file = (ws: Workspace) => join(ws.dir, "connections.json");

export function listConnections(ws: Workspace): Connection[] {
  return Object.values(readJson<Record<string, Connection>>(file(ws), {}));
}

export function saveConnection(ws: Workspace, c: Connection): void {
  const all = readJson<Record<string, Connection>>(file(ws), {});
  all[c.name] = c;
  writeJson(file(ws), all);
}

export function resolveConnection(ws: Workspace, ref: string): Connection {
  const name = ref.replace(/^@/, "");
  const c = readJson<Record<string, Connection>>(file(ws), {})[name];
  if (!c) {
    const known = listConnections(ws).map((x) => "@" + x.name);
    throw new UsageError(
      `unknown connection @${name}: register it with \`loom connect ${name} --uri URI\`` + (known.length ? ` (known: ${known.join(", ")})` : ""),
    );
  }
  return c;
}
