import { z } from 'zod';
import { stringify } from 'csv-stringify/sync';

/**
 * Usage reports: the metering rows of a date range, summed by day, by model
 * and by D&R rule. Days are UTC calendar days; a billing period counts on the
 * day it started, a model call on the day it was recorded.
 */
export const USAGE_DEFAULT_DAYS = 30;
export const USAGE_MAX_DAYS = 366;

const DAY_MS = 86_400_000;
const isoDate = z.iso.date({ message: 'must be a date as YYYY-MM-DD' });

export const addDays = (day: string, n: number): string => new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
const daysFrom = (from: string, to: string) => Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS) + 1;

export interface UsageRange {
  /** First and last day, both included. */
  from: string;
  to: string;
}

/**
 * The query of the usage endpoints, given today's date (UTC): `to` defaults
 * to today and `from` to 30 days ending at `to`; at most 366 days.
 */
export function usageQuery(today: string) {
  return z
    .object({ from: isoDate.optional(), to: isoDate.optional(), format: z.enum(['json', 'csv']).optional() })
    .strict()
    .transform((q, ctx) => {
      const to = q.to ?? today;
      const from = q.from ?? addDays(to, 1 - USAGE_DEFAULT_DAYS);
      if (from > to) {
        ctx.addIssue({ code: 'custom', path: ['from'], message: `must not be after to (${to})` });
        return z.NEVER;
      }
      const days = daysFrom(from, to);
      if (days > USAGE_MAX_DAYS) {
        ctx.addIssue({ code: 'custom', path: ['from'], message: `the range from ${from} to ${to} spans ${days} days; at most ${USAGE_MAX_DAYS}` });
        return z.NEVER;
      }
      return { from, to, format: q.format };
    });
}

/** Billing periods of one session on one day. */
export interface RuntimeRow {
  day: string;
  sessionId: string;
  /** The D&R rule that started the session; undefined for sessions D&R did not start. */
  rule?: string | null;
  seconds: number;
  costUsd: number;
}

/** Model calls of one session with one model on one day. */
export interface ModelRow {
  day: string;
  sessionId: string;
  rule?: string | null;
  model: string;
  calls: number;
  inputTokens: number;
  cacheCreationInputTokens: number;
  cacheReadInputTokens: number;
  outputTokens: number;
  costUsd: number;
}

export interface TokenFigures {
  sessions: number;
  model_calls: number;
  /** Every input token, cache writes and reads included (as on the session resource). */
  input_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  output_tokens: number;
  /** Token cost, as recorded per call: what max_budget_usd counts. */
  cost_usd: number;
}

export interface UsageFigures extends TokenFigures {
  runtime_minutes: number;
  runtime_cost_usd: number;
  total_cost_usd: number;
}

export interface UsageReport {
  from: string;
  to: string;
  timezone: 'UTC';
  totals: UsageFigures;
  by_day: Array<{ date: string } & UsageFigures>;
  by_model: Array<{ model: string } & TokenFigures>;
  /** D&R sessions only; `rule` is null for a D&R session started without a rule name. */
  by_rule: Array<{ rule: string | null } & UsageFigures>;
}

class Sums {
  readonly sessions = new Set<string>();
  calls = 0;
  input = 0;
  cacheWrite = 0;
  cacheRead = 0;
  output = 0;
  tokenCost = 0;
  seconds = 0;
  runtimeCost = 0;

  addRuntime(r: RuntimeRow): void {
    this.sessions.add(r.sessionId);
    this.seconds += r.seconds;
    this.runtimeCost += r.costUsd;
  }

  addModel(r: ModelRow): void {
    this.sessions.add(r.sessionId);
    this.calls += r.calls;
    this.input += r.inputTokens;
    this.cacheWrite += r.cacheCreationInputTokens;
    this.cacheRead += r.cacheReadInputTokens;
    this.output += r.outputTokens;
    this.tokenCost += r.costUsd;
  }

  tokens(): TokenFigures {
    return {
      sessions: this.sessions.size,
      model_calls: this.calls,
      input_tokens: this.input + this.cacheWrite + this.cacheRead,
      cache_creation_input_tokens: this.cacheWrite,
      cache_read_input_tokens: this.cacheRead,
      output_tokens: this.output,
      cost_usd: this.tokenCost,
    };
  }

  all(): UsageFigures {
    return {
      ...this.tokens(),
      runtime_minutes: this.seconds / 60,
      runtime_cost_usd: this.runtimeCost,
      total_cost_usd: this.tokenCost + this.runtimeCost,
    };
  }
}

function bucket<K>(map: Map<K, Sums>, key: K): Sums {
  let s = map.get(key);
  if (!s) map.set(key, (s = new Sums()));
  return s;
}

/** Sums rows into a report; rows outside the range are the caller's mistake and are ignored. */
export function summarizeUsage(range: UsageRange, runtime: RuntimeRow[], model: ModelRow[]): UsageReport {
  const total = new Sums();
  const days = new Map<string, Sums>();
  for (let d = range.from; d <= range.to; d = addDays(d, 1)) days.set(d, new Sums());
  const models = new Map<string, Sums>();
  const rules = new Map<string | null, Sums>();
  for (const r of runtime) {
    const day = days.get(r.day);
    if (!day) continue;
    for (const s of [total, day, ...(r.rule !== undefined ? [bucket(rules, r.rule)] : [])]) s.addRuntime(r);
  }
  for (const r of model) {
    const day = days.get(r.day);
    if (!day) continue;
    for (const s of [total, day, bucket(models, r.model), ...(r.rule !== undefined ? [bucket(rules, r.rule)] : [])]) s.addModel(r);
  }
  // Dearest first, then by name, so a report reads the same every time.
  const ranked = <K>(map: Map<K, Sums>, cost: (s: Sums) => number) =>
    [...map.entries()].sort(([ka, a], [kb, b]) => cost(b) - cost(a) || String(ka ?? '').localeCompare(String(kb ?? '')));
  return {
    from: range.from,
    to: range.to,
    timezone: 'UTC',
    totals: total.all(),
    by_day: [...days.entries()].map(([date, s]) => ({ date, ...s.all() })),
    by_model: ranked(models, (s) => s.tokenCost).map(([m, s]) => ({ model: m, ...s.tokens() })),
    by_rule: ranked(rules, (s) => s.tokenCost + s.runtimeCost).map(([rule, s]) => ({ rule, ...s.all() })),
  };
}

const CSV_COLUMNS = [
  'group', 'key', 'sessions', 'model_calls', 'runtime_minutes', 'runtime_cost_usd', 'input_tokens',
  'cache_creation_input_tokens', 'cache_read_input_tokens', 'output_tokens', 'cost_usd', 'total_cost_usd',
];

/**
 * One table for spreadsheets: a `group` column (total, day, model, rule) and
 * its `key`; figures a group does not have (runtime per model) are empty.
 * Values that a spreadsheet would run as formulas are escaped.
 */
export function usageCsv(report: UsageReport): string {
  const rows = [
    { group: 'total', key: `${report.from}/${report.to}`, ...report.totals },
    ...report.by_day.map(({ date, ...f }) => ({ group: 'day', key: date, ...f })),
    ...report.by_model.map(({ model, ...f }) => ({ group: 'model', key: model, ...f })),
    ...report.by_rule.map(({ rule, ...f }) => ({ group: 'rule', key: rule ?? '', ...f })),
  ];
  return stringify(rows, { header: true, columns: CSV_COLUMNS, escape_formulas: true });
}
