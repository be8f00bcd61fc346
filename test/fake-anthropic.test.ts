/**
 * Proves the real @anthropic-ai/sdk works end to end against the local fake Messages API:
 * JSON and SSE responses, tool-use round trips, retries, typed errors and aborts.
 */
import Anthropic, { APIError } from '@anthropic-ai/sdk';
import { FakeAnthropic, apiError, text, toolUse, message } from './support/fake-anthropic';

const KEY = 'sk-ant-test-0123456789';
const MODEL = 'claude-test-model';

let fake: FakeAnthropic;

function client(maxRetries = 0): Anthropic {
  return new Anthropic({ apiKey: KEY, baseURL: fake.url, maxRetries });
}

const ask = (content = 'hello') => ({ model: MODEL, max_tokens: 256, messages: [{ role: 'user' as const, content }] });

beforeAll(async () => {
  fake = await FakeAnthropic.start();
});
afterEach(() => fake.reset());
afterAll(async () => {
  await fake.close();
});

describe('FakeAnthropic with the real SDK', () => {
  test('non-streaming text reply is a full Message object; request is recorded', async () => {
    fake.enqueue(text('Hi there!'));
    const msg = await client().messages.create({ ...ask(), system: 'You are a SOC analyst.' });

    expect(msg.id).toMatch(/^msg_[0-9A-Za-z]{24}$/);
    expect(msg).toMatchObject({ type: 'message', role: 'assistant', model: MODEL, stop_reason: 'end_turn', stop_sequence: null });
    expect(msg.content).toEqual([{ type: 'text', text: 'Hi there!' }]);
    expect(msg.usage.input_tokens).toBeGreaterThan(0);
    expect(msg.usage.output_tokens).toBeGreaterThan(0);
    expect(msg.usage).toMatchObject({ cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });

    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0];
    expect(req.headers.authorization).toBe(`Bearer ${KEY}`); // SDK 1.x sends apiKey as a bearer token
    expect(req.headers['anthropic-version']).toBeTruthy();
    expect(req.body.system).toBe('You are a SOC analyst.');
    expect(req.body.stream).toBeUndefined();
  });

  test('streaming text arrives in several text events and finalMessage() matches', async () => {
    const full = 'The quick brown fox jumps over the lazy dog — 🦊 déjà vu.';
    fake.enqueue(text(full));
    const stream = client().messages.stream(ask());
    const pieces: string[] = [];
    stream.on('text', (delta) => pieces.push(delta));
    const final = await stream.finalMessage();

    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe(full);
    expect(final.content).toEqual([{ type: 'text', text: full }]);
    expect(final.stop_reason).toBe('end_turn');
    expect(fake.requests[0].body.stream).toBe(true);
  });

  test('streaming tool_use input is reassembled by the SDK into the same object', async () => {
    const input = {
      query: 'process_name:"powershell.exe" AND cmd:*\\\\evil*',
      nested: { deep: { list: [1, 2.5, null, true, { k: 'v' }], empty: {} } },
      unicode: '日本語 🚨 naïve — "quoted" \'single\' \n newline \t tab',
    };
    fake.enqueue(toolUse('search_logs', input, { text: 'Let me search.', id: 'toolu_fixed123' }));
    const final = await client().messages.stream(ask()).finalMessage();

    expect(final.stop_reason).toBe('tool_use');
    expect(final.content[0]).toEqual({ type: 'text', text: 'Let me search.' });
    const block = final.content[1];
    expect(block.type).toBe('tool_use');
    if (block.type !== 'tool_use') throw new Error('unreachable');
    expect(block.id).toBe('toolu_fixed123');
    expect(block.name).toBe('search_logs');
    expect(block.input).toEqual(input);
  });

  test('generated tool_use ids look like toolu_ + base62', async () => {
    fake.enqueue(toolUse('noop', {}));
    const msg = await client().messages.create(ask());
    const block = msg.content[0];
    expect(block.type === 'tool_use' && block.id).toMatch(/^toolu_[0-9A-Za-z]{24}$/);
  });

  test('multi-turn: tool_result answering the tool_use is accepted', async () => {
    fake.enqueue(toolUse('get_time', { tz: 'UTC' }), text('It is noon.'));
    const sdk = client();
    const first = await sdk.messages.create(ask('what time is it?'));
    const call = first.content.find((b) => b.type === 'tool_use');
    if (!call || call.type !== 'tool_use') throw new Error('expected a tool_use block');

    const second = await sdk.messages.create({
      ...ask(),
      messages: [
        { role: 'user', content: 'what time is it?' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: '12:00' }] },
      ],
    });
    expect(second.content).toEqual([{ type: 'text', text: 'It is noon.' }]);
    expect(fake.requests[1].body.messages[2].content[0].tool_use_id).toBe(call.id);
  });

  test('responder scripts replies from request content when the queue is empty', async () => {
    fake.setResponder((req) => text(`echo: ${req.body.messages[0].content}`));
    const msg = await client().messages.create(ask('ping'));
    expect(msg.content).toEqual([{ type: 'text', text: 'echo: ping' }]);
  });

  test('429 with retry-after is retried by the SDK, then succeeds', async () => {
    fake.enqueue(apiError(429, { retryAfterSeconds: 0.05 }), text('ok'));
    const started = Date.now();
    const msg = await client(2).messages.create(ask());
    expect(msg.content).toEqual([{ type: 'text', text: 'ok' }]);
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[1].headers['x-stainless-retry-count']).toBe('1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
  });

  test('529 overloaded, then success', async () => {
    fake.enqueue(apiError(529, { retryAfterMs: 10 }), text('ok'));
    const final = await client(2).messages.stream(ask()).finalMessage();
    expect(final.content).toEqual([{ type: 'text', text: 'ok' }]);
    expect(fake.requests).toHaveLength(2);
  });

  test('500 api_error, then success', async () => {
    fake.enqueue(apiError(500, { retryAfterMs: 10 }), text('ok'));
    const msg = await client(2).messages.create(ask());
    expect(msg.content).toEqual([{ type: 'text', text: 'ok' }]);
    expect(fake.requests).toHaveLength(2);
  });

  test('with maxRetries 0 the SDK surfaces a typed RateLimitError with the real error body', async () => {
    fake.enqueue(apiError(429, { message: 'slow down', retryAfterSeconds: 7 }));
    const err = await client(0).messages.create(ask()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    const e = err as InstanceType<typeof Anthropic.RateLimitError>;
    expect(e.status).toBe(429);
    expect(e.type).toBe('rate_limit_error');
    expect(e.apiMessage).toBe('slow down');
    expect(e.requestID).toMatch(/^req_/);
    expect(e.headers.get('retry-after')).toBe('7');
    expect(fake.requests).toHaveLength(1);
  });

  test('x-should-retry: false stops the SDK from retrying a 500', async () => {
    fake.enqueue(apiError(500, { shouldRetry: false }), text('never reached'));
    await expect(client(2).messages.create(ask())).rejects.toBeInstanceOf(Anthropic.InternalServerError);
    expect(fake.requests).toHaveLength(1);
  });

  test('unknown key with validKeys configured → AuthenticationError', async () => {
    const strict = await FakeAnthropic.start({ validKeys: [KEY] });
    try {
      strict.setDefault(text('ok'));
      const bad = new Anthropic({ apiKey: 'sk-ant-wrong', baseURL: strict.url, maxRetries: 0 });
      const err = await bad.messages.create(ask()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
      expect((err as APIError).type).toBe('authentication_error');
      expect((err as APIError).apiMessage).toBe('invalid x-api-key');

      const good = new Anthropic({ apiKey: KEY, baseURL: strict.url, maxRetries: 0 });
      await expect(good.messages.create(ask())).resolves.toMatchObject({ type: 'message' });
      // x-api-key (as curl or older SDKs send it) is accepted too.
      const viaHeader = new Anthropic({ baseURL: strict.url, maxRetries: 0, defaultHeaders: { 'x-api-key': KEY } });
      await expect(viaHeader.messages.create(ask())).resolves.toMatchObject({ type: 'message' });
    } finally {
      await strict.close();
    }
  });

  test('raw HTTP: missing credentials → 401, non-JSON or incomplete body → 400', async () => {
    const post = (headers: Record<string, string>, body: string) =>
      fetch(`${fake.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const version = { 'anthropic-version': '2023-06-01' };

    const noAuth = await post(version, JSON.stringify(ask()));
    expect(noAuth.status).toBe(401);
    expect(await noAuth.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });

    const notJson = await post({ ...version, 'x-api-key': KEY }, '{nope');
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.stringMatching(/JSON/) } });

    const noMaxTokens = await post({ ...version, 'x-api-key': KEY }, JSON.stringify({ model: MODEL, messages: [] }));
    expect(noMaxTokens.status).toBe(400);
    expect(((await noMaxTokens.json()) as any).error.message).toBe('max_tokens: Field required');
  });

  test('400 on broken alternation or unanswered tool_use; rejected requests do not consume replies', async () => {
    fake.enqueue(text('kept for later'));
    const sdk = client();
    const twoUsers = sdk.messages.create({
      ...ask(),
      messages: [
        { role: 'user', content: 'a' },
        { role: 'user', content: 'b' },
      ],
    });
    await expect(twoUsers).rejects.toBeInstanceOf(Anthropic.BadRequestError);
    await expect(twoUsers).rejects.toThrow(/alternate/);

    const unanswered = sdk.messages.create({
      ...ask(),
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_abc', name: 'x', input: {} }] },
        { role: 'user', content: 'no result here' },
      ],
    });
    await expect(unanswered).rejects.toThrow(/tool_use.*without.*tool_result.*toolu_abc/);

    const wrongId = sdk.messages.create({
      ...ask(),
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_abc', name: 'x', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_abc', content: 'ok' }, { type: 'tool_result', tool_use_id: 'toolu_zzz', content: '?' }] },
      ],
    });
    await expect(wrongId).rejects.toThrow(/unexpected `tool_use_id`.*toolu_zzz/);

    expect(fake.pending).toBe(1);
    await expect(sdk.messages.create(ask())).resolves.toMatchObject({ content: [{ type: 'text', text: 'kept for later' }] });
  });

  test('no scripted reply → loud 500 naming the request', async () => {
    await expect(client().messages.create(ask())).rejects.toThrow(/fake-anthropic: no scripted reply for request #0/);
  });

  test('mid-stream error event surfaces as an APIError of that type', async () => {
    fake.enqueue(text('partial output that never finishes', { midStreamError: { afterFrames: 3 } }));
    const err = await client().messages.stream(ask()).finalMessage().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect((err as APIError).type).toBe('overloaded_error');
  });

  test('abort mid-stream via AbortController; the server survives', async () => {
    fake.enqueue(text('x'.repeat(400), { chunkDelayMs: 50 }));
    const ac = new AbortController();
    const stream = client().messages.stream(ask(), { signal: ac.signal });
    let seen = 0;
    stream.on('text', () => {
      seen += 1;
      if (seen === 1) ac.abort();
    });
    await expect(stream.finalMessage()).rejects.toBeInstanceOf(Anthropic.APIUserAbortError);
    expect(seen).toBe(1);

    fake.enqueue(text('still alive'));
    const msg = await client().messages.create(ask());
    expect(msg.content).toEqual([{ type: 'text', text: 'still alive' }]);
  });

  test('hangMs longer than the client timeout → APIConnectionTimeoutError, server unharmed', async () => {
    fake.enqueue(text('too late', { hangMs: 10_000 }));
    const impatient = new Anthropic({ apiKey: KEY, baseURL: fake.url, maxRetries: 0, timeout: 100 });
    await expect(impatient.messages.create(ask())).rejects.toBeInstanceOf(Anthropic.APIConnectionTimeoutError);
    fake.enqueue(text('on time'));
    await expect(client().messages.create(ask())).resolves.toMatchObject({ content: [{ text: 'on time' }] });
  });

  test('usage numbers reach finalMessage().usage (override and estimate)', async () => {
    fake.enqueue(message([{ type: 'text', text: 'counted' }], { usage: { input_tokens: 1234, output_tokens: 56 } }));
    const final = await client().messages.stream(ask()).finalMessage();
    expect(final.usage).toMatchObject({ input_tokens: 1234, output_tokens: 56 });

    fake.enqueue(text('y'.repeat(400)));
    const estimated = await client().messages.stream(ask('z'.repeat(4000))).finalMessage();
    expect(estimated.usage.input_tokens).toBeGreaterThanOrEqual(1000);
    expect(estimated.usage.output_tokens).toBe(100);
  });
});
