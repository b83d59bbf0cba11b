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

/** The price of a model; null when unknown (a local server: Ollama, vLLM, llama.cpp — counted as $0). */
export function priceOf(model: string): Price | null {
  for (const [re, p] of TABLE) if (re.test(model)) return p;
  return null;
}

export function usd(model: string, inputTokens: number, outputTokens: number): number {
  const p = priceOf(model);
  if (!p) return 0;
  return (inputTokens * p.input + outputTokens * p.output) / 1e6;
}

/** What one proposal costs, roughly: the bounded prompt (~6k tokens) and one solution (~1.5k). */
export const EST_TOKENS_PER_NODE = { input: 6000, output: 1500 };
