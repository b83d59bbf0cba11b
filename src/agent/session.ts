/**
 * Sessions: one JSON-lines file per session under <workspace>/.loom/sessions/<id>.jsonl. Every line is
 * one record with `type`: start, message, tool_call, gate, envelope, usage, slash, end. `--resume ID`,
 * `--continue` (the newest) and /history read them back.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { locateWorkspace } from "../core/workspace";
import type { Message } from "./providers";

export interface Totals {
  input_tokens: number;
  output_tokens: number;
  agent_usd: number;
  verbs_usd: number;
}

export function sessionsDir(): string {
  return join(locateWorkspace().dir, "sessions");
}

export function newSessionId(now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `${t}-${Math.random().toString(36).slice(2, 6)}`;
}

export class Session {
  readonly path: string;
  messages: Message[] = [];
  totals: Totals = { input_tokens: 0, output_tokens: 0, agent_usd: 0, verbs_usd: 0 };
  constructor(readonly id: string, dir = sessionsDir()) {
    this.path = join(dir, `${id}.jsonl`);
  }
  record(rec: Record<string, unknown>): void {
    mkdirSync(join(this.path, ".."), { recursive: true });
    appendFileSync(this.path, JSON.stringify({ t: new Date().toISOString(), ...rec }) + "\n");
  }
  push(m: Message): void {
    this.messages.push(m);
    this.record({ type: "message", role: m.role, content: m.content });
  }
  get usd(): number {
    return this.totals.agent_usd + this.totals.verbs_usd;
  }
}

export const SESSION_ID_RE = /^[0-9]{8}-[0-9]{6}-[a-z0-9]{1,8}$/;

export function readRecords(path: string): any[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .filter(Boolean);
}

/** The saved sessions, newest first. */
export function listSessions(dir = sessionsDir()): { id: string; path: string; mtime: number }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => n.endsWith(".jsonl"))
    .map((n) => ({ id: n.slice(0, -6), path: join(dir, n), mtime: statSync(join(dir, n)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime || (a.id < b.id ? 1 : -1));
}

/** Reopen a saved session: its messages and totals come back; new records append to the same file. */
export function loadSession(id: string, dir = sessionsDir()): Session {
  const s = new Session(id, dir);
  for (const r of readRecords(s.path)) {
    if (r.type === "message") s.messages.push({ role: r.role, content: r.content });
    if (r.type === "usage") {
      s.totals.input_tokens += r.input_tokens ?? 0;
      s.totals.output_tokens += r.output_tokens ?? 0;
      s.totals.agent_usd += r.usd ?? 0;
    }
    if (r.type === "envelope") s.totals.verbs_usd += r.spend_usd ?? 0;
  }
  // a transcript cut mid-turn (tool calls without results) is closed so the provider accepts it
  const last = s.messages[s.messages.length - 1];
  if (last?.role === "assistant" && last.content.some((b) => b.type === "tool_use")) s.messages.pop();
  return s;
}
