/**
 * The tier gate, enforced in code before any handler runs. Nothing a model writes can reach past it:
 * there is no flag, variable or argument that skips an irreversible confirmation.
 */
import type { Cost } from "./define";
import type { Tier } from "./tiers";
import type { Limits } from "./workspace";
import { kv } from "./ui";

export type Decision = { allowed: true; note: string } | { allowed: false; reason: string };

export interface GateIO {
  /** write a line to stderr */
  say(line: string): void;
  /** can we ask a human (stdin and stderr are terminals)? */
  canAsk: boolean;
  /** ask a yes/no question, default No */
  confirm(message: string): Promise<boolean>;
}

/** Pure: does this cost need a confirmation under these limits? */
export function needsConfirmation(cost: Cost, limits: Limits): string | null {
  if (cost.unpriced) return `the price of ${cost.unpriced} is unknown, so its spend cannot be counted (--price-per-mtok IN,OUT sets it)`;
  if (!Number.isFinite(cost.usd ?? 0)) return "the spend estimate is not a number";
  if ((cost.usd ?? 0) > limits.max_usd_without_confirm)
    return `spend ~$${(cost.usd ?? 0).toFixed(2)} is above the workspace limit ($${limits.max_usd_without_confirm})`;
  if (cost.leavesMachine && limits.confirm_data_leaving_machine) return "data leaves this machine";
  return null;
}

export async function runGate(
  tier: Tier,
  verb: string,
  opts: { writes?: string; cost?: Cost; limits: Limits; yes: boolean },
  io: GateIO,
): Promise<Decision> {
  if (tier === "read-only") return { allowed: true, note: "read-only" };
  if (tier === "workspace-write") {
    io.say(`loom ${verb}: workspace-write — ${opts.writes ?? "writes only to this workspace"}`);
    return { allowed: true, note: "workspace-write" };
  }
  const cost = opts.cost ?? { lines: [] };
  for (const l of cost.lines) io.say(kv("cost (gate)", l));
  if (tier === "expensive") {
    const why = needsConfirmation(cost, opts.limits);
    if (!why) {
      io.say(kv("gate", "within workspace limits: proceeding"));
      return { allowed: true, note: "within limits" };
    }
    if (opts.yes) {
      io.say(kv("gate", `${why}: accepted by --yes`));
      return { allowed: true, note: "accepted by --yes" };
    }
    if (!io.canAsk) return { allowed: false, reason: `${why}; no terminal to confirm: rerun in a terminal or pass --yes` };
    const ok = await io.confirm(`loom ${verb}: ${why}. Proceed?`);
    return ok ? { allowed: true, note: "confirmed" } : { allowed: false, reason: "declined at the prompt" };
  }
  // irreversible / external: always ask, deny-first, no bypass
  if (!io.canAsk)
    return { allowed: false, reason: "irreversible/external actions need a human at a terminal to confirm; none was available" };
  const ok = await io.confirm(`loom ${verb}: this is irreversible/external. Proceed?`);
  return ok ? { allowed: true, note: "confirmed" } : { allowed: false, reason: "declined at the prompt" };
}

export function terminalIO(): GateIO {
  return {
    say: (l) => process.stderr.write(l + "\n"),
    canAsk: !!process.stdin.isTTY && !!process.stderr.isTTY,
    async confirm(message) {
      const { confirm, isCancel } = await import("@clack/prompts");
      const answer = await confirm({ message, initialValue: false, output: process.stderr });
      return !isCancel(answer) && answer === true;
    },
  };
}
