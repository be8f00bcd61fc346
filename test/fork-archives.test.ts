import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TEST_JWT_SECRET, useHarness, type Harness } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';
import { callApi } from './support/http';
import { mintToken } from '../api/auth';
import { getSession, latestCredential } from '../store/sessions';
import { until } from './support/wait';

/**
 * Forks and workspace archives on the real stack: a fork restores only an
 * archive that is the source's current workspace, a failed fork leaves no
 * archive behind, one fork of a source at a time, and deleting a session
 * record or a user removes the archives with the rest of the content.
 */

const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-fork-'));
const archiveDir = path.join(blobDir, 'archives');
const WAIT = 60_000;

describe('forks and workspace archives', () => {
  let gw: Awaited<ReturnType<Harness['startGateway']>>;
  let alice: string;
  const h = useHarness({
    env: {
      BLOB_DIR: blobDir,
      HIBERNATE_IDLE_SECONDS: '2',
      APPROVAL_TIMEOUT_SECONDS: '60',
      // Many forks of one user here: the limits are not what is under test.
      RATE_LIMIT_SESSION_CREATES: '100',
      MAX_CONCURRENT_SESSIONS: '50',
    },
  });

  async function register(sub: string): Promise<string> {
    const token = await mintToken(TEST_JWT_SECRET, { sub, email: `${sub}@example.com` });
    expect((await callApi(gw.url, 'POST', '/v1/register', { token, body: {} })).status).toBe(200);
    const key = { api_key: `sk-ant-api03-${randomBytes(20).toString('hex')}` };
    expect((await callApi(gw.url, 'POST', '/v1/auth/claude/apikey', { token, body: key })).status).toBe(200);
    return token;
  }

  beforeAll(async () => {
    gw = await h.startGateway();
    alice = await register('alice');
  });
  afterAll(() => fs.rmSync(blobDir, { recursive: true, force: true }));

  const dormant = (id: string) => until(`${id} is dormant`, async () => (await getSession(h.db, id))?.dormant_since !== null);
  const archivesOf = (id: string) => (fs.existsSync(archiveDir) ? fs.readdirSync(archiveDir).filter((n) => n.startsWith(`${id}.`)).sort() : []);
  const forksOf = async (id: string) =>
    (await h.db.query<{ id: string }>('SELECT id FROM sessions WHERE forked_from_session_id = $1', [id])).rows.map((r) => r.id);
  const toolOutput = async (id: string, toolUseId: string) =>
    String((await h.waitForEvent(id, (e) => e.type === 'tool_result' && e.payload.tool_use_id === toolUseId, WAIT)).payload.content);
  const approval = (id: string, toolUseId: string) =>
    h.waitForEvent(id, (e) => e.type === 'tool_approval_request' && e.payload.request_id === toolUseId, WAIT);
  const fullProfileId = async (token: string) =>
    ((await callApi(gw.url, 'GET', '/v1/profiles', { token })).body.profiles as Array<{ id: string; name: string }>).find((p) => p.name === 'Full Permissions')!.id;
  async function endFork(id: string) {
    await h.service.terminate(id, 'user_requested');
    await h.waitForEnd(id);
  }

  /** Hibernated, resumed, more work, ended while running: its archive is older than its workspace. */
  let resumedThenEnded: string;

  it('forks an ended session that resumed after hibernating with its conversation only, not its out-of-date archive', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'echo v1 > /workspace/marker' }, { id: 'toolu_v1' }), text('Marked.'));
    const id = await h.startSession({ prompt: 'Write the marker', ownerId: 'alice', profile: { permission_mode: 'acceptEdits' } });
    resumedThenEnded = id;
    await approval(id, 'toolu_v1');
    await h.service.approve(id, 'toolu_v1', 'y');
    await toolOutput(id, 'toolu_v1');
    await dormant(id);
    expect(archivesOf(id)).toEqual([`${id}.workspace.tar`]);
    const preDormant = await callApi(gw.url, 'GET', `/v1/sessions/${id}/fork-preflight`, { token: alice });
    expect(preDormant.body).toMatchObject({ source_status: 'dormant', is_forkable: true });

    // Resumed: more work, and a pending approval keeps it from hibernating again before it is ended.
    h.fake.enqueue(toolUse('Bash', { command: 'echo v2 > /workspace/marker' }, { id: 'toolu_v2' }), toolUse('Bash', { command: 'true' }, { id: 'toolu_hold' }));
    await h.service.prompt(id, 'Change the marker');
    await approval(id, 'toolu_v2');
    await h.service.approve(id, 'toolu_v2', 'y');
    await toolOutput(id, 'toolu_v2');
    await approval(id, 'toolu_hold');
    expect((await callApi(gw.url, 'DELETE', `/v1/sessions/${id}`, { token: alice })).status).toBe(200);
    await h.waitForEnd(id);
    const row = (await getSession(h.db, id))!;
    expect(row).toMatchObject({ status: 'ended', dormant_since: null });
    // The old archive is still on disk (the reaper removes it after retention), but it is not the workspace.
    expect(row.archived_at).not.toBeNull();
    expect(archivesOf(id)).toEqual([`${id}.workspace.tar`]);

    const pre = await callApi(gw.url, 'GET', `/v1/sessions/${id}/fork-preflight`, { token: alice });
    expect(pre.body).toMatchObject({ source_status: 'ended', is_forkable: true, is_forkable_reason: '', history_available: true });
    // Its archive gone changes nothing: the fork never needed it.
    fs.renameSync(path.join(archiveDir, `${id}.workspace.tar`), path.join(blobDir, 'aside.tar'));
    expect((await callApi(gw.url, 'GET', `/v1/sessions/${id}/fork-preflight`, { token: alice })).body).toMatchObject({ is_forkable: true });
    fs.renameSync(path.join(blobDir, 'aside.tar'), path.join(archiveDir, `${id}.workspace.tar`));

    h.fake.enqueue(toolUse('Bash', { command: 'cat /workspace/marker 2>&1; true' }, { id: 'toolu_look' }), text('Looked.'));
    const body = { profile_id: await fullProfileId(alice), initial_prompt: 'Look at the marker' };
    const r = await callApi(gw.url, 'POST', `/v1/sessions/${id}/fork`, { token: alice, body });
    expect(r.status).toBe(201);
    const fork = r.body.session.id as string;
    // Neither v1 from the old archive nor anything else: a fresh workspace, and the conversation.
    expect(await toolOutput(fork, 'toolu_look')).toMatch(/No such file/);
    const sent = h.fake.requests.map((q) => JSON.stringify(q.body.messages)).find((m) => m.includes('Look at the marker'))!;
    expect(sent).toContain('Write the marker');
    expect(sent).toContain('Change the marker');
    expect((await getSession(h.db, fork))!.archived_at).toBeNull();
    expect(archivesOf(fork)).toEqual([]);
    await endFork(fork);
  });

  it('removes the archives with the record: DELETE /v1/sessions/:id/record', async () => {
    expect(archivesOf(resumedThenEnded)).toHaveLength(1);
    expect((await callApi(gw.url, 'DELETE', `/v1/sessions/${resumedThenEnded}/record`, { token: alice })).status).toBe(200);
    expect(archivesOf(resumedThenEnded)).toEqual([]);
  });

  /** Dormant, and forked by the tests below. */
  let source: string;

  it('leaves nothing behind when the archive copy fails: no fork row, no archive without a row; the next fork works', async () => {
    source = await h.startSession({ ownerId: 'alice' });
    await dormant(source);
    expect(archivesOf(source)).toEqual([`${source}.workspace.tar`]);
    // The workspace copies, then the venv's "archive" (a directory) cannot be: the copy fails halfway.
    fs.mkdirSync(path.join(archiveDir, `${source}.venv.tar`));

    const failed = await callApi(gw.url, 'POST', `/v1/sessions/${source}/fork`, { token: alice, body: {} });
    expect(failed.status).toBe(500);
    expect(failed.body.error).toMatchObject({ code: 'fork_failed', message: expect.stringMatching(/could not be copied; no fork was made/) });
    expect(await forksOf(source)).toEqual([]);
    const { rows } = await h.db.query<{ id: string }>('SELECT id FROM sessions');
    const known = new Set(rows.map((r) => r.id));
    const orphans = fs.readdirSync(archiveDir).filter((n) => !known.has(n.split('.')[0]));
    expect(orphans).toEqual([]);
    expect(fs.readdirSync(archiveDir).filter((n) => n.endsWith('.part'))).toEqual([]);

    fs.rmdirSync(path.join(archiveDir, `${source}.venv.tar`));
    const ok = await callApi(gw.url, 'POST', `/v1/sessions/${source}/fork`, { token: alice, body: {} });
    expect(ok.status).toBe(201);
    const fork = ok.body.session.id as string;
    expect(await forksOf(source)).toEqual([fork]);
    expect(archivesOf(fork)).toEqual([`${fork}.workspace.tar`]);
    await endFork(fork);
  });

  it('answers 409 to a fork of a source another fork is in progress for, from any gateway', async () => {
    const before = (await forksOf(source)).length;
    const attempts = await Promise.all([1, 2, 3].map(() => callApi(gw.url, 'POST', `/v1/sessions/${source}/fork`, { token: alice, body: {} })));
    expect(attempts.map((a) => a.status).sort()).toEqual([201, 409, 409]);
    expect(attempts.find((a) => a.status === 409)!.body.error).toMatchObject({ code: 'fork_in_progress', message: expect.stringMatching(/already in progress/) });
    expect(await forksOf(source)).toHaveLength(before + 1);
    await endFork(attempts.find((a) => a.status === 201)!.body.session.id);

    // Another gateway's fork in progress (its claim in the shared store) …
    await h.db.query(`INSERT INTO fork_claims (source_session_id, claim_id) VALUES ($1, 'elsewhere')`, [source]);
    expect((await callApi(gw.url, 'POST', `/v1/sessions/${source}/fork`, { token: alice, body: {} })).status).toBe(409);
    // … or one whose gateway died mid-fork: its claim is taken over once it is old.
    await h.db.query(`UPDATE fork_claims SET claimed_at = now() - interval '1 hour' WHERE source_session_id = $1`, [source]);
    const after = await callApi(gw.url, 'POST', `/v1/sessions/${source}/fork`, { token: alice, body: {} });
    expect(after.status).toBe(201);
    await endFork(after.body.session.id);
    expect((await h.db.query('SELECT * FROM fork_claims')).rows).toEqual([]);
  });

  it('reports dormant sessions in the sessions-by-state gauge, apart from running ones', async () => {
    const scrape = await (await fetch(`${gw.url}/metrics`)).text();
    const value = (state: string) => Number(new RegExp(`^ai_sessions_sessions\\{state="${state}"\\} (\\S+)$`, 'm').exec(scrape)?.[1]);
    const { rows } = await h.db.query<{ n: string }>(`SELECT count(*) AS n FROM sessions WHERE deleted_at IS NULL`);
    expect(value('dormant')).toBeGreaterThanOrEqual(1);
    expect(['starting', 'running', 'dormant', 'ended'].reduce((n, s) => n + value(s), 0)).toBe(Number(rows[0].n));
    expect(await (await fetch(`${gw.url}/v1/sessions/${source}`, { headers: { authorization: `Bearer ${alice}` } })).json())
      .toMatchObject({ session: { status: 'running', dormant: true } });
  });

  it('removes the archives of every session of a user who deregisters', async () => {
    const bob = await register('bob');
    const asleep = await h.startSession({ ownerId: 'bob' });
    const ended = await h.startSession({ ownerId: 'bob' });
    await dormant(asleep);
    await dormant(ended);
    expect((await callApi(gw.url, 'DELETE', `/v1/sessions/${ended}`, { token: bob })).status).toBe(200);
    await h.waitForEnd(ended);
    expect(archivesOf(asleep)).toHaveLength(1);
    expect(archivesOf(ended)).toHaveLength(1);

    expect((await callApi(gw.url, 'DELETE', '/v1/register', { token: bob })).status).toBe(200);
    expect(archivesOf(asleep)).toEqual([]);
    expect(archivesOf(ended)).toEqual([]);
    expect(archivesOf(source)).toHaveLength(1);
  });

  it('audits a terminate only when a workflow was ended, and a profile deletion by id alone', async () => {
    const credential = (await latestCredential(h.db, 'alice', 'anthropic'))!;
    // Recorded, never started: no workflow to terminate.
    const { sessionId } = await h.db.transaction((tx) =>
      h.service.record(tx, { ownerType: 'user', ownerId: 'alice', trigger: 'user', profile: {}, credentialId: credential.id }));
    expect((await callApi(gw.url, 'DELETE', `/v1/sessions/${sessionId}`, { token: alice })).status).toBe(200);
    expect((await callApi(gw.url, 'GET', `/v1/audit?target=${sessionId}`, { token: alice })).body.entries).toEqual([]);
    // The terminate of the first test was audited.
    const terminated = await callApi(gw.url, 'GET', `/v1/audit?action=session.terminate&target=${resumedThenEnded}`, { token: alice });
    expect(terminated.body.entries).toHaveLength(1);

    const created = await callApi(gw.url, 'POST', '/v1/profiles', { token: alice, body: { name: 'Project Nightjar' } });
    expect(created.status).toBe(201);
    const profileId = created.body.profile.id as string;
    expect((await callApi(gw.url, 'DELETE', `/v1/profiles/${profileId}`, { token: alice })).status).toBe(200);
    const trail = await callApi(gw.url, 'GET', `/v1/audit?action=profile.delete&target=${profileId}`, { token: alice });
    expect(trail.body.entries).toEqual([expect.objectContaining({ target: { type: 'profile', id: profileId }, details: {} })]);
    expect(trail.raw).not.toContain('Nightjar');
  });
});
