/** `loom deploy --apply` journals (.loom/deploy/journal/*.json, one per apply, rewritten atomically at each
 * step: started → registered → moved). One that never reached "moved" was interrupted (killed): doctor says
 * what happened and what the alias points at. Read without Python. */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface JournalEntry {
  run: string;
  state: string;
  why: string;
  name: string;
  alias: string;
  from: number | null;
  to: number | null;
  registry: string;
  when?: string;
  when_ns?: number;
}

export function readJournal(wsDir: string): JournalEntry[] {
  const d = join(wsDir, "deploy", "journal");
  if (!existsSync(d)) return [];
  const out: JournalEntry[] = [];
  for (const n of readdirSync(d).filter((f) => f.endsWith(".json"))) {
    try {
      out.push(JSON.parse(readFileSync(join(d, n), "utf8")));
    } catch {
      /* a half-written tmp is never renamed into place; anything else unreadable is skipped */
    }
  }
  return out;
}

/** Pure: one sentence per interrupted apply that no later completed move of the same alias settled. */
export function interruptedLines(entries: JournalEntry[]): string[] {
  const key = (e: JournalEntry) => `${e.registry}\u0000${e.name}\u0000${e.alias}`;
  const settled = (e: JournalEntry) => entries.some((o) => o.state === "moved" && key(o) === key(e) && (o.when_ns ?? 0) > (e.when_ns ?? 0));
  return entries
    .filter((e) => e.state !== "moved" && !settled(e))
    .map((e) => {
      const was = e.from === null ? "had no version" : `still points at version ${e.from}`;
      const what =
        e.state === "registered" && e.to !== null
          ? `registered ${e.name} version ${e.to} but was stopped before moving the alias: ${e.name}@${e.alias} ${was} (version ${e.to} carries no alias)`
          : `was stopped before registering anything: ${e.name}@${e.alias} ${was}`;
      return `${e.run} (${e.why}${e.when ? `, ${e.when}` : ""}) ${what}`;
    });
}
