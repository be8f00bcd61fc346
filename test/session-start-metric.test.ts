import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { useHarness } from './support/harness';
import { text } from './support/fake-anthropic';
import { getSession } from '../store/sessions';
import { modelCallSeconds, modelTokens, sessionStartSeconds } from '../lib/metrics';
import { until } from './support/wait';

/**
 * The worker's metrics on the real stack (its workers run in this process, so
 * the registry is this file's): a resume after hibernation is not a session
 * start, and a model id of the profile's choosing never becomes a label.
 */

const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-start-metric-'));
const WAIT = 60_000;

const startCount = async () => (await sessionStartSeconds.get()).values.find((v) => v.metricName === 'ai_sessions_session_start_seconds_count')?.value ?? 0;

describe('worker metrics across hibernation', () => {
  const h = useHarness({ env: { BLOB_DIR: blobDir, HIBERNATE_IDLE_SECONDS: '2' } });
  afterAll(() => fs.rmSync(blobDir, { recursive: true, force: true }));


  it('counts one start for a session, however often it resumes, and labels a made-up model "other"', async () => {
    const model = `made-up-${randomUUID()}`;
    const before = await startCount();
    h.fake.enqueue(text('First.'));
    const id = await h.startSession({ prompt: 'hello', profile: { permission_mode: 'bypassPermissions', model } });
    await h.waitForEvent(id, (e) => e.type === 'result' && e.payload.summary === 'First.', WAIT);
    expect(await startCount()).toBe(before + 1);
    const startedAt = (await getSession(h.db, id))!.started_at;
    expect(startedAt).not.toBeNull();

    await until(`${id} is dormant`, async () => (await getSession(h.db, id))?.dormant_since !== null);
    h.fake.enqueue(text('Second.'));
    await h.service.prompt(id, 'again');
    await h.waitForEvent(id, (e) => e.type === 'result' && e.payload.summary === 'Second.', WAIT);
    const resumed = (await getSession(h.db, id))!;
    expect(resumed).toMatchObject({ dormant_since: null, started_at: startedAt });
    expect(resumed.container_id).not.toBeNull();
    // The resume provisioned a sandbox, but the histogram still holds the one start.
    expect(await startCount()).toBe(before + 1);

    const labels = [...(await modelCallSeconds.get()).values, ...(await modelTokens.get()).values].map((v) => v.labels.model);
    expect(labels).not.toContain(model);
    expect(labels).toContain('other');
    await h.service.terminate(id, 'user_requested');
    await h.waitForEnd(id);
  });
});
