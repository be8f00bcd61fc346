import { z } from 'zod';

/**
 * USD per million tokens, by model-id prefix (the longest matching prefix
 * wins, so dated ids like claude-sonnet-4-20250514 find their family).
 * Unknown models are priced as the most expensive row of the table, field by
 * field, so a budget is never under-counted. MODEL_PRICES in configuration
 * adds or overrides rows (see priceTable).
 */
export interface ModelPrice {
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
}

export type PriceTable = Record<string, ModelPrice>;

/** Anthropic's published ratios: a 5-minute cache write costs 1.25x input, a cache read 0.1x. */
const price = (input: number, output: number, cacheWrite = input * 1.25, cacheRead = input * 0.1): ModelPrice => ({
  input,
  output,
  cacheWrite,
  cacheRead,
});

export const DEFAULT_PRICES: PriceTable = {
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

function mostExpensive(table: PriceTable): ModelPrice {
  const rows = Object.values(table);
  if (rows.length === 0) return FALLBACK;
  const max = (f: keyof ModelPrice) => Math.max(...rows.map((r) => r[f]));
  return { input: max('input'), output: max('output'), cacheWrite: max('cacheWrite'), cacheRead: max('cacheRead') };
}

export function priceFor(model: string, table: PriceTable = DEFAULT_PRICES): ModelPrice {
  const key = Object.keys(table)
    .filter((k) => model === k || model.startsWith(`${k}-`))
    .sort((a, b) => b.length - a.length)[0];
  return key ? table[key] : mostExpensive(table);
}

export interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

export function costUsd(model: string, usage: TokenUsage, table: PriceTable = DEFAULT_PRICES): number {
  const p = priceFor(model, table);
  const micro =
    usage.input_tokens * p.input +
    usage.output_tokens * p.output +
    (usage.cache_creation_input_tokens ?? 0) * p.cacheWrite +
    (usage.cache_read_input_tokens ?? 0) * p.cacheRead;
  return micro / 1_000_000;
}

/** What one billing period of `periodSeconds` costs at a price per minute of sandbox runtime. */
export function runtimeCostUsd(periodSeconds: number, perMinuteUsd: number): number {
  return (periodSeconds / 60) * perMinuteUsd;
}

const usd = z.number().nonnegative();

/**
 * MODEL_PRICES as written by an operator: model prefix → USD per million
 * tokens; the cache prices default to the usual ratios of the input price.
 */
export const ModelPricesInput = z.record(
  z.string().min(1),
  z.object({ input: usd, output: usd, cache_write: usd.optional(), cache_read: usd.optional() }).strict(),
);

/** The defaults with the operator's rows added or replaced. */
export function priceTable(overrides: z.infer<typeof ModelPricesInput> = {}): PriceTable {
  const table = { ...DEFAULT_PRICES };
  for (const [model, p] of Object.entries(overrides)) table[model] = price(p.input, p.output, p.cache_write, p.cache_read);
  return table;
}
