/**
 * The LLM proposers: one completion per proposal. `anthropic` goes through @anthropic-ai/sdk (honours
 * ANTHROPIC_BASE_URL); `openai` speaks the OpenAI-compatible chat-completions protocol with fetch (OpenAI,
 * Ollama, vLLM, llama.cpp server), streaming by default, and accepts a non-streamed JSON answer too.
 */
import { usd, type Price } from "./pricing";

export interface Completion {
  text: string;
  input_tokens: number;
  output_tokens: number;
  usd: number;
  model: string;
}

export class ProposerFailure extends Error {
  constructor(message: string, readonly fatal: boolean) {
    super(message);
  }
}

export interface Prompt {
  system: string;
  user: string;
  max_tokens?: number;
}

export type Complete = (p: Prompt) => Promise<Completion>;

const fatalStatus = (s: number | undefined) => s === 401 || s === 403 || s === 404;

export function anthropicProposer(opts: { apiKey: string; model: string; baseURL?: string; price?: Price | null }): Complete {
  // the SDK loads on the first call, not at start-up (every `loom` invocation would pay for it)
  let client: any;
  return async (p) => {
    try {
      if (!client) {
        const { default: Anthropic } = await import("@anthropic-ai/sdk");
        client = new Anthropic({ apiKey: opts.apiKey, baseURL: opts.baseURL, maxRetries: 2, timeout: 300_000 });
      }
      const msg = await client.messages.create({
        model: opts.model,
        max_tokens: p.max_tokens ?? 4000,
        system: p.system,
        messages: [{ role: "user", content: p.user }],
      });
      const text = msg.content.map((b: any) => (b.type === "text" ? b.text : "")).join("");
      const it = msg.usage?.input_tokens ?? 0;
      const ot = msg.usage?.output_tokens ?? 0;
      return { text, input_tokens: it, output_tokens: ot, usd: usd(opts.model, it, ot, opts.price), model: msg.model || opts.model };
    } catch (e: any) {
      const status = typeof e?.status === "number" ? e.status : undefined;
      throw new ProposerFailure(`anthropic: ${status ? `HTTP ${status}: ` : ""}${String(e?.message ?? e).slice(0, 300)}`, fatalStatus(status));
    }
  };
}

export function openaiProposer(opts: { apiKey?: string; model: string; baseURL: string; stream?: boolean; price?: Price | null }): Complete {
  const url = opts.baseURL.replace(/\/+$/, "") + "/chat/completions";
  return async (p) => {
    const body = {
      model: opts.model,
      max_tokens: p.max_tokens ?? 4000,
      messages: [
        { role: "system", content: p.system },
        { role: "user", content: p.user },
      ],
      stream: opts.stream !== false,
      ...(opts.stream !== false ? { stream_options: { include_usage: true } } : {}),
    };
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}) },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(300_000),
      });
    } catch (e: any) {
      throw new ProposerFailure(`openai-compatible endpoint ${opts.baseURL} unreachable: ${e?.message ?? e}`, true);
    }
    if (!res.ok) {
      const detail = (await res.text().catch(() => "")).slice(0, 300);
      throw new ProposerFailure(`openai-compatible endpoint: HTTP ${res.status}: ${detail}`, fatalStatus(res.status));
    }
    const ctype = res.headers.get("content-type") ?? "";
    let text = "";
    let it = 0;
    let ot = 0;
    let model = opts.model;
    if (ctype.includes("text/event-stream")) {
      const raw = await res.text();
      for (const line of raw.split(/\r?\n/)) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (!data || data === "[DONE]") continue;
        let chunk: any;
        try {
          chunk = JSON.parse(data);
        } catch {
          continue; // a malformed chunk is skipped, never a crash
        }
        if (chunk.error) throw new ProposerFailure(`openai-compatible endpoint: ${JSON.stringify(chunk.error).slice(0, 300)}`, false);
        model = chunk.model || model;
        const delta = chunk.choices?.[0]?.delta;
        if (typeof delta?.content === "string") text += delta.content;
        if (chunk.usage) {
          it = chunk.usage.prompt_tokens ?? it;
          ot = chunk.usage.completion_tokens ?? ot;
        }
      }
    } else {
      let j: any;
      try {
        j = await res.json();
      } catch {
        throw new ProposerFailure("openai-compatible endpoint returned something that is not JSON", false);
      }
      model = j.model || model;
      const c = j.choices?.[0]?.message?.content;
      text = typeof c === "string" ? c : Array.isArray(c) ? c.map((x: any) => x?.text ?? "").join("") : "";
      it = j.usage?.prompt_tokens ?? 0;
      ot = j.usage?.completion_tokens ?? 0;
    }
    if (!it && !ot) {
      // local servers often omit usage: estimate (4 characters a token) so spend is never silently zero tokens
      it = Math.ceil((p.system.length + p.user.length) / 4);
      ot = Math.ceil(text.length / 4);
    }
    return { text, input_tokens: it, output_tokens: ot, usd: usd(opts.model, it, ot, opts.price), model };
  };
}
