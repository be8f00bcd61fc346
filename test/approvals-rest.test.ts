import { createHash } from 'node:crypto';
import { TEST_JWT_SECRET, useHarness, type Harness } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';
import { callApi } from './support/http';
import { mintToken } from '../api/auth';

/**
 * Approvals and questions answered over REST, as a SOAR playbook would: the
 * open request is listed with what it asks, a wrong answer is refused with a
 * reason and changes nothing, the right one lets the session go on, and the
 * audit trail records who answered and how.
 */
const WAIT = 60_000;

describe('approvals and questions over REST', () => {
  let gw: Awaited<ReturnType<Harness['startGateway']>>;
  let alice: string;
  let bob: string;
  const h = useHarness({ env: { APPROVAL_TIMEOUT_SECONDS: '60' } });

  beforeAll(async () => {
    gw = await h.startGateway();
    alice = await mintToken(TEST_JWT_SECRET, { sub: 'alice', email: 'alice@example.com' });
    bob = await mintToken(TEST_JWT_SECRET, { sub: 'bob', email: 'bob@example.com' });
  });

  const api = (method: string, path: string, token: string, body?: unknown) => callApi(gw.url, method, path, { token, body });
  const toolResult = async (id: string, toolUseId: string) =>
    (await h.waitForEvent(id, (e) => e.type === 'tool_result' && e.payload.tool_use_id === toolUseId, WAIT)).payload;

  it('lists the open approval with its input, refuses wrong answers, and accepts the right one once', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'echo approved-over-rest' }, { id: 'toolu_rest' }), text('Done.'));
    const id = await h.startSession({ prompt: 'run it', ownerId: 'alice', profile: { permission_mode: 'acceptEdits', one_shot: true } });
    await h.waitForEvent(id, (e) => e.type === 'tool_approval_request', WAIT);

    const pending = await api('GET', `/v1/sessions/${id}/pending`, alice);
    expect(pending.status).toBe(200);
    expect(pending.body.pending).toEqual({
      kind: 'approval',
      request_id: 'toolu_rest',
      tool_name: 'Bash',
      expires_at: expect.any(String),
      input: { command: 'echo approved-over-rest' },
      options: ['y', 'n', 'session'],
    });
    // Someone else's session does not exist for them.
    expect((await api('GET', `/v1/sessions/${id}/pending`, bob)).status).toBe(404);
    expect((await api('POST', `/v1/sessions/${id}/approvals/toolu_rest`, bob, { decision: 'y' })).status).toBe(404);

    const bad = [
      [{ decision: 'yes' }, 400, /decision: must be one of y, n, session/],
      [{ decision: 'y', extra: 1 }, 400, /extra/],
      [{}, 400, /decision/],
    ] as const;
    for (const [body, status, message] of bad) {
      const r = await api('POST', `/v1/sessions/${id}/approvals/toolu_rest`, alice, body);
      expect({ status: r.status, message: r.body.error.message }).toEqual({ status, message: expect.stringMatching(message) });
    }
    const badId = await api('POST', `/v1/sessions/${id}/approvals/${encodeURIComponent('../x')}`, alice, { decision: 'y' });
    expect(badId.status).toBe(400);
    const wrong = await api('POST', `/v1/sessions/${id}/approvals/toolu_other`, alice, { decision: 'y' });
    expect(wrong.status).toBe(409);
    expect(wrong.body.error).toMatchObject({ code: 'request_not_pending', message: expect.stringMatching(/no pending approval toolu_other/) });
    // A question's endpoint does not answer an approval.
    expect((await api('POST', `/v1/sessions/${id}/questions/toolu_rest`, alice, { answer: 'y' })).body.error.code).toBe('request_not_pending');
    // Nothing above changed anything: still waiting on the same request.
    expect((await h.service.status(id)).pending).toMatchObject({ kind: 'approval', requestId: 'toolu_rest' });

    const ok = await api('POST', `/v1/sessions/${id}/approvals/toolu_rest`, alice, { decision: 'y' });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ request_id: 'toolu_rest', decision: 'y', accepted: true });
    expect(String((await toolResult(id, 'toolu_rest')).content)).toContain('approved-over-rest');
    const again = await api('POST', `/v1/sessions/${id}/approvals/toolu_rest`, alice, { decision: 'y' });
    expect(again.status).toBe(409);
    // Watchers learn of the answer at once (the tool's result may come much later), and only once.
    const answered = (await h.events(id)).filter((e) => e.type === 'system' && e.payload.subtype === 'request_answered');
    expect(answered.map((e) => e.payload)).toEqual([{ subtype: 'request_answered', request_id: 'toolu_rest', kind: 'approval', decision: 'y', via: 'rest' }]);

    await h.waitForEnd(id);
    expect((await api('GET', `/v1/sessions/${id}/pending`, alice)).body).toEqual({ pending: null });
    const ended = await api('POST', `/v1/sessions/${id}/approvals/toolu_rest`, alice, { decision: 'n' });
    expect(ended.body.error).toMatchObject({ code: 'session_not_running' });

    const trail = await api('GET', `/v1/audit?target=${id}`, alice);
    expect(trail.body.entries).toEqual([
      expect.objectContaining({
        action: 'session.approve_tool',
        actor: { type: 'user', id: 'alice' },
        // What was approved: the tool, its request event, and a hash of its input that outlives the events.
        details: {
          request_id: 'toolu_rest', decision: 'y', via: 'rest', tool_name: 'Bash', event_seq: expect.any(Number),
          input_sha256: createHash('sha256').update(JSON.stringify({ command: 'echo approved-over-rest' })).digest('hex'),
        },
      }),
    ]);
  });

  it('answers a question: listed with its questions, the answer reaches the model, its text stays out of the trail', async () => {
    const questions = [{ question: 'Which host?', options: [{ label: 'web-01' }, { label: 'db-01' }] }];
    h.fake.enqueue(toolUse('AskUserQuestion', { questions }, { id: 'toolu_ask' }), text('Going with db-01.'));
    const id = await h.startSession({ prompt: 'pick a host', ownerId: 'alice', profile: { permission_mode: 'acceptEdits', one_shot: true } });
    await h.waitForEvent(id, (e) => e.type === 'ask_user_question', WAIT);

    const pending = await api('GET', `/v1/sessions/${id}/pending`, alice);
    expect(pending.body.pending).toMatchObject({ kind: 'question', request_id: 'toolu_ask', tool_name: 'AskUserQuestion', questions });
    expect((await api('POST', `/v1/sessions/${id}/questions/toolu_ask`, alice, { answer: '' })).status).toBe(400);
    expect((await api('POST', `/v1/sessions/${id}/approvals/toolu_ask`, alice, { decision: 'y' })).body.error.code).toBe('request_not_pending');

    const ok = await api('POST', `/v1/sessions/${id}/questions/toolu_ask`, alice, { answer: 'db-01, secret-answer-text' });
    expect(ok.body).toEqual({ request_id: 'toolu_ask', accepted: true });
    expect(await toolResult(id, 'toolu_ask')).toMatchObject({ is_error: false, content: 'db-01, secret-answer-text' });
    await h.waitForEnd(id);

    const trail = await api('GET', `/v1/audit?target=${id}`, alice);
    expect(trail.body.entries.map((e: { action: string }) => e.action)).toEqual(['session.answer_question']);
    expect(trail.raw).not.toContain('secret-answer-text');
  });

  it('serves the owner the session history in order, paged with after and limit; others get 404, bad queries 400', async () => {
    h.fake.enqueue(text('History over REST.'));
    const id = await h.startSession({ prompt: 'say something', ownerId: 'alice', profile: { permission_mode: 'acceptEdits', one_shot: true } });
    await h.waitForEnd(id);
    const stored = await h.events(id);
    expect(stored.length).toBeGreaterThanOrEqual(3);

    const all = await api('GET', `/v1/sessions/${id}/history`, alice);
    expect(all.status).toBe(200);
    expect(all.body.events.map((e: { seq: number }) => e.seq)).toEqual(stored.map((e) => e.seq));
    expect(all.body.events[0]).toEqual({ type: stored[0].type, seq: stored[0].seq, timestamp: expect.any(String), session_id: id, payload: stored[0].payload });
    expect(all.body.events.at(-1)).toMatchObject({ type: 'session_end' });
    expect(all.body.next_after).toBeNull();

    // Page through two at a time: every event once, in order.
    const paged: number[] = [];
    let after = 0;
    for (let pages = 0; pages < 100; pages++) {
      const r = await api('GET', `/v1/sessions/${id}/history?after=${after}&limit=2`, alice);
      expect(r.status).toBe(200);
      paged.push(...r.body.events.map((e: { seq: number }) => e.seq));
      if (r.body.next_after === null) break;
      expect(r.body.events).toHaveLength(2);
      after = r.body.next_after;
    }
    expect(paged).toEqual(stored.map((e) => e.seq));

    expect((await api('GET', `/v1/sessions/${id}/history`, bob)).status).toBe(404);
    const bad = [
      ['limit=0', /limit/],
      ['limit=5001', /limit/],
      ['after=-1', /after/],
      ['after=x', /after/],
      ['since=1', /unknown field since/],
    ] as const;
    for (const [query, message] of bad) {
      const r = await api('GET', `/v1/sessions/${id}/history?${query}`, alice);
      expect({ query, status: r.status, message: r.body.error.message }).toEqual({ query, status: 400, message: expect.stringMatching(message) });
    }
  });
});
