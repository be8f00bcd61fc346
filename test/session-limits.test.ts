import { sessionContainers, type Harness, useHarness } from './support/harness';
import { message, text, toolUse } from './support/fake-anthropic';
import { billedPeriods } from '../store/metering';
import { getSession, type SessionRow } from '../store/sessions';
import type { StoredEvent } from '../store/events';
import type { EndReason } from '../lib/end-reasons';

/**
 * How sessions end: turn, budget and time limits, termination, one-shot
 * sessions, billing of the sandbox's lifetime, and prompts after the end.
 */

const BYPASS = { permission_mode: 'bypassPermissions' } as const;

const ofType = (events: StoredEvent[], type: StoredEvent['type']) => events.filter((e) => e.type === type);

/**
 * The end is recorded everywhere it should be: the workflow's outcome, one
 * `session_end` event as the last event, the sessions row; no container is left.
 */
async function expectEnded(h: Harness, sessionId: string, reason: EndReason) {
  const outcome = await h.waitForEnd(sessionId);
  expect(outcome.endReason).toBe(reason);
  const events = await h.events(sessionId);
  const ends = ofType(events, 'session_end');
  expect(ends).toHaveLength(1);
  expect(ends[0].payload).toMatchObject({ reason });
  expect(events.at(-1)!.type).toBe('session_end');
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  const row = (await getSession(h.db, sessionId))!;
  expect(row).toMatchObject({ status: 'ended', activity: 'ended', end_reason: reason });
  expect(await sessionContainers(h.docker, sessionId)).toHaveLength(0);
  return { outcome, events, row };
}

/** Exactly one `result` event, for the (only) prompt; returns its payload. */
function onlyResult(events: StoredEvent[]) {
  const results = ofType(events, 'result');
  expect(results).toHaveLength(1);
  return results[0].payload;
}

/** Resolves when the session's sandbox is up (the session is running and waiting for work). */
const waitRunning = (h: Harness, sessionId: string) =>
  h.waitForEvent(sessionId, (e) => e.type === 'session_status' && e.payload.status === 'running');

const seconds = (row: SessionRow) => (Date.parse(row.terminated_at!) - Date.parse(row.created_at)) / 1000;

describe('session limits, termination and billing', () => {
  const h = useHarness();

  describe('max_turns', () => {
    it('stops a model that keeps calling tools after exactly max_turns model requests', async () => {
      h.fake.setResponder((_req, i) => toolUse('Bash', { command: `echo call-${i}` }));
      const sessionId = await h.startSession({ prompt: 'Loop forever', profile: { ...BYPASS, max_turns: 2 } });

      const { events } = await expectEnded(h, sessionId, 'max_turns_reached');
      expect(h.fake.requests).toHaveLength(2);
      // The first call ran; the second was never executed once the limit was hit.
      expect(ofType(events, 'tool_use')).toHaveLength(2);
      expect(ofType(events, 'tool_result')).toHaveLength(1);
      expect(onlyResult(events)).toMatchObject({ success: false, turns: 2, summary: expect.stringMatching(/limit of 2 turns/) });
    });

    it('reports the final text answer as a success, then ends at the limit', async () => {
      h.fake.enqueue(text('The answer is 42.'));
      const sessionId = await h.startSession({ prompt: 'Answer', profile: { ...BYPASS, max_turns: 1 } });

      const { events } = await expectEnded(h, sessionId, 'max_turns_reached');
      expect(h.fake.requests).toHaveLength(1);
      expect(onlyResult(events)).toMatchObject({ success: true, turns: 1, summary: 'The answer is 42.' });
      // The result comes before the end.
      expect(events.findIndex((e) => e.type === 'result')).toBeLessThan(events.findIndex((e) => e.type === 'session_end'));
    });
  });

  it('ends at max_budget_usd once a reply costs more than the budget', async () => {
    const budget = 0.0001;
    h.fake.enqueue(
      message([{ type: 'tool_use', name: 'Bash', input: { command: 'echo expensive' } }], {
        usage: { input_tokens: 100000, output_tokens: 1000, cache_creation_input_tokens: 2000, cache_read_input_tokens: 3000 },
      }),
    );
    const sessionId = await h.startSession({ prompt: 'Spend', profile: { ...BYPASS, max_budget_usd: budget } });

    const { events } = await expectEnded(h, sessionId, 'max_budget_exceeded');
    expect(h.fake.requests).toHaveLength(1);
    const usage = ofType(events, 'usage_delta');
    expect(usage).toHaveLength(1);
    // Input counts cache writes and reads too, and says how many of each.
    expect(usage[0].payload).toMatchObject({ input_tokens: 105000, cache_creation_input_tokens: 2000, cache_read_input_tokens: 3000, output_tokens: 1000 });
    expect(usage[0].payload.cost_usd).toBeGreaterThan(budget);
    // The tool the expensive reply asked for is not run.
    expect(ofType(events, 'tool_result')).toHaveLength(0);
    const result = onlyResult(events);
    expect(result).toMatchObject({ success: false, summary: expect.stringMatching(/budget/) });
    expect(result.cost_usd).toBeGreaterThan(budget);
    expect(result).toMatchObject({ input_tokens: 105000, cache_creation_input_tokens: 2000, cache_read_input_tokens: 3000, output_tokens: 1000 });
    // The totals so far include the runtime billed until the prompt finished.
    expect(result.runtime_minutes).toBeGreaterThan(0);
    expect(result.total_cost_usd).toBeGreaterThanOrEqual(result.cost_usd as number);
  });

  it('ends an idle session when its ttl_seconds run out', async () => {
    const sessionId = await h.startSession({ profile: { ...BYPASS, ttl_seconds: 3 } });
    const { events, row } = await expectEnded(h, sessionId, 'max_duration_exceeded');
    expect(ofType(events, 'session_status')).toHaveLength(1);
    expect(seconds(row)).toBeGreaterThanOrEqual(3);
    expect(h.fake.requests).toHaveLength(0);
  });

  describe('terminate', () => {
    it.each(['user_requested', 'org_api_requested'] as const)('ends an idle session with %s', async (reason) => {
      const sessionId = await h.startSession();
      await waitRunning(h, sessionId);
      expect(await sessionContainers(h.docker, sessionId)).toHaveLength(1);

      await expect(h.service.terminate(sessionId, reason)).resolves.toEqual({ terminated: true });
      const { events, row } = await expectEnded(h, sessionId, reason);
      expect(row.exit_code).toBe(0);
      expect(ofType(events, 'result')).toHaveLength(0);
      expect(ofType(events, 'session_error')).toHaveLength(0);
    });

    it('ends a session whose sandbox is still starting and leaves no container behind', async () => {
      const sessionId = await h.startSession();
      await h.service.terminate(sessionId, 'user_requested');
      const { events } = await expectEnded(h, sessionId, 'user_requested');
      expect(ofType(events, 'result')).toHaveLength(0);
    });

    it('rejects an unknown reason', async () => {
      const sessionId = await h.startSession();
      await waitRunning(h, sessionId);
      expect(await rejection(h.service.terminate(sessionId, 'because' as never))).toMatch(/reason must be/);
      await h.service.terminate(sessionId, 'user_requested');
      await expectEnded(h, sessionId, 'user_requested');
    });

    it('ends a session in the middle of a long Bash call and kills the command', async () => {
      const since = Math.floor(Date.now() / 1000) - 1;
      h.fake.enqueue(toolUse('Bash', { command: 'sleep 30 && echo slept' }));
      const sessionId = await h.startSession({ prompt: 'Wait a while' });
      await h.waitForEvent(sessionId, (e) => e.type === 'tool_use');
      const [container] = await sessionContainers(h.docker, sessionId);
      // The command is running in the sandbox.
      await waitFor(async () => (await processes(h, container.Id)).some((p) => /sleep 30/.test(p)));

      await h.service.terminate(sessionId, 'user_requested');
      const { events } = await expectEnded(h, sessionId, 'user_requested');

      // The prompt ended with a result, and the command never finished.
      expect(onlyResult(events)).toMatchObject({ success: false });
      expect(ofType(events, 'tool_result')).toHaveLength(0);
      expect(h.fake.requests).toHaveLength(1);

      // The tool's exec was killed (SIGKILL) before the container was removed.
      const log = await containerEvents(h, container.Id, since);
      const start = log.find((e) => e.Action.startsWith('exec_start') && e.Action.includes('sleep 30'));
      expect(start).toBeDefined();
      const execId = start!.Actor.Attributes.execID;
      const died = log.find((e) => e.Action === 'exec_die' && e.Actor.Attributes.execID === execId);
      const removed = log.find((e) => e.Action === 'kill' || e.Action === 'die' || e.Action === 'destroy');
      expect(died).toBeDefined();
      expect(removed).toBeDefined();
      expect(died!.Actor.Attributes.exitCode).toBe('137');
      expect(died!.timeNano).toBeLessThan(removed!.timeNano);
    });
  });

  describe('one_shot', () => {
    it('ends a D&R session as completed after its first prompt', async () => {
      h.fake.enqueue(toolUse('Bash', { command: 'echo triage' }), text('Triage done.'));
      const sessionId = await h.startSession({ trigger: 'dr', profile: {}, prompt: 'Triage this detection' });

      const { events, row } = await expectEnded(h, sessionId, 'completed');
      expect(row.exit_code).toBe(0);
      expect(onlyResult(events)).toMatchObject({ success: true, turns: 2, summary: 'Triage done.' });
      expect(ofType(events, 'tool_result')[0].payload).toMatchObject({ is_error: false, content: 'triage\n' });
    });

    it('keeps a user session up after a result and answers the next prompt', async () => {
      h.fake.enqueue(text('First answer.'));
      const sessionId = await h.startSession({ prompt: 'First question', profile: { ...BYPASS, one_shot: false } });
      await h.waitForEvent(sessionId, (e) => e.type === 'result');

      const status = await h.service.status(sessionId);
      expect(status).toMatchObject({ status: 'running', activity: 'idle', turns: 1 });
      expect(await getSession(h.db, sessionId)).toMatchObject({ status: 'running', end_reason: null });
      expect(await sessionContainers(h.docker, sessionId)).toHaveLength(1);

      h.fake.enqueue(text('Second answer.'));
      await h.service.prompt(sessionId, 'Second question');
      await waitFor(async () => ofType(await h.events(sessionId), 'result').length >= 2);
      // The second request carried the whole conversation.
      expect(h.fake.requests).toHaveLength(2);
      expect(h.fake.requests[1].body.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant', 'user']);

      await h.service.terminate(sessionId, 'user_requested');
      const { events } = await expectEnded(h, sessionId, 'user_requested');
      const results = ofType(events, 'result').map((e) => e.payload);
      expect(results).toEqual([
        expect.objectContaining({ success: true, turns: 1, summary: 'First answer.' }),
        expect.objectContaining({ success: true, turns: 1, summary: 'Second answer.' }),
      ]);
      expect(ofType(events, 'user').map((e) => e.payload.text)).toEqual(['First question', 'Second question']);
    });
  });

  it('bills every started period of the sandbox lifetime, contiguously and once', async () => {
    const period = h.config.periods.billingSeconds;
    expect(period).toBe(2);
    const sessionId = await h.startSession();
    await waitRunning(h, sessionId);
    const [container] = await sessionContainers(h.docker, sessionId);
    const createdMs = Date.parse((await h.docker.getContainer(container.Id).inspect()).Created);

    // Periods are recorded while the sandbox runs, not only at the end: wait for the third (4-6 s).
    await waitFor(async () => (await billedPeriods(h.db, sessionId)).includes(2));
    const requestedEndMs = Date.now();
    await h.service.terminate(sessionId, 'user_requested');
    const { row } = await expectEnded(h, sessionId, 'user_requested');

    const periods = await billedPeriods(h.db, sessionId);
    const last = periods.at(-1)!;
    expect(periods).toEqual(Array.from({ length: last + 1 }, (_, i) => i));
    // The last period is the one in which the sandbox was removed: between the end request and the end.
    expect(last).toBeGreaterThanOrEqual(Math.floor((requestedEndMs - createdMs) / (period * 1000)));
    expect(last).toBeLessThanOrEqual(Math.floor((Date.parse(row.terminated_at!) - createdMs) / (period * 1000)));

    const { rows } = await h.db.query<{ period_index: number; period_start: string | Date; period_seconds: number }>(
      'SELECT period_index, period_start, period_seconds FROM billing_periods WHERE session_id = $1 ORDER BY period_index',
      [sessionId],
    );
    expect(rows).toHaveLength(last + 1);
    for (const r of rows) {
      expect(Number(r.period_seconds)).toBe(period);
      expect(Math.abs(new Date(r.period_start).getTime() - (createdMs + Number(r.period_index) * period * 1000))).toBeLessThan(5);
    }
  });

  describe('a prompt to an ended session', () => {
    const storedTexts = async (sessionId: string) =>
      Number((await h.db.query<{ n: string }>('SELECT count(*) AS n FROM session_texts WHERE session_id = $1', [sessionId])).rows[0].n);

    async function expectRejected(sessionId: string) {
      const texts = await storedTexts(sessionId);
      const seq = (await getSession(h.db, sessionId))!.last_event_seq;
      expect(await rejection(h.service.prompt(sessionId, 'Are you still there?'))).toMatch(/session has ended/);
      expect(await storedTexts(sessionId)).toBe(texts);
      expect((await getSession(h.db, sessionId))!.last_event_seq).toBe(seq);
    }

    it('is rejected while the session is shutting down', async () => {
      const sessionId = await h.startSession();
      await waitRunning(h, sessionId);
      await h.service.terminate(sessionId, 'user_requested');
      await expectRejected(sessionId);
      await expectEnded(h, sessionId, 'user_requested');
      await expectRejected(sessionId);
      expect(h.fake.requests).toHaveLength(0);
    });

    it('is rejected after a one-shot session completed', async () => {
      h.fake.enqueue(text('Done.'));
      const sessionId = await h.startSession({ prompt: 'Once', profile: { ...BYPASS, one_shot: true } });
      await expectEnded(h, sessionId, 'completed');
      await expectRejected(sessionId);
      expect(h.fake.requests).toHaveLength(1);
    });
  });
});

describe('MAX_TTL_SECONDS caps a longer ttl_seconds', () => {
  const h = useHarness({ env: { MAX_TTL_SECONDS: '3' } });

  it.each([undefined, 3600])('ttl_seconds %p ends as max_duration_exceeded after the cap', async (ttl) => {
    const sessionId = await h.startSession({ profile: { ...BYPASS, ...(ttl ? { ttl_seconds: ttl } : {}) } });
    // Were the cap ignored, the session would run for an hour: fail clearly instead of timing out.
    await expect(within(h.waitForEnd(sessionId), 60_000)).resolves.toMatchObject({ endReason: 'max_duration_exceeded' });
    const { row } = await expectEnded(h, sessionId, 'max_duration_exceeded');
    expect(seconds(row)).toBeGreaterThanOrEqual(3);
  });
});

// ---------------------------------------------------------------------------------------------

async function waitFor(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The message of a rejection and of its causes (an update's validator error arrives as the cause). */
async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    const messages: string[] = [];
    for (let e = err as Error | undefined; e; e = e.cause as Error | undefined) messages.push(e.message);
    return messages.join(': ');
  }
  throw new Error('expected a rejection');
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Command lines of the processes running in a container. */
async function processes(h: Harness, containerId: string): Promise<string[]> {
  const top = (await h.docker.getContainer(containerId).top({ ps_args: '-eo pid,args' })) as { Processes?: string[][] };
  return (top.Processes ?? []).map((p) => p.slice(1).join(' '));
}

interface DockerEvent {
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  timeNano: number;
}

/** The engine's events for a container between `since` and now (the stream ends by itself). */
async function containerEvents(h: Harness, containerId: string, since: number): Promise<DockerEvent[]> {
  const stream = (await h.docker.getEvents({
    since,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: { container: [containerId] },
  })) as NodeJS.ReadableStream;
  let raw = '';
  for await (const chunk of stream) raw += chunk.toString();
  return raw
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as DockerEvent);
}
