#!/usr/bin/env bun
/** loom: the verb router. Everything it knows about verbs comes from the registry, loaded only when a path
 * needs it: `loom --version` loads nothing but this file (startup: bench/cli_startup.ts). */
import { BUILD } from "./generated/version";
import { closest, stripControl, termWidth, wrap } from "./core/term";

const VERSION = BUILD.version;

type Registry = typeof import("./verbs/index");
const registry = (): Promise<Registry> => import("./verbs/index");

async function mainHelp(): Promise<string> {
  const { VERBS } = await registry();
  const { TIER_NOTE } = await import("./core/tiers");
  const W = termWidth();
  const width = Math.max(...VERBS.map((v) => v.name.length)) + 2;
  const para = (s: string) => wrap(s, W).join("\n");
  const lines = [
    para(`loom ${VERSION} — the data-science lifecycle as verbs; each verb a Metaflow run with a card and a typed JSON summary`),
    "",
    "Usage: loom <verb> [--flags] [--json]",
    "",
    "Verbs:",
    ...VERBS.map((v) => {
      const tier = typeof v.tier === "string" ? v.tier : v.tierLabel ?? "depends on flags";
      const alias = v.aliases?.length ? ` (alias: ${v.aliases.join(", ")})` : "";
      const text = `${v.description}${alias} [${tier}]`;
      return ("  " + v.name.padEnd(width) + wrap(text, W - width - 2, width + 2).join("\n")).trimEnd();
    }),
    "",
    para("Tiers: " + Object.entries(TIER_NOTE).map(([t, n]) => `${t}: ${n}`).join("; ") + "."),
    para("Exit codes: 0 success · 1 a well-formed domain outcome (VERDICT: FAIL, gate denied) · 2 setup or bad arguments."),
    para("Runs are named by pathspec (IngestDataset/123), Flow/latest, a run-id prefix, or a data object's label (`--dataset churn`)."),
    para("Start with `loom setup`, then `loom ingest --source FILE`. `loom doctor` when anything reports a setup problem."),
    para("`loom <verb> --help` for a verb's flags; `loom completion bash|zsh|fish` for tab completion; -V for the version."),
    para("Agent: `loom` on a terminal opens it (/loom-<verb>, /loom-auto, requests in words); `loom agent -p \"TEXT\" [--json]` runs one headless."),
    "",
    "Examples:",
    "  loom ingest --source churn.csv",
    "  loom eda --dataset churn --target churned",
    '  loom run --dataset churn --target churned --metric "Maximize ROC-AUC on a held-out split."',
  ];
  return lines.join("\n") + "\n";
}

async function verbHelp(name: string): Promise<string> {
  const { findVerb } = await registry();
  const { argsFor } = await import("./core/run");
  const { requiredFlags } = await import("./core/help");
  const { EXAMPLES } = await import("./core/examples");
  const verb = findVerb(name)!;
  const W = termWidth();
  const tier = typeof verb.tier === "string" ? verb.tier : verb.tierLabel ?? "depends on flags";
  const required = requiredFlags(verb);
  const args = Object.entries(argsFor(verb)) as [string, { type?: string; description?: string; options?: string[] }][];
  const flag = ([n, d]: [string, { type?: string; options?: string[] }]) =>
    d.type === "positional" ? n.toUpperCase() : `--${n}` + (d.type === "boolean" ? "" : d.type === "enum" && d.options ? ` ${d.options.join("|")}` : " VALUE");
  const positional = args.filter(([, d]) => d.type === "positional").map(([n]) => ` [${n.toUpperCase()}]`).join("");
  const col = Math.min(28, Math.max(...args.map((a) => flag(a).length)) + 4);
  const lines = [...wrap(`${verb.description} [tier: ${tier}]`, W), "", `Usage: loom ${verb.name}${positional} ${required.map((r) => `--${r} VALUE`).join(" ")}${required.length ? " " : ""}[--flags]`, "", "Flags (* required):"];
  for (const a of args) {
    const mark = required.includes(a[0]) ? "* " : "  ";
    const head = `  ${mark}${flag(a)}`;
    const desc = wrap(a[1].description ?? "", W - col - 2, col + 2);
    if (head.length + 1 > col + 2) lines.push(head, ...desc.map((d, i) => (i ? d : " ".repeat(col + 2) + d)));
    else lines.push(head.padEnd(col + 2) + desc.join("\n"));
  }
  const ex = EXAMPLES[verb.name];
  if (ex?.length) lines.push("", "Examples:", ...ex.map((e) => `  ${e}`));
  return lines.join("\n") + "\n";
}

/** One JSON object for a refusal that happens before a verb is known (`loom edaa --json`). */
function refusal(verb: string, message: string, json: boolean): number {
  if (json)
    process.stdout.write(
      JSON.stringify({ verb, tier: "read-only", status: "ERROR", exit_code: 2, pathspec: null, card_path: null, inputs: [], summary: {}, messages: [message], next: [] }) + "\n",
    );
  else process.stderr.write(`loom: ${message}\n`);
  return 2;
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  // the agent: `loom` alone on a terminal opens the REPL; `loom agent …` (REPL or -p headless)
  if (!first && process.stdin.isTTY && process.stdout.isTTY) return (await import("./agent/main")).agentMain([]);
  if (first === "agent") return (await import("./agent/main")).agentMain(rest);
  if (first === "--version" || first === "-V" || first === "-v" || first === "version") {
    // the version and the runtime hash (the content hash of the embedded py/ + flows/ + requirements)
    process.stdout.write(`loom ${BUILD.version} (runtime ${BUILD.hash}, ${process.platform}-${process.arch}, bun ${Bun.version})\n`);
    return 0;
  }
  if (!first || first === "--help" || first === "-h" || first === "help") {
    if (first === "help" && rest[0] && (await registry()).findVerb(rest[0])) {
      process.stdout.write(await verbHelp(rest[0]));
      return 0;
    }
    process.stdout.write(await mainHelp());
    return 0;
  }
  if (first === "completion") {
    const { completionScript } = await import("./core/completion");
    const { VERBS } = await registry();
    const { argsFor } = await import("./core/run");
    const script = completionScript(rest[0] ?? "", VERBS.map((v) => ({ name: v.name, aliases: v.aliases ?? [], flags: Object.keys(argsFor(v)) })));
    if (script === null) return refusal("completion", "completion needs a shell: `loom completion bash`, `loom completion zsh` or `loom completion fish`", rest.includes("--json"));
    process.stdout.write(script);
    return 0;
  }
  const { VERBS, findVerb } = await registry();
  const verb = findVerb(first);
  if (!verb) {
    const names = [...VERBS.flatMap((v) => [v.name, ...(v.aliases ?? [])]), "completion", "help"];
    const guess = closest(first, names);
    const shown = stripControl(first);
    return refusal(shown, `unknown verb '${shown}'${guess ? ` (did you mean \`loom ${guess}\`?)` : ""}: run \`loom --help\` for the verbs`, rest.includes("--json"));
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(await verbHelp(verb.name));
    return 0;
  }
  const { executeVerb } = await import("./core/run");
  const { exitCode } = await executeVerb(verb, rest, (name) => !!findVerb(name));
  return exitCode;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`loom: internal error: ${stripControl(String((e as Error)?.message ?? e))} (rerun with --debug)\n`);
    process.exit(1);
  },
);
