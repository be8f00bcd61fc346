import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TEST_JWT_SECRET, sessionContainers, useHarness, type Harness } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';
import { callApi } from './support/http';
import { mintToken } from '../api/auth';
import { billedPeriods } from '../store/metering';
import { getSession } from '../store/sessions';
import { DockerSandboxes } from '../activities/docker-sandbox';
import { until } from './support/wait';

/**
 * Hibernation, resume and fork on the real stack: an idle session's sandbox
 * is archived and removed after HIBERNATE_IDLE_SECONDS, and the next prompt
 * brings it back in a new container with the same files.
 */

const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-hibernate-'));
const WAIT = 60_000;

/** Files of every kind, then a listing of them: path, owner, mode, type, size, mtime, symlink target, and contents' hashes. */
const SETUP = [
  'mkdir -p data/sub && printf "hello\\n" > data/sub/file.txt && chmod 640 data/sub/file.txt',
  'ln -s data/sub/file.txt link && ln -s /nowhere dangling',
  'printf "#!/bin/sh\\necho ran-script\\n" > run.sh && chmod 750 run.sh',
  'mkdir -p private && chmod 700 private && touch -d "2020-01-02 03:04:05" private',
  'head -c 300000 /dev/urandom > data/blob.bin',
  'echo from-venv > /opt/venv/marker',
].join(' && ');
const LISTING = "find /workspace /opt/venv/marker -exec stat -c '%n|%u:%g|%a|%F|%s|%Y|%N' {} + | sort && find /workspace -type f -exec sha256sum {} + | sort && ./run.sh";

describe('hibernation, resume and fork', () => {
  let gw: Awaited<ReturnType<Harness['startGateway']>>;
  let alice: string;
  const h = useHarness({ env: { BLOB_DIR: blobDir, HIBERNATE_IDLE_SECONDS: '2', BILLING_PERIOD_SECONDS: '1', APPROVAL_TIMEOUT_SECONDS: '30' } });

  beforeAll(async () => {
    gw = await h.startGateway();
    alice = await mintToken(TEST_JWT_SECRET, { sub: 'alice', email: 'alice@example.com' });
    expect((await callApi(gw.url, 'POST', '/v1/register', { token: alice, body: {} })).status).toBe(200);
    const key = { api_key: `sk-ant-api03-${randomBytes(20).toString('hex')}` };
    expect((await callApi(gw.url, 'POST', '/v1/auth/claude/apikey', { token: alice, body: key })).status).toBe(200);
  });
  afterAll(() => fs.rmSync(blobDir, { recursive: true, force: true }));

  const get = async (id: string) => (await callApi(gw.url, 'GET', `/v1/sessions/${id}`, { token: alice })).body.session;
  const dormant = (id: string) => until(`${id} is dormant`, async () => (await getSession(h.db, id))?.dormant_since !== null);
  const toolOutput = async (id: string, toolUseId: string) =>
    String((await h.waitForEvent(id, (e) => e.type === 'tool_result' && e.payload.tool_use_id === toolUseId, WAIT)).payload.content);

  /** One session set up and hibernated, shared by the tests below (fork uses its archive). */
  let source: string;
  let waited: string;
  let before: string;

  it('hibernates an idle session: archive written, container and volumes removed, billing stopped, GET shows it dormant', async () => {
    h.fake.enqueue(toolUse('Bash', { command: `${SETUP} && ${LISTING}` }, { id: 'toolu_setup' }), text('Workspace ready.'));
    source = await h.startSession({ prompt: 'Set up the workspace', ownerId: 'alice' });
    before = await toolOutput(source, 'toolu_setup');
    expect(before).toContain('/workspace/link|1000:1000|777|symbolic link');
    expect(before).toContain("'/workspace/link' -> 'data/sub/file.txt'");
    expect(before).toContain('/workspace/run.sh|1000:1000|750|regular file');
    expect(before).toContain('ran-script');
    await h.waitForEvent(source, (e) => e.type === 'result', WAIT);

    await dormant(source);
    expect(await sessionContainers(h.docker, source)).toHaveLength(0);
    const volumes = await h.docker.listVolumes({ filters: { label: [`ai-sessions.session=${source}`] } });
    expect(volumes.Volumes ?? []).toHaveLength(0);
    const archived = fs.readdirSync(path.join(blobDir, 'archives')).filter((n) => n.startsWith(source));
    expect(archived.sort()).toEqual([`${source}.venv.tar`, `${source}.workspace.tar`]);

    const row = await getSession(h.db, source);
    expect(row).toMatchObject({ status: 'running', activity: 'dormant', container_id: null });
    expect(row!.archive_bytes).toBeGreaterThan(300_000);
    const resource = await get(source);
    expect(resource).toMatchObject({ status: 'running', dormant: true, activity: 'dormant' });
    expect((await h.service.status(source)).status).toBe('running');

    // No billing period starts while dormant (periods are 1 s here).
    const billed = await billedPeriods(h.db, source);
    await new Promise((r) => setTimeout(r, 3500));
    expect(await billedPeriods(h.db, source)).toEqual(billed);
    expect(billed).toEqual(billed.map((_, i) => i));
  });

  it('resumes on the next prompt: a new container, the workspace byte for byte, the conversation intact', async () => {
    const billed = await billedPeriods(h.db, source);
    h.fake.enqueue(toolUse('Bash', { command: LISTING }, { id: 'toolu_after' }), text('Everything is still here.'));
    await h.service.prompt(source, 'Is everything still there?');
    const result = await h.waitForEvent(source, (e) => e.type === 'result' && e.payload.summary === 'Everything is still here.', WAIT);
    expect(result.payload.success).toBe(true);
    expect(await toolOutput(source, 'toolu_after')).toBe(before);
    // The model saw the first prompt, its tool call and answer before the new prompt.
    const first = h.fake.requests[0].body.messages as Array<{ role: string; content: unknown }>;
    expect(JSON.stringify(first[0])).toContain('Set up the workspace');
    expect(JSON.stringify(first)).toContain('toolu_setup');
    expect(JSON.stringify(first)).toContain('Workspace ready.');
    expect(JSON.stringify(first.at(-1))).toContain('Is everything still there?');

    // Billing continued with the next period numbers: no gap, nothing counted twice.
    const now = await billedPeriods(h.db, source);
    expect(now.length).toBeGreaterThan(billed.length);
    expect(now).toEqual(now.map((_, i) => i));
    // And it hibernates again once idle.
    await dormant(source);
  });

  it('does not hibernate while an approval is pending', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'echo approved' }, { id: 'toolu_wait' }), text('Done.'));
    const id = await h.startSession({ prompt: 'run it', ownerId: 'alice', profile: { permission_mode: 'acceptEdits' } });
    waited = id;
    await h.waitForEvent(id, (e) => e.type === 'tool_approval_request', WAIT);
    await new Promise((r) => setTimeout(r, 5000));
    expect(await sessionContainers(h.docker, id)).toHaveLength(1);
    expect(await getSession(h.db, id)).toMatchObject({ dormant_since: null, activity: 'waiting_approval' });
    // Neither dormant nor ended: not forkable.
    const pre = await callApi(gw.url, 'GET', `/v1/sessions/${id}/fork-preflight`, { token: alice });
    expect(pre.body).toMatchObject({ source_status: 'running', is_forkable: false, is_forkable_reason: expect.stringMatching(/dormant or ended/) });
    expect((await callApi(gw.url, 'POST', `/v1/sessions/${id}/fork`, { token: alice, body: {} })).status).toBe(409);
    await h.service.approve(id, 'toolu_wait', 'y');
    expect(await toolOutput(id, 'toolu_wait')).toContain('approved');
    await dormant(id);
  });

  it('forks a dormant session: its conversation and workspace, the forker\'s profile, forked_from_session_id', async () => {
    const pre = await callApi(gw.url, 'GET', `/v1/sessions/${source}/fork-preflight`, { token: alice });
    expect(pre.status).toBe(200);
    expect(pre.body).toMatchObject({
      source_session_id: source,
      source_session_type: 'user',
      source_status: 'dormant',
      default_fork_name: `Fork of ${source}`,
      source_mcp_servers: [],
      missing_mcps: [],
      is_forkable: true,
      is_forkable_reason: '',
      history_available: true,
    });

    // The forker's profile decides what the fork may do: the one that allows Bash without asking.
    const profiles = (await callApi(gw.url, 'GET', '/v1/profiles', { token: alice })).body.profiles as Array<{ id: string; name: string }>;
    const full = profiles.find((p) => p.name === 'Full Permissions')!;
    h.fake.enqueue(toolUse('Bash', { command: LISTING }, { id: 'toolu_fork' }), text('Forked and ready.'));
    const body = { name: 'Continued', profile_id: full.id, initial_prompt: 'Carry on from here' };
    const r = await callApi(gw.url, 'POST', `/v1/sessions/${source}/fork`, { token: alice, body });
    expect(r.status).toBe(201);
    expect(r.body.session).toMatchObject({ name: 'Continued', forked_from_session_id: source, status: 'starting' });
    const fork = r.body.session.id as string;
    expect(await toolOutput(fork, 'toolu_fork')).toBe(before);
    const first = h.fake.requests[0].body.messages as Array<{ role: string; content: unknown }>;
    expect(JSON.stringify(first[0])).toContain('Set up the workspace');
    expect(JSON.stringify(first)).toContain('Is everything still there?');
    expect(JSON.stringify(first.at(-1))).toContain('Carry on from here');
    expect(await get(fork)).toMatchObject({ forked_from_session_id: source });
    // The source stays as it was: dormant, its own archive untouched.
    expect(await get(source)).toMatchObject({ dormant: true });
    await h.service.terminate(fork, 'user_requested');
    await h.waitForEnd(fork);
  });

  it('wakes a dormant session for a file upload, which lands in the restored workspace', async () => {
    await dormant(waited);
    // Nothing was installed into its venv: the image's is used again, only the workspace was archived.
    expect(fs.readdirSync(path.join(blobDir, 'archives')).filter((n) => n.startsWith(`${waited}.`))).toEqual([`${waited}.workspace.tar`]);
    const bytes = Buffer.from('uploaded while dormant\n');
    const io = (op: string) => `/v1/io/sessions/${waited}/${op}`;
    const ticket = await callApi(gw.url, 'POST', io('upload'), { token: alice, body: { filename: 'note.txt', size: bytes.length } });
    expect(ticket.status).toBe(200);
    expect((await fetch(ticket.body.upload_url, { method: 'PUT', body: bytes })).status).toBe(200);
    const done = await callApi(gw.url, 'POST', io('upload/complete'), { token: alice, body: { upload_id: ticket.body.upload_id } });
    expect(done.status).toBe(200);
    const row = await getSession(h.db, waited);
    expect(row).toMatchObject({ dormant_since: null });
    const placed = await new DockerSandboxes(h.docker).exec(row!.container_id!, ['cat', '/workspace/uploads/note.txt'], { maxOutputBytes: 1024 });
    expect(placed.stdout).toBe(bytes.toString());
  });

  it('asks to acknowledge MCP servers the forker lacks (412), and answers 410 once the archive is gone and 404 for an org session', async () => {
    const id = await h.startSession({ ownerId: 'alice', profile: { mcp_servers: { virustotal: { type: 'http', url: 'http://127.0.0.1:9/mcp' } } } });
    await dormant(id);
    const pre = await callApi(gw.url, 'GET', `/v1/sessions/${id}/fork-preflight`, { token: alice });
    expect(pre.body).toMatchObject({ source_mcp_servers: ['virustotal'], missing_mcps: ['virustotal'], is_forkable: true });
    const refused = await callApi(gw.url, 'POST', `/v1/sessions/${id}/fork`, { token: alice, body: {} });
    expect(refused.status).toBe(412);
    expect(refused.body.error.message).toMatch(/virustotal.*acknowledge_missing_tools/);

    for (const name of fs.readdirSync(path.join(blobDir, 'archives')).filter((n) => n.startsWith(`${id}.`))) {
      fs.rmSync(path.join(blobDir, 'archives', name));
    }
    const after = await callApi(gw.url, 'GET', `/v1/sessions/${id}/fork-preflight`, { token: alice });
    expect(after.body).toMatchObject({ is_forkable: false, is_forkable_reason: expect.stringMatching(/archive is no longer available/) });
    const goneFork = await callApi(gw.url, 'POST', `/v1/sessions/${id}/fork`, { token: alice, body: { acknowledge_missing_tools: ['virustotal'] } });
    expect(goneFork.status).toBe(410);

    const bad = await callApi(gw.url, 'POST', `/v1/sessions/${id}/fork`, { token: alice, body: { acknowledge_missing_tools: 'virustotal' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/acknowledge_missing_tools/);

    // Not the caller's: not found, as for GET /v1/sessions/:id, so ids reveal no other organization's sessions.
    const org = await h.startSession({ trigger: 'dr', ownerId: 'org-1' });
    expect((await callApi(gw.url, 'GET', `/v1/sessions/${org}/fork-preflight`, { token: alice })).status).toBe(404);
    expect((await callApi(gw.url, 'POST', `/v1/sessions/${org}/fork`, { token: alice, body: {} })).status).toBe(404);
    expect((await callApi(gw.url, 'GET', `/v1/sessions/${org}`, { token: alice })).status).toBe(404);
  });
});
