import { sessionContainers, type Harness, useHarness } from './support/harness';
import { message, text, toolUse, type RecordedRequest } from './support/fake-anthropic';
import { DockerSandboxes } from '../activities/docker-sandbox';
import type { StoredEvent } from '../store/events';

/**
 * Interrupts and the prompt queue on the real stack: an interrupt stops the running turn
 * (model stream or tool process), reports it, and leaves a conversation the model accepts.
 */

const WAIT = 60_000;

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = WAIT): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitForCount(h: Harness, sessionId: string, match: (e: StoredEvent) => boolean, n: number): Promise<StoredEvent[]> {
  return waitUntil(`${n} matching events in ${sessionId}`, async () => {
    const found = (await h.events(sessionId)).filter(match);
    return found.length >= n && found;
  });
}

const ofType = (events: StoredEvent[], type: string) => events.filter((e) => e.type === type);
const userTexts = (r: RecordedRequest): string[] =>
  (r.body.messages as any[])
    .filter((m) => m.role === 'user')
    .flatMap((m) => (typeof m.content === 'string' ? [m.content] : m.content.filter((b: any) => b.type === 'text').map((b: any) => b.text)));
/** The request whose newest user text is this prompt. */
const requestFor = (h: Harness, prompt: string) => h.fake.requests.find((r) => userTexts(r).at(-1) === prompt);

async function execInSandbox(h: Harness, sessionId: string, command: string) {
  const [c] = await sessionContainers(h.docker, sessionId);
  if (!c) throw new Error(`session ${sessionId} has no container`);
  return new DockerSandboxes(h.docker).exec(c.Id, ['bash', '-c', command], { maxOutputBytes: 64 * 1024 });
}

async function waitIdle(h: Harness, sessionId: string) {
  return waitUntil('the session to be idle', async () => {
    const s = await h.service.status(sessionId);
    return s.activity === 'idle' && s;
  });
}

async function endSession(h: Harness, sessionId: string) {
  await h.service.terminate(sessionId, 'user_requested').catch(() => undefined);
  return h.waitForEnd(sessionId);
}

describe('interrupting a session', () => {
  const h = useHarness();

  it('stops a slow model stream, reports an interrupted result, and answers the next prompt', async () => {
    const story = 'Once upon a time '.repeat(200);
    h.fake.enqueue(message([{ type: 'text', text: story }], { hangMs: 2_000, chunkDelayMs: 1_500 }), text('Short answer.'));
    const sessionId = await h.startSession({ prompt: 'tell me a long story' });
    await waitUntil('the model call', async () => h.fake.requests.length >= 1);
    expect((await h.service.status(sessionId)).activity).toBe('thinking');

    await expect(h.service.interrupt(sessionId)).resolves.toEqual({ interrupted: true });
    const [result] = await waitForCount(h, sessionId, (e) => e.type === 'result', 1);
    expect(result!.payload).toMatchObject({ success: false, summary: expect.stringMatching(/Interrupted/) });
    const idle = await waitIdle(h, sessionId);
    expect(idle).toMatchObject({ status: 'running', queuedPrompts: 0 });
    expect(idle.pending).toBeUndefined();
    // The stream was cut: the story never made it into the conversation.
    expect(ofType(await h.events(sessionId), 'assistant')).toHaveLength(0);

    await expect(h.service.prompt(sessionId, 'a short one then')).resolves.toMatchObject({ queued: false });
    const results = await waitForCount(h, sessionId, (e) => e.type === 'result', 2);
    expect(results[1]!.payload).toMatchObject({ success: true, summary: 'Short answer.' });
    // The model got a well-formed history holding both prompts and no half-finished story.
    const req = requestFor(h, 'a short one then')!;
    expect(req).toBeDefined();
    expect(userTexts(req)).toEqual(['tell me a long story', 'a short one then']);
    expect(JSON.stringify(req.body.messages)).not.toContain('Once upon a time');
    expect(h.fake.requests).toHaveLength(2);
    await endSession(h, sessionId);
  });

  it('kills a long Bash command inside the container and answers the tool_use with an error', async () => {
    h.fake.enqueue(
      toolUse('Bash', { command: 'sleep 30; echo never' }, { id: 'toolu_long_sleep' }),
      text('Moving on.'),
    );
    const sessionId = await h.startSession({ prompt: 'wait a long time' });
    await waitUntil('sleep 30 in the container', async () => {
      const ps = await execInSandbox(h, sessionId, 'ps -eo args').catch(() => undefined);
      return ps?.stdout.split('\n').some((l) => l.startsWith('sleep 30'));
    });
    expect((await h.service.status(sessionId)).activity).toBe('running_tool');

    await expect(h.service.interrupt(sessionId)).resolves.toEqual({ interrupted: true });
    const [result] = await waitForCount(h, sessionId, (e) => e.type === 'result', 1);
    expect(result!.payload).toMatchObject({ success: false, summary: expect.stringMatching(/Interrupted/) });
    await waitIdle(h, sessionId);

    // Nothing of the command is left running in the sandbox.
    await waitUntil('sleep 30 to be gone', async () => {
      const ps = await execInSandbox(h, sessionId, 'ps -eo args');
      return !ps.stdout.includes('sleep 30');
    });
    const pgrep = await execInSandbox(h, sessionId, 'pgrep -f "[s]leep 30" || echo none');
    expect(pgrep.stdout.trim()).toBe('none');

    await h.service.prompt(sessionId, 'what happened?');
    const results = await waitForCount(h, sessionId, (e) => e.type === 'result', 2);
    expect(results[1]!.payload).toMatchObject({ success: true, summary: 'Moving on.' });
    const req = requestFor(h, 'what happened?')!;
    expect(req).toBeDefined();
    const answered = (req.body.messages as any[])
      .flatMap((m) => (Array.isArray(m.content) ? m.content : []))
      .find((b: any) => b.type === 'tool_result' && b.tool_use_id === 'toolu_long_sleep');
    expect(answered).toMatchObject({ is_error: true });
    expect(JSON.stringify(answered)).not.toContain('never');
    expect(ofType(await h.events(sessionId), 'tool_result').filter((e) => !e.payload.is_error)).toHaveLength(0);
    await endSession(h, sessionId);
  });

  it('withdraws a pending approval on interrupt and answers its tool_use with an error', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'echo should-not-run' }, { id: 'toolu_interrupted_ask' }), text('Fine.'));
    const sessionId = await h.startSession({ prompt: 'ask me', profile: { permission_mode: 'acceptEdits' } });
    await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request', WAIT);
    expect((await h.service.status(sessionId)).pending).toMatchObject({ requestId: 'toolu_interrupted_ask' });

    await expect(h.service.interrupt(sessionId)).resolves.toEqual({ interrupted: true });
    const [result] = await waitForCount(h, sessionId, (e) => e.type === 'result', 1);
    expect(result!.payload).toMatchObject({ success: false, summary: expect.stringMatching(/Interrupted/) });
    const idle = await waitIdle(h, sessionId);
    expect(idle.pending).toBeUndefined();
    // The request is gone: a late answer is refused and runs nothing.
    await expect(h.service.approve(sessionId, 'toolu_interrupted_ask', 'y')).rejects.toThrow();

    await h.service.prompt(sessionId, 'never mind');
    const results = await waitForCount(h, sessionId, (e) => e.type === 'result', 2);
    expect(results[1]!.payload).toMatchObject({ success: true, summary: 'Fine.' });
    const answered = (requestFor(h, 'never mind')!.body.messages as any[])
      .flatMap((m) => (Array.isArray(m.content) ? m.content : []))
      .find((b: any) => b.type === 'tool_result' && b.tool_use_id === 'toolu_interrupted_ask');
    expect(answered).toMatchObject({ is_error: true });
    expect(ofType(await h.events(sessionId), 'tool_result')).toHaveLength(0);
    await endSession(h, sessionId);
  });

  it('reports nothing to interrupt while idle', async () => {
    const sessionId = await h.startSession();
    await waitIdle(h, sessionId);
    await expect(h.service.interrupt(sessionId)).resolves.toEqual({ interrupted: false });
    expect(ofType(await h.events(sessionId), 'result')).toHaveLength(0);
    expect((await h.service.status(sessionId)).status).toBe('running');
    await endSession(h, sessionId);
  });

  it('queues prompts sent during a turn and answers each in order, once', async () => {
    h.fake.enqueue(text('Answer one.', { hangMs: 5_000 }), text('Answer two.'), text('Answer three.'));
    const sessionId = await h.startSession({ prompt: 'prompt one' });
    await waitUntil('the first model call', async () => h.fake.requests.length >= 1);

    const second = await h.service.prompt(sessionId, 'prompt two');
    const third = await h.service.prompt(sessionId, 'prompt three');
    expect(second).toMatchObject({ queued: true });
    expect(third).toMatchObject({ queued: true });
    expect(third.position).toBeGreaterThan(second.position);
    expect((await h.service.status(sessionId)).queuedPrompts).toBe(2);

    await waitForCount(h, sessionId, (e) => e.type === 'result', 3);
    await waitIdle(h, sessionId);
    const events = await h.events(sessionId);
    expect(ofType(events, 'result').map((e) => e.payload.summary)).toEqual(['Answer one.', 'Answer two.', 'Answer three.']);
    expect(ofType(events, 'result').every((e) => e.payload.success === true)).toBe(true);
    expect(ofType(events, 'user').map((e) => e.payload.text)).toEqual(['prompt one', 'prompt two', 'prompt three']);
    // Each prompt got its own turn, after the answer to the one before.
    const kinds = events.filter((e) => e.type === 'user' || e.type === 'result').map((e) => e.type);
    expect(kinds).toEqual(['user', 'result', 'user', 'result', 'user', 'result']);
    expect(h.fake.requests).toHaveLength(3);
    expect(userTexts(h.fake.requests[2]!)).toEqual(['prompt one', 'prompt two', 'prompt three']);
    await endSession(h, sessionId);
  });

  it('queues a prompt resent with the same clientMessageId only once', async () => {
    h.fake.enqueue(text('First answer.', { hangMs: 5_000 }), text('Second answer.'), text('Third answer.'));
    const sessionId = await h.startSession();
    await waitIdle(h, sessionId);
    await h.service.prompt(sessionId, 'first prompt', 'msg-0');
    await waitUntil('the first model call', async () => h.fake.requests.length >= 1);

    const sent = await h.service.prompt(sessionId, 'second prompt', 'msg-1');
    expect(sent).toMatchObject({ queued: true });
    const resent = await h.service.prompt(sessionId, 'second prompt', 'msg-1');
    expect(resent.queued).toBe(false);
    expect((await h.service.status(sessionId)).queuedPrompts).toBe(1);

    await waitForCount(h, sessionId, (e) => e.type === 'result', 2);
    await waitIdle(h, sessionId);
    // A resend after the prompt ran is still the same message; a new id is a new prompt.
    await h.service.prompt(sessionId, 'second prompt', 'msg-1');
    await h.service.prompt(sessionId, 'third prompt', 'msg-2');
    await waitForCount(h, sessionId, (e) => e.type === 'result', 3);
    const events = await h.events(sessionId);
    expect(ofType(events, 'user').map((e) => e.payload.text)).toEqual(['first prompt', 'second prompt', 'third prompt']);
    expect(ofType(events, 'result').map((e) => e.payload.summary)).toEqual(['First answer.', 'Second answer.', 'Third answer.']);
    expect(h.fake.requests).toHaveLength(3);
    await endSession(h, sessionId);
  });
});
