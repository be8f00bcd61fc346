import { mintToken } from '../api/auth';
import { ConfigError, loadConfig } from '../lib/config';
import { costUsd, DEFAULT_PRICES, priceTable, runtimeCostUsd } from '../lib/pricing';
import { summarizeUsage, usageCsv, usageQuery, type ModelRow, type RuntimeRow } from '../lib/usage';
import { describeIssues } from '../api/validation';
import { TEST_ADMIN_TOKEN, TEST_JWT_SECRET, useHarness, type Harness } from './support/harness';
import { callApi } from './support/http';
import { text, toolUse } from './support/fake-anthropic';

/** Usage and cost: prices in configuration, the report's pure parts, and the endpoints against the real stack. */

describe('prices in configuration', () => {
  function configError(env: Record<string, string>): string {
    try {
      loadConfig(env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
  }

  it('defaults to the built-in table and unpriced runtime', () => {
    const c = loadConfig({});
    expect(c.pricing.models).toEqual(DEFAULT_PRICES);
    expect(c.pricing.runtimePerMinuteUsd).toBe(0);
  });

  it.each([
    ['a new model, cache prices from the usual ratios', '{"my-model": {"input": 2, "output": 8}}', 'my-model', { input: 2, output: 8, cacheWrite: 2.5, cacheRead: 0.2 }],
    ['a new model with its own cache prices', '{"my-model": {"input": 2, "output": 8, "cache_write": 3, "cache_read": 0}}', 'my-model', { input: 2, output: 8, cacheWrite: 3, cacheRead: 0 }],
    ['an override of a built-in row', '{"claude-sonnet": {"input": 1, "output": 2}}', 'claude-sonnet', { input: 1, output: 2, cacheWrite: 1.25, cacheRead: 0.1 }],
    ['free', '{"local-model": {"input": 0, "output": 0}}', 'local-model', { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 }],
  ])('MODEL_PRICES adds %s', (_what, json, model, expected) => {
    const c = loadConfig({ MODEL_PRICES: json, RUNTIME_PRICE_PER_MINUTE_USD: '0.02' });
    expect(c.pricing.models[model]).toEqual(expected);
    expect(c.pricing.models['claude-haiku-4-5']).toEqual(DEFAULT_PRICES['claude-haiku-4-5']);
    expect(c.pricing.runtimePerMinuteUsd).toBe(0.02);
  });

  it.each([
    ['MODEL_PRICES', '{"my-model": {"input": 2, "output": 8}', /MODEL_PRICES: is not valid JSON/],
    ['MODEL_PRICES', '[1, 2]', /MODEL_PRICES/],
    ['MODEL_PRICES', '{"my-model": {"input": -1, "output": 8}}', /MODEL_PRICES\.my-model\.input/],
    ['MODEL_PRICES', '{"my-model": {"input": 1, "output": 8, "cache_read": -0.1}}', /MODEL_PRICES\.my-model\.cache_read/],
    ['MODEL_PRICES', '{"my-model": {"input": 1}}', /MODEL_PRICES\.my-model\.output/],
    ['MODEL_PRICES', '{"my-model": {"input": "1", "output": 8}}', /MODEL_PRICES\.my-model\.input/],
    ['MODEL_PRICES', '{"my-model": {"input": 1, "output": 8, "per_call": 1}}', /MODEL_PRICES\.my-model: unknown|per_call/],
    ['RUNTIME_PRICE_PER_MINUTE_USD', '-0.01', /RUNTIME_PRICE_PER_MINUTE_USD:/],
    ['RUNTIME_PRICE_PER_MINUTE_USD', 'cheap', /RUNTIME_PRICE_PER_MINUTE_USD:/],
  ])('refuses %s=%s at start, naming the variable', (name, value, pattern) => {
    const message = configError({ [name]: value });
    expect(message).toMatch(pattern);
    expect(message.split('\n').slice(1).every((l) => l.trim().startsWith(name))).toBe(true);
  });

  it.each([
    // [table overrides, model, usage, expected USD]
    [{}, 'claude-sonnet-4-6', { input_tokens: 1_000_000, output_tokens: 0 }, 3],
    [{ 'my-model': { input: 2, output: 8 } }, 'my-model-2026', { input_tokens: 500_000, output_tokens: 250_000, cache_read_input_tokens: 1_000_000 }, 1 + 2 + 0.2],
    // An unknown model costs the dearest row, field by field, including an operator's dearer one.
    [{ 'big-model': { input: 100, output: 10 } }, 'unknown', { input_tokens: 1_000_000, output_tokens: 1_000_000 }, 100 + 75],
  ])('costUsd over priceTable(%j) prices %s', (overrides, model, usage, expected) => {
    expect(costUsd(model, usage, priceTable(overrides))).toBeCloseTo(expected, 10);
  });

  it.each([
    [60, 0.05, 0.05],
    [2, 0.6, 0.02],
    [60, 0, 0],
  ])('a %s-second billing period at $%s a minute costs $%s', (seconds, perMinute, expected) => {
    expect(runtimeCostUsd(seconds, perMinute)).toBeCloseTo(expected, 12);
  });
});

describe('the usage query', () => {
  const today = '2026-11-26';
  const parse = (q: Record<string, unknown>) => usageQuery(today).safeParse(q);

  it.each([
    [{}, { from: '2026-10-28', to: '2026-11-26' }],
    [{ to: '2026-03-01' }, { from: '2026-01-31', to: '2026-03-01' }],
    [{ from: '2026-11-01' }, { from: '2026-11-01', to: '2026-11-26' }],
    [{ from: '2026-11-26', to: '2026-11-26', format: 'csv' }, { from: '2026-11-26', to: '2026-11-26', format: 'csv' }],
    [{ from: '2024-02-29', to: '2025-02-28' }, { from: '2024-02-29', to: '2025-02-28' }],
    [{ from: '2025-11-26', to: '2026-11-26' }, { from: '2025-11-26', to: '2026-11-26' }],
  ])('%j is the range %j', (q, expected) => {
    const r = parse(q);
    expect(r.success && r.data).toEqual({ format: undefined, ...expected });
  });

  it.each([
    [{ from: '2026-02-30' }, 'from: must be a date as YYYY-MM-DD'],
    [{ to: '26-11-2026' }, 'to: must be a date as YYYY-MM-DD'],
    [{ from: '2026-11-01T00:00:00Z' }, 'from: must be a date'],
    [{ from: '2026-11-20', to: '2026-11-19' }, 'from: must not be after to (2026-11-19)'],
    [{ from: '2025-11-25', to: '2026-11-26' }, 'from: the range from 2025-11-25 to 2026-11-26 spans 367 days; at most 366'],
    [{ from: '2020-01-01' }, 'from: the range'],
    [{ format: 'xml' }, 'format:'],
    [{ group_by: 'day' }, 'query: unknown field group_by'],
    [{ from: ['2026-11-01', '2026-11-02'] }, 'from:'],
  ])('%j is refused: "%s"', (q, message) => {
    const r = parse(q);
    expect(r.success).toBe(false);
    if (!r.success) expect(describeIssues(r.error.issues, 'query')).toContain(message);
  });
});

describe('summarizeUsage', () => {
  const range = { from: '2026-11-24', to: '2026-11-26' };
  const rt = (day: string, sessionId: string, seconds: number, costUsd: number, rule?: string | null): RuntimeRow => ({ day, sessionId, seconds, costUsd, rule });
  const call = (day: string, sessionId: string, model: string, n: number, costUsd: number, rule?: string | null): ModelRow => ({
    day, sessionId, model, rule, calls: n, inputTokens: 100 * n, cacheCreationInputTokens: 10 * n, cacheReadInputTokens: n, outputTokens: 50 * n, costUsd,
  });

  it('is all zeros, one row per day, for no usage', () => {
    const r = summarizeUsage(range, [], []);
    expect(r.by_day.map((d) => d.date)).toEqual(['2026-11-24', '2026-11-25', '2026-11-26']);
    expect(r.totals).toEqual({
      sessions: 0, model_calls: 0, input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0,
      output_tokens: 0, cost_usd: 0, runtime_minutes: 0, runtime_cost_usd: 0, total_cost_usd: 0,
    });
    expect(r.by_model).toEqual([]);
    expect(r.by_rule).toEqual([]);
  });

  it('sums by day, model and rule, counting each session once per group', () => {
    const runtime = [rt('2026-11-24', 's1', 120, 0.2), rt('2026-11-25', 's1', 60, 0.1), rt('2026-11-25', 's2', 30, 0.05, 'rule-a'), rt('2026-11-26', 's3', 60, 0.1, null)];
    const model = [
      call('2026-11-24', 's1', 'sonnet', 2, 1),
      call('2026-11-25', 's1', 'haiku', 1, 0.25),
      call('2026-11-25', 's2', 'sonnet', 3, 2, 'rule-a'),
      call('2026-11-26', 's3', 'haiku', 1, 0.5, null),
    ];
    const r = summarizeUsage(range, runtime, model);
    expect(r.totals).toEqual({
      sessions: 3, model_calls: 7, input_tokens: 777, cache_creation_input_tokens: 70, cache_read_input_tokens: 7, output_tokens: 350,
      cost_usd: 3.75, runtime_minutes: 4.5, runtime_cost_usd: expect.closeTo(0.45, 12), total_cost_usd: expect.closeTo(4.2, 12),
    });
    expect(r.by_day.map((d) => [d.date, d.sessions, d.model_calls, d.runtime_minutes, d.cost_usd])).toEqual([
      ['2026-11-24', 1, 2, 2, 1],
      ['2026-11-25', 2, 4, 1.5, 2.25],
      ['2026-11-26', 1, 1, 1, 0.5],
    ]);
    expect(r.by_model.map((m) => [m.model, m.sessions, m.model_calls, m.cost_usd])).toEqual([['sonnet', 2, 5, 3], ['haiku', 2, 2, 0.75]]);
    expect(r.by_model[0]).not.toHaveProperty('runtime_minutes');
    // Only D&R sessions (rule given, even null) are grouped by rule.
    expect(r.by_rule.map((g) => [g.rule, g.sessions, g.model_calls, g.runtime_minutes, g.total_cost_usd])).toEqual([
      ['rule-a', 1, 3, 0.5, 2.05],
      [null, 1, 1, 1, 0.6],
    ]);
  });

  it('leaves out rows outside the range', () => {
    const r = summarizeUsage(range, [rt('2026-11-27', 's1', 60, 1)], [call('2026-11-23', 's1', 'sonnet', 1, 1)]);
    expect(r.totals.sessions).toBe(0);
    expect(r.totals.total_cost_usd).toBe(0);
  });
});

describe('usageCsv', () => {
  const parseCsvLine = (line: string) => line.split(',');

  it('has a header, a total row, then days, models and rules, with empty runtime for models', () => {
    const report = summarizeUsage(
      { from: '2026-11-26', to: '2026-11-26' },
      [{ day: '2026-11-26', sessionId: 's', seconds: 90, costUsd: 0.15, rule: 'r1' }],
      [{ day: '2026-11-26', sessionId: 's', rule: 'r1', model: 'm', calls: 1, inputTokens: 10, cacheCreationInputTokens: 0, cacheReadInputTokens: 0, outputTokens: 5, costUsd: 0.5 }],
    );
    const lines = usageCsv(report).trimEnd().split('\n');
    expect(lines[0]).toBe('group,key,sessions,model_calls,runtime_minutes,runtime_cost_usd,input_tokens,cache_creation_input_tokens,cache_read_input_tokens,output_tokens,cost_usd,total_cost_usd');
    expect(lines.slice(1).map(parseCsvLine)).toEqual([
      ['total', '2026-11-26/2026-11-26', '1', '1', '1.5', '0.15', '10', '0', '0', '5', '0.5', '0.65'],
      ['day', '2026-11-26', '1', '1', '1.5', '0.15', '10', '0', '0', '5', '0.5', '0.65'],
      ['model', 'm', '1', '1', '', '', '10', '0', '0', '5', '0.5', ''],
      ['rule', 'r1', '1', '1', '1.5', '0.15', '10', '0', '0', '5', '0.5', '0.65'],
    ]);
  });

  it.each([
    ['a comma', 'a,b', '"a,b"'],
    ['a quote', 'say "hi"', '"say ""hi"""'],
    ['a line break', 'two\nlines', '"two\nlines"'],
    ['a formula', '=HYPERLINK("http://x")', `"'=HYPERLINK(""http://x"")"`],
    ['a leading @', '@SUM(A1)', "'@SUM(A1)"],
  ])('escapes a rule name with %s', (_what, rule, cell) => {
    const report = summarizeUsage(
      { from: '2026-11-26', to: '2026-11-26' },
      [{ day: '2026-11-26', sessionId: 's', seconds: 60, costUsd: 0, rule }],
      [],
    );
    expect(usageCsv(report)).toContain(`\nrule,${cell},1,`);
  });
});

type Gateway = Awaited<ReturnType<Harness['startGateway']>>;

/** Sums of the metering rows of one owner's sessions, straight from the tables. */
async function rowSums(h: Harness, where: string, params: unknown[]) {
  const { rows: [b] } = await h.db.query<Record<string, string | number>>(
    `SELECT COALESCE(SUM(period_seconds), 0) AS seconds, COALESCE(SUM(b.cost_usd), 0) AS cost, COUNT(*) AS n
       FROM billing_periods b JOIN sessions s ON s.id = b.session_id WHERE ${where}`,
    params,
  );
  const { rows: [m] } = await h.db.query<Record<string, string | number>>(
    `SELECT COUNT(*) AS calls, COALESCE(SUM(input_tokens), 0) AS input, COALESCE(SUM(cache_creation_input_tokens), 0) AS cw,
            COALESCE(SUM(cache_read_input_tokens), 0) AS cr, COALESCE(SUM(output_tokens), 0) AS output, COALESCE(SUM(u.cost_usd), 0) AS cost
       FROM model_usage u JOIN sessions s ON s.id = u.session_id WHERE ${where}`,
    params,
  );
  const { rows: [s] } = await h.db.query<{ n: string }>(
    `SELECT COUNT(*) AS n FROM sessions s WHERE ${where}
        AND (EXISTS (SELECT 1 FROM billing_periods WHERE session_id = s.id) OR EXISTS (SELECT 1 FROM model_usage WHERE session_id = s.id))`,
    params,
  );
  const tokenCost = Number(m.cost);
  const runtimeCost = Number(b.cost);
  return {
    periods: Number(b.n),
    figures: {
      sessions: Number(s.n),
      model_calls: Number(m.calls),
      input_tokens: Number(m.input) + Number(m.cw) + Number(m.cr),
      cache_creation_input_tokens: Number(m.cw),
      cache_read_input_tokens: Number(m.cr),
      output_tokens: Number(m.output),
      cost_usd: expect.closeTo(tokenCost, 12),
      runtime_minutes: expect.closeTo(Number(b.seconds) / 60, 12),
      runtime_cost_usd: expect.closeTo(runtimeCost, 12),
      total_cost_usd: expect.closeTo(tokenCost + runtimeCost, 12),
    },
  };
}

describe('usage over the API', () => {
  const PER_MINUTE = 0.6;
  // Priced so every figure is distinct; the stand-in answers as a dated id of this family.
  const MODEL_PRICES = {
    'claude-usage-test': { input: 7, output: 11, cache_write: 13, cache_read: 0.5 },
    // Dearer than the built-in $3 input: the budget test below ends only at this price.
    'claude-sonnet-4-6': { input: 10, output: 10 },
  };
  const h = useHarness({
    env: { BILLING_PERIOD_SECONDS: '1', RUNTIME_PRICE_PER_MINUTE_USD: String(PER_MINUTE), MODEL_PRICES: JSON.stringify(MODEL_PRICES) },
  });
  let gw: Gateway;
  let userToken: string;
  let org: { id: string; key: string };
  const call = (path: string, token: string) => callApi(gw.url, 'GET', path, { token });
  const today = () => new Date().toISOString().slice(0, 10);
  const usage = { input_tokens: 1200, output_tokens: 300, cache_creation_input_tokens: 400, cache_read_input_tokens: 5000 };
  const priced = (u: typeof usage) => (u.input_tokens * 7 + u.output_tokens * 11 + u.cache_creation_input_tokens * 13 + u.cache_read_input_tokens * 0.5) / 1e6;
  /** Runs until its sandbox has been billed for a few periods, then is terminated. */
  const runFor = async (sessionId: string, periods: number) => {
    for (let i = 0; i < 300; i++) {
      const { rows } = await h.db.query<{ n: string }>('SELECT COUNT(*) AS n FROM billing_periods WHERE session_id = $1', [sessionId]);
      if (Number(rows[0].n) >= periods) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    gw = await h.startGateway();
    userToken = await mintToken(TEST_JWT_SECRET, { sub: 'user-1' });
    const created = await callApi(gw.url, 'POST', '/v1/admin/orgs', { token: TEST_ADMIN_TOKEN, body: { name: 'usage-org' } });
    org = { id: created.body.org.id, key: created.body.api_key };
    await callApi(gw.url, 'PUT', `/v1/orgs/${org.id}/hive/secret/anthropic-key`, { token: org.key, body: { data: { secret: 'sk-ant-usage-org-key' } } });
  });

  it('reports a user session: GET session and /v1/usage equal the sums of the metering rows, in JSON and CSV', async () => {
    h.fake.enqueue(
      toolUse('Bash', { command: 'sleep 2' }, { model: 'claude-usage-test-20261126', usage }),
      text('Done.', { model: 'claude-usage-test-20261126', usage: { ...usage, cache_creation_input_tokens: 0 } }),
    );
    const sessionId = await h.startSession({ prompt: 'Count something.' });
    await h.waitForEvent(sessionId, (e) => e.type === 'result');
    await runFor(sessionId, 3);
    await h.service.terminate(sessionId, 'user_requested');
    await h.waitForEnd(sessionId);

    const mine = await rowSums(h, `s.owner_type = 'user' AND s.owner_id = $1`, ['user-1']);
    expect(mine.periods).toBeGreaterThanOrEqual(3);
    expect(mine.figures.model_calls).toBe(2);

    // The configured table priced each call (the figure max_budget_usd counts).
    const { rows: calls } = await h.db.query<{ cost_usd: number }>('SELECT cost_usd FROM model_usage WHERE session_id = $1 ORDER BY recorded_at', [sessionId]);
    expect(calls.map((c) => Number(c.cost_usd))).toEqual([
      expect.closeTo(priced(usage), 12),
      expect.closeTo(priced({ ...usage, cache_creation_input_tokens: 0 }), 12),
    ]);

    const got = await call(`/v1/sessions/${sessionId}`, userToken);
    expect(got.status).toBe(200);
    const { sessions: _n, ...perSession } = mine.figures;
    expect(got.body.session).toMatchObject(perSession);
    expect(got.body.session.runtime_cost_usd).toBeCloseTo(got.body.session.runtime_minutes * PER_MINUTE, 12);

    const report = await call('/v1/usage', userToken);
    expect(report.status).toBe(200);
    expect(report.body.usage).toMatchObject({ to: today(), timezone: 'UTC', totals: mine.figures, by_rule: [] });
    expect(report.body.usage.by_day).toHaveLength(30);
    const day = report.body.usage.by_day.find((d: { date: string }) => d.date === today());
    expect(day).toMatchObject(mine.figures);
    const { runtime_minutes: _m, runtime_cost_usd: _r, total_cost_usd: _t, ...tokens } = mine.figures;
    expect(report.body.usage.by_model).toEqual([{ model: 'claude-usage-test-20261126', ...tokens }]);

    // The same report as CSV, by query or by Accept.
    const byQuery = await fetch(`${gw.url}/v1/usage?format=csv`, { headers: { authorization: `Bearer ${userToken}` } });
    const byAccept = await fetch(`${gw.url}/v1/usage`, { headers: { authorization: `Bearer ${userToken}`, accept: 'text/csv' } });
    expect(byQuery.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(byQuery.headers.get('content-disposition')).toBe(`attachment; filename=usage-${report.body.usage.from}-${today()}.csv`);
    const csv = await byQuery.text();
    expect(await byAccept.text()).toBe(csv);
    const [header, total] = csv.split('\n');
    const totalRow = Object.fromEntries(header.split(',').map((k, i) => [k, total.split(',')[i]]));
    const t = report.body.usage.totals;
    expect(totalRow).toMatchObject({
      group: 'total', sessions: String(t.sessions), model_calls: String(t.model_calls), input_tokens: String(t.input_tokens),
      output_tokens: String(t.output_tokens), cost_usd: String(t.cost_usd), runtime_minutes: String(t.runtime_minutes),
    });

    // Deleting the session's record keeps what it used on the books.
    expect((await callApi(gw.url, 'DELETE', `/v1/sessions/${sessionId}/record`, { token: userToken })).status).toBe(200);
    expect((await call('/v1/usage', userToken)).body.usage.totals).toEqual(report.body.usage.totals);
  });

  it('reports an organization by D&R rule and model, apart from users, and GET org session carries the same figures', async () => {
    h.fake.setResponder((req) => text('Triaged.', { model: req.body.model === 'claude-haiku-4-5' ? 'claude-haiku-4-5' : 'claude-usage-test-1', usage }));
    const launch = async (rule: string, model?: string) => {
      const res = await callApi(gw.url, 'POST', `/v1/orgs/${org.id}/dr/start`, {
        token: org.key,
        body: {
          rule_name: rule,
          routing: { hostname: 'h1' },
          action: { action: 'start ai agent', prompt: 'Triage.', anthropic_secret: 'hive://secret/anthropic-key', profile: model ? { model } : {} },
        },
      });
      expect(res.status).toBe(201);
      return res.body.session_id as string;
    };
    const ids = [await launch('rule-a'), await launch('rule-a', 'claude-haiku-4-5'), await launch('rule, "b"')];
    for (const id of ids) await h.waitForEnd(id);

    const report = await call(`/v1/org/usage?from=${today()}&to=${today()}`, org.key);
    expect(report.status).toBe(200);
    const all = await rowSums(h, `s.owner_type = 'org' AND s.owner_id = $1`, [org.id]);
    expect(report.body.usage.totals).toEqual(all.figures);
    expect(report.body.usage.by_day).toEqual([{ date: today(), ...all.figures }]);
    for (const rule of ['rule-a', 'rule, "b"']) {
      const sums = await rowSums(h, `s.owner_type = 'org' AND s.owner_id = $1 AND s.rule_name = $2`, [org.id, rule]);
      expect(report.body.usage.by_rule.find((g: { rule: string }) => g.rule === rule)).toEqual({ rule, ...sums.figures });
    }
    expect(report.body.usage.by_rule).toHaveLength(2);
    const haiku = report.body.usage.by_model.find((m: { model: string }) => m.model === 'claude-haiku-4-5');
    expect(haiku).toMatchObject({ sessions: 1, model_calls: 1, cost_usd: expect.closeTo(costUsd('claude-haiku-4-5', usage), 12) });
    expect(report.body.usage.by_model).toHaveLength(2);

    // The rule name with a comma and quotes survives the CSV.
    const csv = await (await fetch(`${gw.url}/v1/org/usage?format=csv`, { headers: { authorization: `Bearer ${org.key}` } })).text();
    expect(csv).toContain('\nrule,"rule, ""b""",1,');

    const one = await call(`/v1/org/sessions/${ids[0]}`, org.key);
    const { sessions: _n, ...perSession } = (await rowSums(h, 's.id = $1', [ids[0]])).figures;
    expect(one.body.session).toMatchObject({ trigger_rule: 'rule-a', ...perSession });
    expect(one.body.session.runtime_minutes).toBeGreaterThan(0);

    // Each owner sees only its own sessions.
    const user = (await call('/v1/usage', userToken)).body.usage.totals;
    expect(user).toEqual((await rowSums(h, `s.owner_type = 'user' AND s.owner_id = $1`, ['user-1'])).figures);
  });

  it.each([
    ['?from=2026-02-30', 'from: must be a date as YYYY-MM-DD'],
    ['?from=2026-11-20&to=2026-11-19', 'from: must not be after to'],
    ['?from=2024-01-01&to=2026-01-01', 'from: the range from 2024-01-01 to 2026-01-01 spans 732 days'],
    ['?to=yesterday', 'to: must be a date'],
    ['?format=xlsx', 'format:'],
    ['?group=day', 'query: unknown field group'],
  ])('refuses %s with a 400 naming the field, on both endpoints', async (query, message) => {
    for (const [path, token] of [['/v1/usage', userToken], ['/v1/org/usage', org.key]]) {
      const res = await call(`${path}${query}`, token);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining(message) });
    }
  });

  it('ends a session at max_budget_usd by the configured prices', async () => {
    // 2000 input tokens: $0.02 at the configured price, $0.006 at the built-in one.
    h.fake.enqueue(toolUse('Bash', { command: 'true' }, { model: 'claude-sonnet-4-6', usage: { input_tokens: 2000, output_tokens: 0 } }));
    const sessionId = await h.startSession({ prompt: 'Spend.', profile: { permission_mode: 'bypassPermissions', max_budget_usd: 0.01 } });
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'max_budget_exceeded' });
    expect((await call(`/v1/sessions/${sessionId}`, userToken)).body.session.cost_usd).toBeCloseTo(0.02, 12);
  });

  it('takes each endpoint only with its own kind of token', async () => {
    expect((await call('/v1/org/usage', userToken)).status).toBe(401);
    expect((await call('/v1/usage', org.key)).status).toBe(401);
    expect((await callApi(gw.url, 'GET', '/v1/usage')).status).toBe(401);
  });
});
