/**
 * The loopback proposer server: the TypeScript process holds the SDK and the key; the search loop (Python,
 * inside OptimizeFlow's step) POSTs {system, user, max_tokens} to <url>/propose and gets
 * {text, input_tokens, output_tokens, usd, model} or {error, fatal}. Bound to 127.0.0.1 on a random port,
 * and it only answers requests that carry this run's token.
 */
import { randomBytes } from "node:crypto";
import { ProposerFailure, type Complete } from "./proposers";

export interface ProposerServer {
  url: string;
  calls: number;
  stop(): void;
}

export function startProposerServer(complete: Complete): ProposerServer {
  const token = randomBytes(16).toString("hex");
  const state = { calls: 0 };
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
      state.calls++;
      try {
        return Response.json(await complete({ system: body.system, user: body.user, max_tokens: body.max_tokens }));
      } catch (e: any) {
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
    stop: () => server.stop(true),
  };
}
