/**
 * The REPL: `loom` on a terminal. One line at a time (node:readline: history, Tab completion of slash
 * commands, their flags and known pathspecs); slash commands run keyless; other text goes to the model.
 * Confirmations and intake are @clack/prompts, deny-first. Ctrl-C stops the running verb and returns to
 * the prompt; a second Ctrl-C (or Ctrl-D, /exit) leaves. No Python starts until a verb runs.
 */
import { createInterface } from "node:readline";
import { kv } from "../core/ui";
import { datastoreExists, locateWorkspace } from "../core/workspace";
import { BUILD } from "../generated/version";
import { MISSING_AGENT_KEY, type Provider } from "./providers";
import type { Session } from "./session";
import type { SlashIO } from "./slash";

export const PROMPT = "loom> ";

/** The modules a command needs (the registry, the verbs, the bridge, the loop), loaded once the prompt is on
 * the screen: the first prompt waits for none of them, and a line typed meanwhile waits for them. */
const heavy = () => Promise.all([import("./slash"), import("./exec"), import("./loop")]).then(([slash, exec, loop]) => ({ slash, exec, loop }));
type Heavy = Awaited<ReturnType<typeof heavy>>;

export async function repl(session: Session, provider: Provider | null, o: { budgetUsd: number; maxTurns: number }): Promise<number> {
  const history: string[] = [];
  const pathspecs = new Set<string>();
  for (const m of session.messages) for (const b of m.content) if (b.type === "tool_result") for (const p of b.content.match(/[A-Z][A-Za-z]+\/\d+/g) ?? []) pathspecs.add(p);
  process.stdout.write(
    `loom ${BUILD.version} — the agent. /help lists the commands (/loom-<verb>, /loom-auto); Tab completes; Ctrl-C twice leaves.\n` +
      (provider ? `model: ${provider.name} ${provider.model} · budget $${o.budgetUsd.toFixed(2)} · session ${session.id}\n` : `no model key: slash commands work; for requests in words ${MISSING_AGENT_KEY.split(";")[0]}\n`),
  );
  if (session.messages.length || session.usd)
    process.stdout.write(kv("resumed", `${session.id}: ${session.messages.length} messages, ${session.totals.input_tokens + session.totals.output_tokens} tokens, $${session.usd.toFixed(4)} so far`) + "\n");
  session.record({ type: "start", mode: "repl", provider: provider?.name ?? null, model: provider?.model ?? null, budget_usd: o.budgetUsd });
  let mods: Heavy | null = null;
  let loading: Promise<Heavy> | null = null;
  const load = () => (loading ??= heavy().then((m) => (mods = m)));
  // pathspecs for Tab: the data objects are listed on the first Tab that wants one (no Python at startup); that
  // Tab waits for the list (a few seconds at most), later ones use it and the runs made since
  let listing: Promise<void> | null = null;
  const wantPathspecs = (): Promise<void> => {
    if (!listing) {
      if (!datastoreExists(locateWorkspace())) return Promise.resolve();
      listing = load()
        .then(({ exec }) => exec.runVerbChild(["datasets"], { quiet: true, track: false }))
        .then((r) => {
          for (const d of ((r.envelope.summary as any)?.datasets ?? []) as { pathspec: string; label?: string }[]) {
            pathspecs.add(d.pathspec);
            if (d.label && /^[\w.-]+$/.test(d.label)) pathspecs.add(d.label);
          }
        });
    }
    return Promise.race([listing, new Promise<void>((r) => setTimeout(r, 5000).unref?.())]);
  };

  let running = false;
  let interrupted = false;
  let turn: AbortController | null = null;
  process.on("SIGINT", () => {
    if (running) {
      interrupted = true;
      turn?.abort();
      mods?.exec.interruptRunning(true); // the terminal's SIGINT reached the verb too (same foreground group)
    }
  });

  const io: SlashIO = {
    say: (l) => process.stdout.write(l + "\n"),
    interactive: true,
    yes: false,
    aborted: () => interrupted,
    signal: () => turn?.signal,
    model: provider ? { provider, onText: (s) => process.stdout.write(s), budgetUsd: o.budgetUsd } : undefined,
    async confirm(message) {
      const { confirm, isCancel } = await import("@clack/prompts");
      const a = await confirm({ message, initialValue: false });
      return !isCancel(a) && a === true;
    },
    async text(message) {
      const { text, isCancel } = await import("@clack/prompts");
      const a = await text({ message });
      return isCancel(a) ? null : String(a ?? "");
    },
    async select(message, options) {
      const { select, isCancel } = await import("@clack/prompts");
      const a = await select({ message, options: options as any });
      return isCancel(a) ? null : String(a);
    },
  };

  let lastCtrlC = false;
  setImmediate(() => void load()); // runs once the first prompt below is written
  for (;;) {
    const line = await readLine(history, (l, done) => {
      void load()
        .then(async ({ slash }) => {
          if (/--(dataset|model|run|from|resume) +\S*$/.test(l)) await wantPathspecs();
          done(null, slash.complete(l, [...pathspecs]));
        })
        .catch(() => done(null, [[], l]));
    });
    if (line === null) break; // Ctrl-D
    if (line === SIGINT) {
      if (lastCtrlC) break;
      lastCtrlC = true;
      process.stdout.write("(Ctrl-C again to leave)\n");
      continue;
    }
    lastCtrlC = false;
    const text = line.trim();
    if (!text) continue;
    history.unshift(line);
    running = true;
    interrupted = false;
    try {
      const { slash, loop } = await load();
      turn = new AbortController();
      if (text.startsWith("/")) {
        const r = await slash.runSlash(text, io, session);
        for (const run of r.runs) if (run.envelope?.pathspec) pathspecs.add(run.envelope.pathspec);
        if (r.exit) break;
      } else if (!provider) {
        io.say(MISSING_AGENT_KEY);
      } else {
        let streamed = false;
        const res = await loop.runLoop(text, {
          signal: turn.signal,
          provider,
          session,
          budgetUsd: o.budgetUsd,
          maxTurns: o.maxTurns,
          root: locateWorkspace().root,
          yes: false,
          confirm: io.confirm,
          say: io.say,
          progress: true,
          aborted: () => interrupted,
          onText: (s) => {
            streamed = true;
            process.stdout.write(s);
          },
        });
        if (streamed) process.stdout.write("\n");
        for (const c of res.calls) if (c.envelope?.pathspec) pathspecs.add(c.envelope.pathspec);
        if (res.stopped_because === "provider_error") io.say(`loom agent: ${res.error}`);
        else if (res.stopped_because !== "end_turn") io.say(res.final.split("\n").pop()!);
      }
    } catch (e) {
      io.say(`loom agent: ${(e as Error).message}`);
    } finally {
      running = false;
    }
    if (interrupted) {
      lastCtrlC = true;
      io.say("(stopped; Ctrl-C again to leave)");
    }
  }
  session.record({ type: "end", usd: session.usd });
  process.stdout.write(kv("session", `${session.id} saved (loom agent --resume ${session.id})`) + "\n");
  return 0;
}

const SIGINT = "\u0003__sigint__";

function readLine(history: string[], completer: (l: string, done: (err: null, r: [string[], string]) => void) => void): Promise<string | null> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true, completer, history: [...history], historySize: 500 } as any);
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: string | null) => {
      if (done) return;
      done = true;
      rl.close();
      resolve(v);
    };
    rl.on("line", (l) => finish(l));
    rl.on("SIGINT", () => {
      process.stdout.write("\n");
      finish(SIGINT);
    });
    rl.on("close", () => finish(null));
    rl.setPrompt(PROMPT);
    rl.prompt();
  });
}

