/**
 * USD per million tokens, by model-id prefix (the longest matching prefix
 * wins, so dated ids like claude-sonnet-4-20250514 find their family).
 * Unknown models are priced as the most expensive family, so a budget is
 * never under-counted. MODEL_PRICES in configuration adds or overrides rows.
 */
export interface ModelPrice {
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
}

const price = (input: number, output: number): ModelPrice => ({
  input,
  output,
  cacheWrite: input * 1.25,
  cacheRead: input * 0.1,
});

export const DEFAULT_PRICES: Record<string, ModelPrice> = {
  'claude-opus-4': price(15, 75),
  'claude-opus-4-1': price(15, 75),
  'claude-opus-4-5': price(5, 25),
  'claude-opus-4-6': price(5, 25),
  'claude-sonnet': price(3, 15),
  'claude-3-7-sonnet': price(3, 15),
  'claude-3-5-sonnet': price(3, 15),
  'claude-haiku-4-5': price(1, 5),
  'claude-3-5-haiku': price(0.8, 4),
};

const FALLBACK = price(15, 75);

export function priceFor(model: string, table: Record<string, ModelPrice> = DEFAULT_PRICES): ModelPrice {
  const key = Object.keys(table)
    .filter((k) => model === k || model.startsWith(`${k}-`))
    .sort((a, b) => b.length - a.length)[0];
  return key ? table[key] : FALLBACK;
}

export interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

export function costUsd(model: string, usage: TokenUsage, table: Record<string, ModelPrice> = DEFAULT_PRICES): number {
  const p = priceFor(model, table);
  const micro =
    usage.input_tokens * p.input +
    usage.output_tokens * p.output +
    (usage.cache_creation_input_tokens ?? 0) * p.cacheWrite +
    (usage.cache_read_input_tokens ?? 0) * p.cacheRead;
  return micro / 1_000_000;
}
