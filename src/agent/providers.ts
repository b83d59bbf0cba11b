/**
 * The agent's model providers, one shape for the loop: a turn takes the system prompt, the transcript and
 * the tools and returns text, tool calls and token usage.
 *  - anthropic: @anthropic-ai/sdk, streaming Messages with tool use (imported on the first turn, so the
 *    prompt never waits for it); honours ANTHROPIC_BASE_URL.
 *  - openai: the OpenAI-compatible chat-completions tools protocol with fetch (OpenAI, Ollama, vLLM,
 *    llama.cpp), streamed as SSE or answered as one JSON object.
 */
import { DEFAULT_MODELS, usd } from "../optimize/pricing";

export type Block =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: unknown }
  | { type: "tool_result"; tool_use_id: string; content: string; is_error?: boolean };

export interface Message {
  role: "user" | "assistant";
  content: Block[];
}

export interface ToolSpec {
  name: string;
  description: string;
  input_schema: Record<string, unknown>;
}

export interface Turn {
  text: string;
  calls: { id: string; name: string; input: unknown }[];
  input_tokens: number;
  output_tokens: number;
  usd: number;
  model: string;
  stop: string;
}

/** A turn's options: force one tool (structured output: the answer is that tool's input), cap the reply. */
export interface TurnOptions {
  toolChoice?: string;
  maxTokens?: number;
}

export interface Provider {
  name: "anthropic" | "openai";
  model: string;
  turn(system: string, messages: Message[], tools: ToolSpec[], onText?: (s: string) => void, signal?: AbortSignal, opts?: TurnOptions): Promise<Turn>;
}

export const MISSING_AGENT_KEY =
  "set ANTHROPIC_API_KEY … or pick a --model-provider (openai with OPENAI_API_KEY / OPENAI_BASE_URL); slash commands (/help, /loom-auto) run without a key";

export class ProviderError extends Error {}

/** Pure: the provider a session will use, or null when no key is set (slash commands still work). */
export function resolveProvider(
  flags: { provider?: string; model?: string },
  env: NodeJS.ProcessEnv = process.env,
): { name: "anthropic" | "openai"; model: string; apiKey?: string; baseURL?: string } | null {
  const name = (flags.provider ?? env.LOOM_AGENT_PROVIDER ?? "anthropic").toLowerCase();
  if (name === "anthropic") {
    if (!env.ANTHROPIC_API_KEY) return null;
    return { name, model: flags.model || env.LOOM_ANTHROPIC_MODEL || DEFAULT_MODELS.anthropic, apiKey: env.ANTHROPIC_API_KEY, baseURL: env.ANTHROPIC_BASE_URL };
  }
  if (name === "openai") {
    if (!env.OPENAI_API_KEY && !env.OPENAI_BASE_URL) return null;
    return { name, model: flags.model || env.LOOM_OPENAI_MODEL || DEFAULT_MODELS.openai, apiKey: env.OPENAI_API_KEY, baseURL: env.OPENAI_BASE_URL || "https://api.openai.com/v1" };
  }
  throw new ProviderError(`unknown --model-provider '${name}': use anthropic or openai`);
}

export function makeProvider(p: NonNullable<ReturnType<typeof resolveProvider>>): Provider {
  return p.name === "anthropic" ? anthropicProvider(p.model, p.apiKey!, p.baseURL) : openaiProvider(p.model, p.baseURL!, p.apiKey);
}

function anthropicProvider(model: string, apiKey: string, baseURL?: string): Provider {
  let client: any;
  return {
    name: "anthropic",
    model,
    async turn(system, messages, tools, onText, signal, opts) {
      if (!client) {
        const { default: Anthropic } = await import("@anthropic-ai/sdk");
        client = new Anthropic({ apiKey, baseURL, maxRetries: 2, timeout: 300_000 });
      }
      try {
        const choice = opts?.toolChoice ? { tool_choice: { type: "tool", name: opts.toolChoice } } : {};
        const stream = client.messages.stream({ model, max_tokens: opts?.maxTokens ?? 4096, system, messages, ...(tools.length ? { tools, ...choice } : {}) }, signal ? { signal } : undefined);
        if (onText) stream.on("text", (t: string) => onText(t));
        const msg = await stream.finalMessage();
        const text = msg.content.filter((b: any) => b.type === "text").map((b: any) => b.text).join("");
        const calls = msg.content.filter((b: any) => b.type === "tool_use").map((b: any) => ({ id: b.id, name: b.name, input: b.input }));
        const it = msg.usage?.input_tokens ?? 0;
        const ot = msg.usage?.output_tokens ?? 0;
        return { text, calls, input_tokens: it, output_tokens: ot, usd: usd(model, it, ot), model: msg.model || model, stop: msg.stop_reason ?? "end_turn" };
      } catch (e: any) {
        throw new ProviderError(`anthropic: ${e?.status ? `HTTP ${e.status}: ` : ""}${String(e?.message ?? e).slice(0, 300)}`);
      }
    },
  };
}

/** Pure: the transcript in the chat-completions shape. */
export function toOpenAIMessages(system: string, messages: Message[]): any[] {
  const out: any[] = [{ role: "system", content: system }];
  for (const m of messages) {
    if (m.role === "assistant") {
      const text = m.content.filter((b) => b.type === "text").map((b) => (b as { text: string }).text).join("");
      const calls = m.content.filter((b) => b.type === "tool_use") as Extract<Block, { type: "tool_use" }>[];
      out.push({
        role: "assistant",
        content: text || null,
        ...(calls.length ? { tool_calls: calls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: JSON.stringify(c.input ?? {}) } })) } : {}),
      });
      continue;
    }
    const text = m.content.filter((b) => b.type === "text").map((b) => (b as { text: string }).text).join("");
    for (const b of m.content) if (b.type === "tool_result") out.push({ role: "tool", tool_call_id: b.tool_use_id, content: b.content });
    if (text) out.push({ role: "user", content: text });
  }
  return out;
}

function parseArgsJson(s: string): unknown {
  try {
    return s.trim() ? JSON.parse(s) : {};
  } catch {
    return { __unparsable_arguments__: s.slice(0, 200) };
  }
}

function openaiProvider(model: string, baseURL: string, apiKey?: string): Provider {
  const url = baseURL.replace(/\/+$/, "") + "/chat/completions";
  const stream = process.env.LOOM_OPENAI_STREAM !== "0";
  return {
    name: "openai",
    model,
    async turn(system, messages, tools, onText, signal, opts) {
      const body = {
        model,
        messages: toOpenAIMessages(system, messages),
        ...(tools.length ? { tools: tools.map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.input_schema } })) } : {}),
        ...(tools.length && opts?.toolChoice ? { tool_choice: { type: "function", function: { name: opts.toolChoice } } } : {}),
        ...(opts?.maxTokens ? { max_tokens: opts.maxTokens } : {}),
        stream,
        ...(stream ? { stream_options: { include_usage: true } } : {}),
      };
      let res: Response;
      try {
        res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
          body: JSON.stringify(body),
          signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(300_000)]) : AbortSignal.timeout(300_000),
        });
      } catch (e: any) {
        throw new ProviderError(`openai-compatible endpoint ${baseURL} unreachable: ${e?.message ?? e}`);
      }
      if (!res.ok) throw new ProviderError(`openai-compatible endpoint: HTTP ${res.status}: ${(await res.text().catch(() => "")).slice(0, 300)}`);
      let text = "";
      let it = 0;
      let ot = 0;
      let stop = "stop";
      let seenModel = model;
      const calls: { id: string; name: string; args: string }[] = [];
      if ((res.headers.get("content-type") ?? "").includes("text/event-stream")) {
        const dec = new TextDecoder();
        let buf = "";
        const handle = (line: string) => {
          if (!line.startsWith("data:")) return;
          const data = line.slice(5).trim();
          if (!data || data === "[DONE]") return;
          let chunk: any;
          try {
            chunk = JSON.parse(data);
          } catch {
            return;
          }
          if (chunk.error) throw new ProviderError(`openai-compatible endpoint: ${JSON.stringify(chunk.error).slice(0, 300)}`);
          seenModel = chunk.model || seenModel;
          const choice = chunk.choices?.[0];
          const delta = choice?.delta;
          if (typeof delta?.content === "string" && delta.content) {
            text += delta.content;
            onText?.(delta.content);
          }
          for (const tc of delta?.tool_calls ?? []) {
            const i = tc.index ?? calls.length;
            calls[i] ??= { id: tc.id ?? `call_${i}`, name: "", args: "" };
            if (tc.id) calls[i]!.id = tc.id;
            if (tc.function?.name) calls[i]!.name += tc.function.name;
            if (tc.function?.arguments) calls[i]!.args += tc.function.arguments;
          }
          if (choice?.finish_reason) stop = choice.finish_reason;
          if (chunk.usage) {
            it = chunk.usage.prompt_tokens ?? it;
            ot = chunk.usage.completion_tokens ?? ot;
          }
        };
        for await (const part of res.body as ReadableStream<Uint8Array>) {
          buf += dec.decode(part, { stream: true });
          let i: number;
          while ((i = buf.indexOf("\n")) >= 0) {
            handle(buf.slice(0, i));
            buf = buf.slice(i + 1);
          }
        }
        if (buf) handle(buf);
      } else {
        let j: any;
        try {
          j = await res.json();
        } catch {
          throw new ProviderError("openai-compatible endpoint returned something that is not JSON");
        }
        seenModel = j.model || seenModel;
        const msg = j.choices?.[0]?.message ?? {};
        text = typeof msg.content === "string" ? msg.content : "";
        if (text) onText?.(text);
        for (const tc of msg.tool_calls ?? []) calls.push({ id: tc.id, name: tc.function?.name ?? "", args: tc.function?.arguments ?? "" });
        stop = j.choices?.[0]?.finish_reason ?? stop;
        it = j.usage?.prompt_tokens ?? 0;
        ot = j.usage?.completion_tokens ?? 0;
      }
      if (!it && !ot) {
        it = Math.ceil(JSON.stringify(body.messages).length / 4);
        ot = Math.ceil((text.length + calls.reduce((n, c) => n + c.args.length, 0)) / 4);
      }
      return {
        text,
        calls: calls.filter(Boolean).map((c) => ({ id: c.id, name: c.name, input: parseArgsJson(c.args) })),
        input_tokens: it,
        output_tokens: ot,
        usd: usd(model, it, ot),
        model: seenModel,
        stop,
      };
    },
  };
}
