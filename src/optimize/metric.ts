/**
 * The model fallback for `--metric` text the rules cannot map (issue 6, "The metric is the spec"): one
 * completion through the proposers' own client code (@anthropic-ai/sdk / the OpenAI-compatible fetch client)
 * asking for strict JSON over the closed set the parser understands. The answer goes back to Python raw;
 * `metric_spec.from_model` validates it (anything outside the set is exit 2 listing what is understood).
 */
import { UsageError } from "../core/errors";
import type { Complete } from "./proposers";

export interface ClosedSet {
  metrics: Record<string, { label: string; direction: "maximize" | "minimize"; task: string }>;
  directions: string[];
  holdout_fraction: [number, number];
}

export interface MetricMapping {
  answer: string;
  model: string;
  tokens: { input: number; output: number };
  usd: number;
}

/** Pure: the prompt that asks for the mapping. */
export function mappingPrompt(text: string, set: ClosedSet) {
  const names = Object.entries(set.metrics).map(([k, m]) => `- ${k}: ${m.label} (${m.task}, ${m.direction})`).join("\n");
  const system = [
    "You map a user's description of an evaluation metric onto a closed set. Answer with exactly one JSON object and nothing else:",
    `{"metric": <one of the names below, or null if none fits>, "direction": "maximize" | "minimize" | null, "holdout_fraction": <a number in ${set.holdout_fraction[0]}..${set.holdout_fraction[1]}, or null if the text names none>}`,
    "Metric names:",
    names,
  ].join("\n");
  return { system, user: `Metric text: ${JSON.stringify(text)}`, max_tokens: 200 };
}

/** Ask the model once; a failed call is exit 2 listing what the rules understand. */
export async function mapMetric(complete: Complete, text: string, set: ClosedSet, understood: string): Promise<MetricMapping> {
  try {
    const c = await complete(mappingPrompt(text, set));
    return { answer: c.text, model: c.model, tokens: { input: c.input_tokens, output: c.output_tokens }, usd: c.usd };
  } catch (e: any) {
    throw new UsageError(`cannot map --metric "${text}" to a metric Loom computes itself (asking the model failed: ${String(e?.message ?? e).slice(0, 200)}); understood: ${understood}`);
  }
}
