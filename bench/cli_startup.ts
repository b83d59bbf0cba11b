/**
 * Start-up of the paths that start no Python, against `bun --version` in the same invocation.
 * usage: node_modules/.bin/bun bench/cli_startup.ts [rounds=30]   (build first: bun build/build.ts)
 * Prints min and median wall ms per command (rounds alternated) and each median's ratio to bun's.
 */
import { join, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const loom = join(root, "build", "loom");
const rounds = Number(process.argv[2] ?? 30);
const cmds: [string, string[]][] = [
  ["bun --version", [process.execPath, "--version"]],
  ["loom --version", [loom, "--version"]],
  ["loom -V", [loom, "-V"]],
  ["loom --help", [loom, "--help"]],
  ["loom eda --help", [loom, "eda", "--help"]],
  ["loom completion bash", [loom, "completion", "bash"]],
  ["loom edaa --json", [loom, "edaa", "--json"]],
];
const times: number[][] = cmds.map(() => []);
for (let r = 0; r < rounds; r++)
  cmds.forEach(([, argv], i) => {
    const t = performance.now();
    Bun.spawnSync(argv, { stdout: "ignore", stderr: "ignore" });
    times[i]!.push(performance.now() - t);
  });
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ref = med(times[0]!);
console.log(`${rounds} rounds, alternated; wall ms`);
cmds.forEach(([name], i) => {
  const m = med(times[i]!);
  console.log(`${name.padEnd(22)} min ${Math.min(...times[i]!).toFixed(1).padStart(6)}  median ${m.toFixed(1).padStart(6)}  ×bun ${(m / ref).toFixed(1)}`);
});
