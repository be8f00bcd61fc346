import type { Queryable } from './db';
import { addDays, type ModelRow, type RuntimeRow, type UsageFigures, type UsageRange } from '../lib/usage';

/**
 * The metering rows (billing_periods, model_usage) of one owner's sessions in
 * a date range, summed per UTC day and session (and model). Deleted session
 * records keep their metering, so they still count.
 */
export async function usageRows(
  db: Queryable,
  owner: { type: 'user' | 'org'; id: string },
  range: UsageRange,
): Promise<{ runtime: RuntimeRow[]; model: ModelRow[] }> {
  const params = [owner.type, owner.id, `${range.from}T00:00:00Z`, `${addDays(range.to, 1)}T00:00:00Z`];
  const day = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')`;
  const [runtime, model] = await Promise.all([
    db.query<Record<string, string | number | null>>(
      `SELECT ${day('b.period_start')} AS day, b.session_id, s.trigger, s.rule_name,
              SUM(b.period_seconds) AS seconds, SUM(b.cost_usd) AS cost_usd
         FROM billing_periods b JOIN sessions s ON s.id = b.session_id
        WHERE s.owner_type = $1 AND s.owner_id = $2 AND b.period_start >= $3::timestamptz AND b.period_start < $4::timestamptz
        GROUP BY 1, 2, 3, 4`,
      params,
    ),
    db.query<Record<string, string | number | null>>(
      `SELECT ${day('u.recorded_at')} AS day, u.session_id, s.trigger, s.rule_name, u.model, COUNT(*) AS calls,
              SUM(u.input_tokens) AS input_tokens, SUM(u.cache_creation_input_tokens) AS cache_creation_input_tokens,
              SUM(u.cache_read_input_tokens) AS cache_read_input_tokens, SUM(u.output_tokens) AS output_tokens,
              SUM(u.cost_usd) AS cost_usd
         FROM model_usage u JOIN sessions s ON s.id = u.session_id
        WHERE s.owner_type = $1 AND s.owner_id = $2 AND u.recorded_at >= $3::timestamptz AND u.recorded_at < $4::timestamptz
        GROUP BY 1, 2, 3, 4, 5`,
      params,
    ),
  ]);
  const rule = (r: Record<string, unknown>) => (r.trigger === 'dr' ? ((r.rule_name as string | null) ?? null) : undefined);
  return {
    runtime: runtime.rows.map((r) => ({
      day: String(r.day),
      sessionId: String(r.session_id),
      rule: rule(r),
      seconds: Number(r.seconds),
      costUsd: Number(r.cost_usd),
    })),
    model: model.rows.map((r) => ({
      day: String(r.day),
      sessionId: String(r.session_id),
      rule: rule(r),
      model: String(r.model),
      calls: Number(r.calls),
      inputTokens: Number(r.input_tokens),
      cacheCreationInputTokens: Number(r.cache_creation_input_tokens),
      cacheReadInputTokens: Number(r.cache_read_input_tokens),
      outputTokens: Number(r.output_tokens),
      costUsd: Number(r.cost_usd),
    })),
  };
}

/** Everything one session has used so far: runtime from its billing periods, tokens and cost from its model calls. */
export async function sessionUsage(db: Queryable, sessionId: string): Promise<Omit<UsageFigures, 'sessions'>> {
  const { rows } = await db.query<Record<string, string | number>>(
    `SELECT u.*, b.*
       FROM (SELECT COUNT(*) AS calls, COALESCE(SUM(input_tokens), 0) AS input_tokens,
                    COALESCE(SUM(cache_creation_input_tokens), 0) AS cache_creation_input_tokens,
                    COALESCE(SUM(cache_read_input_tokens), 0) AS cache_read_input_tokens,
                    COALESCE(SUM(output_tokens), 0) AS output_tokens, COALESCE(SUM(cost_usd), 0) AS cost_usd
               FROM model_usage WHERE session_id = $1) u,
            (SELECT COALESCE(SUM(period_seconds), 0) AS seconds, COALESCE(SUM(cost_usd), 0) AS runtime_cost_usd
               FROM billing_periods WHERE session_id = $1) b`,
    [sessionId],
  );
  const r = rows[0];
  const [cacheWrite, cacheRead, cost, runtimeCost] = [
    Number(r.cache_creation_input_tokens), Number(r.cache_read_input_tokens), Number(r.cost_usd), Number(r.runtime_cost_usd),
  ];
  return {
    model_calls: Number(r.calls),
    input_tokens: Number(r.input_tokens) + cacheWrite + cacheRead,
    cache_creation_input_tokens: cacheWrite,
    cache_read_input_tokens: cacheRead,
    output_tokens: Number(r.output_tokens),
    cost_usd: cost,
    runtime_minutes: Number(r.seconds) / 60,
    runtime_cost_usd: runtimeCost,
    total_cost_usd: cost + runtimeCost,
  };
}
