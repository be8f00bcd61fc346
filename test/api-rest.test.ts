import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { sessionContainers, TEST_JWT_SECRET, useHarness, type Harness } from './support/harness';
import { text } from './support/fake-anthropic';
import { mintToken } from '../api/auth';
import { MASKED } from '../lib/profile';
import { fullProfile } from '../store/profiles';
import { listEvents } from '../store/events';
import { open } from '../store/encryption';

/** The read-only allow list tool-permissions.md ships in every new user's Default profile. */
const READ_ONLY_TOOLS = [
  'Read',
  'Bash(cat:*)', 'Bash(head:*)', 'Bash(tail:*)', 'Bash(less:*)',
  'Bash(grep:*)', 'Bash(sed:*)', 'Bash(awk:*)', 'Bash(jq:*)',
  'Bash(ls:*)', 'Bash(find:*)', 'Bash(wc:*)',
];
const REFERENCE_SESSION_FIELDS = [
  'id', 'status', 'region', 'created_at', 'started_at', 'terminated_at', 'end_reason',
  'exit_code', 'error_message', 'allowed_tools', 'denied_tools',
];
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

interface Reply {
  status: number;
  headers: Headers;
  // Response bodies are JSON of many shapes; tests index into them freely.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
}

const token = (sub: string, email = `${sub}@example.com`) => mintToken(TEST_JWT_SECRET, { sub, email });
const apiKey = () => `sk-ant-api03-${randomBytes(20).toString('hex')}`;

/**
 * A harness plus a gateway on a free port. `api()` sends JSON with plain fetch and
 * records every response text; sessions the API starts are ended before the harness closes.
 */
function useGateway(opts: { env?: Record<string, string>; noWorker?: boolean } = {}) {
  let gw: Awaited<ReturnType<Harness['startGateway']>> | undefined;
  const startedSessions: string[] = [];
  const responses: string[] = [];
  // Declared before useHarness so it runs first: the harness is still open for the cleanup.
  afterAll(async () => {
    for (const id of startedSessions) {
      await gw?.deps.service.terminate(id, 'user_requested').catch(() => undefined);
      await gw?.deps.service.waitForEnd(id).catch(() => undefined);
    }
    await gw?.stop();
  });
  const h = useHarness(opts);
  beforeAll(async () => {
    gw = await h.startGateway();
  });

  async function send(method: string, path: string, init: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...init.headers };
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    let body: string | undefined = init.raw;
    if (init.body !== undefined) body = JSON.stringify(init.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(`${gw!.url}${path}`, { method, headers, body });
    const text = await res.text();
    responses.push(text);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (method === 'POST' && path === '/v1/sessions' && res.status === 201) startedSessions.push((json as { session: { id: string } }).session.id);
    return { status: res.status, headers: res.headers, body: json, text };
  }
  const api = (method: string, path: string, tok?: string, body?: unknown) => send(method, path, { token: tok, body });

  /** A registered user, with a stored Claude API key unless told otherwise. */
  async function user(sub: string, p: { key?: boolean } = {}) {
    const tok = await token(sub);
    expect((await api('POST', '/v1/register', tok)).status).toBe(200);
    if (p.key !== false) expect((await api('POST', '/v1/auth/claude/apikey', tok, { api_key: apiKey() })).status).toBe(200);
    return tok;
  }

  async function waitForStatus(tok: string, id: string, status: string) {
    const deadline = Date.now() + 60_000;
    let last: Reply | undefined;
    while (Date.now() < deadline) {
      last = await api('GET', `/v1/sessions/${id}`, tok);
      if (last.body?.session?.status === status) return last.body.session;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`session ${id} never reached ${status}; last: ${last?.text}`);
  }

  /** Terminates through the API and waits for the workflow to end. */
  async function terminate(tok: string, id: string, harness: Harness) {
    const r = await api('DELETE', `/v1/sessions/${id}`, tok);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ terminated: true });
    const outcome = await harness.waitForEnd(id);
    // The sandbox goes with the session.
    expect(await sessionContainers(harness.docker, id)).toHaveLength(0);
    return outcome;
  }

  return { h, api, send, user, waitForStatus, terminate, responses };
}

const expectError = (r: Reply, status: number, mentions?: string | RegExp) => {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/application\/json/);
  expect(typeof r.body?.error?.code).toBe('string');
  expect(typeof r.body?.error?.message).toBe('string');
  if (mentions !== undefined) expect(r.body.error.message).toMatch(mentions);
};

describe('REST API on the real stack', () => {
  const { h, api, send, user, waitForStatus, terminate, responses } = useGateway();

  describe('authentication', () => {
    it('needs no token for /healthz', async () => {
      const r = await api('GET', '/healthz');
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ status: 'ok' });
    });

    it('refuses requests without a valid token with a 401 JSON error', async () => {
      expectError(await api('GET', '/v1/profiles'), 401);
      for (const authorization of ['Basic YWxpY2U6cHc=', 'Bearer', 'Bearer a b', await token('alice')]) {
        expectError(await send('GET', '/v1/profiles', { headers: { authorization } }), 401);
      }
      expectError(await api('GET', '/v1/profiles', 'not.a.jwt'), 401);

      const good = await token('alice');
      const [head, payload] = good.split('.');
      expectError(await api('GET', '/v1/profiles', `${head}.${payload}.${Buffer.from('forged').toString('base64url')}`), 401);

      const expired = await new SignJWT({ email: 'alice@example.com' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('alice')
        .setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
        .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
        .sign(new TextEncoder().encode(TEST_JWT_SECRET));
      expectError(await api('GET', '/v1/profiles', expired), 401);

      const otherSecret = await mintToken('another-secret-entirely-0123456789abcdef', { sub: 'alice' });
      expectError(await api('GET', '/v1/profiles', otherSecret), 401);

      // The same user with a good token gets through.
      const ok = await api('GET', '/v1/profiles', good);
      expect(ok.status).toBe(200);
      expect(ok.body).toEqual({ profiles: [] });
    });
  });

  describe('registration', () => {
    it('registers once and provisions the Default and Full Permissions profiles', async () => {
      const tok = await token('rita');
      const r = await api('POST', '/v1/register', tok);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ registered: true, registered_at: expect.stringMatching(ISO) });

      expectError(await api('POST', '/v1/register', tok), 409);

      const list = await api('GET', '/v1/profiles', tok);
      expect(list.status).toBe(200);
      expect(list.body.profiles).toHaveLength(2);
      const byName = Object.fromEntries(list.body.profiles.map((p: { name: string }) => [p.name, p]));
      expect(byName.Default).toMatchObject({
        is_default: true,
        permission_mode: 'acceptEdits',
        allowed_tools: READ_ONLY_TOOLS,
        denied_tools: [],
      });
      expect(byName['Full Permissions']).toMatchObject({
        is_default: false,
        permission_mode: 'bypassPermissions',
        allowed_tools: [],
        denied_tools: [],
      });
      for (const p of list.body.profiles) {
        expect(p).toEqual(expect.objectContaining({
          id: expect.any(String),
          description: expect.any(String),
          provider: 'anthropic',
          created_at: expect.stringMatching(ISO),
          updated_at: expect.stringMatching(ISO),
        }));
      }
    });

    it('deregisters: sessions end, credentials, profiles and session records go', async () => {
      const tok = await user('dora');
      const profileId = (await api('GET', '/v1/profiles', tok)).body.profiles[0].id;
      const created = await api('POST', '/v1/sessions', tok, {});
      expect(created.status).toBe(201);
      const id = created.body.session.id;
      await waitForStatus(tok, id, 'running');

      const r = await api('DELETE', '/v1/register', tok);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ deregistered: true });
      expect((await h.waitForEnd(id)).endReason).toBe('user_requested');
      expect(await sessionContainers(h.docker, id)).toHaveLength(0);

      const sessions = await api('GET', '/v1/sessions', tok);
      expect(sessions.status).toBe(200);
      expect(sessions.body).toEqual({ sessions: [], next_cursor: null });
      expectError(await api('GET', `/v1/sessions/${id}`, tok), 404);
      expectError(await api('GET', `/v1/profiles/${profileId}`, tok), 404);
      expect((await api('GET', '/v1/profiles', tok)).body).toEqual({ profiles: [] });
      expect((await api('GET', '/v1/auth/claude/status', tok)).body).toMatchObject({ has_credentials: false });
      expect((await h.db.query('SELECT id FROM credentials WHERE owner_id = $1', ['dora'])).rows).toEqual([]);
      expect(await listEvents(h.db, id)).toEqual([]);

      expectError(await api('DELETE', '/v1/register', tok), 404);
      // The user can register again from scratch.
      expect((await api('POST', '/v1/register', tok)).status).toBe(200);
    });
  });

  describe('Claude API key', () => {
    it('stores the key sealed, reports its status and never returns it', async () => {
      const key = apiKey();
      const tok = await token('carl');
      const seen = responses.length;

      expectError(await api('POST', '/v1/auth/claude/apikey', tok, { api_key: key }), 403);
      expect((await api('POST', '/v1/register', tok)).status).toBe(200);

      expectError(await api('POST', '/v1/auth/claude/apikey', tok, { api_key: 'not-a-key' }), 400, /api_key/);
      // A placeholder copied from an example, or a key with a line break pasted in: refused, naming the field.
      for (const bad of ['sk-ant-...', 'sk-ant-', 'sk-ant-abc', `${key}\n`, `sk-ant-api03 ${'x'.repeat(20)}`]) {
        expectError(await api('POST', '/v1/auth/claude/apikey', tok, { api_key: bad }), 400, /api_key: .*not an Anthropic API key/);
      }
      expectError(await api('POST', '/v1/auth/claude/apikey', tok, { api_key: key, label: 'work' }), 400, /label/);
      const malformed = await send('POST', '/v1/auth/claude/apikey', { token: tok, raw: '{"api_key": "sk-ant-' });
      expectError(malformed, 400);
      expect(malformed.body.error.code).toBe('invalid_json');
      expect((await api('GET', '/v1/auth/claude/status', tok)).body).toEqual({ has_credentials: false });

      const stored = await api('POST', '/v1/auth/claude/apikey', tok, { api_key: key });
      expect(stored.status).toBe(200);
      expect(stored.body).toMatchObject({ success: true });

      const status = await api('GET', '/v1/auth/claude/status', tok);
      expect(status.status).toBe(200);
      expect(status.body).toEqual({ has_credentials: true, credential_type: 'api_key', created_at: expect.stringMatching(ISO) });

      const { rows } = await h.db.query<{ secret: string }>('SELECT secret FROM credentials WHERE owner_id = $1', ['carl']);
      expect(rows).toHaveLength(1);
      expect(rows[0].secret.startsWith('v1.')).toBe(true);
      expect(rows[0].secret).not.toContain(key);
      expect(open(h.keyring, rows[0].secret)).toBe(key);

      // Read whatever a client can read; the key appears in none of it.
      await api('GET', '/v1/profiles', tok);
      await api('GET', '/v1/sessions', tok);
      expect(responses.length - seen).toBeGreaterThanOrEqual(10);
      for (const body of responses.slice(seen)) expect(body).not.toContain(key);

      expect((await api('DELETE', '/v1/auth/claude', tok)).status).toBe(200);
      expect((await api('GET', '/v1/auth/claude/status', tok)).body).toEqual({ has_credentials: false });
      expect((await h.db.query('SELECT id FROM credentials WHERE owner_id = $1', ['carl'])).rows).toEqual([]);
    });
  });

  describe('profiles', () => {
    let tok: string;
    let other: string;
    let created: { id: string } & Record<string, unknown>;
    const full = {
      name: 'Investigation',
      description: 'Profile for security investigations',
      allowed_tools: ['Bash', 'Read', 'Grep'],
      denied_tools: ['Write', 'Edit'],
      permission_mode: 'acceptEdits',
      provider: 'anthropic',
      model: 'claude-sonnet-4-20250514',
      max_turns: 100,
      max_budget_usd: 10,
      one_shot: false,
      ttl_seconds: 3600,
      environment: { VT_API_KEY: 'vt-secret-value', REGION: 'eu' },
      mcp_servers: { virustotal: { type: 'http', url: 'https://vt-mcp.example.com', headers: { 'x-apikey': 'vt-header-secret' } } },
      network_access: true,
      is_default: false,
    };

    beforeAll(async () => {
      tok = await user('paula', { key: false });
      other = await user('otto', { key: false });
    });

    it('creates a profile with every field and masks its secret values', async () => {
      const r = await api('POST', '/v1/profiles', tok, full);
      expect(r.status).toBe(201);
      created = r.body.profile;
      expect(created).toEqual({
        ...full,
        id: expect.any(String),
        environment: { VT_API_KEY: MASKED, REGION: MASKED },
        mcp_servers: { virustotal: { type: 'http', url: 'https://vt-mcp.example.com', headers: { 'x-apikey': MASKED } } },
        created_at: expect.stringMatching(ISO),
        updated_at: expect.stringMatching(ISO),
      });
      expect(r.text).not.toContain('vt-secret-value');
      expect(r.text).not.toContain('vt-header-secret');

      const got = await api('GET', `/v1/profiles/${created.id}`, tok);
      expect(got.status).toBe(200);
      expect(got.body.profile).toEqual(created);
      const list = await api('GET', '/v1/profiles', tok);
      expect(list.body.profiles.map((p: { id: string }) => p.id)).toContain(created.id);
      expect(list.body.profiles).toHaveLength(3);

      const stored = await fullProfile(h.db, h.keyring, 'paula', created.id);
      expect(stored?.environment).toEqual(full.environment);
      expect(stored?.mcp_servers?.virustotal).toMatchObject({ headers: { 'x-apikey': 'vt-header-secret' } });
    });

    it('rejects invalid bodies with a 400 naming the field', async () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ name: '' }, /name/],
        [{ name: 'x'.repeat(101) }, /name/],
        [{ name: 'ok', description: 'd'.repeat(501) }, /description/],
        [{ name: 'ok', permission_mode: 'yolo' }, /permission_mode/],
        [{ name: 'ok', allowed_tools: ['Bash(git)'] }, /allowed_tools.*Bash\(git\)/],
        [{ name: 'ok', colour: 'red' }, /colour/],
        [{ name: 'ok', mcp_servers: { vt: { type: 'ftp' } } }, /mcp_servers\.vt/],
        [{ name: 'ok', provider: 'openai' }, /provider/],
      ];
      for (const [body, field] of cases) {
        const r = await api('POST', '/v1/profiles', tok, body);
        expectError(r, 400, field);
      }
      expect((await api('GET', '/v1/profiles', tok)).body.profiles).toHaveLength(3);
      // The same rules hold for updates.
      expectError(await api('PUT', `/v1/profiles/${created.id}`, tok, { permission_mode: 'yolo' }), 400, /permission_mode/);
      expectError(await api('PUT', `/v1/profiles/${created.id}`, tok, { colour: 'red' }), 400, /colour/);
    });

    it('updates partially, and a read written back keeps the secret values', async () => {
      const partial = await api('PUT', `/v1/profiles/${created.id}`, tok, { description: 'now narrower' });
      expect(partial.status).toBe(200);
      expect(partial.body.profile).toEqual({ ...created, description: 'now narrower', updated_at: expect.stringMatching(ISO) });
      expect(await fullProfile(h.db, h.keyring, 'paula', created.id)).toMatchObject({
        environment: full.environment,
        mcp_servers: { virustotal: { headers: { 'x-apikey': 'vt-header-secret' } } },
      });

      // GET → PUT of the whole resource, masked values and all.
      const read = (await api('GET', `/v1/profiles/${created.id}`, tok)).body.profile;
      expect(read.environment).toEqual({ VT_API_KEY: MASKED, REGION: MASKED });
      const back = await api('PUT', `/v1/profiles/${created.id}`, tok, { ...read, max_turns: 50 });
      expect(back.status).toBe(200);
      expect(back.body.profile).toMatchObject({ max_turns: 50, environment: { VT_API_KEY: MASKED, REGION: MASKED } });
      const afterRoundTrip = await fullProfile(h.db, h.keyring, 'paula', created.id);
      expect(afterRoundTrip?.environment).toEqual(full.environment);
      expect(afterRoundTrip?.mcp_servers?.virustotal).toMatchObject({ headers: { 'x-apikey': 'vt-header-secret' } });

      // A new value replaces the stored one; masked neighbours keep theirs.
      expectError(await api('PUT', `/v1/profiles/${created.id}`, tok, { ...read, id: 'prof_other' }), 400, /id/);

      const changed = await api('PUT', `/v1/profiles/${created.id}`, tok, { environment: { VT_API_KEY: 'vt-rotated', REGION: MASKED } });
      expect(changed.status).toBe(200);
      expect(changed.body.profile.environment).toEqual({ VT_API_KEY: MASKED, REGION: MASKED });
      expect(changed.text).not.toContain('vt-rotated');
      expect((await fullProfile(h.db, h.keyring, 'paula', created.id))?.environment).toEqual({ VT_API_KEY: 'vt-rotated', REGION: 'eu' });
    });

    it('switches the default, refuses to delete it, and deletes others', async () => {
      const before = (await api('GET', '/v1/profiles', tok)).body.profiles as Array<{ id: string; name: string; is_default: boolean }>;
      const oldDefault = before.find((p) => p.is_default)!;
      expect(oldDefault.name).toBe('Default');
      expectError(await api('DELETE', `/v1/profiles/${oldDefault.id}`, tok), 409);

      const set = await api('POST', `/v1/profiles/${created.id}/default`, tok);
      expect(set.status).toBe(200);
      expect(set.body.profile).toMatchObject({ id: created.id, is_default: true });
      const after = (await api('GET', '/v1/profiles', tok)).body.profiles as Array<{ id: string; is_default: boolean }>;
      expect(after.filter((p) => p.is_default).map((p) => p.id)).toEqual([created.id]);

      expectError(await api('DELETE', `/v1/profiles/${created.id}`, tok), 409);
      const del = await api('DELETE', `/v1/profiles/${oldDefault.id}`, tok);
      expect(del.status).toBe(200);
      expectError(await api('GET', `/v1/profiles/${oldDefault.id}`, tok), 404);
      expect((await api('GET', '/v1/profiles', tok)).body.profiles).toHaveLength(2);
    });

    it('allows at most 10 profiles', async () => {
      let count = (await api('GET', '/v1/profiles', tok)).body.profiles.length;
      while (count < 10) {
        expect((await api('POST', '/v1/profiles', tok, { name: `extra ${count}` })).status).toBe(201);
        count += 1;
      }
      expectError(await api('POST', '/v1/profiles', tok, { name: 'eleventh' }), 409);
      expect((await api('GET', '/v1/profiles', tok)).body.profiles).toHaveLength(10);
    });

    it("hides another user's profile", async () => {
      const path = `/v1/profiles/${created.id}`;
      expectError(await api('GET', path, other), 404);
      expectError(await api('PUT', path, other, { description: 'mine now' }), 404);
      expectError(await api('DELETE', path, other), 404);
      expectError(await api('POST', `${path}/default`, other), 404);
      const still = await api('GET', path, tok);
      expect(still.status).toBe(200);
      expect(still.body.profile.description).not.toBe('mine now');
      expect((await fullProfile(h.db, h.keyring, 'paula', created.id))).toBeDefined();
      const theirs = (await api('GET', '/v1/profiles', other)).body.profiles as Array<{ id: string; name: string; is_default: boolean }>;
      expect(theirs.map((p) => p.id)).not.toContain(created.id);
      expect(theirs.filter((p) => p.is_default).map((p) => p.name)).toEqual(['Default']);
    });
  });

  describe('sessions', () => {
    it('needs registration and a stored credential', async () => {
      const tok = await token('nora');
      expectError(await api('POST', '/v1/sessions', tok, {}), 403);
      expect((await api('POST', '/v1/register', tok)).status).toBe(200);
      expectError(await api('POST', '/v1/sessions', tok, {}), 403, /credential/);
      expect((await api('GET', '/v1/sessions', tok)).body).toEqual({ sessions: [], next_cursor: null });
    });

    it('validates the create body and starts nothing for a bad one', async () => {
      const tok = await user('vera');
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ allowed_tools: ['Bash(git)'] }, /allowed_tools/],
        [{ denied_tools: 'Write' }, /denied_tools/],
        [{ provider: 'openai' }, /provider/],
        [{ colour: 'red' }, /colour/],
        [{ profile_id: 'prof_nope' }, /profile_id/],
      ];
      for (const [body, field] of cases) expectError(await api('POST', '/v1/sessions', tok, body), 400, field);
      // A profile already at the list's maximum: the session's extra denial makes the merged list too long.
      const denied = Array.from({ length: 200 }, (_, i) => `Bash(tool${i}:*)`);
      const p = await api('POST', '/v1/profiles', tok, { name: 'many denials', denied_tools: denied });
      expect(p.status).toBe(201);
      expectError(await api('POST', '/v1/sessions', tok, { profile_id: p.body.profile.id, denied_tools: ['Edit'] }), 400, /denied_tools/);
      expect((await api('GET', '/v1/sessions', tok)).body.sessions).toEqual([]);
    });

    it('creates, reads, captures, terminates and deletes a session', async () => {
      const tok = await user('sam');
      const eve = await user('eve');
      const profile = await api('POST', '/v1/profiles', tok, { name: 'no writes', permission_mode: 'acceptEdits', denied_tools: ['Write'] });
      expect(profile.status).toBe(201);

      h.fake.enqueue(text('Ready.'));
      const created = await api('POST', '/v1/sessions', tok, {
        profile_id: profile.body.profile.id,
        allowed_tools: ['Bash'],
        denied_tools: ['Edit'],
        initial_prompt: 'Say you are ready',
      });
      expect(created.status).toBe(201);
      expect(created.body.session).toEqual(expect.objectContaining({
        id: expect.any(String),
        status: 'starting',
        region: expect.any(String),
        created_at: expect.stringMatching(ISO),
      }));
      const id: string = created.body.session.id;
      const path = `/v1/sessions/${id}`;

      const got = await api('GET', path, tok);
      expect(got.status).toBe(200);
      for (const field of REFERENCE_SESSION_FIELDS) expect(got.body.session).toHaveProperty(field);
      expect(got.body.session).toMatchObject({ id, terminated_at: null, end_reason: null, exit_code: null, error_message: null });
      expect(got.body.session.allowed_tools).toEqual(['Bash']);
      // The profile's denial survives the session's own list.
      expect([...got.body.session.denied_tools].sort()).toEqual(['Edit', 'Write']);

      const running = await waitForStatus(tok, id, 'running');
      expect(running.started_at).toMatch(ISO);
      await h.waitForEvent(id, (e) => e.type === 'result');
      expect(h.fake.requests).toHaveLength(1);

      // Someone else's session does not exist for them.
      expectError(await api('GET', path, eve), 404);
      expectError(await api('DELETE', path, eve), 404);
      expectError(await api('DELETE', `${path}/record`, eve), 404);
      expectError(await api('POST', `${path}/capture-profile`, eve, { name: 'stolen' }), 404);
      expect((await api('GET', path, tok)).body.session.status).toBe('running');

      const captured = await api('POST', `${path}/capture-profile`, tok, { name: 'Captured' });
      expect(captured.status).toBe(201);
      expect(captured.body.profile).toMatchObject({ name: 'Captured', is_default: false, permission_mode: 'acceptEdits', allowed_tools: ['Bash'] });
      expect([...captured.body.profile.denied_tools].sort()).toEqual(['Edit', 'Write']);
      expect((await api('GET', `/v1/profiles/${captured.body.profile.id}`, tok)).status).toBe(200);

      expectError(await api('DELETE', `${path}/record`, tok), 409);

      expect((await terminate(tok, id, h)).endReason).toBe('user_requested');
      const ended = (await api('GET', path, tok)).body.session;
      expect(ended).toMatchObject({ status: 'ended', end_reason: 'user_requested' });
      expect(ended.terminated_at).toMatch(ISO);
      expectError(await api('DELETE', path, tok), 409);

      expect((await listEvents(h.db, id)).length).toBeGreaterThan(0);
      const deleted = await api('DELETE', `${path}/record`, tok);
      expect(deleted.status).toBe(200);
      expect(deleted.body).toEqual({ deleted: true });
      expectError(await api('GET', path, tok), 404);
      expect(await listEvents(h.db, id)).toEqual([]);
      expect((await api('GET', '/v1/sessions', tok)).body.sessions).toEqual([]);
    });

    it('lists sessions with a status filter and cursor pagination', async () => {
      const tok = await user('lena');
      for (const limit of ['0', '201', 'abc']) expectError(await api('GET', `/v1/sessions?limit=${limit}`, tok), 400, /limit/);
      expectError(await api('GET', '/v1/sessions?cursor=not-a-cursor', tok), 400, /cursor/);
      expectError(await api('GET', '/v1/sessions?status=sleeping', tok), 400, /status/);

      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await api('POST', '/v1/sessions', tok, { name: `list ${i}` });
        expect(r.status).toBe(201);
        ids.push(r.body.session.id);
      }
      expect((await terminate(tok, ids[0], h)).endReason).toBe('user_requested');
      await waitForStatus(tok, ids[0], 'ended');

      const endedOnly = await api('GET', '/v1/sessions?status=ended', tok);
      expect(endedOnly.status).toBe(200);
      expect(endedOnly.body.sessions.map((s: { id: string }) => s.id)).toEqual([ids[0]]);
      const notEnded = [
        ...(await api('GET', '/v1/sessions?status=starting', tok)).body.sessions,
        ...(await api('GET', '/v1/sessions?status=running', tok)).body.sessions,
      ].map((s: { id: string }) => s.id);
      expect(notEnded.sort()).toEqual([ids[1], ids[2]].sort());

      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const r: Reply = await api('GET', `/v1/sessions?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, tok);
        expect(r.status).toBe(200);
        expect(r.body.sessions.length).toBeLessThanOrEqual(2);
        for (const s of r.body.sessions) for (const field of REFERENCE_SESSION_FIELDS) expect(s).toHaveProperty(field);
        seen.push(...r.body.sessions.map((s: { id: string }) => s.id));
        cursor = r.body.next_cursor;
        pages += 1;
      } while (cursor && pages < 5);
      expect(pages).toBe(2);
      expect(cursor).toBeNull();
      expect([...seen].sort()).toEqual([...ids].sort());
      // Newest first.
      expect(seen).toEqual([...ids].reverse());

      for (const id of ids.slice(1)) expect((await terminate(tok, id, h)).endReason).toBe('user_requested');
    });
  });

  describe('anything else', () => {
    it('answers an unknown endpoint with a JSON 404', async () => {
      const tok = await token('alice');
      expectError(await api('GET', '/v1/no-such-thing', tok), 404);
      expectError(await api('POST', '/v1/sessions/x/nothing', tok, {}), 404);
      expectError(await api('GET', '/nowhere'), 404);
    });

    it('refuses a body over 1 MB with 413', async () => {
      const tok = await token('alice');
      const r = await api('POST', '/v1/profiles', tok, { name: 'big', description: 'x'.repeat(1_100_000) });
      expectError(r, 413);
      // Just under the limit the body is read and the request handled (alice is not registered).
      expectError(await api('POST', '/v1/profiles', tok, { name: 'big', description: 'x'.repeat(900_000) }), 403);
    });
  });
});

describe('REST API with registration limited to email domains', () => {
  const { api } = useGateway({ env: { REGISTRATION_EMAIL_DOMAINS: 'example.com' }, noWorker: true });

  it('registers only users whose email is in an allowed domain', async () => {
    expectError(await api('POST', '/v1/register', await token('mallory', 'x@evil.test')), 403, /domain/);
    expectError(await api('POST', '/v1/register', await mintToken(TEST_JWT_SECRET, { sub: 'noemail' })), 403);
    expectError(await api('POST', '/v1/register', await token('trick', 'x@example.com@evil.test')), 403);
    expectError(await api('POST', '/v1/register', await token('sub', 'x@sub.example.com')), 403);
    const r = await api('POST', '/v1/register', await token('xavier', 'x@example.com'));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ registered: true });
    expect((await api('POST', '/v1/register', await token('upper', 'X@Example.COM'))).status).toBe(200);
  });
});

describe('REST API with at most 2 concurrent sessions', () => {
  const { h, api, user, terminate } = useGateway({ env: { MAX_CONCURRENT_SESSIONS: '2' } });

  it('refuses a third running session with 409', async () => {
    const tok = await user('max');
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await api('POST', '/v1/sessions', tok, {});
      expect(r.status).toBe(201);
      ids.push(r.body.session.id);
    }
    expectError(await api('POST', '/v1/sessions', tok, {}), 409, /concurrent/);
    expect((await api('GET', '/v1/sessions', tok)).body.sessions).toHaveLength(2);
    // Another user has their own allowance.
    const other = await user('minnie');
    const theirs = await api('POST', '/v1/sessions', other, {});
    expect(theirs.status).toBe(201);
    ids.push(theirs.body.session.id);

    for (const [i, id] of ids.entries()) expect((await terminate(i < 2 ? tok : other, id, h)).endReason).toBe('user_requested');
  });
});

describe('REST API with 2 session creations per window', () => {
  const { h, api, user, terminate } = useGateway({ env: { RATE_LIMIT_SESSION_CREATES: '2', MAX_CONCURRENT_SESSIONS: '50' } });

  it('answers the third creation with 429 and Retry-After', async () => {
    const tok = await user('rick');
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await api('POST', '/v1/sessions', tok, {});
      expect(r.status).toBe(201);
      ids.push(r.body.session.id);
    }
    const limited = await api('POST', '/v1/sessions', tok, {});
    expectError(limited, 429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await api('GET', '/v1/sessions', tok)).body.sessions).toHaveLength(2);

    for (const id of ids) expect((await terminate(tok, id, h)).endReason).toBe('user_requested');
  });
});
