/**
 * Integrity scan of a Metaflow local datastore, without Python: every task's metadata parses, every
 * artifact its data.json names exists and is non-empty, and the datastore has not been moved away from
 * the root its runs recorded (cards and the Client resolve through that recorded root).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export interface ScanResult {
  runs: number;
  tasks: number;
  artifacts: number;
  problems: string[];
  recorded_roots: string[];
}

const dirs = (p: string) => {
  try {
    return readdirSync(p).filter((n) => {
      try {
        return statSync(join(p, n)).isDirectory();
      } catch {
        return false;
      }
    });
  } catch {
    return [];
  }
};

export function scanDatastore(metaflowDir: string, limitProblems = 20): ScanResult {
  const res: ScanResult = { runs: 0, tasks: 0, artifacts: 0, problems: [], recorded_roots: [] };
  const roots = new Set<string>();
  const problem = (p: string) => res.problems.length < limitProblems && res.problems.push(p);
  for (const flow of dirs(metaflowDir)) {
    if (flow === "mf.cards" || flow.startsWith("_")) continue;
    const fdir = join(metaflowDir, flow);
    for (const run of dirs(fdir)) {
      if (run === "data" || run.startsWith("_")) continue;
      res.runs++;
      const rdir = join(fdir, run);
      for (const step of dirs(rdir)) {
        if (step.startsWith("_")) continue;
        for (const task of dirs(join(rdir, step))) {
          const tdir = join(rdir, step, task);
          res.tasks++;
          const meta = join(tdir, "_meta");
          for (const f of existsSync(meta) ? readdirSync(meta) : []) {
            if (!f.endsWith(".json")) continue;
            try {
              const m = JSON.parse(readFileSync(join(meta, f), "utf8"));
              if (m?.field_name === "ds-root" && typeof m.value === "string") roots.add(m.value);
            } catch {
              problem(`${flow}/${run}/${step}/${task}: metadata ${f} does not parse`);
            }
          }
          for (const f of readdirSync(tdir)) {
            if (!/^\d+\.data\.json$/.test(f)) continue;
            let objects: Record<string, string> = {};
            try {
              objects = JSON.parse(readFileSync(join(tdir, f), "utf8")).objects ?? {};
            } catch {
              problem(`${flow}/${run}/${step}/${task}: ${f} does not parse`);
              continue;
            }
            for (const [name, sha] of Object.entries(objects)) {
              res.artifacts++;
              const blob = join(fdir, "data", sha.slice(0, 2), sha);
              let size = -1;
              try {
                size = statSync(blob).size;
              } catch {
                /* missing */
              }
              if (size <= 0) problem(`${flow}/${run}/${step}/${task}: artifact '${name}' is ${size < 0 ? "missing" : "empty"}`);
            }
          }
        }
      }
    }
  }
  res.recorded_roots = [...roots];
  return res;
}
