import WebSocket from 'ws';
import { mintToken } from '../api/auth';
import { TEST_ADMIN_TOKEN, TEST_JWT_SECRET, useHarness, type Harness } from './support/harness';
import { callApi } from './support/http';
import { text } from './support/fake-anthropic';

type Gateway = Awaited<ReturnType<Harness['startGateway']>>;
type Frame = { type: string; seq?: number; payload: Record<string, unknown> };

/** Org-owned sessions over the org API and the read-only org WebSocket, as cli.md's `ai session` commands use them. */
describe('org sessions', () => {
  const h = useHarness();
  let gw: Gateway;
  const orgs: Array<{ id: string; key: string }> = [];
  const call = (method: string, path: string, token: string, body?: unknown) => callApi(gw.url, method, path, { token, body });
  const connect = (path: string, token: string) => {
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}${path}?token=${token}`);
    const frames: Frame[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Frame));
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    return { ws, frames, closed };
  };
  const until = async (check: () => boolean) => {
    const deadline = Date.now() + 60_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    gw = await h.startGateway();
    for (const name of ['watcher', 'stranger']) {
      const r = await call('POST', '/v1/admin/orgs', TEST_ADMIN_TOKEN, { name });
      orgs.push({ id: r.body.org.id, key: r.body.api_key });
    }
    await call('PUT', `/v1/orgs/${orgs[0].id}/hive/secret/anthropic-key`, orgs[0].key, { data: { secret: 'sk-ant-org-sessions' } });
  });

  it('lists, shows, streams read-only, terminates and replays an org session', async () => {
    const [org, stranger] = orgs;
    // A user session for the flow-user exists too and must not show up here.
    h.fake.setResponder(() => text('still thinking', { hangMs: 1500 }));
    const launched = await call('POST', `/v1/orgs/${org.id}/dr/start`, org.key, {
      rule_name: 'watch-rule',
      routing: { hostname: 'h1' },
      action: { action: 'start ai agent', prompt: 'Watch h1', anthropic_secret: 'hive://secret/anthropic-key', profile: { one_shot: false } },
    });
    const sessionId = launched.body.session_id as string;
    await h.waitForEvent(sessionId, (e) => e.type === 'session_status');

    const list = await call('GET', '/v1/org/sessions?status=running', org.key);
    expect(list.status).toBe(200);
    expect(list.body.sessions.map((s: { id: string }) => s.id)).toEqual([sessionId]);
    expect((await call('GET', '/v1/org/sessions', stranger.key)).body.sessions).toEqual([]);
    expect((await call('GET', '/v1/org/sessions', await mintToken(TEST_JWT_SECRET, { sub: 'user-1' }))).status).toBe(401);

    // Read-only stream with the org key; the owner endpoint and other keys are refused.
    const watch = connect(`/v1/ws/org/sessions/${sessionId}`, org.key);
    await until(() => watch.frames.some((f) => f.type === 'session_status'));
    watch.ws.send(JSON.stringify({ type: 'prompt', payload: { text: 'let me in' } }));
    await until(() => watch.frames.some((f) => f.type === 'error'));
    expect(watch.frames.find((f) => f.type === 'error')!.payload).toMatchObject({ code: 'read_only' });
    watch.ws.send(JSON.stringify({ type: 'heartbeat' }));
    await until(() => watch.frames.some((f) => f.type === 'heartbeat_ack'));
    expect(await connect(`/v1/ws/org/sessions/${sessionId}`, stranger.key).closed).toBe(4003);
    expect(await connect(`/v1/ws/org/sessions/${sessionId}`, await mintToken(TEST_JWT_SECRET, { sub: 'user-1' })).closed).toBe(4001);
    expect(await connect(`/v1/sessions/${sessionId}/ws`, await mintToken(TEST_JWT_SECRET, { sub: org.id })).closed).toBe(4003);

    await until(() => watch.frames.some((f) => f.type === 'result'));
    const got = await call('GET', `/v1/org/sessions/${sessionId}`, org.key);
    expect(got.body.session).toMatchObject({ id: sessionId, status: 'running', trigger: 'dr', trigger_rule: 'watch-rule', model: expect.any(String) });
    expect(got.body.session.output_tokens).toBeGreaterThan(0);
    expect((await call('GET', `/v1/org/sessions/${sessionId}`, stranger.key)).status).toBe(404);

    expect((await call('DELETE', `/v1/org/sessions/${sessionId}`, org.key)).body).toEqual({ terminated: true });
    expect(await watch.closed).toBe(4100);
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'org_api_requested' });
    expect((await call('DELETE', `/v1/org/sessions/${sessionId}`, org.key)).status).toBe(409);

    const history = await call('GET', `/v1/org/sessions/${sessionId}/history`, org.key);
    const stored = await h.events(sessionId);
    expect(history.body.events.map((e: Frame) => e.seq)).toEqual(stored.map((e) => e.seq));
    expect(history.body.events.at(-1)).toMatchObject({ type: 'session_end', payload: { reason: 'org_api_requested' } });
  });
});
