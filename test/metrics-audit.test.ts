import WebSocket from 'ws';
import { NativeConnection } from '@temporalio/worker';
import { startHarness, TEST_ADMIN_TOKEN, TEST_JWT_SECRET, type Harness } from './support/harness';
import { freePort } from './support/global-setup';
import { callApi } from './support/http';
import { text, toolUse } from './support/fake-anthropic';
import { mintToken } from '../api/auth';
import { openDb } from '../store/db';
import { startWorkerHttp, type WorkerHttp } from '../worker/http';
import { createLogger } from '../lib/log';

/**
 * The operator's view on the real stack: Prometheus metrics of the gateway and
 * the worker (the Temporal SDK's merged in), the worker's health endpoints, and
 * the audit trail written by REST and WebSocket actions, readable only by the
 * user, org or administrator it belongs to.
 */

const WAIT = 60_000;

/** The sum of the samples of one metric whose labels include the given ones. */
function sample(exposition: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined;
  for (const line of exposition.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total = (total ?? 0) + Number(m[4]);
  }
  return total;
}

async function scrape(url: string, token?: string): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(`${url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
}

/** An owner's socket on a session, its frames collected. */
async function openSocket(gatewayUrl: string, sessionId: string, token: string) {
  const ws = new WebSocket(`${gatewayUrl.replace(/^http/, 'ws')}/v1/sessions/${sessionId}/ws?token=${token}`);
  const frames: Array<{ type: string; payload: any }> = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const waitFor = async (type: string, match: (p: any) => boolean = () => true) => {
    const deadline = Date.now() + WAIT;
    for (;;) {
      const f = frames.find((x) => x.type === type && match(x.payload));
      if (f) return f;
      if (Date.now() > deadline) throw new Error(`no ${type} frame; saw ${frames.map((x) => x.type).join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const send = (type: string, payload: Record<string, unknown> = {}) => ws.send(JSON.stringify({ type, payload }));
  send('heartbeat');
  await waitFor('heartbeat_ack');
  return {
    send,
    waitFor,
    close: () => new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close();
    }),
  };
}

describe('metrics, health and the audit trail', () => {
  let h: Harness;
  let gateway: Awaited<ReturnType<Harness['startGateway']>>;
  let workerHttp: WorkerHttp;
  let connection: NativeConnection;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    // This file's runtime exports the SDK's metrics on a port of its own.
    h = await startHarness({ env: { TEMPORAL_METRICS_PORT: String(await freePort()) } });
    gateway = await h.startGateway();
    connection = await NativeConnection.connect({ address: process.env.TEST_TEMPORAL_ADDRESS! });
    workerHttp = await startWorkerHttp({ config: h.config, db: h.db, connection, docker: h.docker, log: createLogger('silent'), port: 0, host: '127.0.0.1' });
    alice = await mintToken(TEST_JWT_SECRET, { sub: 'alice' });
    bob = await mintToken(TEST_JWT_SECRET, { sub: 'bob' });
  });

  afterAll(async () => {
    await workerHttp?.stop();
    await h?.close();
    await connection?.close();
  });

  beforeEach(() => h.fake.reset());

  it('counts a session with an approved and a denied tool call, and records both decisions with their actor', async () => {
    h.fake.enqueue(
      toolUse('Bash', { command: 'echo metered' }, { id: 'toolu_m_yes', usage: { input_tokens: 120, output_tokens: 30 } }),
      toolUse('Bash', { command: 'echo refused' }, { id: 'toolu_m_no' }),
      text('Done.'),
    );
    const sessionId = await h.startSession({ ownerId: 'alice', prompt: 'run things', profile: { permission_mode: 'acceptEdits' } });
    await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request' && e.payload.request_id === 'toolu_m_yes', WAIT);

    const socket = await openSocket(gateway.url, sessionId, alice);
    const waiting = await scrape(gateway.url);
    expect(waiting.status).toBe(200);
    expect(waiting.type).toMatch(/^text\/plain/);
    expect(sample(waiting.text, 'ai_sessions_ws_clients')).toBe(1);
    expect(sample(waiting.text, 'ai_sessions_approvals_pending', { kind: 'approval' })).toBeGreaterThanOrEqual(1);
    expect(sample(waiting.text, 'ai_sessions_sessions', { state: 'running' })).toBeGreaterThanOrEqual(1);
    expect(sample(waiting.text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);

    socket.send('tool_approval_response', { request_id: 'toolu_m_yes', decision: 'y' });
    expect((await socket.waitFor('tool_approval_response_ack')).payload).toMatchObject({ accepted: true });
    await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request' && e.payload.request_id === 'toolu_m_no', WAIT);
    socket.send('tool_approval_response', { request_id: 'toolu_m_no', decision: 'n' });
    await socket.waitFor('tool_approval_response_ack', (p) => p.request_id === 'toolu_m_no');
    await h.waitForEvent(sessionId, (e) => e.type === 'result', WAIT);

    const worker = (await scrape(workerHttp.url)).text;
    expect(sample(worker, 'ai_sessions_session_start_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sample(worker, 'ai_sessions_tool_seconds_count', { tool: 'Bash', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(worker, 'ai_sessions_model_call_seconds_count', { outcome: 'ok' })).toBeGreaterThanOrEqual(3);
    expect(sample(worker, 'ai_sessions_model_tokens_total', { direction: 'input' })).toBeGreaterThanOrEqual(120);
    expect(sample(worker, 'ai_sessions_model_tokens_total', { direction: 'output' })).toBeGreaterThanOrEqual(30);
    expect(worker).toContain('# TYPE ai_sessions_reaper_removals_total counter');
    // The Temporal SDK's own, merged from its exporter.
    expect(worker).toMatch(/^temporal_activity_execution_latency\w*\{/m);
    expect(worker).toMatch(/^temporal_workflow_task_execution_latency\w*\{/m);

    await socket.close();
    const after = await scrape(gateway.url);
    expect(sample(after.text, 'ai_sessions_ws_clients')).toBe(0);
    expect(sample(after.text, 'ai_sessions_approvals_pending', { kind: 'approval' })).toBe(0);

    const trail = await callApi(gateway.url, 'GET', `/v1/audit?target=${sessionId}`, { token: alice });
    expect(trail.status).toBe(200);
    expect(trail.body.entries).toEqual([
      expect.objectContaining({
        action: 'session.deny_tool',
        actor: { type: 'user', id: 'alice' },
        target: { type: 'session', id: sessionId },
        details: { request_id: 'toolu_m_no', decision: 'n', via: 'websocket', tool_name: 'Bash', event_seq: expect.any(Number), input_sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
      }),
      expect.objectContaining({ action: 'session.approve_tool', details: expect.objectContaining({ request_id: 'toolu_m_yes', decision: 'y' }) }),
    ]);
    expect(Date.parse(trail.body.entries[0].at)).toBeGreaterThan(Date.now() - 5 * 60_000);
    expect((await callApi(gateway.url, 'GET', '/v1/audit', { token: bob })).body.entries).toEqual([]);
    await h.service.terminate(sessionId, 'user_requested');
    await h.waitForEnd(sessionId);
  });

  it('records an answered question without its text, and REST terminate and delete; filters and pages', async () => {
    const questions = [{ question: 'Which host?', options: [{ label: 'a' }, { label: 'b' }] }];
    h.fake.enqueue(toolUse('AskUserQuestion', { questions }, { id: 'toolu_m_q' }), text('Host a it is.'));
    const sessionId = await h.startSession({ ownerId: 'alice', prompt: 'pick', profile: { permission_mode: 'acceptEdits' } });
    await h.waitForEvent(sessionId, (e) => e.type === 'ask_user_question', WAIT);
    const socket = await openSocket(gateway.url, sessionId, alice);
    socket.send('ask_user_question_response', { request_id: 'toolu_m_q', answer: 'host a, password hunter2' });
    expect((await socket.waitFor('ask_user_question_response_ack')).payload).toMatchObject({ accepted: true });
    await h.waitForEvent(sessionId, (e) => e.type === 'result', WAIT);
    await socket.close();

    // Another user's token cannot act on it, and leaves no trace.
    expect((await callApi(gateway.url, 'DELETE', `/v1/sessions/${sessionId}`, { token: bob })).status).toBe(404);
    expect((await callApi(gateway.url, 'DELETE', `/v1/sessions/${sessionId}`, { token: alice })).status).toBe(200);
    await h.waitForEnd(sessionId);
    expect((await callApi(gateway.url, 'DELETE', `/v1/sessions/${sessionId}/record`, { token: alice })).status).toBe(200);

    const all = await callApi(gateway.url, 'GET', `/v1/audit?target=${sessionId}`, { token: alice });
    expect(all.body.entries.map((e: any) => e.action)).toEqual(['session.delete', 'session.terminate', 'session.answer_question']);
    expect(all.body.entries[1]).toMatchObject({ actor: { type: 'user', id: 'alice' }, details: { reason: 'user_requested' } });
    expect(all.raw).not.toContain('hunter2');

    const only = await callApi(gateway.url, 'GET', `/v1/audit?action=session.terminate&target_type=session&target=${sessionId}`, { token: alice });
    expect(only.body.entries).toHaveLength(1);
    const since = await callApi(gateway.url, 'GET', `/v1/audit?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`, { token: alice });
    expect(since.body.entries).toEqual([]);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await callApi(gateway.url, 'GET', `/v1/audit?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { token: alice });
      expect(page.body.entries.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.entries.map((e: any) => e.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(seen.length).toBeGreaterThanOrEqual(5);
    expect(new Set(seen).size).toBe(seen.length);

    expect((await callApi(gateway.url, 'GET', '/v1/audit?action=session.explode', { token: alice })).status).toBe(400);
    expect((await callApi(gateway.url, 'GET', '/v1/audit?cursor=nope', { token: alice })).status).toBe(400);
    // Ids are bigint: one past its maximum is refused here, not passed on to fail in the store.
    const cursorOf = (id: string) => Buffer.from(id).toString('base64url');
    for (const id of ['9223372036854775808', '9999999999999999999']) {
      const refused = await callApi(gateway.url, 'GET', `/v1/audit?cursor=${cursorOf(id)}`, { token: alice });
      expect(refused.status).toBe(400);
      expect(refused.body.error.message).toMatch(/^cursor: /);
    }
    const last = await callApi(gateway.url, 'GET', `/v1/audit?cursor=${cursorOf('9223372036854775807')}&limit=1`, { token: alice });
    expect(last.status).toBe(200);
    expect(last.body.entries).toHaveLength(1);
    expect((await callApi(gateway.url, 'GET', '/v1/audit')).status).toBe(401);
  });

  it('records org and administrator actions for that org only, and the admin reads everything', async () => {
    const admin = (method: string, path: string, body?: unknown) => callApi(gateway.url, method, path, { token: TEST_ADMIN_TOKEN, body });
    const acme = (await admin('POST', '/v1/admin/orgs', { name: 'acme' })).body;
    const other = (await admin('POST', '/v1/admin/orgs', { name: 'other' })).body;
    const key = (await admin('POST', `/v1/admin/orgs/${acme.org.id}/keys`, { name: 'rotated', revoke_others: true })).body.api_key as string;
    const org = (method: string, path: string, body?: unknown) => callApi(gateway.url, method, path, { token: key, body });

    expect((await org('PUT', `/v1/orgs/${acme.org.id}/hive/lookup/bad-hosts`, { data: { values: ['evil.test'] } })).status).toBe(201);
    expect((await org('DELETE', `/v1/orgs/${acme.org.id}/hive/lookup/bad-hosts`)).status).toBe(200);

    const sessionId = await h.startSession({ trigger: 'dr', ownerId: acme.org.id });
    await h.waitForEvent(sessionId, (e) => e.type === 'session_status' && e.payload.status === 'running', WAIT);
    expect((await org('DELETE', `/v1/org/sessions/${sessionId}`)).status).toBe(200);
    await h.waitForEnd(sessionId);

    const trail = await org('GET', '/v1/org/audit');
    expect(trail.status).toBe(200);
    const byAction = Object.fromEntries(trail.body.entries.map((e: any) => [e.action, e]));
    expect(Object.keys(byAction).sort()).toEqual(['hive.delete', 'org.create', 'org_key.create', 'org_key.revoke', 'session.terminate']);
    expect(byAction['org.create']).toMatchObject({ actor: { type: 'admin', id: 'admin' }, target: { type: 'org', id: acme.org.id } });
    expect(byAction['org_key.revoke'].details).toEqual({ revoked: 1 });
    expect(byAction['org_key.create'].details).toEqual({ name: 'rotated', key_prefix: key.slice(0, 14) });
    expect(byAction['hive.delete']).toMatchObject({ actor: { type: 'org', id: acme.org.id }, target: { type: 'hive_record', id: 'lookup/bad-hosts' } });
    expect(byAction['session.terminate']).toMatchObject({ actor: { type: 'org', id: acme.org.id }, target: { id: sessionId }, details: { reason: 'org_api_requested' } });
    // No key is ever in the trail, only a prefix too short to use.
    expect(trail.raw).not.toContain(key);
    expect(trail.raw).not.toContain(acme.api_key);

    const theirs = await callApi(gateway.url, 'GET', '/v1/org/audit', { token: other.api_key });
    expect(theirs.body.entries.map((e: any) => e.action)).toEqual(['org.create']);
    expect((await callApi(gateway.url, 'GET', '/v1/org/audit', { token: alice })).status).toBe(401);
    // The old key was revoked with the rotation.
    expect((await callApi(gateway.url, 'GET', '/v1/org/audit', { token: acme.api_key })).status).toBe(401);

    const everything = await admin('GET', `/v1/admin/audit?action=org.create&limit=500`);
    expect(everything.body.entries.map((e: any) => e.target.id)).toEqual(expect.arrayContaining([acme.org.id, other.org.id]));
    expect((await callApi(gateway.url, 'GET', '/v1/admin/audit', { token: alice })).status).toBe(401);
    expect((await callApi(gateway.url, 'GET', '/v1/admin/audit', { token: key })).status).toBe(401);
  });

  it('closes /metrics behind METRICS_TOKEN when it is set', async () => {
    const closed = await h.startGateway({ METRICS_TOKEN: 'metrics-token-0123456789' });
    expect((await scrape(closed.url)).status).toBe(401);
    expect((await scrape(closed.url, 'wrong-token-0123456789')).status).toBe(401);
    const open = await scrape(closed.url, 'metrics-token-0123456789');
    expect(open.status).toBe(200);
    expect(open.text).toContain('# TYPE ai_sessions_ws_clients gauge');

    // /readyz stays public, but only the token's holder sees each check's detail.
    const anonymous = await (await fetch(`${closed.url}/readyz`)).json();
    expect(anonymous).toEqual({ ready: true, checks: { temporal: { ok: true }, store: { ok: true }, docker: { ok: true } } });
    const detailed = await (await fetch(`${closed.url}/readyz`, { headers: { authorization: 'Bearer metrics-token-0123456789' } })).json() as any;
    expect(detailed.checks.store).toEqual({ name: 'store', ok: true, ms: expect.any(Number) });
  });

  it('the worker answers /healthz, and /readyz names the dependency that is down, its error only to the token holder and the log', async () => {
    const health = await fetch(`${workerHttp.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    const ready = await fetch(`${workerHttp.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, checks: { temporal: { ok: true }, store: { ok: true }, docker: { ok: true } } });

    const closedDb = await openDb({ pgliteDir: 'memory' });
    await closedDb.close();
    const lines: string[] = [];
    const log = createLogger('warn');
    jest.spyOn(log, 'warn').mockImplementation(((obj: unknown) => void lines.push(JSON.stringify(obj))) as never);
    const token = 'metrics-token-0123456789';
    const config = { ...h.config, metrics: { ...h.config.metrics, token } };
    const broken = await startWorkerHttp({ config, db: closedDb, connection, docker: h.docker, log, port: 0, host: '127.0.0.1' });
    try {
      const res = await fetch(`${broken.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ ready: false, checks: { store: { ok: false, code: 'unavailable' }, temporal: { ok: true }, docker: { ok: true } } });
      const [logged] = lines.map((l) => JSON.parse(l));
      expect(logged).toMatchObject({ check: 'store', code: 'unavailable', error: expect.any(String) });
      expect(logged.error.length).toBeGreaterThan(0);

      const operator = await fetch(`${broken.url}/readyz`, { headers: { authorization: `Bearer ${token}` } });
      expect(operator.status).toBe(503);
      expect(((await operator.json()) as any).checks.store).toMatchObject({ ok: false, code: 'unavailable', error: logged.error });
    } finally {
      await broken.stop();
    }
  });
});
