/** Runs in a local Metaflow datastore that never finished (no `end` task done): a crash, a kill, a machine
 * that went down. Read from the directory layout, without Python, for `loom doctor`. */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const dirs = (p: string) => {
  try {
    return readdirSync(p).filter((n) => statSync(join(p, n)).isDirectory());
  } catch {
    return [];
  }
};

/** Pathspecs (Flow/RunId) whose run directory is older than `minAgeMs` and has no finished `end` task. */
export function unfinishedRuns(metaflowDir: string, minAgeMs = 10 * 60_000, now = Date.now()): string[] {
  const out: string[] = [];
  for (const flow of dirs(metaflowDir)) {
    if (flow === "mf.cards" || flow.startsWith("_")) continue;
    for (const run of dirs(join(metaflowDir, flow))) {
      if (!/^\d+$/.test(run)) continue;
      const rdir = join(metaflowDir, flow, run);
      const ended = dirs(join(rdir, "end")).some((t) => !t.startsWith("_") && existsSync(join(rdir, "end", t, "0.DONE.lock")));
      if (ended) continue;
      let age = 0;
      try {
        age = now - statSync(rdir).mtimeMs;
      } catch {}
      if (age >= minAgeMs) out.push(`${flow}/${run}`);
    }
  }
  return out.sort();
}

/** The shell command that removes them (run directories and their cards; artifact blobs are shared and stay). */
export function cleanupCommand(metaflowDir: string, runs: string[]): string {
  const paths = runs.flatMap((ps) => {
    const [flow, id] = ps.split("/");
    return [join(metaflowDir, flow!, id!), join(metaflowDir, "mf.cards", flow!, "runs", id!)];
  });
  return `rm -rf ${paths.map((p) => `'${p}'`).join(" ")}`;
}
