/**
 * The REPL: `loom` on a terminal. One line at a time (node:readline: history, Tab completion of slash
 * commands, their flags and known pathspecs); slash commands run keyless; other text goes to the model.
 * Confirmations and intake are @clack/prompts, deny-first. Ctrl-C stops the running verb and returns to
 * the prompt; a second Ctrl-C (or Ctrl-D, /exit) leaves. No Python starts until a verb runs.
 */
import { createInterface } from "node:readline";
import { kv } from "../core/ui";
import { datastoreExists, locateWorkspace } from "../core/workspace";
import { findVerb } from "../verbs/index";
import { interruptRunning, runVerbChild } from "./exec";
import { runLoop } from "./loop";
import { MISSING_AGENT_KEY, type Provider } from "./providers";
import type { Session } from "./session";
import { runSlash, slashNames, type SlashIO } from "./slash";
import { EMBEDDED } from "../generated/embedded";

export const PROMPT = "loom> ";

/** Pure: Tab completion for a line, given the pathspecs known so far. */
export function complete(line: string, pathspecs: string[]): [string[], string] {
  const words = line.split(/\s+/);
  const last = words[words.length - 1] ?? "";
  if (words.length === 1) {
    if (!line.startsWith("/")) return [[], line];
    const hits = slashNames().filter((n) => n.startsWith(line));
    return [hits.length ? hits.map((h) => h + " ") : slashNames(), line];
  }
  const m = /^\/loom-([a-z][\w-]*)$/.exec(words[0]!);
  const verb = m ? findVerb(m[1]!) : undefined;
  const prev = words[words.length - 2] ?? "";
  const flagNames = verb ? Object.keys(verb.args).map((a) => `--${a}`) : words[0] === "/loom-auto" ? ["--dataset", "--target", "--goal", "--metric", "--steps", "--model-provider"] : [];
  if (last.startsWith("--")) {
    const hits = flagNames.filter((f) => f.startsWith(last));
    return [hits.map((h) => h + " "), last];
  }
  if (/^--(dataset|model|run|from|resume)$/.test(prev) || last.includes("/")) {
    const hits = pathspecs.filter((p) => p.startsWith(last));
    return [hits.map((h) => h + " "), last];
  }
  return [[], last];
}

export async function repl(session: Session, provider: Provider | null, o: { budgetUsd: number; maxTurns: number }): Promise<number> {
  const history: string[] = [];
  const pathspecs = new Set<string>();
  for (const m of session.messages) for (const b of m.content) if (b.type === "tool_result") for (const p of b.content.match(/[A-Z][A-Za-z]+\/\d+/g) ?? []) pathspecs.add(p);
  process.stdout.write(
    `loom ${EMBEDDED.version} — the agent. /help lists the commands (/loom-<verb>, /loom-auto); Tab completes; Ctrl-C twice leaves.\n` +
      (provider ? `model: ${provider.name} ${provider.model} · budget $${o.budgetUsd.toFixed(2)} · session ${session.id}\n` : `no model key: slash commands work; for requests in words ${MISSING_AGENT_KEY.split(";")[0]}\n`),
  );
  session.record({ type: "start", mode: "repl", provider: provider?.name ?? null, model: provider?.model ?? null, budget_usd: o.budgetUsd });
  // pathspecs for Tab: fetched in the background on the first Tab that wants one (no Python at startup)
  let fetched = false;
  const wantPathspecs = () => {
    if (fetched || !datastoreExists(locateWorkspace())) return;
    fetched = true;
    void runVerbChild(["datasets"], { quiet: true, track: false }).then((r) => {
      for (const d of ((r.envelope.summary as any)?.datasets ?? []) as { pathspec: string }[]) pathspecs.add(d.pathspec);
    });
  };

  let running = false;
  let interrupted = false;
  let turn: AbortController | null = null;
  process.on("SIGINT", () => {
    if (running) {
      interrupted = true;
      turn?.abort();
      interruptRunning(true); // the terminal's SIGINT reached the verb too (same foreground group)
    }
  });

  const io: SlashIO = {
    say: (l) => process.stdout.write(l + "\n"),
    interactive: true,
    yes: false,
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
  for (;;) {
    const line = await readLine(history, (l) => {
      const r = complete(l, [...pathspecs]);
      if (/--(dataset|model|run|from|resume) +\S*$/.test(l)) wantPathspecs();
      return r;
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
      if (text.startsWith("/")) {
        const r = await runSlash(text, io, session);
        for (const run of r.runs) if (run.envelope?.pathspec) pathspecs.add(run.envelope.pathspec);
        if (r.exit) break;
      } else if (!provider) {
        io.say(MISSING_AGENT_KEY);
      } else {
        let streamed = false;
        turn = new AbortController();
        const res = await runLoop(text, {
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

function readLine(history: string[], completer: (l: string) => [string[], string]): Promise<string | null> {
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

