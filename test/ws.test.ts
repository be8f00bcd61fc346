import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import pino from 'pino';
import WebSocket from 'ws';
import { startHarness, TEST_JWT_SECRET, type Harness } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';
import { attachSessionSockets } from '../api/ws';
import { createAuthenticator, mintToken } from '../api/auth';
import { loadConfig } from '../lib/config';
import { createSession } from '../store/sessions';
import type { StoredEvent } from '../store/events';

/**
 * The session WebSocket on the real stack: a gateway on an ephemeral port in front of the
 * harness's store, Temporal and worker; clients are the `ws` package (or a raw TCP socket).
 */

const WAIT = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Frame {
  type: string;
  timestamp: string;
  session_id: string;
  seq?: number;
  payload: any;
}

class TestClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  closeCode?: number;
  /** Set when the upgrade itself was refused (e.g. "Unexpected server response: 404"). */
  upgradeError?: Error;
  private wakers = new Set<() => void>();

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()));
      this.wake();
    });
    ws.on('error', (err) => {
      this.upgradeError ??= err;
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        resolve({ code, reason: reason.toString() });
        this.wake();
      }),
    );
  }

  private wake() {
    for (const w of this.wakers) w();
  }

  send(msg: unknown) {
    this.ws.send(typeof msg === 'string' || Buffer.isBuffer(msg) ? msg : JSON.stringify(msg));
  }

  of(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  /** Stored events received (frames with a seq). */
  stored(): Frame[] {
    return this.frames.filter((f) => f.seq !== undefined);
  }

  /** Resolves with the matching frames once there are at least n of them. */
  async waitFor(match: (f: Frame) => boolean, n = 1, timeoutMs = WAIT): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.filter(match);
      if (found.length >= n) return found;
      if (this.closeCode !== undefined || Date.now() > deadline) {
        const seen = this.frames.map((f) => f.type).join(', ');
        throw new Error(`no ${n} matching frames (closed: ${this.closeCode}); saw: ${seen}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 200);
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.wakers.add(done);
      }).finally(() => this.wakers.clear());
    }
  }

  async waitType(type: string, n = 1) {
    return (await this.waitFor((f) => f.type === type, n))[n - 1];
  }

  /** The replay is done once a heartbeat is answered: client messages wait for it. */
  async ready() {
    const before = this.of('heartbeat_ack').length;
    this.send({ type: 'heartbeat' });
    await this.waitFor((f) => f.type === 'heartbeat_ack', before + 1);
  }
}

interface Gateway {
  port: number;
  url: string;
  sockets: ReturnType<typeof attachSessionSockets>;
  close(): Promise<void>;
}

describe('the session WebSocket', () => {
  // Started and closed here rather than by useHarness: sockets and gateways must close before the
  // harness does (afterAll hooks run in declaration order).
  let h: Harness;
  const logLines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
  const clients: TestClient[] = [];
  const gateways: Gateway[] = [];
  let gw: Gateway;
  let token: string;
  /** A session that waits for prompts, for tests that need no model turns of their own. */
  let idle: string;

  async function gateway(env: Record<string, string> = {}): Promise<Gateway> {
    const config = loadConfig({ ...h.env, ...env });
    const server = http.createServer();
    const sockets = attachSessionSockets(server, {
      db: h.db,
      service: h.service,
      config,
      log,
      auth: createAuthenticator(config.auth, TEST_JWT_SECRET),
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    let closed = false;
    const g: Gateway = {
      port,
      url: `ws://127.0.0.1:${port}`,
      sockets,
      async close() {
        if (closed) return;
        closed = true;
        await sockets.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
    gateways.push(g);
    return g;
  }

  async function connect(
    g: Gateway,
    sessionId: string,
    opts: { token?: string | null; via?: 'header' | 'query'; since?: string; path?: string } = {},
  ): Promise<TestClient> {
    const t = opts.token === undefined ? token : opts.token;
    const params = new URLSearchParams();
    if (t && opts.via === 'query') params.set('token', t);
    if (opts.since !== undefined) params.set('since', opts.since);
    const path = opts.path ?? `/v1/sessions/${sessionId}/ws`;
    const query = params.toString() ? `?${params}` : '';
    const headers = t && opts.via !== 'query' ? { Authorization: `Bearer ${t}` } : undefined;
    const c = new TestClient(new WebSocket(`${g.url}${path}${query}`, { headers }));
    clients.push(c);
    await new Promise<void>((resolve) => {
      c.ws.once('open', () => resolve());
      c.ws.once('error', () => resolve());
      c.ws.once('close', () => resolve());
    });
    return c;
  }

  /** The stored events, as a client should have seen them. */
  const asFrames = (events: StoredEvent[]) =>
    events.map((e) => ({ type: e.type, seq: e.seq, timestamp: e.created_at, session_id: e.session_id, payload: e.payload }));
  const project = (frames: Frame[]) =>
    frames.map((f) => ({ type: f.type, seq: f.seq, timestamp: f.timestamp, session_id: f.session_id, payload: f.payload }));

  async function storedUpTo(sessionId: string, seq: number) {
    return (await h.events(sessionId)).filter((e) => e.seq <= seq);
  }

  async function waitStored(sessionId: string, match: (e: StoredEvent) => boolean, n: number) {
    const deadline = Date.now() + WAIT;
    for (;;) {
      const found = (await h.events(sessionId)).filter(match);
      if (found.length >= n) return found;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} stored events in ${sessionId}`);
      await sleep(100);
    }
  }

  /** Sockets are for running sessions (4009 before): start one and wait until it runs. */
  async function startRunning(p?: Parameters<Harness['startSession']>[0]) {
    const id = await h.startSession(p);
    await h.waitForEvent(id, (e) => e.type === 'session_status' && e.payload.status === 'running');
    return id;
  }

  beforeAll(async () => {
    h = await startHarness();
    gw = await gateway();
    token = await mintToken(TEST_JWT_SECRET, { sub: 'user-1' });
    idle = await startRunning();
  });

  beforeEach(() => h.fake.reset());

  afterAll(async () => {
    for (const c of clients) c.ws.terminate();
    for (const g of gateways) await g.close();
    await h?.close();
  });

  it('closes with the reference codes: 4001 without or with a bad token, 4003 not the owner, 4004 no session; 404 elsewhere', async () => {
    const noToken = await connect(gw, idle, { token: null });
    expect((await noToken.closed).code).toBe(4001);

    const otherSecret = await mintToken('some-other-secret-that-is-long-enough-0123', { sub: 'user-1' });
    for (const bad of [otherSecret, 'not-a-jwt']) {
      const c = await connect(gw, idle, { token: bad, via: 'query' });
      expect((await c.closed).code).toBe(4001);
      const viaHeader = await connect(gw, idle, { token: bad });
      expect((await viaHeader.closed).code).toBe(4001);
    }

    const otherUser = await connect(gw, idle, { token: await mintToken(TEST_JWT_SECRET, { sub: 'user-2' }) });
    expect((await otherUser.closed).code).toBe(4003);

    // An org-owned session (a stored row is enough: the socket checks ownership before anything else).
    const orgSessionId = randomUUID();
    await createSession(h.db, h.keyring, {
      id: orgSessionId,
      ownerType: 'org',
      ownerId: 'user-1',
      orgId: 'org-1',
      trigger: 'dr',
      model: 'claude-sonnet-4-6',
      profile: {},
      workflowId: `session-${orgSessionId}`,
    });
    const orgOwned = await connect(gw, orgSessionId);
    expect((await orgOwned.closed).code).toBe(4003);

    const missing = await connect(gw, 'no-such-session');
    expect((await missing.closed).code).toBe(4004);
    const missingAlt = await connect(gw, 'no-such-session', { path: '/v1/ws/sessions/no-such-session' });
    expect((await missingAlt.closed).code).toBe(4004);

    for (const path of ['/v1/sessions', `/v1/sessions/${idle}`, `/v1/sessions/${idle}/ws/extra`, '/elsewhere']) {
      const c = await connect(gw, idle, { path });
      await c.closed;
      expect(c.upgradeError?.message).toMatch(/404/);
      expect(c.frames).toHaveLength(0);
    }

    const badSince = await connect(gw, idle, { since: 'yesterday' });
    expect((await badSince.closed).code).toBe(1008);
    expect(badSince.frames.map((f) => [f.type, f.payload.code])).toEqual([['error', 'invalid_message']]);
    expect((await connect(gw, idle, { since: '-1' }).then((c) => c.closed)).code).toBe(1008);

    // The right owner is let in on both paths, by header and by query token.
    for (const [path, via] of [
      [`/v1/sessions/${idle}/ws`, 'query'],
      [`/v1/ws/sessions/${idle}`, 'header'],
    ] as const) {
      const ok = await connect(gw, idle, { path, via });
      await ok.ready();
      expect(ok.ws.readyState).toBe(WebSocket.OPEN);
      ok.ws.close();
      await ok.closed;
    }

    // No token, from the header or the query, reaches a log line; the path does.
    const logged = logLines.join('\n');
    expect(logged).toContain(`/v1/sessions/${idle}/ws`);
    for (const t of [token, otherSecret]) expect(logged).not.toContain(t);
    expect(logged).not.toContain('token=');
  });

  it('carries a prompt: ack, the user echo, streamed text, the assistant message once and the result, in seq order', async () => {
    const reply = 'Streaming this reply in several parts, slowly enough to show deltas.';
    h.fake.enqueue(text(reply, { chunkDelayMs: 150 }));
    const sessionId = await startRunning();
    const c = await connect(gw, sessionId);
    await c.ready();

    c.send({ type: 'prompt', payload: { text: 'Say something', client_message_id: 'msg-1' } });
    const ack = await c.waitType('prompt_ack');
    expect(ack.payload).toEqual({ client_message_id: 'msg-1', queued: expect.any(Boolean), position: expect.any(Number) });
    const result = await c.waitType('result');
    expect(result.payload).toMatchObject({ success: true, summary: reply });

    // Every stored event up to the result, each once, in order, exactly as stored.
    const stored = await storedUpTo(sessionId, result.seq!);
    expect(project(c.stored())).toEqual(asFrames(stored));
    expect(stored.map((e) => e.seq)).toEqual(stored.map((_, i) => i + 1));
    for (const f of c.frames) {
      expect(f.session_id).toBe(sessionId);
      expect(new Date(f.timestamp).toISOString()).toBe(f.timestamp);
    }

    const types = c.frames.map((f) => f.type);
    const deltas = c.of('assistant_delta');
    expect(deltas.length).toBeGreaterThanOrEqual(1);
    for (const d of deltas) {
      expect(d.seq).toBeUndefined();
      expect(d.payload).toEqual({ message_key: 'assistant-1', block_index: 0, attempt: 1, text: expect.any(String) });
    }
    expect(deltas.map((d) => d.payload.text).join('')).toBe(reply);
    expect(c.of('assistant')).toHaveLength(1);
    expect(c.of('assistant')[0].payload.content).toEqual([{ type: 'text', text: reply }]);
    const user = types.indexOf('user');
    const firstDelta = types.indexOf('assistant_delta');
    const lastDelta = types.lastIndexOf('assistant_delta');
    const assistant = types.indexOf('assistant');
    expect(c.of('user')[0].payload).toEqual({ text: 'Say something' });
    expect(user).toBeLessThan(firstDelta);
    expect(lastDelta).toBeLessThan(assistant);
    expect(assistant).toBeLessThan(types.indexOf('result'));
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('?since= replays exactly what a client missed, then goes live: every event once over two connections', async () => {
    h.fake.enqueue(text('first answer'), text('second answer'), text('third answer'));
    const sessionId = await startRunning();
    const a = await connect(gw, sessionId, { via: 'query' });
    await a.ready();
    a.send({ type: 'prompt', payload: { text: 'one' } });
    const first = await a.waitType('result');
    const lastSeen = Math.max(...a.stored().map((f) => f.seq!));
    expect(lastSeen).toBe(first.seq);
    a.ws.close();
    await a.closed;

    // While nobody is connected the session answers another prompt.
    await h.service.prompt(sessionId, 'two');
    await waitStored(sessionId, (e) => e.type === 'result', 2);

    const b = await connect(gw, sessionId, { via: 'query', since: String(lastSeen) });
    const second = await b.waitType('result');
    expect(second.payload.summary).toBe('second answer');
    expect(b.stored()[0].seq).toBe(lastSeen + 1);
    expect(b.stored()[0]).toMatchObject({ type: 'user', payload: { text: 'two' } });

    // Live after the replay, on the same connection.
    b.send({ type: 'prompt', payload: { text: 'three' } });
    const third = await b.waitType('result', 2);
    expect(third.payload.summary).toBe('third answer');

    const all = await storedUpTo(sessionId, third.seq!);
    const seen = [...a.stored(), ...b.stored()];
    expect(project(seen)).toEqual(asFrames(all));
  });

  it('two clients get everything; an approval goes to both and to a late joiner; the first answer wins', async () => {
    const late = await gateway({ WS_REPLAY_SECONDS: '1' });
    h.fake.enqueue(toolUse('Bash', { command: 'echo approved-over-ws' }, { id: 'toolu_ws_1' }), text('It ran.'));
    const sessionId = await startRunning({ profile: { permission_mode: 'acceptEdits' } });
    const a = await connect(gw, sessionId);
    const b = await connect(gw, sessionId, { via: 'query', path: `/v1/ws/sessions/${sessionId}` });
    await Promise.all([a.ready(), b.ready()]);

    a.send({ type: 'prompt', payload: { text: 'run the command' } });
    const [ra, rb] = await Promise.all([a.waitType('tool_approval_request'), b.waitType('tool_approval_request')]);
    expect(ra.payload).toMatchObject({ request_id: 'toolu_ws_1', tool_name: 'Bash', input: { command: 'echo approved-over-ws' } });
    expect(rb).toEqual(ra);

    // A late joiner, whose replay window (1 s) no longer covers the request, still gets it, and only it.
    await sleep(1500);
    const c = await connect(late, sessionId);
    await c.ready();
    expect(project(c.stored())).toEqual(project([ra]));

    a.send({ type: 'tool_approval_response', payload: { request_id: 'toolu_ws_1', decision: 'y' } });
    const ack = await a.waitType('tool_approval_response_ack');
    expect(ack.payload).toEqual({ request_id: 'toolu_ws_1', decision: 'y', accepted: true });
    b.send({ type: 'tool_approval_response', payload: { request_id: 'toolu_ws_1', decision: 'n' } });
    const refused = await b.waitType('error');
    expect(refused.payload).toMatchObject({ code: 'request_not_pending', request_id: 'toolu_ws_1' });

    const results = await Promise.all([a, b, c].map((x) => x.waitType('result')));
    const toolResult = a.of('tool_result')[0];
    expect(toolResult.payload).toMatchObject({ tool_use_id: 'toolu_ws_1', is_error: false });
    expect(toolResult.payload.content).toContain('approved-over-ws');
    const stored = await storedUpTo(sessionId, results[0].seq!);
    expect(project(a.stored())).toEqual(asFrames(stored));
    expect(project(b.stored())).toEqual(asFrames(stored));
    expect(project(c.stored())).toEqual(asFrames(stored.filter((e) => e.seq >= ra.seq!)));
    expect(b.of('tool_approval_response_ack')).toHaveLength(0);

    // Ending: a prompt the ending session refuses, then session_end and 4100 to every client.
    await h.service.terminate(sessionId, 'user_requested');
    a.send({ type: 'prompt', payload: { text: 'too late', client_message_id: 'late-1' } });
    const notRunning = await a.waitFor((f) => f.type === 'error' && f.payload.code === 'session_not_running');
    expect(notRunning[0].payload).toMatchObject({ client_message_id: 'late-1' });
    for (const x of [a, b, c]) {
      expect((await x.closed).code).toBe(4100);
      expect(x.stored().at(-1)).toMatchObject({ type: 'session_end', payload: { reason: 'user_requested' } });
    }
  });

  it('an ended session replays up to its session_end (sent even outside the window or before since), then closes 4100', async () => {
    const late = await gateway({ WS_REPLAY_SECONDS: '1' });
    h.fake.enqueue(text('done and dusted'));
    const sessionId = await startRunning({ prompt: 'finish', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    const live = await connect(gw, sessionId);
    expect((await live.closed).code).toBe(4100);
    expect((await h.waitForEnd(sessionId)).endReason).toBe('completed');
    const all = await h.events(sessionId);
    expect(all.at(-1)!.type).toBe('session_end');
    expect(project(live.stored())).toEqual(asFrames(all));

    const replay = await connect(gw, sessionId);
    expect((await replay.closed).code).toBe(4100);
    expect(project(replay.stored())).toEqual(asFrames(all));

    const since = await connect(gw, sessionId, { since: String(all.at(-3)!.seq) });
    expect((await since.closed).code).toBe(4100);
    expect(project(since.stored())).toEqual(asFrames(all.slice(-2)));

    const pastEnd = await connect(gw, sessionId, { since: String(all.at(-1)!.seq) });
    expect((await pastEnd.closed).code).toBe(4100);
    expect(project(pastEnd.stored())).toEqual(asFrames(all.slice(-1)));

    await sleep(1500);
    const outside = await connect(late, sessionId);
    expect((await outside.closed).code).toBe(4100);
    expect(project(outside.stored())).toEqual(asFrames(all.slice(-1)));
  });

  it('answers malformed frames with invalid_message and stays usable; file transfer is not supported yet', async () => {
    const c = await connect(gw, idle);
    await c.ready();
    const errorsBefore = () => c.of('error').length;
    const expectError = async (msg: unknown, code: string, message: RegExp) => {
      const n = errorsBefore();
      c.send(msg);
      const e = (await c.waitFor((f) => f.type === 'error', n + 1))[n];
      expect(e.payload).toMatchObject({ code, message: expect.stringMatching(message) });
      return e;
    };
    await expectError('this is not json', 'invalid_message', /not valid JSON/);
    await expectError(Buffer.from([1, 2, 3]), 'invalid_message', /binary/);
    await expectError('[1,2]', 'invalid_message', /"type"/);
    await expectError({ payload: { text: 'no type' } }, 'invalid_message', /"type"/);
    await expectError({ type: 'make_coffee' }, 'invalid_message', /unknown message type "make_coffee"/);
    await expectError({ type: 'prompt' }, 'invalid_message', /payload.text/);
    await expectError({ type: 'prompt', payload: { text: '' } }, 'invalid_message', /payload.text/);
    await expectError({ type: 'prompt', payload: { text: 42 } }, 'invalid_message', /payload.text/);
    await expectError({ type: 'prompt', payload: 'hello' }, 'invalid_message', /payload must be a JSON object/);
    await expectError({ type: 'prompt', payload: { text: 'hi', client_message_id: 7 } }, 'invalid_message', /client_message_id/);
    await expectError({ type: 'tool_approval_response', payload: { request_id: 'r1', decision: 'maybe' } }, 'invalid_message', /decision/);
    await expectError({ type: 'tool_approval_response', payload: { decision: 'y' } }, 'invalid_message', /request_id/);
    await expectError({ type: 'ask_user_question_response', payload: { request_id: 'q1' } }, 'invalid_message', /answer/);
    // Well-formed answers to requests that are not open: the workflow refuses them.
    const noApproval = await expectError(
      { type: 'tool_approval_response', payload: { request_id: 'toolu_nothing', decision: 'y' } },
      'request_not_pending',
      /no pending approval/,
    );
    expect(noApproval.payload.request_id).toBe('toolu_nothing');
    await expectError({ type: 'ask_user_question_response', payload: { request_id: 'q1', answer: 'yes' } }, 'request_not_pending', /no pending question/);
    for (const type of ['upload_request', 'upload_complete', 'download_request']) {
      const e = await expectError({ type, payload: { request_id: `req-${type}`, filename: 'a.csv' } }, 'not_supported', new RegExp(type));
      expect(e.payload.request_id).toBe(`req-${type}`);
    }

    c.send({ type: 'interrupt' });
    expect((await c.waitType('interrupt_ack')).payload).toEqual({ interrupted: false });
    await c.ready();
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    // None of it was stored as a prompt.
    expect((await h.events(idle)).filter((e) => e.type === 'user')).toHaveLength(0);
  });

  describe('limits', () => {
    let limited: Gateway;
    beforeAll(async () => {
      limited = await gateway({ WS_MESSAGES_PER_SECOND: '5', RATE_LIMIT_PROMPTS: '1', WS_MAX_MESSAGE_BYTES: '1024' });
    });

    it('drops messages over WS_MESSAGES_PER_SECOND with rate_limited, and recovers', async () => {
      const c = await connect(limited, idle);
      await c.ready();
      await sleep(1100);
      for (let i = 0; i < 20; i++) c.send({ type: 'heartbeat' });
      const answered = (f: Frame) => f.type === 'heartbeat_ack' || (f.type === 'error' && f.payload.code === 'rate_limited');
      const replies = (await c.waitFor(answered, 21)).slice(1);
      const limitedReplies = replies.filter((f) => f.type === 'error');
      expect(limitedReplies.length).toBeGreaterThanOrEqual(1);
      expect(limitedReplies[0].payload.message).toMatch(/5 messages per second/);
      expect(replies.filter((f) => f.type === 'heartbeat_ack').length).toBeGreaterThanOrEqual(1);
      await sleep(1100);
      await c.ready();
      expect(c.ws.readyState).toBe(WebSocket.OPEN);
    });

    it('limits prompts per session to RATE_LIMIT_PROMPTS per window', async () => {
      h.fake.enqueue(text('only one'));
      const c = await connect(limited, idle);
      await c.ready();
      c.send({ type: 'prompt', payload: { text: 'first prompt', client_message_id: 'p-1' } });
      expect((await c.waitType('prompt_ack')).payload).toMatchObject({ client_message_id: 'p-1' });
      c.send({ type: 'prompt', payload: { text: 'second prompt', client_message_id: 'p-2' } });
      const e = await c.waitType('error');
      expect(e.payload).toMatchObject({ code: 'rate_limited', client_message_id: 'p-2' });
      await c.waitType('result');
      const users = (await h.events(idle)).filter((x) => x.type === 'user').map((x) => x.payload.text);
      expect(users).toEqual(['first prompt']);
    });

    it('closes with 1009 on a message over WS_MAX_MESSAGE_BYTES', async () => {
      const c = await connect(limited, idle);
      await c.ready();
      c.send({ type: 'prompt', payload: { text: 'x'.repeat(2000) } });
      expect((await c.closed).code).toBe(1009);
    });
  });

  describe('heartbeats', () => {
    let quick: Gateway;
    beforeAll(async () => {
      quick = await gateway({ WS_IDLE_SECONDS: '1', WS_PING_SECONDS: '0.3' });
    });

    it('pings, and closes (4101) a client that answers nothing, while a client that pongs stays', async () => {
      const healthy = await connect(quick, idle);
      await healthy.ready();

      // A raw client: does the upgrade by hand, reads frames, never answers a ping.
      const raw = net.connect(quick.port, '127.0.0.1');
      const frames: Array<{ opcode: number; payload: Buffer }> = [];
      let buf = Buffer.alloc(0);
      let upgraded = false;
      let statusLine = '';
      const ended = new Promise<void>((resolve) => raw.on('close', () => resolve()));
      raw.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        if (!upgraded) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          statusLine = buf.subarray(0, end).toString().split('\r\n')[0];
          upgraded = true;
          buf = buf.subarray(end + 4);
        }
        for (;;) {
          if (buf.length < 2) return;
          let len = buf[1] & 0x7f;
          let offset = 2;
          if (len === 126) {
            if (buf.length < 4) return;
            len = buf.readUInt16BE(2);
            offset = 4;
          } else if (len === 127) {
            if (buf.length < 10) return;
            len = Number(buf.readBigUInt64BE(2));
            offset = 10;
          }
          if (buf.length < offset + len) return;
          frames.push({ opcode: buf[0] & 0x0f, payload: buf.subarray(offset, offset + len) });
          buf = buf.subarray(offset + len);
        }
      });
      raw.write(
        [
          `GET /v1/sessions/${idle}/ws HTTP/1.1`,
          `Host: 127.0.0.1:${quick.port}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          `Authorization: Bearer ${token}`,
          '',
          '',
        ].join('\r\n'),
      );
      await ended;
      expect(statusLine).toMatch(/^HTTP\/1.1 101/);
      const pings = frames.filter((f) => f.opcode === 0x9);
      const close = frames.find((f) => f.opcode === 0x8);
      expect(pings.length).toBeGreaterThanOrEqual(1);
      expect(close?.payload.readUInt16BE(0)).toBe(4101);

      // The client that answers pings is still there, a while after the dead one was dropped.
      await sleep(1500);
      expect(healthy.ws.readyState).toBe(WebSocket.OPEN);
      await healthy.ready();
      expect(quick.sockets.clients()).toBe(1);
    });

    it('close() closes every client with 1001 and refuses new upgrades', async () => {
      const g = await gateway();
      const c = await connect(g, idle);
      await c.ready();
      expect(g.sockets.clients()).toBe(1);
      const closing = g.sockets.close();
      expect((await c.closed).code).toBe(1001);
      await closing;
      expect(g.sockets.clients()).toBe(0);
    });
  });
});
