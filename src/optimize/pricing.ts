/** Token prices (USD per million tokens) for cost estimates and the --budget-usd cap. */
export interface Price {
  input: number;
  output: number;
}

const TABLE: Array<[RegExp, Price]> = [
  [/claude-(3-)?opus|opus-4/i, { input: 15, output: 75 }],
  [/claude-.*sonnet|sonnet-/i, { input: 3, output: 15 }],
  [/claude-.*haiku-4|haiku-4/i, { input: 1, output: 5 }],
  [/claude-3-5-haiku|claude-3-haiku/i, { input: 0.8, output: 4 }],
  [/gpt-4o-mini/i, { input: 0.15, output: 0.6 }],
  [/gpt-4o/i, { input: 2.5, output: 10 }],
  [/gpt-4\.1-nano/i, { input: 0.1, output: 0.4 }],
  [/gpt-4\.1-mini/i, { input: 0.4, output: 1.6 }],
  [/gpt-4\.1/i, { input: 2, output: 8 }],
  [/gpt-5-mini/i, { input: 0.25, output: 2 }],
  [/gpt-5/i, { input: 1.25, output: 10 }],
];

export const DEFAULT_MODELS = { anthropic: "claude-sonnet-4-6", openai: "gpt-4o-mini" } as const;

/**
 * The price of a model; null when unknown (a local server — Ollama, vLLM, llama.cpp — or a new model). An
 * unknown price is never counted as $0 silently: the gate asks, and --budget-usd needs --price-per-mtok.
 */
export function priceOf(model: string, override?: Price | null): Price | null {
  if (override) return override;
  for (const [re, p] of TABLE) if (re.test(model)) return p;
  return null;
}

export function usd(model: string, inputTokens: number, outputTokens: number, override?: Price | null): number {
  const p = priceOf(model, override);
  if (!p) return 0;
  return (inputTokens * p.input + outputTokens * p.output) / 1e6;
}

/** Pure: `--price-per-mtok IN,OUT` (USD per million input / output tokens) → a Price, or an error message. */
export function parsePricePerMtok(text: string): Price | string {
  const parts = String(text).split(",").map((x) => x.trim());
  const nums = parts.map(Number);
  if (parts.length !== 2 || parts.some((x) => x === "") || nums.some((n) => !Number.isFinite(n) || n < 0))
    return `--price-per-mtok must be two non-negative numbers IN,OUT (USD per million input and output tokens), e.g. 3,15; got '${text}'`;
  return { input: nums[0]!, output: nums[1]! };
}

/** What one proposal costs, roughly: the bounded prompt (~6k tokens) and one solution (~1.5k). */
export const EST_TOKENS_PER_NODE = { input: 6000, output: 1500 };
