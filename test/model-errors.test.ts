import { PassThrough } from 'node:stream';
import { sessionContainers, TEST_KEY, type Harness, useHarness } from './support/harness';
import { decodedHistoryText } from './support/history';
import { apiError, text, toolUse, type ErrorReply } from './support/fake-anthropic';
import { getSession } from '../store/sessions';
import type { StoredEvent } from '../store/events';
import type { EndReason } from '../lib/end-reasons';
import { sessionWorkflowId } from '../workflows/messages';

/**
 * How the engine treats the model API's errors: transient ones are retried by
 * the activity's policy without duplicating anything; authentication and
 * request errors end the session at once, and the API key leaks nowhere.
 */

const ONE_SHOT = { permission_mode: 'bypassPermissions', one_shot: true } as const;

const ofType = (events: StoredEvent[], type: StoredEvent['type']) => events.filter((e) => e.type === type);

/** The end as the workflow, the event stream and the sessions row tell it; no container is left. */
async function expectEnded(h: Harness, sessionId: string, reason: EndReason) {
  const outcome = await h.waitForEnd(sessionId);
  expect(outcome.endReason).toBe(reason);
  const events = await h.events(sessionId);
  expect(ofType(events, 'session_end').map((e) => e.payload.reason)).toEqual([reason]);
  expect(events.at(-1)!.type).toBe('session_end');
  const row = (await getSession(h.db, sessionId))!;
  expect(row).toMatchObject({ status: 'ended', end_reason: reason });
  expect(await sessionContainers(h.docker, sessionId)).toHaveLength(0);
  return { outcome, events, row };
}

/** The conversation each recorded request carried: equal for two requests of the same turn. */
const conversations = (h: Harness) => h.fake.requests.map((r) => JSON.stringify(r.body.messages));

/** The workflow's history as text, payload bytes decoded, so a secret in it would show. */
async function historyText(h: Harness, sessionId: string): Promise<string> {
  return decodedHistoryText(h, sessionWorkflowId(sessionId));
}

describe('model API errors', () => {
  const h = useHarness();

  describe('transient errors are retried and the answer arrives once', () => {
    it.each<[string, ErrorReply]>([
      ['429 rate limited (retry-after 2 s)', apiError(429, { retryAfterSeconds: 2 })],
      ['529 overloaded', apiError(529)],
      ['500 internal error', apiError(500)],
    ])('%s, then success', async (_name, error) => {
      h.fake.enqueue(error, text('Recovered answer.'));
      const sessionId = await h.startSession({ prompt: 'Hello', profile: ONE_SHOT });

      const { events } = await expectEnded(h, sessionId, 'completed');
      // The same turn was asked for twice: the failed request, then the retry.
      expect(h.fake.requests).toHaveLength(2);
      expect(new Set(conversations(h)).size).toBe(1);
      if (error.retryAfterSeconds) {
        // The server's retry-after is honoured (a lower bound, longer than the policy's own 1 s first backoff).
        expect(h.fake.requests[1].receivedAt - h.fake.requests[0].receivedAt).toBeGreaterThanOrEqual(error.retryAfterSeconds * 1000);
      }
      expect(ofType(events, 'assistant').map((e) => e.payload.content)).toEqual([[{ type: 'text', text: 'Recovered answer.' }]]);
      expect(ofType(events, 'usage_delta')).toHaveLength(1);
      expect(ofType(events, 'result').map((e) => e.payload)).toEqual([
        expect.objectContaining({ success: true, turns: 1, summary: 'Recovered answer.' }),
      ]);
      expect(ofType(events, 'session_error')).toHaveLength(0);
    });

    it('retries a later turn without running the earlier tool call again', async () => {
      h.fake.enqueue(
        toolUse('Bash', { command: 'echo looked' }, { text: 'Let me look.' }),
        apiError(529),
        apiError(429, { retryAfterMs: 100 }),
        text('Found it.'),
      );
      const sessionId = await h.startSession({ prompt: 'Investigate', profile: ONE_SHOT });

      const { events } = await expectEnded(h, sessionId, 'completed');
      expect(h.fake.requests).toHaveLength(4);
      const [first, ...secondTurn] = conversations(h);
      expect(new Set(secondTurn).size).toBe(1);
      expect(secondTurn[0]).not.toBe(first);
      expect(ofType(events, 'tool_result').map((e) => e.payload)).toEqual([
        expect.objectContaining({ is_error: false, content: 'looked\n' }),
      ]);
      expect(ofType(events, 'assistant').map((e) => e.payload.content)).toEqual([
        [{ type: 'text', text: 'Let me look.' }],
        [{ type: 'text', text: 'Found it.' }],
      ]);
      expect(ofType(events, 'result').map((e) => e.payload)).toEqual([
        expect.objectContaining({ success: true, turns: 2, summary: 'Found it.' }),
      ]);
    });
  });

  describe('errors that retrying cannot fix end the session at once', () => {
    // The error bodies echo the key, as a misbehaving proxy might: it must still appear nowhere.
    it.each<[string, ErrorReply, RegExp]>([
      ['401 authentication', apiError(401, { message: `invalid x-api-key ${TEST_KEY}` }), /authentication failed: the credential was rejected.*401.*authentication_error/],
      ['403 permission', apiError(403, { message: `key ${TEST_KEY} may not use this model` }), /permission denied.*403.*permission_error/],
      ['400 invalid request', apiError(400, { message: `messages: bad request (key ${TEST_KEY})` }), /400.*invalid_request_error/],
    ])('%s → failed, not retried, and the key is not leaked', async (_name, error, explained) => {
      h.fake.enqueue(error);
      const sessionId = await h.startSession({ prompt: 'Hello', profile: ONE_SHOT });

      const { outcome, events, row } = await expectEnded(h, sessionId, 'failed');
      expect(h.fake.requests).toHaveLength(1);
      // The key was sent, so its absence below means something.
      expect(h.fake.requests[0].headers.authorization).toBe(`Bearer ${TEST_KEY}`);

      const errors = ofType(events, 'session_error');
      expect(errors).toHaveLength(1);
      expect(errors[0].payload.error).toMatch(explained);
      expect(row.error_message).toMatch(explained);
      expect(outcome.errorMessage).toMatch(explained);
      expect(row.exit_code).toBe(1);
      expect(ofType(events, 'result').map((e) => e.payload)).toEqual([
        expect.objectContaining({ success: false, summary: expect.stringMatching(explained) }),
      ]);

      const history = await historyText(h, sessionId);
      expect(history).toContain(sessionId); // payloads were decoded
      expect(history).toMatch(explained);
      for (const place of [JSON.stringify(events), row.error_message, JSON.stringify(outcome), history]) {
        expect(place).not.toContain(TEST_KEY);
        expect(place).not.toContain(TEST_KEY.slice('sk-ant-'.length));
      }
    });
  });

  it('sends the key to the model API only: the sandbox environment does not hold it', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'env' }), text('Printed the environment.'));
    const sessionId = await h.startSession();
    await h.waitForEvent(sessionId, (e) => e.type === 'session_status' && e.payload.status === 'running');
    const [container] = await sessionContainers(h.docker, sessionId);

    const inspected = await h.docker.getContainer(container.Id).inspect();
    const direct = await execOutput(h, container.Id, ['env']);
    expect(direct).toMatch(/^PATH=/m);

    await h.service.prompt(sessionId, 'Print the environment');
    const toolResult = await h.waitForEvent(sessionId, (e) => e.type === 'tool_result');
    expect(toolResult.payload).toMatchObject({ is_error: false, content: expect.stringMatching(/^HOME=/m) });
    await h.waitForEvent(sessionId, (e) => e.type === 'result');

    for (const env of [JSON.stringify(inspected.Config.Env), direct, String(toolResult.payload.content)]) {
      expect(env).not.toMatch(/sk-ant-/);
    }
    expect(h.fake.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${TEST_KEY}`, `Bearer ${TEST_KEY}`]);

    await h.service.terminate(sessionId, 'user_requested');
    await expectEnded(h, sessionId, 'user_requested');
  });
});

/** Runs argv in the container as the sandbox user; stdout and stderr together. */
async function execOutput(h: Harness, containerId: string, argv: string[]): Promise<string> {
  const exec = await h.docker.getContainer(containerId).exec({ Cmd: argv, AttachStdout: true, AttachStderr: true, User: '1000:1000' });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  h.docker.modem.demuxStream(stream, out, out);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  return Buffer.concat(chunks).toString('utf8');
}
