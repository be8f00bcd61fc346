import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sessionContainers, useHarness } from './support/harness';
import { text } from './support/fake-anthropic';
import { createLogger } from '../lib/log';
import { TERMINATED_MESSAGE } from '../lib/reaper';
import { findTemporalCli } from '../infra/temporal-cli';
import { billedPeriods } from '../store/metering';
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
