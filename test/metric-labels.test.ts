import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import express from 'express';
import pino from 'pino';
import { modelLabel, observeTool, toolLabel, toolSeconds } from '../lib/metrics';
import { DEFAULT_PRICES, priceTable } from '../lib/pricing';
import { bearerToken, tokenMatcher } from '../lib/token-match';
import { check, readyzHandler, type CheckResult } from '../lib/health';
import { DefaultLogger } from '@temporalio/worker';
import { TemporalLogger } from '../worker/telemetry';

/** Pure pieces of the operator endpoints: bounded metric labels, the token check, /readyz's two views. */

describe('modelLabel', () => {
  const withCustom = priceTable({ 'acme-llm': { input: 1, output: 2 }, 'claude-sonnet-4-5': { input: 3, output: 15 } });

  it.each([
    ['an exact table key', 'claude-opus-4-5', DEFAULT_PRICES, 'claude-opus-4-5'],
    ['a dated id of a family', 'claude-sonnet-4-20250514', DEFAULT_PRICES, 'claude-sonnet'],
    ['the longest matching prefix', 'claude-opus-4-1-20250805', DEFAULT_PRICES, 'claude-opus-4-1'],
    ['a shorter family prefix', 'claude-opus-4-20250514', DEFAULT_PRICES, 'claude-opus-4'],
    ['a prefix without the dash boundary', 'claude-sonnetx', DEFAULT_PRICES, 'other'],
    ['an unknown model', 'gpt-4o', DEFAULT_PRICES, 'other'],
    ['a long made-up id', `claude-${'x'.repeat(190)}`, DEFAULT_PRICES, 'other'],
    ['the empty string', '', DEFAULT_PRICES, 'other'],
    ['a configured row (MODEL_PRICES)', 'acme-llm-v2', withCustom, 'acme-llm'],
    ['a configured row longer than a built-in one', 'claude-sonnet-4-5-20250929', withCustom, 'claude-sonnet-4-5'],
    ['a configured row absent from the default table', 'acme-llm-v2', DEFAULT_PRICES, 'other'],
  ])('%s: %s', (_what, model, table, label) => {
    expect(modelLabel(model, table)).toBe(label);
  });

  it('yields only table keys or "other", however many ids are tried', () => {
    const labels = new Set(Array.from({ length: 500 }, (_, i) => modelLabel(`claude-sonnet-${i}`)).concat(
      Array.from({ length: 500 }, (_, i) => modelLabel(`model-${i}`)),
    ));
    expect([...labels].sort()).toEqual(['claude-sonnet', 'other']);
  });

  it.each([['Bash', 'Bash'], ['WebFetch', 'WebFetch'], ['mcp__evil__x', 'mcp'], ['mcp__virustotal__lookup', 'mcp'], ['Invented', 'other'], ['', 'other']])(
    'toolLabel(%s) is %s',
    (name, label) => {
      expect(toolLabel(name)).toBe(label);
    },
  );
});

describe('observeTool', () => {
  const count = async (tool: string, outcome: string) => {
    const metric = (await toolSeconds.get()).values.find(
      (v) => v.metricName === 'ai_sessions_tool_seconds_count' && v.labels.tool === tool && v.labels.outcome === outcome,
    );
    return metric?.value ?? 0;
  };

  it.each([
    ['a result', async () => ({ isError: false }), 'ok'],
    ['an error the tool reported', async () => ({ isError: true }), 'error'],
    ['a call that could not run', async () => Promise.reject(new Error('gone')), 'failed'],
  ] as const)('counts %s as %s, under the tool\'s label', async (_what, run, outcome) => {
    const before = await count('mcp', outcome);
    const result = observeTool('mcp__intel__lookup', run);
    if (outcome === 'failed') await expect(result).rejects.toThrow('gone');
    else await expect(result).resolves.toEqual({ isError: outcome === 'error' });
    expect(await count('mcp', outcome)).toBe(before + 1);
  });
});

describe('tokenMatcher and bearerToken', () => {
  const secret = 'metrics-token-0123456789';

  it.each([
    ['the secret', secret, secret, true],
    ['another token', secret, 'metrics-token-0123456780', false],
    ['a prefix of the secret', secret, secret.slice(0, -1), false],
    ['nothing given', secret, undefined, false],
    ['the empty string', secret, '', false],
    ['no secret configured', undefined, secret, false],
    ['no secret and nothing given', undefined, undefined, false],
    ['an empty secret', '', '', false],
  ])('%s', (_what, configured, given, ok) => {
    expect(tokenMatcher(configured)(given)).toBe(ok);
  });

  it.each([
    [{ authorization: 'Bearer abc' }, undefined, 'abc'],
    [{ authorization: 'bearer   abc' }, undefined, 'abc'],
    [{ authorization: 'Bearer a b' }, undefined, undefined],
    [{ authorization: 'Basic abc' }, undefined, undefined],
    [{ authorization: 'Bearer ' }, undefined, undefined],
    [{}, undefined, undefined],
    [{}, new URL('http://x/ws?token=q'), 'q'],
    [{ authorization: 'Bearer h' }, new URL('http://x/ws?token=q'), 'h'],
  ])('bearerToken(%j, %s) is %s', (headers, url, token) => {
    expect(bearerToken(headers, url)).toBe(token);
  });
});

describe('/readyz', () => {
  const TOKEN = 'metrics-token-0123456789';
  const SECRET_DETAIL = 'connect ECONNREFUSED 10.1.2.3:5432 (user ais_admin, /var/run/docker.sock)';
  let server: http.Server;
  let url: string;
  const logged: Array<Record<string, unknown>> = [];
  let checks: () => Array<Promise<CheckResult>>;

  beforeAll(async () => {
    const sink = new Writable({ write: (chunk, _enc, done) => (logged.push(JSON.parse(String(chunk))), done()) });
    const app = express();
    const log = pino({ level: 'info' }, sink);
    app.get('/open', readyzHandler({ log, checks: () => checks() }));
    app.get('/closed', readyzHandler({ token: TOKEN, log, checks: () => checks() }));
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    logged.length = 0;
    checks = () => [
      check('temporal', async () => 'ok'),
      check('store', () => Promise.reject(new Error(SECRET_DETAIL))),
    ];
  });

  const get = async (path: string, token?: string) => {
    const res = await fetch(`${url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    const raw = await res.text();
    return { status: res.status, raw, body: JSON.parse(raw) };
  };

  it.each([
    ['anonymous, no token configured', '/open', undefined],
    ['anonymous, token configured', '/closed', undefined],
    ['a wrong token', '/closed', 'metrics-token-wrong-000000'],
    ['the token where none is configured', '/open', TOKEN],
  ])('%s: ok and a fixed code per check, no error text', async (_what, path, token) => {
    const r = await get(path, token);
    expect(r.status).toBe(503);
    expect(r.body).toEqual({ ready: false, checks: { temporal: { ok: true }, store: { ok: false, code: 'unavailable' } } });
    expect(r.raw).not.toContain('ECONNREFUSED');
    // The detail goes to the log instead.
    expect(logged).toEqual([expect.objectContaining({ level: 40, check: 'store', code: 'unavailable', error: SECRET_DETAIL, msg: 'readiness check failed' })]);
  });

  it('shows the error text to a caller with METRICS_TOKEN', async () => {
    const r = await get('/closed', TOKEN);
    expect(r.status).toBe(503);
    expect(r.body).toEqual({
      ready: false,
      checks: {
        temporal: { name: 'temporal', ok: true, ms: expect.any(Number) },
        store: { name: 'store', ok: false, ms: expect.any(Number), code: 'unavailable', error: SECRET_DETAIL },
      },
    });
  });

  it('is 200 when every check passes, logging nothing', async () => {
    checks = () => [check('temporal', async () => 1), check('store', async () => 1)];
    expect(await get('/closed')).toMatchObject({ status: 200, body: { ready: true, checks: { temporal: { ok: true }, store: { ok: true } } } });
    expect(logged).toEqual([]);
  });

  it('reports a check that hangs as timeout', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    try {
      const pending = check('docker', () => new Promise(() => {}));
      jest.advanceTimersByTime(3001);
      await expect(pending).resolves.toMatchObject({ name: 'docker', ok: false, code: 'timeout', error: 'timed out' });
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('TemporalLogger', () => {
  it('drops only the by-design "No workflows registered" warning of activity-only workers', () => {
    const passed = jest.spyOn(DefaultLogger.prototype, 'log').mockImplementation(() => undefined);
    try {
      const logger = new TemporalLogger();
      logger.warn('No workflows registered, not polling for workflow tasks');
      logger.warn('Activity failed');
      logger.error('Worker crashed');
      expect(passed.mock.calls.map((c) => c[1])).toEqual(['Activity failed', 'Worker crashed']);
    } finally {
      passed.mockRestore();
    }
  });
});
