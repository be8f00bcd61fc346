import {
  liveHosts,
  neverLaunchedGraceMs,
  runningIds,
  sandboxesToReap,
  sessionVerdict,
  TERMINATED_MESSAGE,
  type OpenSession,
  type WorkflowState,
} from '../lib/reaper';
import { loadConfig } from '../lib/config';

const NOW = Date.parse('2026-11-26T12:00:00Z');
const GRACE = 3600_000;
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const fresh: OpenSession = { createdAt: ago(1000), startedAt: null };
const started: OpenSession = { createdAt: ago(600_000), startedAt: ago(590_000) };
const oldNeverStarted: OpenSession = { createdAt: ago(GRACE + 1), startedAt: null };
const closed = (status: string): WorkflowState => ({ kind: 'closed', status, closedAt: ago(5000) });

describe('which unfinished sessions are over', () => {
  // Every row has all five values: a shorter one would make jest pass `done` as the last argument.
  it.each<[string, OpenSession, WorkflowState, 'keep' | 'end', string]>([
    ['running workflow, running session', started, { kind: 'running' }, 'keep', ''],
    ['running workflow, still starting', fresh, { kind: 'running' }, 'keep', ''],
    ['running workflow, starting for ages', oldNeverStarted, { kind: 'running' }, 'keep', ''],
    ['terminated from the UI or CLI', started, closed('TERMINATED'), 'end', TERMINATED_MESSAGE],
    ['terminated while provisioning', fresh, closed('TERMINATED'), 'end', TERMINATED_MESSAGE],
    ['failed workflow', started, closed('FAILED'), 'end', 'failed before it could clean up'],
    ['timed-out workflow', started, closed('TIMED_OUT'), 'end', 'timed out'],
    ['completed without ending the session', started, closed('COMPLETED'), 'end', 'closed (completed)'],
    ['paused workflow', started, closed('PAUSED'), 'keep', ''],
    ['history purged after it had a sandbox', started, { kind: 'not_found' }, 'end', 'no longer exists'],
    ['recorded a moment ago, not launched yet', fresh, { kind: 'not_found' }, 'keep', ''],
    ['recorded long ago, never launched', oldNeverStarted, { kind: 'not_found' }, 'end', 'never started'],
  ])('%s', (_name, session, wf, action, message) => {
    const v = sessionVerdict(session, wf, NOW, GRACE);
    expect(v.action).toBe(action);
    if (v.action === 'end') expect(v.message).toContain(message);
  });

  it.each<[string, OpenSession, WorkflowState, string]>([
    ['terminated', started, closed('TERMINATED'), 'workflow_terminated'],
    ['timed out', started, closed('TIMED_OUT'), 'workflow_timed_out'],
    ['failed', started, closed('FAILED'), 'workflow_failed'],
    ['completed', started, closed('COMPLETED'), 'workflow_closed'],
    ['history purged', started, { kind: 'not_found' }, 'workflow_gone'],
    ['never launched', oldNeverStarted, { kind: 'not_found' }, 'never_started'],
  ])('gives the audit trail a reason code: %s → %s', (_name, session, wf, reason) => {
    expect(sessionVerdict(session, wf, NOW, GRACE)).toMatchObject({ action: 'end', reason });
  });

  it('bills a closed workflow up to its close time, a purged one not at all', () => {
    expect(sessionVerdict(started, closed('TERMINATED'), NOW, GRACE)).toMatchObject({ billUntil: ago(5000) });
    expect(sessionVerdict(started, { kind: 'not_found' }, NOW, GRACE)).not.toHaveProperty('billUntil');
  });

  it('waits for a never-launched session as long as a D&R duplicate or a debounce queue could launch it', () => {
    expect(neverLaunchedGraceMs({ idempotencyWindowSeconds: 86400, maxTtlSeconds: 3600, startupTimeoutSeconds: 120 })).toBe(86520_000);
    expect(neverLaunchedGraceMs({ idempotencyWindowSeconds: 5, maxTtlSeconds: 86400, startupTimeoutSeconds: 60 })).toBe(86460_000);
  });
});

describe('which sessions a visibility list settles without a describe', () => {
  it.each<[string, Array<[string, string]>, string[]]>([
    ['a running run', [['session-a', 'RUNNING']], ['session-a']],
    ['a continued-as-new chain: closed runs and the running one', [['session-a', 'CONTINUED_AS_NEW'], ['session-a', 'RUNNING']], ['session-a']],
    ['a chain whose new run the list does not show yet', [['session-a', 'CONTINUED_AS_NEW']], []],
    ['a terminated run (a reset may have a newer one): described', [['session-a', 'TERMINATED']], []],
    ['a completed run', [['session-a', 'COMPLETED']], []],
    ['nothing listed', [], []],
  ])('%s', (_name, runs, running) => {
    expect([...runningIds(runs.map(([workflowId, status]) => ({ workflowId, status })))]).toEqual(running);
  });
});

describe('which sandboxes on a host are removed', () => {
  const found = [
    { sessionId: 'ended', containers: 1, volumes: 2 },
    { sessionId: 'volumes-left', containers: 0, volumes: 2 },
    { sessionId: 'running', containers: 1, volumes: 2 },
    { sessionId: 'starting', containers: 1, volumes: 1 },
    { sessionId: 'unknown', containers: 1, volumes: 2 },
  ];
  const statuses = new Map([
    ['ended', 'ended'],
    ['volumes-left', 'ended'],
    ['running', 'running'],
    ['starting', 'starting'],
  ]);
  it.each([
    ['ended', true],
    ['volumes-left', true],
    ['running', false],
    ['starting', false],
    ['unknown', false],
  ])('%s → removed: %s', (sessionId, removed) => {
    expect(sandboxesToReap(found, statuses).some((s) => s.sessionId === sessionId)).toBe(removed);
  });
});

describe('which hosts are swept', () => {
  it.each<[string, string | undefined, boolean]>([
    ['polled just now', ago(1000), true],
    ['idle long poll, polled 70 s ago', ago(70_000), true],
    ['silent for five minutes', ago(300_000), false],
    ['never polled', undefined, false],
  ])('%s', (_name, lastPollAt, live) => {
    expect(liveHosts([{ hostId: 'h', taskQueue: 'q.sandbox.h', lastPollAt }], NOW, 120_000)).toHaveLength(live ? 1 : 0);
  });
});

describe('reaper configuration', () => {
  it('runs every minute and keeps ended sessions for 30 days by default; both are seconds', () => {
    expect(loadConfig({}).reaper).toEqual({ periodSeconds: 60, retentionSeconds: 30 * 86400 });
    expect(loadConfig({ REAPER_PERIOD_SECONDS: '0.5', SESSION_RETENTION_SECONDS: '10' }).reaper).toEqual({ periodSeconds: 0.5, retentionSeconds: 10 });
    expect(() => loadConfig({ REAPER_PERIOD_SECONDS: '0' })).toThrow(/REAPER_PERIOD_SECONDS/);
  });
});
