import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sessionContainers, useHarness } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';
import { getSession } from '../store/sessions';
import { until } from './support/wait';

/**
 * Hibernation's harder cases on the real stack: what was deleted before a
 * hibernation stays deleted after the resume (the image's venv included),
 * and an end requested while the archive is being written ends the session
 * at once instead of finishing the hibernation first.
 */

const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-hibernate-edges-'));
const WAIT = 60_000;

describe('hibernation edges', () => {
  const h = useHarness({ env: { BLOB_DIR: blobDir, HIBERNATE_IDLE_SECONDS: '2', BILLING_PERIOD_SECONDS: '1' } });
  afterAll(() => fs.rmSync(blobDir, { recursive: true, force: true }));

  const dormant = (id: string) => until(`${id} is dormant`, async () => (await getSession(h.db, id))?.dormant_since !== null);
  const toolOutput = async (id: string, toolUseId: string) =>
    String((await h.waitForEvent(id, (e) => e.type === 'tool_result' && e.payload.tool_use_id === toolUseId, WAIT)).payload.content);
  const archives = (id: string) => (fs.existsSync(path.join(blobDir, 'archives')) ? fs.readdirSync(path.join(blobDir, 'archives')) : []).filter((n) => n.startsWith(`${id}.`));

  it('keeps deletions: a file removed from the image’s venv and one from the workspace are still gone after the resume', async () => {
    const remove = 'rm /opt/venv/bin/activate.fish && echo keep > kept.txt && echo doomed > doomed.txt && rm doomed.txt && ls /opt/venv/bin';
    h.fake.enqueue(toolUse('Bash', { command: remove }, { id: 'toolu_rm' }), text('Removed.'));
    const id = await h.startSession({ prompt: 'Remove things', ownerId: 'carol' });
    expect(await toolOutput(id, 'toolu_rm')).not.toContain('activate.fish');
    await dormant(id);
    // Watchers see it go to sleep, not only GET.
    const slept = await h.waitForEvent(id, (e) => e.type === 'system' && e.payload.subtype === 'hibernated', WAIT);
    expect(slept.payload).toMatchObject({ archive_bytes: expect.any(Number), message: expect.stringMatching(/next prompt resumes/) });
    // A deletion alone counts as a change to the venv: it is archived, not left to the image.
    expect(archives(id).sort()).toEqual([`${id}.venv.tar`, `${id}.workspace.tar`]);

    const check = 'ls /opt/venv/bin; ls /workspace; test -x /opt/venv/bin/python && echo python-ok';
    h.fake.enqueue(toolUse('Bash', { command: check }, { id: 'toolu_check' }), text('Checked.'));
    await h.service.prompt(id, 'Is it still gone?');
    const after = await toolOutput(id, 'toolu_check');
    expect(after).not.toContain('activate.fish');
    expect(after).toContain('activate');
    expect(after).toContain('kept.txt');
    expect(after).not.toContain('doomed.txt');
    expect(after).toContain('python-ok');
    const events = await h.events(id);
    expect(events.filter((e) => e.type === 'system' && e.payload.subtype === 'hibernated')).toHaveLength(1);
    const restored = events.findIndex((e) => e.type === 'system' && e.payload.subtype === 'workspace_restored');
    expect(restored).toBeGreaterThan(events.findIndex((e) => e.type === 'system' && e.payload.subtype === 'hibernated'));
    await h.service.terminate(id, 'user_requested');
    await h.waitForEnd(id);
  });

  it('ends at once when terminated while hibernating: the archive step is abandoned and the session never goes dormant', async () => {
    // Large enough that archiving takes seconds, so the end lands in the middle of it.
    const fill = 'head -c 400000000 /dev/urandom > big.bin && echo filled';
    h.fake.enqueue(toolUse('Bash', { command: fill }, { id: 'toolu_fill' }), text('Filled.'));
    const id = await h.startSession({ prompt: 'Fill the workspace', ownerId: 'carol' });
    // Once its sandbox is up, a session is idle or busy, never still "starting".
    await h.waitForEvent(id, (e) => e.type === 'session_status' && e.payload.status === 'running', WAIT);
    expect((await getSession(h.db, id))?.activity).not.toBe('starting');
    expect(await toolOutput(id, 'toolu_fill')).toContain('filled');
    await until('hibernating', async () => (await h.service.status(id)).activity === 'hibernating', 60_000, 100);
    await h.service.terminate(id, 'user_requested');

    expect(await h.waitForEnd(id)).toMatchObject({ endReason: 'user_requested' });
    const row = await getSession(h.db, id);
    expect(row).toMatchObject({ status: 'ended', end_reason: 'user_requested', dormant_since: null });
    await until('the container is removed', async () => (await sessionContainers(h.docker, id)).length === 0);
  });
});
