/** Shared by the eda, features and viz integration tests. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loomPython, ROOT } from "../helpers";

/** planted.csv, clean.csv, planted_reg.csv in `dir` (py/tests/leakdata.py: planted leaks and the same data without them). */
export function makeCsvs(dir: string): void {
  const p = Bun.spawnSync([loomPython(), join(ROOT, "py", "tests", "leakdata.py"), dir], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
}

/** scikit-learn's bundled breast cancer data as CSV (real-world data no one here wrote). */
export function sklearnCsv(path: string): void {
  const code = `from sklearn.datasets import load_breast_cancer; load_breast_cancer(as_frame=True).frame.to_csv(${JSON.stringify(path)}, index=False)`;
  const p = Bun.spawnSync([loomPython(), "-c", code], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
}

/** The card's content: Metaflow embeds it as base64 JSON in the HTML. */
export function cardText(path: string): string {
  const html = readFileSync(path, "utf8");
  const m = html.match(/__MF_DATA__\[[^\]]*\] = "([A-Za-z0-9+/=]+)"/);
  return m ? Buffer.from(m[1], "base64").toString("utf8") : html;
}
