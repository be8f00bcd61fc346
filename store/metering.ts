import type { Db } from './db';
import { runtimeCostUsd } from '../lib/pricing';

/**
 * Records billing periods [fromIndex, toIndex] for a sandbox that started at
 * `sandboxStartedAt`, each with its cost at `pricePerMinuteUsd` (0: runtime
 * not priced). Unique per (session, period): replays, retries and a crashed
 * worker can ask again and nothing is counted twice.
 */
export async function recordBillingPeriods(
  db: Db,
  p: { sessionId: string; sandboxStartedAt: string; periodSeconds: number; fromIndex: number; toIndex: number; pricePerMinuteUsd?: number },
): Promise<number> {
  if (p.toIndex < p.fromIndex) return 0;
  const { rows } = await db.query<{ n: string }>(
    `WITH inserted AS (
       INSERT INTO billing_periods (session_id, period_index, period_start, period_seconds, cost_usd)
       SELECT $1, i, $2::timestamptz + make_interval(secs => i * $3::double precision), $3, $6
         FROM generate_series($4::int, $5::int) AS i
       ON CONFLICT (session_id, period_index) DO NOTHING
       RETURNING 1)
     SELECT count(*) AS n FROM inserted`,
    [p.sessionId, p.sandboxStartedAt, p.periodSeconds, p.fromIndex, p.toIndex, runtimeCostUsd(p.periodSeconds, p.pricePerMinuteUsd ?? 0)],
  );
  return Number(rows[0].n);
}

export async function billedPeriods(db: Db, sessionId: string): Promise<number[]> {
  const { rows } = await db.query<{ period_index: number }>(
    'SELECT period_index FROM billing_periods WHERE session_id = $1 ORDER BY period_index',
    [sessionId],
  );
  return rows.map((r) => Number(r.period_index));
}

export interface ModelUsage {
  sessionId: string;
  callKey: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  cacheCreationInputTokens: number;
  cacheReadInputTokens: number;
  costUsd: number;
}

export async function recordModelUsage(db: Db, u: ModelUsage): Promise<boolean> {
  const { rows } = await db.query(
    `INSERT INTO model_usage (session_id, call_key, model, input_tokens, output_tokens,
        cache_creation_input_tokens, cache_read_input_tokens, cost_usd)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (session_id, call_key) DO NOTHING RETURNING 1`,
    [u.sessionId, u.callKey, u.model, u.inputTokens, u.outputTokens,
      u.cacheCreationInputTokens, u.cacheReadInputTokens, u.costUsd],
  );
  return rows.length > 0;
}

/** What one model call used and cost, as recorded; inputTokens counts cache writes and reads too, as the API bills them. */
export async function modelUsageFor(
  db: Db,
  sessionId: string,
  callKey: string,
): Promise<{ inputTokens: number; cacheCreationInputTokens: number; cacheReadInputTokens: number; outputTokens: number; costUsd: number }> {
  const { rows } = await db.query<Record<string, string | number>>(
    `SELECT input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens, cost_usd
       FROM model_usage WHERE session_id = $1 AND call_key = $2`,
    [sessionId, callKey],
  );
  const r = rows[0];
  if (!r) return { inputTokens: 0, cacheCreationInputTokens: 0, cacheReadInputTokens: 0, outputTokens: 0, costUsd: 0 };
  const [cacheWrite, cacheRead] = [Number(r.cache_creation_input_tokens), Number(r.cache_read_input_tokens)];
  return {
    inputTokens: Number(r.input_tokens) + cacheWrite + cacheRead,
    cacheCreationInputTokens: cacheWrite,
    cacheReadInputTokens: cacheRead,
    outputTokens: Number(r.output_tokens),
    costUsd: Number(r.cost_usd),
  };
}
