import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING, KEY_ID_METADATA, type PayloadKeys } from '../lib/payload-codec';
import { payloadKeys } from '../infra/payload-keys';
import { ConfigError, loadConfig } from '../lib/config';
import { mintToken } from '../api/auth';
import { TEST_ADMIN_TOKEN, TEST_JWT_SECRET, useHarness } from './support/harness';
import { apiError, text, toolUse } from './support/fake-anthropic';
import { sessionWorkflowId } from '../workflows/messages';
import { payloadsIn } from './support/history';
import { findTemporalCli } from '../infra/temporal-cli';
import { createLogger } from '../lib/log';

const run = promisify(execFile);

const utf8 = (s: string) => new Uint8Array(Buffer.from(s));
const str = (b: Uint8Array | null | undefined) => Buffer.from(b ?? []).toString('utf8');
const json = (value: unknown): Payload => ({ metadata: { encoding: utf8('json/plain') }, data: utf8(JSON.stringify(value)) });
const keys = (currentId: string, entries: Record<string, Buffer>): PayloadKeys => ({ currentId, keys: new Map(Object.entries(entries)) });

describe('the payload codec', () => {
  const a = randomBytes(32);
  const b = randomBytes(32);
  const original = json({ command: 'echo secret-tool-output', prompt: 'a secret prompt' });
  const flipLastByte = (p: Payload): Payload => {
    const data = Buffer.from(p.data!);
    data[data.length - 1] ^= 1;
    return { ...p, data: new Uint8Array(data) };
  };

  const cases: Array<{ name: string; sealWith: PayloadKeys; openWith: PayloadKeys; alter?: (p: Payload) => Payload; fails?: RegExp }> = [
    { name: 'round trip under one key', sealWith: keys('k1', { k1: a }), openWith: keys('k1', { k1: a }) },
    { name: 'a retired key still decrypts', sealWith: keys('old', { old: a }), openWith: keys('new', { new: b, old: a }) },
    { name: 'the wrong key fails', sealWith: keys('k1', { k1: a }), openWith: keys('k1', { k1: b }), fails: /key k1 failed its integrity check/ },
    { name: 'tampered data fails', sealWith: keys('k1', { k1: a }), openWith: keys('k1', { k1: a }), alter: flipLastByte, fails: /integrity check/ },
    {
      name: 'a payload relabelled with another key id fails',
      sealWith: keys('k1', { k1: a }),
      openWith: keys('k1', { k1: a, k2: a }),
      alter: (p) => ({ ...p, metadata: { ...p.metadata, [KEY_ID_METADATA]: utf8('k2') } }),
      fails: /integrity check/,
    },
    { name: 'an unknown key id fails, naming it', sealWith: keys('gone', { gone: a }), openWith: keys('k1', { k1: a }), fails: /payload key gone is not configured/ },
    { name: 'truncated data fails', sealWith: keys('k1', { k1: a }), openWith: keys('k1', { k1: a }), alter: (p) => ({ ...p, data: p.data!.subarray(0, 10) }), fails: /truncated/ },
  ];

  it.each(cases)('$name', async ({ sealWith, openWith, alter, fails }) => {
    const [sealed] = await new AesGcmPayloadCodec(sealWith).encode([original]);
    expect(str(sealed.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(str(sealed.metadata![KEY_ID_METADATA])).toBe(sealWith.currentId);
    expect(str(sealed.data)).not.toContain('secret');
    const opening = new AesGcmPayloadCodec(openWith).decode([alter ? alter(sealed) : sealed]);
    if (fails) await expect(opening).rejects.toThrow(fails);
    else await expect(opening).resolves.toEqual([original]);
  });

  it('passes payloads it did not encrypt through decode unchanged, and encrypts each payload afresh', async () => {
    const codec = new AesGcmPayloadCodec(keys('k1', { k1: a }));
    const binary: Payload = { metadata: { encoding: utf8('binary/plain') }, data: utf8('raw') };
    await expect(codec.decode([original, binary])).resolves.toEqual([original, binary]);
    const [one, two] = await codec.encode([original, original]);
    expect(Buffer.from(one.data!).equals(Buffer.from(two.data!))).toBe(false);
  });

  describe('keys from configuration', () => {
    const master = { currentId: 'k1', keys: new Map([['k1', a]]) };
    const config = (env: Record<string, string> = {}) => loadConfig(env).payloads;

    it.each<{ name: string; env: Record<string, string>; current: string }>([
      { name: 'derived from the master key when PAYLOAD_KEY is unset', env: {}, current: 'master-k1' },
      { name: 'PAYLOAD_KEY with its id', env: { PAYLOAD_KEY: b.toString('hex'), PAYLOAD_KEY_ID: 'p7' }, current: 'p7' },
      { name: 'PAYLOAD_KEY in base64, default id', env: { PAYLOAD_KEY: b.toString('base64') }, current: 'p1' },
    ])('$name', ({ env, current }) => {
      const k = payloadKeys(config(env), master);
      expect(k.currentId).toBe(current);
      // Derived keys stay for decoding, so history from before a configured key still opens.
      expect(k.keys.has('master-k1')).toBe(true);
      expect(k.keys.get(current)).toHaveLength(32);
    });

    it('derives the same key in every process, and keeps retired keys for decoding', async () => {
      const first = payloadKeys(config(), master);
      expect(payloadKeys(config(), { currentId: 'k1', keys: new Map([['k1', Buffer.from(a)]]) }).keys.get('master-k1')).toEqual(first.keys.get('master-k1'));
      expect(first.keys.get('master-k1')!.equals(a)).toBe(false);
      const [sealed] = await new AesGcmPayloadCodec(first).encode([original]);
      const rotated = payloadKeys(config({ PAYLOAD_KEY: b.toString('hex'), PAYLOAD_KEY_ID: 'p2', PAYLOAD_KEYS_RETIRED: `p0:${randomBytes(32).toString('base64')}` }), master);
      expect([...rotated.keys.keys()].sort()).toEqual(['master-k1', 'p0', 'p2']);
      await expect(new AesGcmPayloadCodec(rotated).decode([sealed])).resolves.toEqual([original]);
    });

    it.each([
      { env: { PAYLOAD_KEY: 'too-short' }, names: 'PAYLOAD_KEY' },
      { env: { PAYLOAD_KEYS_RETIRED: 'no-colon-here' }, names: 'PAYLOAD_KEYS_RETIRED' },
      { env: { PAYLOAD_KEY_ID: 'bad id!' }, names: 'PAYLOAD_KEY_ID' },
    ])('refuses a bad $names, naming it', ({ env, names }) => {
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(names);
    });
  });
});

const toCodecJson = (p: Payload) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});

/** The parts of base64 that any occurrence of `s` in encoded bytes must contain, whatever its alignment. */
function base64Cores(s: string): string[] {
  return [0, 1, 2].flatMap((offset) => {
    const b64 = Buffer.concat([Buffer.alloc(offset), Buffer.from(s)]).toString('base64');
    const core = b64.slice(offset ? 4 : 0, -4);
    return [core, core.replace(/\+/g, '-').replace(/\//g, '_')];
  });
}

describe('history at rest, and the codec endpoint', () => {
  const h = useHarness();
  const marker = `codec-marker-${randomUUID()}`;
  let sessionId: string;
  let gateway: { url: string };
  let encrypted: Payload[];

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

  beforeAll(async () => {
    gateway = await h.startGateway();
    h.fake.enqueue(toolUse('Bash', { command: `echo ${marker}-output` }), text(`${marker}-answer`));
    sessionId = await h.startSession({ prompt: `${marker}-prompt`, profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'completed' });
    const result = (await h.events(sessionId)).find((e) => e.type === 'tool_result');
    expect(result!.payload.content).toContain(`${marker}-output`);

    // A client without the codec sees history as the server stores it.
    const raw = new Client({ connection: h.client.connection, namespace: h.config.temporal.namespace });
    const history = await raw.workflow.getHandle(sessionWorkflowId(sessionId)).fetchHistory();
    const bytes = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
    const found = payloadsIn(history);
    const asJson = JSON.stringify(found.map((f) => toCodecJson(f.payload)));
    for (const needle of [`${marker}-prompt`, `${marker}-output`, 'echo ']) {
      expect(bytes.includes(needle)).toBe(false);
      for (const core of base64Cores(needle)) if (core.length >= 8) expect(asJson).not.toContain(core);
    }

    // Every payload is sealed, except what codecs never touch: search attributes (ids and status, readable in the
    // UI) and the SDK's own patch markers (a patch name and a flag).
    const attrs = found.filter((f) => f.path.includes('searchAttributes'));
    const patches = found.filter((f) => f.path.includes('patch-data'));
    for (const { payload } of patches) expect(JSON.parse(str(payload.data))).toEqual({ id: expect.any(String), deprecated: expect.any(Boolean) });
    const sealable = found.filter((f) => !f.path.includes('searchAttributes') && !f.path.includes('patch-data'));
    expect(sealable.filter((f) => str(f.payload.metadata!.encoding) !== ENCRYPTED_ENCODING).map((f) => f.path.join('.'))).toEqual([]);
    encrypted = sealable.map((f) => f.payload);
    expect(encrypted.length).toBeGreaterThan(10);
    expect(attrs.length).toBeGreaterThan(0);
    for (const { payload } of attrs) expect(str(payload.metadata!.encoding)).toBe('json/plain');
    expect(attrs.map((f) => str(f.payload.data)).join()).toContain(sessionId);
  });

  it('decodes history for an operator with the admin token, finding what the session did', async () => {
    const res = await post('/codec/decode', { payloads: encrypted.map(toCodecJson) }, { ...admin, 'x-namespace': 'default' });
    expect(res.status).toBe(200);
    const { payloads } = (await res.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
    expect(payloads).toHaveLength(encrypted.length);
    for (const p of payloads) expect(Buffer.from(p.metadata.encoding, 'base64').toString()).not.toBe(ENCRYPTED_ENCODING);
    const plain = payloads.map((p) => Buffer.from(p.data, 'base64').toString('utf8')).join('\n');
    // The tool call (and the text it echoes) is in history; the prompt never is: history holds only its stored id.
    expect(plain).toContain(`echo ${marker}-output`);
    expect(plain).toContain(sessionId);
    expect(plain).not.toContain(`${marker}-prompt`);
  });

  it("serves Temporal's own tools: the CLI shows history decoded through it", async () => {
    const cli = await findTemporalCli(process.env.TEMPORAL_CLI_PATH, createLogger('silent'));
    if (!cli) throw new Error('the Temporal CLI is needed (scripts/setup-host.sh installs it)');
    const show = (extra: string[]) =>
      run(cli, ['workflow', 'show', '--address', h.config.temporal.address!, '--workflow-id', sessionWorkflowId(sessionId), '--output', 'json', ...extra]);
    // The CLI prints payloads in proto JSON: data in base64.
    const payloadText = (stdout: string) =>
      payloadsIn(JSON.parse(stdout)).map((f) => Buffer.from(String(f.payload.data), 'base64').toString('utf8')).join('\n');
    expect(payloadText((await show([])).stdout)).not.toContain(`${marker}-output`);
    const decoded = await show(['--codec-endpoint', `${gateway.url}/codec`, '--codec-auth', `Bearer ${TEST_ADMIN_TOKEN}`]);
    expect(payloadText(decoded.stdout)).toContain(`echo ${marker}-output`);
    await expect(show(['--codec-endpoint', `${gateway.url}/codec`])).rejects.toThrow();
  });

  it('decodes nothing for anyone else', async () => {
    const body = { payloads: encrypted.slice(0, 3).map(toCodecJson) };
    const userJwt = await mintToken(TEST_JWT_SECRET, { sub: 'user-1' });
    const strangers: Array<Record<string, string>> = [{}, { authorization: 'Bearer not-the-admin-token-at-all' }, { authorization: `Bearer ${userJwt}` }, { cookie: 'ais_operator=forged.jwt.value' }];
    for (const headers of strangers) {
      for (const path of ['/codec/decode', '/codec/encode']) {
        const res = await post(path, body, headers);
        expect(res.status).toBe(401);
        const raw = await res.text();
        expect(raw).not.toContain('payloads');
        expect(JSON.parse(raw).error.code).toBe('unauthorized');
      }
    }
  });

  it('signs a browser in with an HttpOnly cookie that decodes, and lets the Web UI call it cross-origin', async () => {
    const refused = await post('/codec/login', { token: 'wrong-token-0123456789abcdef' });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('set-cookie')).toBeNull();

    const login = await post('/codec/login', { token: TEST_ADMIN_TOKEN });
    expect(login.status).toBe(200);
    const setCookie = login.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^ais_operator=[\w-]+\.[\w-]+\.[\w-]+;/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\/codec/);
    expect(setCookie).not.toContain(TEST_ADMIN_TOKEN);
    const cookie = setCookie.split(';')[0];

    const uiOrigin = `http://localhost:${h.config.temporal.uiPort}`;
    const decoded = await post('/codec/decode?preserveStorageRefs=true', { payloads: encrypted.map(toCodecJson) }, { cookie, origin: uiOrigin });
    expect(decoded.status).toBe(200);
    expect(decoded.headers.get('access-control-allow-origin')).toBe(uiOrigin);
    expect(decoded.headers.get('access-control-allow-credentials')).toBe('true');
    const viaCookie = ((await decoded.json()) as { payloads: Array<{ data: string }> }).payloads;
    expect(viaCookie.map((p) => Buffer.from(p.data, 'base64').toString()).join()).toContain(`echo ${marker}-output`);
    // Among the browser's other cookies for the host, in any order.
    const among = await post('/codec/decode', { payloads: encrypted.slice(0, 1).map(toCodecJson) }, { cookie: `theme=dark; ${cookie} ; x=1` });
    expect(among.status).toBe(200);
    const emptied = await post('/codec/decode', { payloads: encrypted.slice(0, 1).map(toCodecJson) }, { cookie: 'theme=dark; ais_operator=' });
    expect(emptied.status).toBe(401);

    const preflight = await fetch(`${gateway.url}/codec/decode`, {
      method: 'OPTIONS',
      headers: { origin: uiOrigin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(uiOrigin);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/x-namespace/);
    const elsewhere = await fetch(`${gateway.url}/codec/decode`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    expect(elsewhere.headers.get('access-control-allow-origin')).toBeNull();

    const form = await fetch(`${gateway.url}/codec/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: TEST_ADMIN_TOKEN }).toString(),
    });
    expect(form.status).toBe(303);
    expect(form.headers.get('location')).toBe(uiOrigin);
    expect(form.headers.get('set-cookie')).toMatch(/^ais_operator=/);
    expect(await (await fetch(`${gateway.url}/codec/login`)).text()).toContain('<form method="post" action="/codec/login">');

    const logout = await post('/codec/logout', {}, { cookie });
    expect(logout.status).toBe(204);
    expect(logout.headers.get('set-cookie')).toMatch(/ais_operator=;.*Expires=Thu, 01 Jan 1970/);
  });

  it('seals failure messages too, which the codec opens', async () => {
    h.fake.enqueue(apiError(401, { message: `${marker}-rejected` }));
    const failing = await h.startSession({ prompt: 'hello', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    await expect(h.waitForEnd(failing)).resolves.toMatchObject({ endReason: 'failed' });
    const raw = new Client({ connection: h.client.connection, namespace: h.config.temporal.namespace });
    const history = await raw.workflow.getHandle(sessionWorkflowId(failing)).fetchHistory();
    const failure = history.events!.map((e) => e.activityTaskFailedEventAttributes?.failure).find(Boolean)!;
    expect(failure.message).toBe('Encoded failure');
    expect(Buffer.from(temporal.api.history.v1.History.encode(history).finish()).includes(`${marker}-rejected`)).toBe(false);
    const res = await post('/codec/decode', { payloads: [toCodecJson(failure.encodedAttributes!)] }, admin);
    const [p] = ((await res.json()) as { payloads: Array<{ data: string }> }).payloads;
    expect(JSON.parse(Buffer.from(p.data, 'base64').toString()).message).toContain(`${marker}-rejected`);
  });

  it('encodes for an operator what the workers then decode', async () => {
    const res = await post('/codec/encode', { payloads: [toCodecJson(json({ hello: marker }))] }, admin);
    expect(res.status).toBe(200);
    const { payloads } = (await res.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
    expect(Buffer.from(payloads[0].metadata.encoding, 'base64').toString()).toBe(ENCRYPTED_ENCODING);
    expect(Buffer.from(payloads[0].data, 'base64').toString()).not.toContain(marker);
    const back = await post('/codec/decode', { payloads }, admin);
    const [p] = ((await back.json()) as { payloads: Array<{ data: string }> }).payloads;
    expect(JSON.parse(Buffer.from(p.data, 'base64').toString())).toEqual({ hello: marker });

    const bad = await post('/codec/decode', { payloads: [{ ...payloads[0], data: Buffer.alloc(40).toString('base64') }] }, admin);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('undecodable');
  });
});
