import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TEST_ADMIN_TOKEN, useHarness, type Harness } from './support/harness';
import { decodedHistoryText } from './support/history';
import { callApi } from './support/http';
import { text } from './support/fake-anthropic';
import { SIGNATURE_HEADER, verifyWebhookSignature } from '../lib/webhook-signature';

type Gateway = Awaited<ReturnType<Harness['startGateway']>>;
type Received = { path: string; headers: http.IncomingHttpHeaders; body: string };

/** A webhook receiver on a port chosen at run time, answering from a script of status codes. */
async function startReceiver() {
  const received: Received[] = [];
  let script: number[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(script.shift() ?? 200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    received,
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    answer(codes: number[]) { script = [...codes]; },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const until = async <T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('org outputs: webhooks for ended sessions', () => {
  const h = useHarness({
    env: {
      OUTPUT_ALLOW_PRIVATE: 'true',
      OUTPUT_RETRY_INITIAL_SECONDS: '0.2',
      OUTPUT_RETRY_MAX_SECONDS: '0.5',
      OUTPUT_MAX_ATTEMPTS: '3',
      OUTPUT_TIMEOUT_SECONDS: '2',
    },
  });
  let gw: Gateway;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const org = { id: '', key: '' };
  const other = { id: '', key: '' };
  const call = (method: string, path: string, body?: unknown, token = org.key) => callApi(gw.url, method, path, { token, body });
  const launch = async (prompt: string) => {
    const r = await call('POST', `/v1/orgs/${org.id}/dr/start`, {
      rule_name: 'hook-rule',
      routing: { hostname: 'ws-7' },
      action: { action: 'start ai agent', prompt, anthropic_secret: 'hive://secret/anthropic-key' },
    });
    expect(r.status).toBe(201);
    return r.body.session_id as string;
  };
  const deliveriesOf = async (output: string, sessionId: string) =>
    (await call('GET', `/v1/orgs/${org.id}/outputs/${output}/deliveries?session_id=${sessionId}`)).body.deliveries as Array<{
      id: string; status: string; attempts: Array<{ status_code?: number; error?: string }>; last_error: string | null;
    }>;
  const settled = (output: string, sessionId: string, status: string) =>
    until(async () => (await deliveriesOf(output, sessionId)).find((d) => d.status === status));

  beforeAll(async () => {
    gw = await h.startGateway();
    receiver = await startReceiver();
    for (const [name, target] of [['hooks', org], ['elsewhere', other]] as const) {
      const r = await callApi(gw.url, 'POST', '/v1/admin/orgs', { token: TEST_ADMIN_TOKEN, body: { name } });
      Object.assign(target, { id: r.body.org.id, key: r.body.api_key });
    }
    await call('PUT', `/v1/orgs/${org.id}/hive/secret/anthropic-key`, { data: { secret: 'sk-ant-outputs-test' } });
    await call('PUT', `/v1/orgs/${org.id}/hive/secret/hook-signing`, { data: { secret: 'hive-signing-secret-0123456789' } });
  });
  afterAll(async () => receiver?.close());

  it('validates outputs field by field and changes nothing on bad input', async () => {
    const base = `/v1/orgs/${org.id}/outputs`;
    const cases: Array<[unknown, RegExp]> = [
      [{}, /url: required/],
      [{ url: 'ftp://example.com/hook' }, /url: must be an http/],
      [{ url: 'not a url' }, /url/],
      [{ url: receiver.url('/x'), secret: 'short' }, /secret: must be hive:\/\/secret\/NAME or a literal/],
      [{ url: receiver.url('/x'), secret: 'hive://secret/missing' }, /secret: hive:\/\/secret\/missing does not exist/],
      [{ url: receiver.url('/x'), colour: 'red' }, /colour/],
      [{ url: receiver.url('/x'), type: 'syslog' }, /type/],
    ];
    for (const [body, message] of cases) {
      const r = await call('PUT', `${base}/bad`, body);
      expect(r.status).toBe(400);
      expect(r.body.error.message).toMatch(message);
    }
    expect((await call('PUT', `${base}/bad..name!`, { url: receiver.url('/x') })).status).toBe(400);
    expect((await call('GET', base)).body.outputs).toEqual([]);
    expect((await call('GET', base, undefined, other.key)).status).toBe(403);
  });

  it('signs, retries with backoff and records every attempt until the receiver takes it', async () => {
    const created = await call('PUT', `/v1/orgs/${org.id}/outputs/siem`, { url: receiver.url('/hook?token=path-token-123') });
    expect(created.status).toBe(201);
    const secret = created.body.signing_secret as string;
    expect(secret).toMatch(/^whsec_/);
    const shown = await call('GET', `/v1/orgs/${org.id}/outputs/siem`);
    expect(shown.body.output).toMatchObject({ name: 'siem', type: 'webhook', enabled: true, include_transcript: true, signing_secret: 'stored' });
    expect(shown.raw).not.toContain(secret);
    expect(shown.raw).not.toContain('path-token-123');
    // Replacing without url or secret keeps them (the secret is not shown again).
    const replaced = await call('PUT', `/v1/orgs/${org.id}/outputs/siem`, { include_transcript: true });
    expect(replaced.status).toBe(200);
    expect(replaced.body.signing_secret).toBeUndefined();

    receiver.answer([500, 503]);
    h.fake.setResponder(() => text('No sign of lateral movement on ws-7.'));
    const sessionId = await launch('Check ws-7 for lateral movement');
    const done = await settled('siem', sessionId, 'delivered');
    expect(done.attempts.map((a) => a.status_code)).toEqual([500, 503, 200]);

    const mine = receiver.received.filter((r) => r.body.includes(sessionId));
    expect(mine).toHaveLength(3);
    for (const r of mine) {
      expect(r.path).toBe('/hook?token=path-token-123');
      expect(r.headers['x-ai-sessions-delivery']).toBe(done.id);
      expect(r.headers['x-ai-sessions-event']).toBe('session.ended');
      expect(verifyWebhookSignature(secret, r.headers[SIGNATURE_HEADER] as string, r.body)).toEqual({ ok: true });
      expect(verifyWebhookSignature('whsec_wrong', r.headers[SIGNATURE_HEADER] as string, r.body).ok).toBe(false);
    }
    const payload = JSON.parse(mine[2].body);
    expect(payload).toMatchObject({
      type: 'session.ended',
      delivery_id: done.id,
      org_id: org.id,
      summary: 'No sign of lateral movement on ws-7.',
      success: true,
      session: { id: sessionId, status: 'ended', end_reason: 'completed', trigger: 'dr', trigger_rule: 'hook-rule' },
    });
    // The session as the org API shows it, usage figures included: the receiver needs no second call.
    const asShown = await call('GET', `/v1/org/sessions/${sessionId}`);
    expect(payload.session).toEqual(asShown.body.session);
    expect(payload.session).toMatchObject({ model_calls: 1, runtime_minutes: expect.any(Number), total_cost_usd: expect.any(Number) });
    const types = payload.transcript.map((e: { type: string }) => e.type);
    expect(types[0]).toBe('session_status');
    expect(types).toEqual(expect.arrayContaining(['user', 'assistant', 'result', 'session_end']));
    // The transcript is the session's whole stored history, in order.
    const history = await call('GET', `/v1/org/sessions/${sessionId}/history`);
    expect(payload.transcript.map((e: { seq: number }) => e.seq)).toEqual(history.body.events.map((e: { seq: number }) => e.seq));

    // Neither the signing secret nor the URL's token is in the delivery workflow's history.
    const wf = h.client.workflow.getHandle(`outputs-${sessionId}`);
    expect((await wf.result()).delivered).toBe(1);
    const historyJson = await decodedHistoryText(h, `outputs-${sessionId}`);
    expect(historyJson).not.toContain(secret);
    expect(historyJson).not.toContain('path-token-123');
  });

  it('gives up after the attempt limit, says why, and delivers again on request', async () => {
    await call('PUT', `/v1/orgs/${org.id}/outputs/siem`, { enabled: false });
    const put = await call('PUT', `/v1/orgs/${org.id}/outputs/flaky`, {
      url: receiver.url('/flaky'), secret: 'hive://secret/hook-signing', include_transcript: false,
    });
    expect(put.status).toBe(201);
    expect(put.body.signing_secret).toBeUndefined();
    expect(put.body.output.signing_secret).toBe('hive://secret/hook-signing');

    receiver.answer([500, 500, 500]);
    h.fake.setResponder(() => text('Quarantine recommended.'));
    const sessionId = await launch('Assess the alert');
    const failed = await settled('flaky', sessionId, 'failed');
    expect(failed.attempts.map((a) => a.status_code)).toEqual([500, 500, 500]);
    expect(failed.last_error).toMatch(/HTTP 500/);
    // A disabled output gets no delivery at all.
    expect(await deliveriesOf('siem', sessionId)).toEqual([]);

    const again = await call('POST', `/v1/orgs/${org.id}/deliveries/${failed.id}/redeliver`);
    expect(again.status).toBe(202);
    const done = await settled('flaky', sessionId, 'delivered');
    expect(done.attempts.map((a) => a.status_code)).toEqual([500, 500, 500, 200]);
    const last = receiver.received.filter((r) => r.path === '/flaky' && r.body.includes(sessionId)).pop()!;
    expect(verifyWebhookSignature('hive-signing-secret-0123456789', last.headers[SIGNATURE_HEADER] as string, last.body).ok).toBe(true);
    const body = JSON.parse(last.body);
    expect(body.summary).toBe('Quarantine recommended.');
    expect(body.transcript).toBeUndefined();

    expect((await call('POST', `/v1/orgs/${org.id}/deliveries/${failed.id}/redeliver`, undefined, other.key)).status).toBe(403);
    expect((await call('POST', `/v1/orgs/${org.id}/deliveries/dlv_nope/redeliver`)).status).toBe(404);
    expect((await call('DELETE', `/v1/orgs/${org.id}/outputs/flaky`)).status).toBe(200);
    expect((await call('DELETE', `/v1/orgs/${org.id}/outputs/flaky`)).status).toBe(404);
  });
});
