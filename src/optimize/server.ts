/**
 * The loopback proposer server: the TypeScript process holds the SDK and the key; the search loop (Python,
 * inside OptimizeFlow's step) POSTs {system, user, max_tokens} to <url>/propose and gets
 * {text, input_tokens, output_tokens, usd, model} or {error, fatal}. Bound to 127.0.0.1 on a random port,
 * and it only answers requests that carry this run's token.
 */
import { randomBytes } from "node:crypto";
import type { Price } from "./pricing";
import { ProposerFailure, type Complete } from "./proposers";

export interface ProposerServer {
  url: string;
  calls: number;
  /** dollars spent through this server (completed calls) */
  spent: number;
  /** calls refused because the next one could pass the cap */
  refused: number;
  stop(): void;
}

/** The spend cap, enforced here, before every model call: Python cannot spend past it whatever it sends. */
export interface BudgetGuard {
  capUsd: number;
  price: Price;
  /** already spent before the search (the --metric mapping call) */
  spentBefore?: number;
}

/**
 * Pure bookkeeping of the cap. A call may start only if what is spent, plus what calls in flight may cost,
 * plus this call's estimate stays within the cap. The estimate is this prompt's input cost (4 characters a
 * token) plus the mean output cost of completed calls, or their mean total cost if larger; until one call has completed, further calls wait for
 * it, so a parallel first round cannot overspend on an unmeasured output.
 */
export class Budget {
  spent = 0;
  private inflight = new Map<number, number>();
  private outputs: number[] = [];
  private totals: number[] = [];
  private seq = 0;
  private firstDone: Promise<void> | null = null;
  private releaseFirst: (() => void) | null = null;
  constructor(readonly guard: BudgetGuard) {
    this.spent = guard.spentBefore ?? 0;
  }

  estimate(promptChars: number): number {
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
    const inputCost = (Math.ceil(promptChars / 4) * this.guard.price.input) / 1e6;
    // the larger of this prompt's cost plus a typical output, and what a completed call cost on average
    return Math.max(inputCost + mean(this.outputs), mean(this.totals));
  }

  /** reserve room for one call, or return why it may not start */
  async reserve(promptChars: number): Promise<{ id: number } | { refused: string }> {
    if (!this.outputs.length && this.inflight.size > 0 && this.firstDone) await this.firstDone;
    const est = this.estimate(promptChars);
    const held = [...this.inflight.values()].reduce((a, b) => a + b, 0);
    if (this.guard.capUsd <= 0 || this.spent + held + est > this.guard.capUsd)
      return { refused: `budget: $${this.spent.toFixed(4)} spent of $${this.guard.capUsd} (the next call could cost ~$${est.toFixed(4)}${held ? `, $${held.toFixed(4)} in flight` : ""})` };
    const id = ++this.seq;
    this.inflight.set(id, est);
    if (!this.firstDone) this.firstDone = new Promise((r) => (this.releaseFirst = r));
    return { id };
  }

  settle(id: number, usd: number | null, outputTokens: number | null): void {
    this.inflight.delete(id);
    if (usd !== null) {
      this.spent += usd;
      this.totals.push(usd);
    }
    if (outputTokens !== null) this.outputs.push((outputTokens * this.guard.price.output) / 1e6);
    if (this.releaseFirst && (this.outputs.length || this.inflight.size === 0)) {
      this.releaseFirst();
      this.releaseFirst = null;
      if (!this.outputs.length) this.firstDone = null; // the first failed: the next call is the first again
    }
  }
}

export function startProposerServer(complete: Complete, guard?: BudgetGuard): ProposerServer {
  const token = randomBytes(16).toString("hex");
  const state = { calls: 0, refused: 0 };
  const budget = guard ? new Budget(guard) : null;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 255,
    async fetch(req) {
      const u = new URL(req.url);
      if (req.method !== "POST" || u.pathname !== `/${token}/propose`) return new Response("not found", { status: 404 });
      let body: any;
      try {
        body = await req.json();
      } catch {
        return Response.json({ error: "request body is not JSON", fatal: false }, { status: 400 });
      }
      if (typeof body?.system !== "string" || typeof body?.user !== "string")
        return Response.json({ error: "request needs system and user strings", fatal: false }, { status: 400 });
      let slot: { id: number } | null = null;
      if (budget) {
        const r = await budget.reserve(body.system.length + body.user.length);
        if ("refused" in r) {
          state.refused++;
          return Response.json({ error: r.refused, fatal: true, budget: true });
        }
        slot = r;
      }
      state.calls++;
      try {
        const res = await complete({ system: body.system, user: body.user, max_tokens: body.max_tokens });
        if (budget && slot) budget.settle(slot.id, res.usd, res.output_tokens);
        return Response.json(res);
      } catch (e: any) {
        if (budget && slot) budget.settle(slot.id, null, null);
        const fatal = e instanceof ProposerFailure ? e.fatal : false;
        return Response.json({ error: String(e?.message ?? e), fatal });
      }
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/${token}`,
    get calls() {
      return state.calls;
    },
    get spent() {
      return budget?.spent ?? 0;
    },
    get refused() {
      return state.refused;
    },
    stop: () => server.stop(true),
  };
}
