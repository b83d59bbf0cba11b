#!/usr/bin/env bun
/** loom: the verb router. Everything it knows about verbs comes from the registry. */
import { defineCommand, renderUsage, type CommandDef } from "citty";
import { EMBEDDED } from "./generated/embedded";
import { argsFor, executeVerb } from "./core/run";
import { TIER_NOTE } from "./core/tiers";
import { VERBS, findVerb } from "./verbs/index";

const VERSION = EMBEDDED.version;

function verbCommand(name: string): CommandDef {
  const verb = findVerb(name)!;
  const tier = typeof verb.tier === "string" ? verb.tier : verb.tierLabel ?? "depends on flags";
  return defineCommand({
    meta: { name: `loom ${verb.name}`, description: `${verb.description} [tier: ${tier}]` },
    args: argsFor(verb),
  });
}

function mainHelp(): string {
  const width = Math.max(...VERBS.map((v) => v.name.length)) + 2;
  const lines = [
    `loom ${VERSION} — the data-science lifecycle as verbs; each verb a Metaflow run with a card and a typed JSON summary`,
    "",
    "Usage: loom <verb> [--flags] [--json]",
    "",
    "Verbs:",
    ...VERBS.map((v) => {
      const tier = typeof v.tier === "string" ? v.tier : v.tierLabel ?? "depends on flags";
      const alias = v.aliases?.length ? ` (alias: ${v.aliases.join(", ")})` : "";
      return `  ${v.name.padEnd(width)}${v.description}${alias} [${tier}]`;
    }),
    "",
    "Tiers: " + Object.entries(TIER_NOTE).map(([t, n]) => `${t}: ${n}`).join("; ") + ".",
    "Exit codes: 0 success · 1 a well-formed domain outcome (VERDICT: FAIL, gate denied) · 2 setup or bad arguments.",
    "Start with `loom setup`, then `loom ingest --source FILE`. `loom doctor` when anything reports a setup problem.",
    "`loom <verb> --help` for a verb's flags.",
    "Agent: `loom` on a terminal opens it (/loom-<verb>, /loom-auto, requests in words); `loom agent -p \"TEXT\" [--json]` runs one headless.",
  ];
  return lines.join("\n") + "\n";
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  // the agent: `loom` alone on a terminal opens the REPL; `loom agent …` (REPL or -p headless)
  if (!first && process.stdin.isTTY && process.stdout.isTTY) return (await import("./agent/main")).agentMain([]);
  if (first === "agent") return (await import("./agent/main")).agentMain(rest);
  if (!first || first === "--help" || first === "-h" || first === "help") {
    if (first === "help" && rest[0] && findVerb(rest[0])) {
      process.stdout.write((await renderUsage(verbCommand(rest[0]))) + "\n");
      return 0;
    }
    process.stdout.write(mainHelp());
    return first ? 0 : 0;
  }
  if (first === "--version" || first === "-v" || first === "version") {
    // the version and the runtime hash (the content hash of the embedded py/ + flows/ + requirements)
    process.stdout.write(`loom ${VERSION} (runtime ${EMBEDDED.hash}, ${process.platform}-${process.arch}, bun ${Bun.version})\n`);
    return 0;
  }
  const verb = findVerb(first);
  if (!verb) {
    process.stderr.write(`loom: unknown verb '${first}': run \`loom --help\` for the verbs\n`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write((await renderUsage(verbCommand(verb.name))) + "\n");
    return 0;
  }
  const { exitCode } = await executeVerb(verb, rest, (name) => !!findVerb(name));
  return exitCode;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`loom: internal error: ${(e as Error)?.message ?? e} (rerun with --debug)\n`);
    process.exit(1);
  },
);
