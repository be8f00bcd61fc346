import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { BUILTIN_TOOL_NAMES, WORKER_TOOLS } from './tool-specs';
import { DEFAULT_PRICES, type PriceTable } from './pricing';

/**
 * Prometheus metrics observed where the work happens (activities, the reaper).
 * They are process-wide by nature, so they live in one registry per process;
 * the worker's /metrics serves it (worker/http.ts) and the gateway adds its own
 * scrape-time gauges (api/metrics.ts). Labels are models, tools, states and
 * kinds: never ids, owners, inputs or anything secret.
 */
export const workerRegistry = new Registry();

/** process_* and nodejs_* of this process: the same for every endpoint it serves. */
export const processRegistry = new Registry();
let defaultsStarted = false;
/** Started by the first metrics endpoint, so importing this module starts no event-loop or GC observers. */
export function startProcessMetrics(): void {
  if (defaultsStarted) return;
  defaultsStarted = true;
  collectDefaultMetrics({ register: processRegistry });
}

export const sessionStartSeconds = new Histogram({
  name: 'ai_sessions_session_start_seconds',
  help: 'From a session being created to its sandbox being ready',
  buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120],
  registers: [workerRegistry],
});

export const modelCallSeconds = new Histogram({
  name: 'ai_sessions_model_call_seconds',
  help: 'One streamed model call, by model and outcome (ok, error)',
  labelNames: ['model', 'outcome'] as const,
  buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600],
  registers: [workerRegistry],
});

export const toolSeconds = new Histogram({
  name: 'ai_sessions_tool_seconds',
  help: 'One tool call (in the sandbox, over MCP, or a web tool the worker runs), by tool (mcp for every MCP tool) and outcome (ok, error: the tool reported an error; failed: it could not run)',
  labelNames: ['tool', 'outcome'] as const,
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
  registers: [workerRegistry],
});

export const modelTokens = new Counter({
  name: 'ai_sessions_model_tokens_total',
  help: 'Tokens of model calls, by model and direction (input, output, cache_read, cache_creation)',
  labelNames: ['model', 'direction'] as const,
  registers: [workerRegistry],
});

/** Incremented by the reaper for each thing it removes (kind: container, volume, …). */
export const reaperRemovals = new Counter({
  name: 'ai_sessions_reaper_removals_total',
  help: 'Leftovers removed by the reaper, by kind',
  labelNames: ['kind'] as const,
  registers: [workerRegistry],
});

const KNOWN_TOOLS = new Set<string>([...BUILTIN_TOOL_NAMES, ...WORKER_TOOLS]);
/** A tool name as a label: the model chooses names, so anything unknown is folded into "other". */
export const toolLabel = (name: string) => (KNOWN_TOOLS.has(name) ? name : name.startsWith('mcp__') ? 'mcp' : 'other');

/** Times one tool call into toolSeconds. */
export async function observeTool<T extends { isError: boolean }>(name: string, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const tool = toolLabel(name);
  try {
    const outcome = await run();
    toolSeconds.observe({ tool, outcome: outcome.isError ? 'error' : 'ok' }, secondsSince(started));
    return outcome;
  } catch (err) {
    toolSeconds.observe({ tool, outcome: 'failed' }, secondsSince(started));
    throw err;
  }
}

/**
 * A model id as a label: its price-table prefix (the longest, as priceFor
 * matches), else "other". Profiles choose the model freely, so the raw id
 * would let any caller mint new time series.
 */
export function modelLabel(name: string, table: PriceTable = DEFAULT_PRICES): string {
  let best = '';
  for (const key of Object.keys(table)) {
    if ((name === key || name.startsWith(`${key}-`)) && key.length > best.length) best = key;
  }
  return best || 'other';
}

/** Seconds since `start` (a performance.now() reading). */
export const secondsSince = (start: number) => (performance.now() - start) / 1000;
