import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { sessionContainers, TEST_ADMIN_TOKEN, useHarness, type Harness } from './support/harness';
import { text } from './support/fake-anthropic';
import { callApi } from './support/http';
import { createLogger } from '../lib/log';
import { TERMINATED_MESSAGE, type ReaperReport } from '../lib/reaper';
import { findTemporalCli } from '../infra/temporal-cli';
import { createReaperActivities } from '../activities/reaper-activities';
import { listAudit } from '../store/audit';
import { billedPeriods } from '../store/metering';
import { recordFinalPeriods, registerDockerHost } from '../store/reaper';
import { getSession } from '../store/sessions';
import { reaperScheduleId, sessionWorkflowId } from '../workflows/messages';

const run = promisify(execFile);
const PERIOD_SECONDS = 2;

async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('the reaper', () => {
  const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-reaper-'));
  const archives = path.join(blobDir, 'archives');
  afterAll(() => fs.rmSync(blobDir, { recursive: true, force: true }));
  const h = useHarness({ env: { REAPER_PERIOD_SECONDS: String(PERIOD_SECONDS), BLOB_DIR: blobDir } });

  const running = (id: string) => h.waitForEvent(id, (e) => e.type === 'session_status' && e.payload.status === 'running');
  const sessionVolumes = async (id: string) =>
    (await h.docker.listVolumes({ filters: { label: [`ai-sessions.session=${id}`] } })).Volumes ?? [];

  it('is scheduled per deployment, skipping overlapping runs', async () => {
    const d = await h.client.schedule.getHandle(reaperScheduleId(h.config.temporal.taskQueue)).describe();
    expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'reaperWorkflow', taskQueue: h.config.temporal.taskQueue });
    expect(d.policies.overlap).toBe('SKIP');
    expect(d.spec.intervals?.[0].every).toBe(PERIOD_SECONDS * 1000);
  });

  it('reclaims the sandbox of a session terminated from the Temporal CLI and ends it with a clear reason; a live one is untouched', async () => {
    const victim = await h.startSession();
    const bystander = await h.startSession();
    await Promise.all([running(victim), running(bystander)]);
    expect(await sessionContainers(h.docker, victim)).toHaveLength(1);
    expect(await sessionVolumes(victim)).toHaveLength(2);

    const cli = await findTemporalCli(process.env.TEMPORAL_CLI_PATH, createLogger('silent'));
    if (!cli) throw new Error('the Temporal CLI is needed to terminate a workflow as an operator would');
    await run(cli, [
      'workflow', 'terminate',
      '--address', h.config.temporal.address!,
      '--namespace', h.config.temporal.namespace,
      '--workflow-id', sessionWorkflowId(victim),
      '--reason', 'operator cleanup from the CLI',
    ]);

    // A couple of periods at most; a loaded machine gets slack beyond that.
    await eventually('the container to go', async () => (await sessionContainers(h.docker, victim)).length === 0, 20_000);
    expect(await sessionVolumes(victim)).toEqual([]);

    const row = await getSession(h.db, victim);
    expect(row).toMatchObject({ status: 'ended', activity: 'ended', end_reason: 'failed', exit_code: 1, error_message: TERMINATED_MESSAGE });
    const events = await h.events(victim);
    expect(events.find((e) => e.type === 'session_error')?.payload).toMatchObject({ error: TERMINATED_MESSAGE });
    expect(events.at(-1)).toMatchObject({ type: 'session_end', payload: { reason: 'failed', exit_code: 1 } });
    expect(events.filter((e) => e.type === 'session_end')).toHaveLength(1);
    expect((await billedPeriods(h.db, victim)).length).toBeGreaterThanOrEqual(1);
    const [reaped] = await listAudit(h.db, { all: true }, { targetId: victim, limit: 10 });
    expect(reaped).toMatchObject({ actor: { type: 'system', id: 'reaper' }, action: 'session.reaped', details: { reason: 'workflow_terminated' } });

    // Several more runs leave the live session, its sandbox and the ended one's events as they were.
    const seen = events.length;
    await new Promise((r) => setTimeout(r, 3 * PERIOD_SECONDS * 1000));
    expect(await h.events(victim)).toHaveLength(seen);
    const [other] = await sessionContainers(h.docker, bystander);
    expect(other.State).toBe('running');
    expect(await sessionVolumes(bystander)).toHaveLength(2);
    expect(await getSession(h.db, bystander)).toMatchObject({ status: 'running', end_reason: null });
    expect(await h.service.status(bystander)).toMatchObject({ status: 'running' });
  });

  it("deletes an ended session's records and archives after retention, keeping its accounting", async () => {
    h.fake.enqueue(text('Nothing suspicious here.'));
    const old = await h.startSession({ prompt: 'Look around', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    expect(await h.waitForEnd(old)).toMatchObject({ endReason: 'completed' });
    h.fake.enqueue(text('Still here.'));
    const keep = await h.startSession({ prompt: 'Keep me', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    await h.waitForEnd(keep);

    fs.mkdirSync(archives, { recursive: true });
    for (const id of [old, keep]) for (const v of ['workspace', 'venv']) fs.writeFileSync(path.join(archives, `${id}.${v}.tar`), 'tar');
    const billed = await billedPeriods(h.db, old);
    const usage = await h.db.query('SELECT call_key FROM model_usage WHERE session_id = $1', [old]);
    expect(billed.length).toBeGreaterThanOrEqual(1);
    expect(usage.rows).toHaveLength(1);

    // Ended 31 days ago, past the default retention of 30.
    await h.db.query(`UPDATE sessions SET terminated_at = now() - interval '31 days' WHERE id = $1`, [old]);
    await eventually('retention to purge the session', async () => {
      const { rows } = await h.db.query<{ purged_at: Date | null }>('SELECT purged_at FROM sessions WHERE id = $1', [old]);
      return rows[0]?.purged_at !== null;
    });

    const count = async (table: string, id: string) =>
      Number((await h.db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE session_id = $1`, [id])).rows[0].n);
    for (const table of ['session_events', 'conversation_messages', 'session_texts']) expect(await count(table, old)).toBe(0);
    expect((await getSession(h.db, old))?.deleted_at).not.toBeNull();
    expect(fs.readdirSync(archives).filter((n) => n.startsWith(old))).toEqual([]);
    const purgedEntries = await listAudit(h.db, { all: true }, { action: 'session.purged', limit: 10 });
    expect(purgedEntries.map((e) => e.target.id)).toEqual([old]);
    expect(purgedEntries[0]).toMatchObject({ actor: { type: 'system', id: 'reaper' }, details: { retention_seconds: 30 * 86400 } });
    // Accounting stays with the row.
    expect(await billedPeriods(h.db, old)).toEqual(billed);
    expect(await count('model_usage', old)).toBe(1);

    // A session still within retention keeps everything.
    expect(await count('session_events', keep)).toBeGreaterThan(0);
    expect(await count('conversation_messages', keep)).toBeGreaterThan(0);
    expect(await getSession(h.db, keep)).toMatchObject({ deleted_at: null });
    expect(fs.readdirSync(archives).filter((n) => n.startsWith(keep))).toHaveLength(2);
  });
});

/** Billing rows as stored: index, start (ms) and cost. */
async function billingRows(h: Harness, id: string) {
  const { rows } = await h.db.query<{ period_index: number; period_start: Date | string; cost_usd: number }>(
    'SELECT period_index, period_start, cost_usd FROM billing_periods WHERE session_id = $1 ORDER BY period_index',
    [id],
  );
  return rows.map((r) => ({ index: Number(r.period_index), start: new Date(r.period_start).getTime(), cost: Number(r.cost_usd) }));
}

/**
 * The reaper's runs started by the test itself (the schedule's period is an
 * hour here), against hibernating sessions with 1 s billing periods and a
 * runtime price.
 */
describe('the reaper, run on demand', () => {
  const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-reaper-ondemand-'));
  afterAll(() => fs.rmSync(blobDir, { recursive: true, force: true }));
  const PRICE = 0.6;
  const h = useHarness({
    env: {
      REAPER_PERIOD_SECONDS: '3600',
      BLOB_DIR: blobDir,
      BILLING_PERIOD_SECONDS: '1',
      HIBERNATE_IDLE_SECONDS: '2',
      RUNTIME_PRICE_PER_MINUTE_USD: String(PRICE),
    },
  });
  const COST = PRICE / 60;

  const runReaper = () =>
    h.client.workflow.execute('reaperWorkflow', {
      taskQueue: h.config.temporal.taskQueue,
      workflowId: `reaper-on-demand-${randomUUID()}`,
      args: [{ taskQueue: h.config.temporal.taskQueue }],
    }) as Promise<ReaperReport>;
  const dormant = (id: string) =>
    eventually(`${id} to be dormant`, async () => (await getSession(h.db, id))?.dormant_since !== null, 60_000);
  const terminate = async (id: string) => {
    const handle = h.client.workflow.getHandle(sessionWorkflowId(id));
    await handle.terminate('operator cleanup from the UI');
    const closeTime = (await handle.describe()).closeTime!.getTime();
    return closeTime;
  };
  /** A session that ran one prompt and hibernated, with the periods it was billed. */
  async function hibernated(reply: string) {
    h.fake.enqueue(text(reply));
    const id = await h.startSession({ prompt: 'Say something' });
    await h.waitForEvent(id, (e) => e.type === 'result', 60_000);
    await dormant(id);
    return { id, before: await billingRows(h, id) };
  }

  it('bills a resumed session terminated outside the platform from its latest period on, never for its dormant time, at the runtime price', async () => {
    const { id, before } = await hibernated('First.');
    const k = before.at(-1)!.index;
    expect(before.map((r) => r.index)).toEqual(before.map((_, i) => i));
    // Dormant for several periods, then resumed by a prompt.
    await new Promise((r) => setTimeout(r, 3500));
    h.fake.enqueue(text('Second.'));
    await h.service.prompt(id, 'Again');
    await h.waitForEvent(id, (e) => e.type === 'result' && e.payload.summary === 'Second.', 60_000);
    // The resumed sandbox's second period has started: terminate before it hibernates again (2 s idle).
    await eventually('the resumed sandbox to bill two periods', async () => (await billingRows(h, id)).some((r) => r.index === k + 2), 10_000);
    const closedAt = await terminate(id);
    // As if the workflow had been terminated before its watcher recorded them: the reaper must.
    await h.db.query('DELETE FROM billing_periods WHERE session_id = $1 AND period_index > $2', [id, k + 1]);
    const resumedOrigin = (await billingRows(h, id)).find((r) => r.index === k + 1)!.start - (k + 1) * 1000;

    const report = await runReaper();
    expect(report).toMatchObject({ sessionsEnded: 1, stepsFailed: [] });
    expect(await getSession(h.db, id)).toMatchObject({ status: 'ended', error_message: TERMINATED_MESSAGE });

    const after = await billingRows(h, id);
    // Numbered on without a gap up to the period the workflow closed in, in the resumed numbering.
    expect(after.map((r) => r.index)).toEqual(after.map((_, i) => i));
    expect(after.at(-1)!.index).toBe(Math.floor((closedAt - resumedOrigin) / 1000));
    expect(after.at(-1)!.index).toBeGreaterThanOrEqual(k + 2);
    // The hibernated sandbox's periods are as they were; the later ones start after the dormant time, 1 s apart.
    expect(after.slice(0, k + 1)).toEqual(before);
    for (const r of after.slice(k + 1)) expect(r.start).toBe(resumedOrigin + r.index * 1000);
    expect(after[k + 1].start - before[k].start).toBeGreaterThan(3000);
    expect(after.at(-1)!.start).toBeLessThanOrEqual(closedAt);
    // Every period, the reaper's included, costs the runtime price.
    for (const r of after) expect(r.cost).toBeCloseTo(COST, 10);

    // The administrator's trail shows the reaper as the actor.
    const gw = await h.startGateway();
    const trail = await callApi(gw.url, 'GET', `/v1/admin/audit?action=session.reaped&target=${id}`, { token: TEST_ADMIN_TOKEN });
    expect(trail.status).toBe(200);
    expect(trail.body.entries).toEqual([
      expect.objectContaining({ actor: { type: 'system', id: 'reaper' }, action: 'session.reaped', target: { type: 'session', id }, details: { reason: 'workflow_terminated' } }),
    ]);
  });

  it('records no final period for a dormant session terminated outside the platform: hibernation settled them', async () => {
    const { id, before } = await hibernated('Then I rest.');
    await new Promise((r) => setTimeout(r, 2500));
    await terminate(id);
    expect(await runReaper()).toMatchObject({ sessionsEnded: 1 });
    expect(await getSession(h.db, id)).toMatchObject({ status: 'ended', end_reason: 'failed' });
    expect(await billingRows(h, id)).toEqual(before);
  });

  it('continues the numbering of the latest period, and records nothing when that period predates the newest archive', async () => {
    const id = randomUUID();
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    const at = (s: number) => new Date(t0 + s * 1000).toISOString();
    await h.db.query(
      `INSERT INTO sessions (id, owner_type, owner_id, trigger, model, profile, workflow_id, status, started_at)
       VALUES ($1, 'user', 'user-1', 'user', 'm', '{}', $2, 'ended', $3)`,
      [id, sessionWorkflowId(id), at(0)],
    );
    // Periods 0-2 of the first sandbox, then (dormant from 3 s to 8 s) period 3 of the resumed one: origin 5 s.
    const insert = (i: number, start: number) =>
      h.db.query('INSERT INTO billing_periods (session_id, period_index, period_start, period_seconds) VALUES ($1, $2, $3, 1)', [id, i, at(start)]);
    for (const [i, start] of [[0, 0], [1, 1], [2, 2], [3, 8]]) await insert(i, start);
    const final = (until: number) => recordFinalPeriods(h.db, id, { until: at(until), defaultPeriodSeconds: 1, pricePerMinuteUsd: PRICE });

    expect(await final(10.5)).toBe(2);
    const rows = await billingRows(h, id);
    expect(rows.slice(4)).toEqual([
      { index: 4, start: t0 + 9000, cost: expect.closeTo(COST, 10) },
      { index: 5, start: t0 + 10_000, cost: expect.closeTo(COST, 10) },
    ]);

    // Hibernated again at 11 s and resumed: the new sandbox recorded nothing yet, so its start is unknown.
    await h.db.query('UPDATE sessions SET archived_at = $2 WHERE id = $1', [id, at(11)]);
    expect(await final(30)).toBe(0);
    // Dormant: hibernation settled everything.
    await h.db.query('UPDATE sessions SET archived_at = NULL, dormant_since = $2 WHERE id = $1', [id, at(11)]);
    expect(await final(30)).toBe(0);
    expect(await billingRows(h, id)).toEqual(rows);
    await h.db.query('DELETE FROM billing_periods WHERE session_id = $1', [id]);
    await h.db.query('DELETE FROM sessions WHERE id = $1', [id]);
  });

  it('still sweeps the other hosts and purges past retention when Temporal cannot describe one host queue', async () => {
    h.fake.enqueue(text('Done.'));
    const old = await h.startSession({ prompt: 'Quick one', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    await h.waitForEnd(old);
    await h.db.query(`UPDATE sessions SET terminated_at = now() - interval '31 days' WHERE id = $1`, [old]);
    // An empty queue name: describeTaskQueue refuses it.
    await registerDockerHost(h.db, `broken-${randomUUID().slice(0, 6)}`, '');

    const report = await runReaper();
    expect(report).toMatchObject({ hostsSwept: 1, hostsFailed: [], sessionsPurged: 1, stepsFailed: [] });
    expect((await getSession(h.db, old))?.deleted_at).not.toBeNull();
    await h.db.query(`DELETE FROM docker_hosts WHERE task_queue = ''`);
  });

  it('purges past retention even when a step before it fails, and reports the step', async () => {
    h.fake.enqueue(text('Done.'));
    const old = await h.startSession({ prompt: 'Quick one', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    await h.waitForEnd(old);
    await h.db.query(`UPDATE sessions SET terminated_at = now() - interval '31 days' WHERE id = $1`, [old]);
    // Without its table the host step fails on every attempt.
    await h.db.query('ALTER TABLE docker_hosts RENAME TO docker_hosts_away');
    let report: ReaperReport;
    try {
      report = await runReaper();
    } finally {
      await h.db.query('ALTER TABLE docker_hosts_away RENAME TO docker_hosts');
    }
    expect(report).toMatchObject({ stepsFailed: ['reachableDockerHosts'], hostsSwept: 0, sessionsPurged: 1 });
    expect((await getSession(h.db, old))?.purged_at).not.toBeNull();
    const [entry] = await listAudit(h.db, { all: true }, { action: 'session.purged', targetId: old, limit: 5 });
    expect(entry).toMatchObject({ actor: { type: 'system', id: 'reaper' }, target: { type: 'session', id: old } });
  });

  it('asks Temporal about each session only when a visibility list does not show its workflow running', async () => {
    const bystander = await h.startSession();
    const victim = await h.startSession();
    await Promise.all([bystander, victim].map((id) => h.waitForEvent(id, (e) => e.type === 'session_status' && e.payload.status === 'running')));
    await terminate(victim);
    // A recorded session whose workflow has not started (a D&R duplicate still in its grace period).
    const ghost = randomUUID();
    await h.db.query(
      `INSERT INTO sessions (id, owner_type, owner_id, trigger, model, profile, workflow_id) VALUES ($1, 'user', 'user-1', 'user', 'm', '{}', $2)`,
      [ghost, sessionWorkflowId(ghost)],
    );
    // Visibility lags: wait until the list shows both workflows as they are.
    await eventually('visibility to show both workflows', async () => {
      const seen = new Map<string, string>();
      for await (const w of h.client.workflow.list({ query: `WorkflowId IN ('${sessionWorkflowId(bystander)}', '${sessionWorkflowId(victim)}')` })) {
        seen.set(w.workflowId, w.status.name);
      }
      return seen.get(sessionWorkflowId(bystander)) === 'RUNNING' && seen.get(sessionWorkflowId(victim)) === 'TERMINATED';
    });

    const described: string[] = [];
    const workflow = h.client.workflow;
    const getHandle = workflow.getHandle.bind(workflow);
    const spy = jest.spyOn(workflow, 'getHandle').mockImplementation((workflowId: string, ...rest: any[]) => {
      const handle = getHandle(workflowId, ...rest);
      const describe = handle.describe.bind(handle);
      handle.describe = () => {
        described.push(workflowId);
        return describe();
      };
      return handle;
    });
    try {
      const acts = createReaperActivities({
        db: h.db,
        sandboxes: undefined as never,
        config: h.config,
        log: createLogger('silent'),
        keyring: h.keyring,
        hostId: 'test-host',
        temporal: h.client,
      });
      const r: { ended: string[] } = await new MockActivityEnvironment().run(() => acts.endAbandonedSessions());
      expect(r.ended).toEqual([victim]);
    } finally {
      spy.mockRestore();
    }
    expect(described.sort()).toEqual([sessionWorkflowId(victim), sessionWorkflowId(ghost)].sort());
    expect(await getSession(h.db, bystander)).toMatchObject({ status: 'running' });
    expect(await getSession(h.db, ghost)).toMatchObject({ status: 'starting' });
    expect(await getSession(h.db, victim)).toMatchObject({ status: 'ended', error_message: TERMINATED_MESSAGE });
    await h.db.query('DELETE FROM sessions WHERE id = $1', [ghost]);
  });
});
