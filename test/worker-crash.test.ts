import { startHarness, sessionContainers, TEST_KEY, type Harness } from './support/harness';
import { runEntry, type Proc } from './support/processes';
import { apiError, text, toolUse } from './support/fake-anthropic';
import { billedPeriods } from '../store/metering';
import { getSession } from '../store/sessions';

/**
 * A worker process killed (SIGKILL) in the middle of a tool call: a new
 * worker picks the session up, it completes, and nothing is stored or billed
 * twice. PostgreSQL is the store, since two processes share it.
 */
describe('a worker killed mid-turn', () => {
  let h: Harness;
  const procs: Proc[] = [];
  const startWorker = async () => {
    const p = runEntry('worker/main.ts', { ...h.env, LOG_LEVEL: 'debug' });
    procs.push(p);
    await p.waitFor('worker running');
    return p;
  };

  beforeAll(async () => {
    h = await startHarness({ store: 'postgres', noWorker: true });
  });
  afterAll(async () => {
    if (procs.every((p) => p.child.exitCode !== null) && h) await startWorker().catch(() => undefined);
    await h?.close();
    for (const p of procs) await p.kill('SIGKILL');
  });

  it('completes on a new worker with every event once and exact billing', async () => {
    const first = await startWorker();
    h.fake.enqueue(
      // A misbehaving upstream that echoes the key: the worker logs the error, never the key.
      apiError(500, { message: `upstream rejected key ${TEST_KEY}` }),
      toolUse('Bash', { command: 'sleep 4; echo slept >> /workspace/runs.txt; cat /workspace/runs.txt' }),
      text('Finished after the crash.'),
    );
    const sessionId = await h.startSession({ prompt: 'Survive a crash', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    await h.waitForEvent(sessionId, (e) => e.type === 'tool_use');
    await new Promise((r) => setTimeout(r, 1000));
    await first.kill('SIGKILL');

    await startWorker();
    const outcome = await h.waitForEnd(sessionId);
    expect(outcome.endReason).toBe('completed');

    const events = await h.events(sessionId);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const count = (type: string) => events.filter((e) => e.type === type).length;
    expect(count('user')).toBe(1);
    expect(count('tool_use')).toBe(1);
    expect(count('tool_result')).toBe(1);
    expect(count('assistant')).toBe(1);
    expect(count('result')).toBe(1);
    expect(count('session_end')).toBe(1);
    expect(events.find((e) => e.type === 'result')!.payload).toMatchObject({ success: true, summary: 'Finished after the crash.' });

    // Billing: every period from the sandbox's creation to its removal, once each.
    const row = (await getSession(h.db, sessionId))!;
    const periods = await billedPeriods(h.db, sessionId);
    expect(periods).toEqual(periods.map((_, i) => i));
    const { rows } = await h.db.query<{ period_start: Date }>(
      'SELECT period_start FROM billing_periods WHERE session_id = $1 AND period_index = 0', [sessionId]);
    const created = new Date(rows[0].period_start).getTime();
    const lived = new Date(row.terminated_at!).getTime() - created;
    const periodMs = h.config.periods.billingSeconds * 1000;
    // The last period is the one running when the sandbox was removed, just before terminated_at.
    expect(periods.length).toBeGreaterThanOrEqual(Math.floor(lived / periodMs));
    expect(periods.length).toBeLessThanOrEqual(Math.floor(lived / periodMs) + 1);
    expect(await sessionContainers(h.docker, sessionId)).toHaveLength(0);

    const logs = procs.map((p) => p.output()).join('\n');
    expect(logs).toContain('sk-ant-[redacted]');
    expect(logs).not.toContain(TEST_KEY);
  });
});
