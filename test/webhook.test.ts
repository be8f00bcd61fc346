import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { signWebhook, verifyWebhookSignature } from '../lib/webhook-signature';
import { postJson } from '../lib/http-post';

describe('webhook signatures', () => {
  const secret = 'whsec_table-test-secret';
  const body = '{"type":"session.ended"}';
  const now = 1_800_000_000;
  const good = signWebhook(secret, body, now);

  it.each([
    ['a fresh, correct signature', good, body, now + 10, { ok: true }],
    ['another body', good, '{"type":"other"}', now, { ok: false, reason: 'signature mismatch' }],
    ['another secret', signWebhook('whsec_other', body, now), body, now, { ok: false, reason: 'signature mismatch' }],
    ['an old timestamp (replay)', good, body, now + 301, { ok: false, reason: 'timestamp outside the tolerance' }],
    ['a timestamp moved forward', good.replace(`t=${now}`, `t=${now + 5}`), body, now, { ok: false, reason: 'signature mismatch' }],
    ['no header', undefined, body, now, { ok: false, reason: 'no signature header' }],
    ['garbage', 'v1=abc', body, now, { ok: false, reason: 'malformed signature header' }],
    ['a truncated mac', good.slice(0, -2), body, now, { ok: false, reason: 'signature mismatch' }],
  ])('%s', (_name, header, payload, at, expected) => {
    expect(verifyWebhookSignature(secret, header, payload, { nowSeconds: at })).toEqual(expected);
  });
});

describe('postJson (webhook POSTs under the address policy)', () => {
  let server: http.Server;
  let port = 0;
  const hits: string[] = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      hits.push(`${req.method} ${req.url} ${req.headers.host}`);
      // /slow takes the request and never answers.
      req.resume().on('end', () => req.url !== '/slow' && res.writeHead(204).end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));

  it('refuses loopback and private targets unless the policy allows them, before any request', async () => {
    const before = hits.length;
    await expect(postJson(`http://127.0.0.1:${port}/hook`, '{}', { headers: {}, timeoutMs: 2000, policy: {} }))
      .rejects.toThrow(/refused: 127\.0\.0\.1 is a loopback address/);
    await expect(postJson(`http://localhost:${port}/hook?token=t0ken`, '{}', { headers: {}, timeoutMs: 2000, policy: {} }))
      .rejects.toThrow(/^refused: localhost/);
    await expect(postJson('http://169.254.169.254/latest', '{}', { headers: {}, timeoutMs: 2000, policy: { allowPrivate: true } }))
      .rejects.toThrow(/refused/);
    await expect(postJson('ftp://example.com/x', '{}', { headers: {}, timeoutMs: 2000, policy: {} })).rejects.toThrow(/unsupported scheme/);
    expect(hits.length).toBe(before);
  });

  it('posts when allowed, and times out a receiver that never answers', async () => {
    const r = await postJson(`http://localhost:${port}/hook`, '{"a":1}', { headers: { 'x-test': '1' }, timeoutMs: 2000, policy: { allowPrivate: true } });
    expect(r.status).toBe(204);
    expect(hits[hits.length - 1]).toBe(`POST /hook localhost:${port}`);
    await expect(postJson(`http://127.0.0.1:${port}/slow`, '{}', { headers: {}, timeoutMs: 300, policy: { allowPrivate: true } }))
      .rejects.toThrow(/no answer within 300 ms/);
  });
});
