import { TEST_ADMIN_TOKEN, useHarness, type Harness } from './support/harness';
import { decodedHistoryText } from './support/history';
import { callApi } from './support/http';
import { text, toolUse } from './support/fake-anthropic';
import { claimIdempotentKey } from '../store/dr';
import { getSession } from '../store/sessions';
import { pendingIdOf, pendingSessionId, sessionWorkflowId } from '../workflows/messages';
import { seal } from '../store/encryption';

type Gateway = Awaited<ReturnType<Harness['startGateway']>>;

const HIVE_KEY = 'sk-ant-from-the-hive-0123456789';
const ENV_SECRET = 'env-secret-value-from-hive-42';

/** The external D&R entry: a `start ai agent` action and its event, against the real stack. */
describe('D&R actions from an external engine', () => {
  // Long enough that a loaded machine still ends the first session inside it; the test waits it out.
  const WINDOW_SECONDS = 10;
  const h = useHarness({ env: { IDEMPOTENCY_WINDOW_SECONDS: String(WINDOW_SECONDS) } });
  let gw: Gateway;
  let org: { id: string; key: string };

  const call = (method: string, path: string, token: string, body?: unknown) => callApi(gw.url, method, path, { token, body });
  const launch = (body: unknown, o = org) => call('POST', `/v1/orgs/${o.id}/dr/start`, o.key, body);
  const newOrg = async (name: string) => {
    const r = await call('POST', '/v1/admin/orgs', TEST_ADMIN_TOKEN, { name });
    return { id: r.body.org.id as string, key: r.body.api_key as string };
  };
  /** The session a queued request became, once its debounce workflow has started it. */
  const sessionOf = async (pendingId: string) => {
    for (let i = 0; i < 600; i++) {
      const { rows } = await h.db.query<{ session_id: string | null }>('SELECT session_id FROM dr_pending WHERE id = $1', [pendingId]);
      // The row names its session before the debounce workflow starts it as a child: wait for the workflow too.
      const id = rows[0]?.session_id;
      if (id && (await h.client.workflow.getHandle(sessionWorkflowId(id)).describe().then(() => true, () => false))) return id;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`queued request ${pendingId} never became a session`);
  };
  const pendingOf = (sessionId: string) => pendingIdOf(sessionId)!;
  const event = {
    routing: { hostname: 'ws-042', sid: 'sensor-7', event_type: 'NEW_PROCESS' },
    event: { COMMAND_LINE: 'mimikatz.exe sekurlsa::logonpasswords', FILE_PATH: 'C:\\\\tmp\\\\m.exe', PARENT: { FILE_PATH: 'C:\\\\cmd.exe' } },
    detect: { cat: 'credential-dumping', detect_id: 'det-1' },
  };

  beforeAll(async () => {
    gw = await h.startGateway();
    org = await newOrg('soc');
    await call('PUT', `/v1/orgs/${org.id}/hive/secret/anthropic-key`, org.key, { data: { secret: HIVE_KEY } });
    await call('PUT', `/v1/orgs/${org.id}/hive/secret/tool-token`, org.key, { data: { secret: ENV_SECRET } });
  });

  it('runs an inline action with a hive key: prompt rendered, data appended, key resolved in the activity only', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'echo "token=$TOOL_TOKEN"' }), text('Triage done.'));
    const res = await launch({
      ...event,
      rule_name: 'mimikatz-detect',
      action: {
        action: 'start ai agent',
        prompt: 'Investigate {{ .event.COMMAND_LINE }} on {{ .routing.hostname }}.',
        anthropic_secret: 'hive://secret/anthropic-key',
        data: { parent: '{{ .event.PARENT/FILE_PATH }}', sensor: 'routing.sid' },
        profile: { permission_mode: 'bypassPermissions', environment: { TOOL_TOKEN: 'hive://secret/tool-token' } },
      },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ status: 'started' });
    const sessionId = res.body.session_id as string;
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'completed' });

    const req = h.fake.requests.at(-2)!;
    expect(req.headers.authorization).toBe(`Bearer ${HIVE_KEY}`);
    const prompt = req.body.messages[0].content[0].text as string;
    expect(prompt).toContain('Investigate mimikatz.exe sekurlsa::logonpasswords on ws-042.');
    expect(prompt).toContain('"parent": "C:\\\\\\\\cmd.exe"');
    expect(prompt).toContain('"sensor": "sensor-7"');
    const events = await h.events(sessionId);
    expect(events.find((e) => e.type === 'tool_result')!.payload.content).toContain(`token=${ENV_SECRET}`);

    const row = (await getSession(h.db, sessionId))!;
    expect(row).toMatchObject({ owner_type: 'org', owner_id: org.id, trigger: 'dr', rule_name: 'mimikatz-detect', credential_id: 'hive://secret/anthropic-key' });
    const history = await decodedHistoryText(h, sessionWorkflowId(sessionId));
    expect(history).not.toContain(HIVE_KEY);
    expect(history).not.toContain(ENV_SECRET);
  });

  it('runs a definition from the hive, with the rule prompt after a blank line and the rule data winning', async () => {
    await call('PUT', `/v1/orgs/${org.id}/hive/ai_agent/investigator`, org.key, {
      data: {
        prompt: 'You are the investigator.',
        anthropic_secret: 'hive://secret/anthropic-key',
        permission_mode: 'bypassPermissions',
        data: { hostname: 'routing.hostname', source: 'record' },
      },
    });
    h.fake.enqueue(text('Investigated.'));
    const res = await launch({
      ...event,
      action: { action: 'start ai session', definition: 'hive://ai_agent/investigator', prompt: 'Focus on credentials.', data: { source: 'rule' } },
    });
    expect(res.status).toBe(201);
    await h.waitForEnd(res.body.session_id);
    const prompt = h.fake.requests.at(-1)!.body.messages[0].content[0].text as string;
    expect(prompt.startsWith('You are the investigator.\n\nFocus on credentials.')).toBe(true);
    expect(prompt).toContain('"hostname": "ws-042"');
    expect(prompt).toContain('"source": "rule"');

    // Disabled, it cannot start a session and says so; missing, the same.
    await call('PUT', `/v1/orgs/${org.id}/hive/ai_agent/investigator`, org.key, {
      data: { prompt: 'x', anthropic_secret: 'hive://secret/anthropic-key' }, enabled: false,
    });
    const disabled = await launch({ ...event, action: { action: 'start ai agent', definition: 'hive://ai_agent/investigator' } });
    expect(disabled.status).toBe(409);
    expect(disabled.body.error.message).toMatch(/hive:\/\/ai_agent\/investigator is disabled/);
    const missing = await launch({ ...event, action: { action: 'start ai agent', definition: 'hive://ai_agent/nobody' } });
    expect(missing.status).toBe(400);
  });

  it.each([
    ['no prompt', { action: 'start ai agent', anthropic_secret: 'hive://secret/anthropic-key' }, /prompt/],
    ['profile_name', { action: 'start ai agent', prompt: 'p', anthropic_secret: 'hive://secret/anthropic-key', profile_name: 'x' }, /profile_name/],
    ['a bad permission_mode', { action: 'start ai agent', prompt: 'p', anthropic_secret: 'hive://secret/anthropic-key', profile: { permission_mode: 'yolo' } }, /permission_mode/],
    ['a missing hive secret', { action: 'start ai agent', prompt: 'p', anthropic_secret: 'hive://secret/absent' }, /hive:\/\/secret\/absent does not exist/],
  ])('refuses an action with %s, naming it, and starts nothing', async (_name, action, message) => {
    const before = (await h.db.query<{ n: string }>('SELECT count(*) AS n FROM sessions')).rows[0].n;
    const res = await launch({ ...event, action });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(message);
    expect((await h.db.query<{ n: string }>('SELECT count(*) AS n FROM sessions')).rows[0].n).toBe(before);
  });

  it('stores a literal key sealed and never shows it', async () => {
    const literal = 'sk-ant-literal-in-the-rule-999';
    h.fake.enqueue(text('ok'));
    const res = await launch({ ...event, action: { action: 'start ai agent', prompt: 'p', anthropic_secret: literal } });
    expect(res.status).toBe(201);
    expect(res.raw).not.toContain(literal);
    await h.waitForEnd(res.body.session_id);
    expect(h.fake.requests.at(-1)!.headers.authorization).toBe(`Bearer ${literal}`);
    const { rows } = await h.db.query<{ secret: string }>('SELECT secret FROM credentials WHERE owner_id = $1', [org.id]);
    expect(rows.every((r) => !r.secret.includes(literal))).toBe(true);
  });

  it('starts one session for 50 concurrent requests with one idempotent_key, and a new one after the window', async () => {
    h.fake.setResponder(() => text('handled'));
    const action = { action: 'start ai agent', prompt: 'p', anthropic_secret: 'hive://secret/anthropic-key', idempotent_key: '{{ .detect.detect_id }}' };
    const body = { ...event, detect: { detect_id: 'flood-1' }, action };
    const firstRequestAt = Date.now();
    const answers = await Promise.all(Array.from({ length: 50 }, () => launch(body)));
    const ids = new Set(answers.map((a) => a.body.session_id));
    expect(ids.size).toBe(1);
    expect(answers.filter((a) => a.body.status === 'started')).toHaveLength(1);
    expect(answers.filter((a) => a.status === 200 && a.body.status === 'duplicate')).toHaveLength(49);
    const [first] = ids;
    await h.waitForEnd(first);
    // Ended, still inside the window: still the same session.
    expect((await launch(body)).body).toMatchObject({ status: 'duplicate', session_id: first });
    // The window counts from when the key was claimed (the store's clock), which a loaded machine puts after the request.
    const { rows: claim } = await h.db.query<{ at: string }>(`SELECT first_seen_at AS at FROM dr_idempotency WHERE org_id = $1 AND key = 'flood-1'`, [org.id]);
    const claimedAt = new Date(claim[0].at).getTime();
    expect(claimedAt).toBeGreaterThanOrEqual(firstRequestAt - 1000);
    await new Promise((r) => setTimeout(r, Math.max(0, claimedAt + WINDOW_SECONDS * 1000 + 500 - Date.now())));
    const later = await launch(body);
    expect(later.body.status).toBe('started');
    expect(later.body.session_id).not.toBe(first);
    await h.waitForEnd(later.body.session_id);
    const { rows } = await h.db.query<{ n: string }>(`SELECT count(*) AS n FROM sessions WHERE owner_id = $1 AND profile->>'one_shot' = 'true'`, [org.id]);
    expect(Number(rows[0].n)).toBeGreaterThanOrEqual(2);
  });

  it('starts the session a crash left recorded but not started, when the request is repeated', async () => {
    // The state a gateway leaves when it dies between committing the claim and starting the workflow.
    const sessionId = 'crashed-between-claim-and-start';
    await h.db.transaction(async (tx) => {
      await claimIdempotentKey(tx, { orgId: org.id, key: 'crash-key', sessionId, windowSeconds: 3600 });
      await gw.deps.service.record(tx, {
        sessionId, ownerType: 'org', ownerId: org.id, orgId: org.id, trigger: 'dr',
        profile: { one_shot: true }, credentialId: 'hive://secret/anthropic-key', initialPrompt: 'recorded before the crash',
      });
    });
    h.fake.setResponder(() => text('picked up'));
    const res = await launch({ ...event, action: { action: 'start ai agent', prompt: 'p', anthropic_secret: 'hive://secret/anthropic-key', idempotent_key: 'crash-key' } });
    expect(res.body).toMatchObject({ status: 'duplicate', session_id: sessionId });
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'completed' });
    expect(JSON.stringify(h.fake.requests.at(-1)!.body)).toContain('recorded before the crash');
  });

  it('runs a burst of 50 events for one debounce key as exactly two sessions, the second with the latest event', async () => {
    // The first session stays busy while the burst arrives.
    h.fake.setResponder((req) => (JSON.stringify(req.body).includes('Case event-0"') ? text('first done', { hangMs: 4000 }) : text('latest done')));
    const action = {
      action: 'start ai agent',
      prompt: 'Case {{ .detect.detect_id }} ',
      anthropic_secret: 'hive://secret/anthropic-key',
      debounce_key: 'triage-{{ .routing.sid }}',
    };
    const answers = [];
    for (let i = 0; i < 50; i++) {
      answers.push(await launch({ ...event, detect: { detect_id: `event-${i}` }, action }));
    }
    expect(answers.every((a) => a.status === 202 && a.body.status === 'queued' && a.body.debounce_key === 'triage-sensor-7')).toBe(true);

    const sessions = async () =>
      (await h.db.query<{ id: string }>(`SELECT session_id AS id FROM dr_pending WHERE org_id = $1 AND state = 'started' ORDER BY created_at`, [org.id])).rows;
    const deadline = Date.now() + 90_000;
    while ((await sessions()).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const started = await sessions();
    expect(started).toHaveLength(2);
    for (const s of started) await expect(h.waitForEnd(await sessionOf(pendingOf(s.id)))).resolves.toMatchObject({ endReason: 'completed' });
    const prompts = await Promise.all(started.map(async (s) => (await h.events(s.id)).find((e) => e.type === 'user')!.payload.text as string));
    expect(prompts[0]).toContain('Case event-0');
    expect(prompts[1]).toContain('Case event-49');
    const { rows } = await h.db.query<{ state: string; n: string }>(
      `SELECT state, count(*) AS n FROM dr_pending WHERE org_id = $1 GROUP BY state ORDER BY state`, [org.id]);
    expect(rows.map((r) => [r.state, Number(r.n)])).toEqual([['started', 2], ['superseded', 48]]);
    // The key's workflow has exited: nothing waits.
    await new Promise((r) => setTimeout(r, 1000));
    expect((await sessions()).length).toBe(2);
  });

  it('combines idempotent_key with debounce_key: duplicates queue nothing and answer with what the first became', async () => {
    const o = await newOrg('both-keys');
    await call('PUT', `/v1/orgs/${o.id}/hive/secret/anthropic-key`, o.key, { data: { secret: HIVE_KEY } });
    h.fake.setResponder((req) => (JSON.stringify(req.body).includes('Case case-1') ? text('first', { hangMs: 3000 }) : text('second')));
    const action = (caseId: string) => ({
      ...event,
      detect: { detect_id: caseId },
      action: {
        action: 'start ai agent', prompt: 'Case {{ .detect.detect_id }}', anthropic_secret: 'hive://secret/anthropic-key',
        idempotent_key: '{{ .detect.detect_id }}', debounce_key: 'triage-{{ .routing.sid }}',
      },
    });
    const first = await launch(action('case-1'), o);
    expect(first.body).toMatchObject({ status: 'queued', idempotent_key: 'case-1', debounce_key: 'triage-sensor-7' });
    const firstSession = await sessionOf(first.body.request_id);
    expect((await launch(action('case-1'), o)).body).toMatchObject({ status: 'duplicate', session_id: firstSession });
    const second = await launch(action('case-2'), o);
    expect(second.status).toBe(202);
    const dup = await launch(action('case-2'), o);
    expect(dup.status).toBe(200);
    expect(dup.body).toMatchObject({ status: 'duplicate', request_id: second.body.request_id, request_state: 'queued', idempotent_key: 'case-2' });

    await expect(h.waitForEnd(firstSession)).resolves.toMatchObject({ endReason: 'completed' });
    const { rows } = await h.db.query<{ state: string; session_id: string }>(
      `SELECT state, session_id FROM dr_pending WHERE org_id = $1 ORDER BY created_at`, [o.id]);
    expect(rows.map((r) => r.state)).toEqual(['started', expect.stringMatching(/queued|started/)]);
    const secondSession = await sessionOf(second.body.request_id);
    await expect(h.waitForEnd(secondSession)).resolves.toMatchObject({ endReason: 'completed' });
    const prompts = await Promise.all([firstSession, secondSession].map(async (id) => (await h.events(id)).find((e) => e.type === 'user')!.payload.text));
    expect(prompts[0]).toContain('Case case-1');
    expect(prompts[1]).toContain('Case case-2');
    expect((await h.db.query(`SELECT 1 FROM dr_pending WHERE org_id = $1`, [o.id])).rows).toHaveLength(2);
  });

  it('signals a debounced request that a crash left recorded but unsignalled, once, when its duplicate arrives', async () => {
    const o = await newOrg('crash-debounce');
    await call('PUT', `/v1/orgs/${o.id}/hive/secret/anthropic-key`, o.key, { data: { secret: HIVE_KEY } });
    h.fake.setResponder(() => text('recovered'));
    const body = {
      ...event,
      action: {
        action: 'start ai agent', prompt: 'recorded before the crash', anthropic_secret: 'hive://secret/anthropic-key',
        idempotent_key: 'crash-both', debounce_key: 'crash-key',
      },
    };
    // The gateway died after committing the request and its claim, before the signal: the row is there, unsignalled.
    const pendingId = 'dbq_00000000-0000-4000-8000-000000000042';
    await h.db.transaction(async (tx) => {
      await claimIdempotentKey(tx, { orgId: o.id, key: 'crash-both', sessionId: pendingSessionId(pendingId), windowSeconds: WINDOW_SECONDS });
      const params = {
        ownerType: 'org', ownerId: o.id, orgId: o.id, trigger: 'dr', profile: { one_shot: true },
        credentialId: 'hive://secret/anthropic-key', initialPrompt: 'recorded before the crash',
      };
      await tx.query('INSERT INTO dr_pending (id, org_id, debounce_key, sealed_params) VALUES ($1, $2, $3, $4)', [
        pendingId, o.id, 'crash-key', seal(h.keyring, JSON.stringify(params)),
      ]);
    });
    const res = await launch(body, o);
    expect(res.body).toMatchObject({ status: 'duplicate', request_id: pendingId, idempotent_key: 'crash-both' });
    const sessionId = await sessionOf(pendingId);
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'completed' });
    expect((await h.events(sessionId)).find((e) => e.type === 'user')!.payload.text).toContain('recorded before the crash');
    // Signalled once: a later duplicate answers with the session and queues nothing.
    const later = await launch(body, o);
    expect(later.body).toMatchObject({ status: 'duplicate', session_id: sessionId });
    const { rows } = await h.db.query<{ n: string }>('SELECT count(*) AS n FROM sessions WHERE owner_id = $1', [o.id]);
    expect(Number(rows[0].n)).toBe(1);
  });

  it('refuses another organization’s key', async () => {
    const other = await newOrg('other');
    const res = await call('POST', `/v1/orgs/${org.id}/dr/start`, other.key, { ...event, action: { action: 'start ai agent', prompt: 'p', anthropic_secret: 'hive://secret/anthropic-key' } });
    expect(res.status).toBe(403);
  });
});
