import crypto, { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { TEST_JWT_SECRET, sessionContainers, useHarness, type Harness } from './support/harness';
import { decodedHistory } from './support/history';
import { mintToken } from '../api/auth';
import { signLink } from '../api/files';
import { sessionWorkflowId } from '../workflows/messages';

/**
 * File transfer against the real stack: gateway, Temporal, worker, Docker.
 * Bytes go through signed links to the gateway and the blob area, and into
 * (or out of) the container by `docker exec` on the worker.
 */

interface Reply {
  status: number;
  headers: Headers;
  // Response bodies are JSON of several shapes; tests index into them freely.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  bytes: Buffer;
}

type Gateway = Awaited<ReturnType<Harness['startGateway']>>;

const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-blobs-'));
const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

describe('file transfer for user sessions', () => {
  let gw: Gateway | undefined;
  /** A second gateway over the same system, with a 1 KiB file limit and 3 uploads per session per hour. */
  let small: Gateway | undefined;
  const started: string[] = [];

  // Declared before useHarness so it runs first, while the harness is still open.
  afterAll(async () => {
    for (const id of started) {
      await gw?.deps.service.terminate(id, 'user_requested').catch(() => undefined);
      await gw?.deps.service.waitForEnd(id).catch(() => undefined);
    }
    await gw?.stop();
    await small?.stop();
    fs.rmSync(blobDir, { recursive: true, force: true });
  });
  const h = useHarness({ env: { BLOB_DIR: blobDir } });

  let alice: string;
  let bob: string;
  let session: string;

  async function send(base: Gateway | undefined, method: string, p: string, init: { token?: string; json?: unknown; body?: Buffer } = {}): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    let body: string | Buffer | undefined = init.body;
    if (init.json !== undefined) {
      body = JSON.stringify(init.json);
      headers['content-type'] = 'application/json';
    }
    const url = p.startsWith('http') ? p : `${base!.url}${p}`;
    const res = await fetch(url, { method, headers, body });
    const bytes = Buffer.from(await res.arrayBuffer());
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, body: json, bytes };
  }
  const post = (tok: string, p: string, json: unknown, via = gw) => send(via, 'POST', p, { token: tok, json });
  const io = (sessionId: string, op: 'upload' | 'upload/complete' | 'download') => `/v1/io/sessions/${sessionId}/${op}`;

  function expectError(r: Reply, status: number, mentions?: RegExp) {
    expect({ status: r.status, body: r.body }).toEqual({ status, body: { error: { code: expect.any(String), message: expect.any(String) } } });
    if (mentions) expect(r.body.error.message).toMatch(mentions);
  }

  async function user(sub: string) {
    const tok = await mintToken(TEST_JWT_SECRET, { sub, email: `${sub}@example.com` });
    expect((await post(tok, '/v1/register', {})).status).toBe(200);
    expect((await post(tok, '/v1/auth/claude/apikey', { api_key: `sk-ant-api03-${randomBytes(20).toString('hex')}` })).status).toBe(200);
    return tok;
  }

  async function runningSession(tok: string): Promise<string> {
    const r = await post(tok, '/v1/sessions', {});
    expect(r.status).toBe(201);
    const id = r.body.session.id as string;
    started.push(id);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const s = await send(gw, 'GET', `/v1/sessions/${id}`, { token: tok });
      if (s.body?.session?.status === 'running') return id;
      await new Promise((res) => setTimeout(res, 250));
    }
    throw new Error(`session ${id} never became running`);
  }

  /** Runs a shell command in the session's container as the sandbox user; stdout and stderr together. */
  async function inContainer(sessionId: string, cmd: string): Promise<{ code: number; out: string }> {
    const [c] = await sessionContainers(h.docker, sessionId);
    const exec = await h.docker.getContainer(c.Id).exec({ Cmd: ['sh', '-c', cmd], AttachStdout: true, AttachStderr: true, User: '1000:1000' });
    const stream = await exec.start({});
    const chunks: Buffer[] = [];
    const sink = new PassThrough().on('data', (b: Buffer) => chunks.push(b));
    h.docker.modem.demuxStream(stream, sink, sink);
    await new Promise((res) => stream.on('end', res));
    const { ExitCode } = await exec.inspect();
    return { code: ExitCode ?? -1, out: Buffer.concat(chunks).toString('utf8') };
  }

  /** Request, PUT and complete: the whole upload, checking each step. */
  async function upload(sessionId: string, filename: string, bytes: Buffer) {
    const ticket = await post(alice, io(sessionId, 'upload'), { filename, content_type: 'application/octet-stream', size: bytes.length });
    expect(ticket.status).toBe(200);
    const put = await send(undefined, 'PUT', ticket.body.upload_url, { body: bytes });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ received: bytes.length, sha256: sha256(bytes) });
    const done = await post(alice, io(sessionId, 'upload/complete'), { upload_id: ticket.body.upload_id });
    expect(done.status).toBe(200);
    return { ticket: ticket.body, done: done.body };
  }

  const blobFiles = (prefix = '') => fs.readdirSync(blobDir).filter((n) => n.startsWith(prefix)).sort();

  beforeAll(async () => {
    gw = await h.startGateway();
    small = await h.startGateway({ UPLOAD_MAX_BYTES: '1024', RATE_LIMIT_UPLOADS: '3', RATE_LIMIT_WINDOW_SECONDS: '3600' });
    alice = await user('alice');
    bob = await user('bob');
    session = await runningSession(alice);
  });

  // Random bytes with an ASCII marker inside, at an offset divisible by 3 (so its base64 is findable too).
  const MARKER = `FILE-BYTES-MARKER-${randomBytes(8).toString('hex')}`;
  const payload = randomBytes(3 * MiB + 17);
  Buffer.from(MARKER).copy(payload, 999);
  let uploadId = '';

  it('uploads a binary file into /workspace/uploads as the sandbox user, byte for byte', async () => {
    const { ticket, done } = await upload(session, 'data.bin', payload);
    uploadId = ticket.upload_id;
    expect(ticket).toEqual({
      upload_url: expect.stringMatching(new RegExp(`^${gw!.url}/v1/io/blobs/up_[0-9a-f]{32}\\?expires=\\d+&sig=[\\w-]+$`)),
      upload_id: expect.stringMatching(/^up_[0-9a-f]{32}$/),
      target_path: '/workspace/uploads/data.bin',
      expires_at: expect.stringMatching(ISO),
    });
    expect(Date.parse(ticket.expires_at)).toBeGreaterThan(Date.now());
    expect(done).toEqual({ success: true, path: '/workspace/uploads/data.bin' });

    const inside = await inContainer(session, 'stat -c "%u:%g %s" /workspace/uploads/data.bin && sha256sum /workspace/uploads/data.bin');
    expect(inside.code).toBe(0);
    expect(inside.out).toBe(`1000:1000 ${payload.length}\n${sha256(payload)}  /workspace/uploads/data.bin\n`);
    // The blob is gone once placed, and a second completion finds nothing to place.
    expect(blobFiles(uploadId)).toEqual([]);
    expectError(await post(alice, io(session, 'upload/complete'), { upload_id: uploadId }), 404, /upload/);
  });

  it('replaces a file of the same name rather than following a symlink planted there', async () => {
    const planted = await inContainer(session, 'ln -sfn /tmp/elsewhere /workspace/uploads/notes.txt && echo ok');
    expect(planted.out).toBe('ok\n');
    await upload(session, 'notes.txt', Buffer.from('hello notes\n'));
    const inside = await inContainer(session, 'test -L /workspace/uploads/notes.txt && echo link; cat /workspace/uploads/notes.txt; test -e /tmp/elsewhere && echo escaped');
    expect(inside.out).toBe('hello notes\n');
  });

  it('downloads a workspace file through its signed link, byte for byte', async () => {
    const before = blobFiles('dl_').length;
    const r = await post(alice, io(session, 'download'), { path: '/workspace/uploads/data.bin' });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      download_url: expect.stringMatching(new RegExp(`^${gw!.url}/v1/io/blobs/dl_[0-9a-f]{32}\\?expires=\\d+&sig=[\\w-]+$`)),
      expires_at: expect.stringMatching(ISO),
    });
    expect(blobFiles('dl_').length).toBe(before + 2); // the bytes and their record
    const got = await send(undefined, 'GET', r.body.download_url);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/octet-stream');
    expect(got.headers.get('content-disposition')).toContain('data.bin');
    expect(got.bytes.length).toBe(payload.length);
    expect(sha256(got.bytes)).toBe(sha256(payload));

    // Relative paths start at /workspace; a file the agent wrote comes out too.
    await inContainer(session, 'printf "made in the sandbox" > /workspace/out.txt');
    const rel = await post(alice, io(session, 'download'), { path: 'out.txt' });
    expect(rel.status).toBe(200);
    expect((await send(undefined, 'GET', rel.body.download_url)).bytes.toString()).toBe('made in the sandbox');
  });

  it('refuses paths that resolve outside /workspace, through .. or a symlink, and exports nothing', async () => {
    const setup = await inContainer(session, 'ln -sfn /etc/passwd /workspace/passwd-link && ln -sfn /etc /workspace/etc-link && mkdir -p /workspace/sub && echo ok');
    expect(setup.out).toBe('ok\n');
    const before = blobFiles('dl_');
    for (const p of ['/etc/passwd', '../../etc/passwd', '/workspace/../etc/passwd', '/workspace/passwd-link', 'passwd-link', '/workspace/etc-link/passwd']) {
      const r = await post(alice, io(session, 'download'), { path: p });
      expectError(r, 403, /outside \/workspace/);
      expect(r.body.error.message).toContain(p);
    }
    expectError(await post(alice, io(session, 'download'), { path: '/workspace/sub' }), 400, /not a regular file/);
    expectError(await post(alice, io(session, 'download'), { path: '/workspace' }), 400, /not a regular file/);
    expectError(await post(alice, io(session, 'download'), { path: '/workspace/missing.txt' }), 404, /no such file/);
    expectError(await post(alice, io(session, 'download'), { path: '' }), 400, /path/);
    expectError(await post(alice, io(session, 'download'), { path: 'a\0b' }), 400, /path/);
    expect(blobFiles('dl_')).toEqual(before);
  });

  it('refuses files over the size limit (413), both ways', async () => {
    // The default limit is the reference's 100 MB.
    expectError(await post(alice, io(session, 'upload'), { filename: 'huge.bin', size: 100 * MiB + 1 }), 413, /100 MiB/);
    // UPLOAD_MAX_BYTES=1024 on the second gateway.
    expectError(await post(alice, io(session, 'upload'), { filename: 'big.bin', size: 1025 }, small), 413, /1024/);
    const atLimit = await post(alice, io(session, 'upload'), { filename: 'ok.bin', size: 1024 }, small);
    expect(atLimit.status).toBe(200);
    const before = blobFiles('dl_');
    expectError(await post(alice, io(session, 'download'), { path: '/workspace/uploads/data.bin' }, small), 413, /over the limit of 1024 bytes/);
    expect(blobFiles('dl_')).toEqual(before);
  });

  it('stops reading an upload that sends more than it declared, and accepts no short one', async () => {
    // Content-Length over the declared size: refused before a byte is read.
    const t1 = await post(alice, io(session, 'upload'), { filename: 'ten.bin', size: 10 });
    const over = await send(undefined, 'PUT', t1.body.upload_url, { body: randomBytes(2000) });
    expectError(over, 413, /declared size of 10 bytes/);

    // Chunked, no length: cut off once past the declared size.
    const t2 = await post(alice, io(session, 'upload'), { filename: 'chunked.bin', size: 64 * 1024 });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(t2.body.upload_url, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } });
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        res.on('error', () => undefined);
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', (err) => (answered ? undefined : reject(err)));
      const chunk = randomBytes(16 * 1024);
      let sent = 0;
      const more = () => {
        if (answered || sent >= 4 * MiB) return void req.end();
        sent += chunk.length;
        req.write(chunk, () => setImmediate(more));
      };
      more();
    });
    expect(status).toBe(413);
    for (const t of [t1, t2]) {
      expectError(await post(alice, io(session, 'upload/complete'), { upload_id: t.body.upload_id }), 409, /not been uploaded/);
      expect(blobFiles(t.body.upload_id).filter((n) => !n.endsWith('.json'))).toEqual([]);
    }

    // Fewer bytes than declared is not a complete upload either.
    const t3 = await post(alice, io(session, 'upload'), { filename: 'short.bin', size: 10 });
    expectError(await send(undefined, 'PUT', t3.body.upload_url, { body: Buffer.from('12345') }), 400, /received 5 bytes/);
    expectError(await post(alice, io(session, 'upload/complete'), { upload_id: t3.body.upload_id }), 409, /not been uploaded/);
  });

  it('accepts only plain file names (400 naming the filename)', async () => {
    const bad = ['', '.', '..', 'a/b', '../x', '/etc/passwd', 'x\0y', 'line\nbreak', 'a..b', 'é'.repeat(128)];
    for (const filename of bad) {
      expectError(await post(alice, io(session, 'upload'), { filename, size: 1 }), 400, /^filename: /);
    }
    const longest = await post(alice, io(session, 'upload'), { filename: `${'a'.repeat(251)}.txt`, size: 1 });
    expect(longest.status).toBe(200);
    expect(longest.body.target_path).toBe(`/workspace/uploads/${'a'.repeat(251)}.txt`);
    expectError(await post(alice, io(session, 'upload'), { filename: 'a.txt', size: -1 }), 400, /^size: /);
    expectError(await post(alice, io(session, 'upload'), { filename: 'a.txt' }), 400, /^size: /);
  });

  it('refuses tampered, misused and expired links (403), with no bearer token needed for a good one', async () => {
    const t = await post(alice, io(session, 'upload'), { filename: 'signed.txt', size: 4 });
    const url = new URL(t.body.upload_url);
    const id = t.body.upload_id as string;
    const sig = url.searchParams.get('sig')!;
    const expires = Number(url.searchParams.get('expires'));
    const at = (q: string, idPart = id) => `${gw!.url}/v1/io/blobs/${idPart}?${q}`;
    const body = Buffer.from('data');
    const flipped = `${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`;
    expectError(await send(undefined, 'PUT', at(`expires=${expires}&sig=${flipped}`), { body }), 403, /signature/);
    expectError(await send(undefined, 'PUT', at(`expires=${expires + 3600}&sig=${sig}`), { body }), 403, /signature/);
    expectError(await send(undefined, 'PUT', at(`expires=${expires}`), { body }), 403);
    expectError(await send(undefined, 'PUT', at(`expires=${expires}&sig=${sig}`, `up_${'0'.repeat(32)}`), { body }), 403, /signature/);
    // The upload link is not a download link.
    expectError(await send(undefined, 'GET', t.body.upload_url), 403, /signature/);
    // Correctly signed, but expired.
    expectError(await send(undefined, 'PUT', at(signLink(gw!.deps, 'PUT', id, Math.floor(Date.now() / 1000) - 5)), { body }), 403, /expired/);
    expect((await send(undefined, 'PUT', t.body.upload_url, { body })).status).toBe(200);

    const d = await post(alice, io(session, 'download'), { path: '/workspace/uploads/notes.txt' });
    const dl = new URL(d.body.download_url);
    const dlId = dl.pathname.split('/').pop()!;
    expectError(await send(undefined, 'GET', `${gw!.url}${dl.pathname}?expires=${dl.searchParams.get('expires')}&sig=${flipped}`), 403, /signature/);
    expectError(await send(undefined, 'GET', at(signLink(gw!.deps, 'GET', dlId, Math.floor(Date.now() / 1000) - 5), dlId)), 403, /expired/);
    expectError(await send(undefined, 'PUT', d.body.download_url, { body }), 403, /signature/);
    expect((await send(undefined, 'GET', d.body.download_url)).bytes.toString()).toBe('hello notes\n');
  });

  it('needs the bearer token, and finds no session of another user (404)', async () => {
    expect((await send(gw, 'POST', io(session, 'upload'), { json: { filename: 'a.txt', size: 1 } })).status).toBe(401);
    expectError(await post(bob, io(session, 'upload'), { filename: 'a.txt', size: 1 }), 404, /session not found/);
    expectError(await post(bob, io(session, 'upload/complete'), { upload_id: uploadId || `up_${'0'.repeat(32)}` }), 404, /session not found/);
    expectError(await post(bob, io(session, 'download'), { path: '/workspace/uploads/data.bin' }), 404, /session not found/);
    expectError(await post(alice, io('no-such-session', 'download'), { path: 'x' }), 404, /session not found/);
  });

  it('refuses transfers for a session that has ended (409)', async () => {
    const other = await runningSession(alice);
    const t = await post(alice, io(other, 'upload'), { filename: 'late.txt', size: 4 });
    expect(t.status).toBe(200);
    expect((await send(undefined, 'PUT', t.body.upload_url, { body: Buffer.from('late') })).status).toBe(200);
    // An upload belongs to its session: not completed on another one of hers.
    expectError(await post(alice, io(session, 'upload/complete'), { upload_id: t.body.upload_id }), 404, /no such upload/);
    expect((await send(gw, 'DELETE', `/v1/sessions/${other}`, { token: alice })).status).toBe(200);
    await h.waitForEnd(other);
    expectError(await post(alice, io(other, 'upload/complete'), { upload_id: t.body.upload_id }), 409, /not running/);
    expectError(await post(alice, io(other, 'upload'), { filename: 'x.txt', size: 1 }), 409, /not running/);
    expectError(await post(alice, io(other, 'download'), { path: '/workspace/uploads/late.txt' }), 409, /not running/);
  });

  it('rate-limits upload requests per session (429)', async () => {
    // The second gateway allows 3 per window; one was used above.
    const statuses: number[] = [];
    let limited: Reply | undefined;
    for (let i = 0; i < 4 && !limited; i++) {
      const r = await post(alice, io(session, 'upload'), { filename: `r${i}.txt`, size: 1 }, small);
      statuses.push(r.status);
      if (r.status === 429) limited = r;
    }
    expect(statuses).toEqual([200, 200, 429]);
    expectError(limited!, 429, /uploads/);
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('keeps the file bytes out of the Temporal history: the workflow saw only ids and paths', async () => {
    expect(uploadId).not.toBe('');
    const history = await decodedHistory(h, sessionWorkflowId(session));
    // Every payload decoded, and everything else as JSON text.
    const texts: string[] = [];
    const walk = (v: unknown) => {
      if (v instanceof Uint8Array) texts.push(Buffer.from(v).toString('latin1'));
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
      else if (typeof v === 'string') texts.push(v);
    };
    walk(history);
    const all = texts.join('\n');
    // The search sees the transfers (so it would see bytes, had they been there)...
    expect(all).toContain(uploadId);
    expect(all).toContain('placeFile');
    expect(all).toContain('exportFile');
    expect(all).toContain('/workspace/uploads/data.bin');
    // ...and no byte of the file: raw, base64, or as a JSON array of numbers (a Buffer inside an object).
    expect(all).not.toContain(MARKER);
    expect(all).not.toContain(payload.subarray(999, 999 + 45).toString('base64'));
    expect(all).not.toContain(payload.subarray(0, 64).toString('latin1'));
    expect(all).not.toContain(Array.from(Buffer.from(MARKER)).join(','));
  });
});
