import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { useHarness, TEST_KEY } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';

/** A local web: a page, a redirect to loopback, and a SearXNG-style search endpoint. */
async function startLocalWeb() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/advisory.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(
        '<html><head><title>Advisory</title><script>var hidden = "script-text";</script></head>' +
          '<body><h1>Advisory 42</h1><p>Indicator of compromise: <b>evil-c2.test</b> on port 8443.</p></body></html>',
      );
    } else if (url.pathname === '/search') {
      const q = url.searchParams.get('q') ?? '';
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        query: q,
        results: [
          { title: `About ${q}`, url: 'https://intel.example.org/report/1', content: `Report on ${q}: beaconing every 60 s.` },
          { title: 'Spam', url: 'https://www.spam.test/buy', content: 'buy now' },
        ],
      }));
    } else {
      res.writeHead(404).end('not here');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('WebFetch', () => {
  let web: Awaited<ReturnType<typeof startLocalWeb>>;
  beforeAll(async () => {
    web = await startLocalWeb();
  });
  const h = useHarness({ env: { WEBFETCH_ALLOW_PRIVATE: 'true' } });
  afterAll(async () => web?.close());

  it('fetches in the worker, answers the prompt with one model call over the page text, and bills it', async () => {
    h.fake.enqueue(
      toolUse('WebFetch', { url: `${web.base}/advisory.html`, prompt: 'Which indicator does it name?' }),
      text('It names evil-c2.test on port 8443.'),
      text('The advisory names evil-c2.test.'),
    );
    const sessionId = await h.startSession({ prompt: 'read the advisory', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'completed' });

    const offered = (h.fake.requests[0].body.tools as Array<{ name: string }>).map((t) => t.name);
    expect(offered).toContain('WebFetch');
    expect(h.fake.requests.map((r) => r.url)).toEqual(['/v1/messages', '/v1/messages', '/v1/messages']);
    const answerCall = h.fake.requests[1];
    // The answer call uses the session's own credential, sent as its turns send it.
    expect(answerCall.headers.authorization).toBe(`Bearer ${TEST_KEY}`);
    expect(answerCall.headers.authorization).toBe(h.fake.requests[0].headers.authorization);
    expect(answerCall.body.tools).toBeUndefined();
    const asked = JSON.stringify(answerCall.body.messages);
    expect(asked).toContain('Indicator of compromise: evil-c2.test on port 8443.');
    expect(asked).not.toContain('script-text');
    expect(asked).toContain('Which indicator does it name?');

    const events = await h.events(sessionId);
    const result = events.find((e) => e.type === 'tool_result')!;
    expect(result.payload.is_error).toBe(false);
    expect(result.payload.content).toMatch(/^It names evil-c2\.test on port 8443\.\n\n\[WebFetch http:\/\/127\.0\.0\.1:\d+\/advisory\.html: HTTP 200, \d+ bytes\]$/);
    // The answer call is metered with the session's turns.
    const { rows } = await h.db.query<{ n: string }>(`SELECT count(*) AS n FROM model_usage WHERE session_id = $1 AND call_key LIKE 'webfetch-%'`, [sessionId]);
    expect(Number(rows[0].n)).toBe(1);
  });

  it('refuses cloud metadata even when private addresses are allowed, and reports a 404 as an error result', async () => {
    h.fake.enqueue(
      toolUse('WebFetch', { url: 'http://169.254.169.254/latest/meta-data/', prompt: 'credentials?' }),
      toolUse('WebFetch', { url: `${web.base}/missing`, prompt: 'anything?' }),
      text('Nothing there.'),
      text('done'),
    );
    const sessionId = await h.startSession({ prompt: 'probe', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'completed' });
    const results = (await h.events(sessionId)).filter((e) => e.type === 'tool_result').map((e) => e.payload);
    expect(results[0]).toMatchObject({ is_error: true, content: expect.stringMatching(/^WebFetch: refused: 169\.254\.169\.254 is .*metadata/) });
    expect(results[1]).toMatchObject({ is_error: true, content: expect.stringContaining('HTTP 404') });
  });
});

describe('WebSearch without an endpoint', () => {
  const h = useHarness();

  it('is absent without an endpoint, and a profile that allows it is told so', async () => {
    h.fake.enqueue(text('ok'));
    const sessionId = await h.startSession({ prompt: 'search', profile: { allowed_tools: ['WebSearch', 'Read'], one_shot: true } });
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'completed' });
    const offered = (h.fake.requests.at(-1)!.body.tools as Array<{ name: string }>).map((t) => t.name);
    expect(offered).not.toContain('WebSearch');
    expect(offered).toContain('WebFetch');
    const notice = (await h.events(sessionId)).find((e) => e.type === 'system' && e.payload.subtype === 'notice');
    expect(notice?.payload.message).toMatch(/WebSearch is allowed by the profile but not available/);
  });
});

describe('WebSearch with an endpoint', () => {
  let web: Awaited<ReturnType<typeof startLocalWeb>>;
  const env: Record<string, string> = {};
  // Registered before the harness's own beforeAll, so the endpoint's port is in env when the worker reads it.
  beforeAll(async () => {
    web = await startLocalWeb();
    env.WEBSEARCH_URL = `${web.base}/search`;
  });
  const h = useHarness({ env });
  afterAll(async () => web?.close());

  it('returns filtered results from the endpoint', async () => {
    h.fake.enqueue(toolUse('WebSearch', { query: 'evil-c2.test', blocked_domains: ['spam.test'] }), text('found it'));
    const sessionId = await h.startSession({ prompt: 'search', profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    await expect(h.waitForEnd(sessionId)).resolves.toMatchObject({ endReason: 'completed' });
    expect((h.fake.requests[0].body.tools as Array<{ name: string }>).map((t) => t.name)).toContain('WebSearch');
    const result = (await h.events(sessionId)).find((e) => e.type === 'tool_result')!.payload;
    expect(result.is_error).toBe(false);
    expect(result.content).toContain('1. About evil-c2.test\n   https://intel.example.org/report/1\n   Report on evil-c2.test: beaconing every 60 s.');
    expect(result.content).not.toContain('spam.test');
  });
});
