import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { TEST_JWT_SECRET, useHarness } from './support/harness';
import { text } from './support/fake-anthropic';
import { startGateway } from '../api/gateway';
import { mintToken } from '../api/auth';
import { loadConfig } from '../lib/config';
import { open } from '../store/encryption';
import { getCredential } from '../store/sessions';

/**
 * A local OAuth 2.0 authorization server: /authorize issues a code bound to the
 * PKCE challenge, client and redirect URI it was given; /token checks all of
 * them for real (sha256(code_verifier) must be the challenge, codes are single-use)
 * and issues tokens; refresh grants rotate the refresh token.
 */
interface Grant {
  challenge: string;
  clientId: string;
  redirectUri: string;
  state: string;
  used: boolean;
}
interface TokenRequest {
  contentType: string;
  params: Record<string, string>;
  outcome: string;
}

class LocalAuthServer {
  readonly grants = new Map<string, Grant>();
  readonly refreshTokens = new Map<string, string>(); // refresh token -> client id
  readonly tokenRequests: TokenRequest[] = [];
  readonly issued: Array<{ access_token: string; refresh_token: string }> = [];
  /** expires_in of the next token issued for a code. */
  nextExpiresIn = 3600;
  /** When set, the next token request fails with this status before it is looked at. */
  failNext: number | undefined;
  url = '';
  private server = http.createServer((req, res) => void this.handle(req, res));

  async start() {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop() {
    return new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', this.url);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method === 'GET' && url.pathname === '/authorize') {
      const q = url.searchParams;
      const bad =
        q.get('response_type') !== 'code' ? 'response_type' :
        q.get('client_id') !== 'test-client' ? 'client_id' :
        q.get('redirect_uri') !== 'http://127.0.0.1/callback' ? 'redirect_uri' :
        q.get('code_challenge_method') !== 'S256' ? 'code_challenge_method' :
        !/^[A-Za-z0-9_-]{43}$/.test(q.get('code_challenge') ?? '') ? 'code_challenge' :
        !q.get('state') ? 'state' : undefined;
      if (bad) return json(400, { error: 'invalid_request', error_description: bad });
      const code = `code-${randomBytes(16).toString('hex')}`;
      this.grants.set(code, { challenge: q.get('code_challenge')!, clientId: q.get('client_id')!, redirectUri: q.get('redirect_uri')!, state: q.get('state')!, used: false });
      const to = new URL(q.get('redirect_uri')!);
      to.searchParams.set('code', code);
      to.searchParams.set('state', q.get('state')!);
      res.writeHead(302, { location: to.toString() }).end();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const contentType = String(req.headers['content-type'] ?? '');
      const params: Record<string, string> = contentType.includes('json')
        ? (JSON.parse(raw) as Record<string, string>)
        : Object.fromEntries(new URLSearchParams(raw));
      const reply = (outcome: string, status: number, body: unknown) => {
        this.tokenRequests.push({ contentType, params, outcome });
        json(status, body);
      };
      if (this.failNext) {
        const status = this.failNext;
        this.failNext = undefined;
        return reply('failed', status, { error: 'temporarily_unavailable' });
      }
      const issue = (expiresIn: number) => {
        const t = { access_token: `at-${randomBytes(16).toString('hex')}`, refresh_token: `rt-${randomBytes(16).toString('hex')}` };
        this.issued.push(t);
        this.refreshTokens.set(t.refresh_token, params.client_id);
        return { ...t, token_type: 'Bearer', expires_in: expiresIn, scope: 'user:inference' };
      };
      if (params.grant_type === 'authorization_code') {
        const g = this.grants.get(params.code);
        if (!g || g.used) return reply('unknown or used code', 400, { error: 'invalid_grant', error_description: `code ${params.code} is not valid` });
        g.used = true;
        if (params.client_id !== g.clientId) return reply('client_id mismatch', 400, { error: 'invalid_client' });
        if (params.redirect_uri !== g.redirectUri) return reply('redirect_uri mismatch', 400, { error: 'invalid_grant' });
        const challenge = createHash('sha256').update(params.code_verifier ?? '', 'ascii').digest('base64url');
        if (challenge !== g.challenge) return reply('pkce mismatch', 400, { error: 'invalid_grant', error_description: `verifier ${params.code_verifier} does not match` });
        if (params.state !== g.state) return reply('state mismatch', 400, { error: 'invalid_grant' });
        const expiresIn = this.nextExpiresIn;
        this.nextExpiresIn = 3600;
        return reply('issued', 200, issue(expiresIn));
      }
      if (params.grant_type === 'refresh_token') {
        if (this.refreshTokens.get(params.refresh_token) !== params.client_id) return reply('bad refresh token', 400, { error: 'invalid_grant' });
        this.refreshTokens.delete(params.refresh_token); // rotation: a refresh token works once
        return reply('refreshed', 200, issue(3600));
      }
      return reply('unsupported grant', 400, { error: 'unsupported_grant_type' });
    }
    json(404, { error: 'not_found' });
  }
}

interface Reply {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
}

const auth = new LocalAuthServer();
// Filled in once the authorization server has its port; the harness reads it in its own beforeAll, which runs after this one.
const env: Record<string, string> = {};
beforeAll(async () => {
  await auth.start();
  Object.assign(env, {
    CLAUDE_OAUTH_AUTHORIZE_URL: `${auth.url}/authorize`,
    CLAUDE_OAUTH_TOKEN_URL: `${auth.url}/token`,
    CLAUDE_OAUTH_CLIENT_ID: 'test-client',
    CLAUDE_OAUTH_REDIRECT_URI: 'http://127.0.0.1/callback',
    CLAUDE_OAUTH_SCOPES: 'user:profile user:inference',
  });
});

type Gateway = Awaited<ReturnType<typeof startGateway>>;
const gateways: Gateway[] = [];
const startedSessions: string[] = [];
const logLines: string[] = [];
const responses: string[] = [];

// Declared before useHarness: after-hooks run in declaration order, so these run while the harness is open.
afterAll(async () => {
  for (const id of startedSessions) {
    await gateways[0]?.deps.service.terminate(id, 'user_requested').catch(() => undefined);
    await gateways[0]?.deps.service.waitForEnd(id).catch(() => undefined);
  }
  for (const g of gateways) await g.stop();
});
const h = useHarness({ env });
afterAll(() => auth.stop());

/** A gateway on the harness's store and Temporal, with config overrides; its log lines are kept. */
async function gateway(overrides: Record<string, string> = {}): Promise<Gateway> {
  const log = pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) });
  const g = await startGateway({
    config: loadConfig({ ...h.env, ...overrides }),
    db: h.db,
    client: h.client,
    log,
    secrets: { keyring: h.keyring, jwtSecret: TEST_JWT_SECRET },
    docker: h.docker,
    port: 0,
    host: '127.0.0.1',
  });
  gateways.push(g);
  return g;
}

let gw: Gateway;
beforeAll(async () => {
  gw = await gateway();
});

async function call(g: Gateway, method: string, path: string, token?: string, body?: unknown): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${g.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const t = await res.text();
  responses.push(t);
  let json: unknown;
  try {
    json = JSON.parse(t);
  } catch {
    json = undefined;
  }
  if (method === 'POST' && path === '/v1/sessions' && res.status === 201) startedSessions.push((json as { session: { id: string } }).session.id);
  return { status: res.status, body: json, text: t };
}
const api = (method: string, path: string, token?: string, body?: unknown) => call(gw, method, path, token, body);

async function registered(sub: string): Promise<string> {
  const token = await mintToken(TEST_JWT_SECRET, { sub, email: `${sub}@example.com` });
  expect((await api('POST', '/v1/register', token)).status).toBe(200);
  return token;
}

/** start → url, checked against the contract; returns the flow id and what the URL carries. */
async function begin(token: string, g = gw) {
  const started = await call(g, 'POST', '/v1/auth/claude/start', token);
  expect(started.status).toBe(200);
  expect(started.body).toEqual({ oauth_session_id: expect.any(String), expires_in: expect.any(Number), message: expect.any(String) });
  const flowId = started.body.oauth_session_id as string;
  const got = await call(g, 'GET', `/v1/auth/claude/url?session_id=${encodeURIComponent(flowId)}`, token);
  expect(got.status).toBe(200);
  expect(got.body).toEqual({ status: 'url_ready', url: expect.any(String), message: expect.any(String) });
  const url = new URL(got.body.url);
  return { flowId, url, state: url.searchParams.get('state')!, challenge: url.searchParams.get('code_challenge')! };
}

/** The user's browser: opens the authorization URL and reads the code off the redirect. */
async function authorize(url: URL): Promise<string> {
  const res = await fetch(url, { redirect: 'manual' });
  expect(res.status).toBe(302);
  const to = new URL(res.headers.get('location')!);
  expect(to.searchParams.get('state')).toBe(url.searchParams.get('state'));
  return to.searchParams.get('code')!;
}

const status = async (token: string) => (await api('GET', '/v1/auth/claude/status', token)).body;

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('Claude OAuth sign-in (authorization code with PKCE)', () => {
  let alice: string;
  let aliceFlow: string;
  let aliceCode: string;

  it('signs in end to end and the session calls the model with the access token', async () => {
    alice = await registered('oauth-alice');
    const { flowId, url, state, challenge } = await begin(alice);
    aliceFlow = flowId;
    expect(`${url.origin}${url.pathname}`).toBe(`${auth.url}/authorize`);
    expect(Object.fromEntries(url.searchParams)).toEqual({
      response_type: 'code',
      client_id: 'test-client',
      redirect_uri: 'http://127.0.0.1/callback',
      scope: 'user:profile user:inference',
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
    });
    // The verifier rests sealed, and it is the one the challenge was made from.
    const { rows } = await h.db.query<{ code_verifier: string; status: string }>('SELECT code_verifier, status FROM oauth_flows WHERE id = $1', [flowId]);
    expect(rows[0].status).toBe('pending');
    expect(rows[0].code_verifier).toMatch(/^v1\./);
    const verifier = open(h.keyring, rows[0].code_verifier);
    expect(createHash('sha256').update(verifier).digest('base64url')).toBe(challenge);

    aliceCode = await authorize(url);
    const done = await api('POST', '/v1/auth/claude/code', alice, { session_id: flowId, code: aliceCode });
    expect(done.status).toBe(200);
    expect(done.body).toEqual({ success: true, status: 'completed', message: expect.any(String) });

    // The server saw a real PKCE exchange with every parameter, as JSON (the default format).
    const exchange = auth.tokenRequests.at(-1)!;
    expect(exchange.outcome).toBe('issued');
    expect(exchange.contentType).toMatch(/application\/json/);
    expect(exchange.params).toEqual({
      grant_type: 'authorization_code',
      code: aliceCode,
      code_verifier: verifier,
      redirect_uri: 'http://127.0.0.1/callback',
      client_id: 'test-client',
      state,
    });
    const tokens = auth.issued.at(-1)!;

    expect(await status(alice)).toEqual({ has_credentials: true, credential_type: 'oauth_token', created_at: expect.any(String) });
    // Stored sealed; getCredential hands out the access token only.
    const cred = await h.db.query<{ id: string; secret: string }>(`SELECT id, secret FROM credentials WHERE owner_id = $1`, ['oauth-alice']);
    expect(cred.rows).toHaveLength(1);
    expect(cred.rows[0].secret).toMatch(/^v1\./);
    expect(cred.rows[0].secret).not.toContain(tokens.access_token);
    expect(await getCredential(h.db, h.keyring, cred.rows[0].id)).toEqual({ type: 'oauth_token', secret: tokens.access_token });
    const flowRow = await h.db.query<{ code_verifier: string | null; status: string }>('SELECT code_verifier, status FROM oauth_flows WHERE id = $1', [flowId]);
    expect(flowRow.rows[0]).toEqual({ code_verifier: null, status: 'completed' });

    h.fake.enqueue(text('signed in'));
    const created = await api('POST', '/v1/sessions', alice, { initial_prompt: 'hello' });
    expect(created.status).toBe(201);
    const req = await waitFor('the model call', () => h.fake.requests[0]);
    expect(req.headers.authorization).toBe(`Bearer ${tokens.access_token}`);
    expect(req.headers['x-api-key']).toBeUndefined();
    expect(String(req.headers['anthropic-beta'])).toContain('oauth-2025-04-20');
    await api('DELETE', `/v1/sessions/${created.body.session.id}`, alice);
  });

  it('refuses a second use of a completed flow with 409, and stores nothing new', async () => {
    const before = await h.db.query<{ secret: string }>(`SELECT secret FROM credentials WHERE owner_id = 'oauth-alice'`);
    const requests = auth.tokenRequests.length;
    const again = await api('POST', '/v1/auth/claude/code', alice, { session_id: aliceFlow, code: aliceCode });
    expect(again.status).toBe(409);
    expect((await api('GET', `/v1/auth/claude/url?session_id=${aliceFlow}`, alice)).status).toBe(409);
    expect(auth.tokenRequests.length).toBe(requests);
    const after = await h.db.query<{ secret: string }>(`SELECT secret FROM credentials WHERE owner_id = 'oauth-alice'`);
    expect(after.rows).toEqual(before.rows);
  });

  it('answers an error and stores nothing when the authorization server rejects the verifier', async () => {
    const bob = await registered('oauth-bob');
    // PKCE's case: a code issued for one flow's challenge, redeemed through another flow (another verifier).
    const first = await begin(bob);
    const second = await begin(bob);
    const code = await authorize(first.url);
    const r = await api('POST', '/v1/auth/claude/code', bob, { session_id: second.flowId, code: `${code}#${second.state}` });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('oauth_code_rejected');
    expect(r.body.error.message).toMatch(/invalid_grant/);
    expect(r.text).not.toContain(code);
    expect(auth.tokenRequests.at(-1)!.outcome).toBe('pkce mismatch');
    expect(await status(bob)).toEqual({ has_credentials: false });
    const creds = await h.db.query(`SELECT id FROM credentials WHERE owner_id = 'oauth-bob'`);
    expect(creds.rows).toHaveLength(0);

    // A code pasted with another flow's state never reaches the server.
    const requests = auth.tokenRequests.length;
    const code2 = await authorize(first.url);
    const mixed = await api('POST', '/v1/auth/claude/code', bob, { session_id: first.flowId, code: `${code2}#${second.state}` });
    expect(mixed.status).toBe(400);
    expect(mixed.body.error.message).toMatch(/state/);
    expect(auth.tokenRequests.length).toBe(requests);
  });

  it('answers 502 when the token endpoint fails, stores nothing, and the flow can be retried', async () => {
    const carol = await registered('oauth-carol');
    const { flowId, url } = await begin(carol);
    const code = await authorize(url);
    auth.failNext = 503;
    const failed = await api('POST', '/v1/auth/claude/code', carol, { session_id: flowId, code });
    expect(failed.status).toBe(502);
    expect(failed.body.error.code).toBe('oauth_server_error');
    expect(failed.text).not.toContain(code);
    expect(await status(carol)).toEqual({ has_credentials: false });
    const retried = await api('POST', '/v1/auth/claude/code', carol, { session_id: flowId, code });
    expect(retried.status).toBe(200);
    expect((await status(carol)).credential_type).toBe('oauth_token');
  });

  it("hides another user's flow and unknown flows behind 404", async () => {
    const dave = await registered('oauth-dave');
    const { flowId, url } = await begin(dave);
    const eve = await registered('oauth-eve');
    expect((await api('GET', `/v1/auth/claude/url?session_id=${flowId}`, eve)).status).toBe(404);
    const code = await authorize(url);
    const requests = auth.tokenRequests.length;
    expect((await api('POST', '/v1/auth/claude/code', eve, { session_id: flowId, code })).status).toBe(404);
    expect(auth.tokenRequests.length).toBe(requests);
    expect(await status(eve)).toEqual({ has_credentials: false });
    expect((await api('GET', '/v1/auth/claude/url?session_id=oauth_nope', dave)).status).toBe(404);
    expect((await api('POST', '/v1/auth/claude/code', dave, { session_id: 'oauth_nope', code: 'x' })).status).toBe(404);
    // The owner's flow is untouched by the attempt.
    expect((await api('POST', '/v1/auth/claude/code', dave, { session_id: flowId, code })).status).toBe(200);
  });

  it('expires flows after OAUTH_FLOW_TTL_SECONDS', async () => {
    const short = await gateway({ OAUTH_FLOW_TTL_SECONDS: '1' });
    const frank = await registered('oauth-frank');
    const started = await call(short, 'POST', '/v1/auth/claude/start', frank);
    expect(started.status).toBe(200);
    expect(started.body.expires_in).toBe(1);
    const flowId = started.body.oauth_session_id as string;
    await new Promise((r) => setTimeout(r, 2500));
    expect([404, 410]).toContain((await call(short, 'GET', `/v1/auth/claude/url?session_id=${flowId}`, frank)).status);
    expect([404, 410]).toContain((await call(short, 'POST', '/v1/auth/claude/code', frank, { session_id: flowId, code: 'late' })).status);
  });

  it('requires registration (403) and validates input (400)', async () => {
    const stranger = await mintToken(TEST_JWT_SECRET, { sub: 'oauth-stranger' });
    expect((await api('POST', '/v1/auth/claude/start', stranger)).status).toBe(403);
    expect((await api('GET', '/v1/auth/claude/url?session_id=x', stranger)).status).toBe(403);
    expect((await api('POST', '/v1/auth/claude/code', stranger, { session_id: 'x', code: 'y' })).status).toBe(403);
    expect((await api('POST', '/v1/auth/claude/start')).status).toBe(401);
    expect((await api('GET', '/v1/auth/claude/url', alice)).status).toBe(400);
    expect((await api('POST', '/v1/auth/claude/code', alice, { session_id: 'x' })).status).toBe(400);
  });

  it('answers 503 when no client id is configured', async () => {
    const off = await gateway({ CLAUDE_OAUTH_CLIENT_ID: '' });
    const r = await call(off, 'POST', '/v1/auth/claude/start', alice);
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('oauth_not_configured');
  });

  it('refreshes an access token about to expire before the model call', async () => {
    const gina = await registered('oauth-gina');
    const { flowId, url } = await begin(gina);
    const code = await authorize(url);
    auth.nextExpiresIn = 30; // inside the refresh margin
    expect((await api('POST', '/v1/auth/claude/code', gina, { session_id: flowId, code })).status).toBe(200);
    const first = auth.issued.at(-1)!;

    h.fake.enqueue(text('refreshed'));
    const created = await api('POST', '/v1/sessions', gina, { initial_prompt: 'hello' });
    expect(created.status).toBe(201);
    const req = await waitFor('the model call', () => h.fake.requests[0]);
    const refresh = auth.tokenRequests.find((t) => t.params.grant_type === 'refresh_token');
    expect(refresh).toMatchObject({ outcome: 'refreshed', params: { refresh_token: first.refresh_token, client_id: 'test-client' } });
    const second = auth.issued.at(-1)!;
    expect(second.access_token).not.toBe(first.access_token);
    expect(req.headers.authorization).toBe(`Bearer ${second.access_token}`);
    // The refreshed tokens replaced the sealed secret (the rotated refresh token included).
    const cred = await h.db.query<{ id: string; secret: string }>(`SELECT id, secret FROM credentials WHERE owner_id = 'oauth-gina'`);
    expect(JSON.parse(open(h.keyring, cred.rows[0].secret))).toMatchObject({ access_token: second.access_token, refresh_token: second.refresh_token });
    await api('DELETE', `/v1/sessions/${created.body.session.id}`, gina);
  });

  it('never puts a code, verifier or token in a response or a log line', async () => {
    const secrets = [
      ...auth.issued.flatMap((t) => [t.access_token, t.refresh_token]),
      ...[...auth.grants.keys()],
      ...auth.tokenRequests.map((t) => t.params.code_verifier).filter(Boolean),
    ];
    expect(secrets.length).toBeGreaterThan(10);
    const seen = [...responses, ...logLines].join('\n');
    expect(logLines.length).toBeGreaterThan(0);
    for (const s of secrets) expect(seen).not.toContain(s);
  });
});
