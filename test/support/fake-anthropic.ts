/**
 * A local stand-in for the Anthropic Messages API (POST /v1/messages) that speaks the real wire
 * format, so the real `@anthropic-ai/sdk` can be exercised without network access.
 *
 * Configuring the SDK in tests:
 *   new Anthropic({ apiKey: 'sk-ant-test-…', baseURL: fake.url, maxRetries: 0 })
 * - The SDK retries 408/409/429/5xx (and anything with `x-should-retry: true`) on its own, up to
 *   maxRetries (default 2). Use `maxRetries: 0` when a test wants to see the error itself; when it
 *   tests retries, give the error reply `retryAfterMs`/`retryAfterSeconds` so the SDK waits that
 *   long instead of its 0.5s+ exponential backoff.
 * - SDK 1.x sends `apiKey` as `Authorization: Bearer <key>` (not `x-api-key`); both are accepted.
 * - The SDK fails before sending if it finds no credentials at all, so pass apiKey explicitly.
 */
import * as http from 'node:http';
import { randomInt } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export type StopReason = 'end_turn' | 'tool_use' | 'max_tokens' | 'stop_sequence';
export type ScriptedBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id?: string; name: string; input: unknown };

export interface MessageReply {
  kind: 'message';
  content: ScriptedBlock[];
  /** Default: 'tool_use' if any block is a tool_use, else 'end_turn'. */
  stop_reason?: StopReason;
  /** Default: estimated from request / content size (chars / 4, min 1). */
  usage?: { input_tokens?: number; output_tokens?: number; cache_creation_input_tokens?: number; cache_read_input_tokens?: number };
  /** Default: the model named in the request. */
  model?: string;
  /** Streaming only: delay between SSE frames, so tests can interrupt mid-stream. */
  chunkDelayMs?: number;
  /** How many text_delta pieces each text block is split into (default 4). */
  textParts?: number;
  /** Delay before the first byte (status line) is sent. */
  hangMs?: number;
  /** Streaming only: after this many frames send an `event: error` (as the real API does when overloaded mid-stream) and end. */
  midStreamError?: { afterFrames: number; errorType?: string; message?: string };
}

export interface ErrorReply {
  kind: 'error';
  status: number;
  /** Default derived from status (429 → rate_limit_error, 529 → overloaded_error, …). */
  errorType?: string;
  message?: string;
  retryAfterSeconds?: number;
  retryAfterMs?: number;
  /** Sets `x-should-retry`, which overrides the SDK's status-based retry decision. */
  shouldRetry?: boolean;
  hangMs?: number;
}

export type ScriptedReply = MessageReply | ErrorReply;

export interface RecordedRequest {
  method: string;
  /** Path plus query, e.g. '/v1/messages' or '/v1/messages?beta=true'. */
  url: string;
  /** Lowercased header names, as Node delivers them. */
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body, or the raw text when it is not JSON. */
  body: any;
  receivedAt: number;
}

/** Called when the queue is empty; return undefined to fall through to the default reply. */
export type Responder = (
  req: RecordedRequest,
  index: number,
) => ScriptedReply | undefined | Promise<ScriptedReply | undefined>;

export interface FakeAnthropicOptions {
  port?: number;
  host?: string;
  /** When set, only these keys (x-api-key or Bearer token) are accepted; others get 401. */
  validKeys?: string[];
}

const DEFAULT_ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error', 403: 'permission_error',
  404: 'not_found_error', 413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error',
  504: 'timeout_error', 529: 'overloaded_error',
};

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const randomId = (prefix: string, len = 24): string =>
  prefix + Array.from({ length: len }, () => BASE62[randomInt(62)]).join('');

const estimateTokens = (chars: number): number => Math.max(1, Math.ceil(chars / 4));

class RequestError extends Error {
  constructor(readonly status: number, readonly errorType: string, message: string) { super(message); }
}

export class FakeAnthropic {
  readonly requests: RecordedRequest[] = [];
  private queue: ScriptedReply[] = [];
  private responder: Responder | undefined;
  private defaultReply: ScriptedReply | undefined;

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
    private readonly validKeys: Set<string> | undefined,
  ) {}

  static async start(opts: FakeAnthropicOptions = {}): Promise<FakeAnthropic> {
    const server = http.createServer();
    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const fake = new FakeAnthropic(server, `http://${host}:${port}`, opts.validKeys && new Set(opts.validKeys));
    server.on('request', (req, res) => {
      fake.handle(req, res).catch((err) => {
        // Never let a handler bug crash the test process; surface it to the client instead.
        if (!res.headersSent && !res.destroyed) sendError(res, 500, 'api_error', `fake-anthropic: ${String(err)}`);
        else res.destroy();
      });
    });
    return fake;
  }

  /** FIFO replies for the next requests; they take precedence over the responder and default. */
  enqueue(...replies: ScriptedReply[]): void { this.queue.push(...replies); }
  setResponder(fn: Responder | undefined): void { this.responder = fn; }
  setDefault(reply: ScriptedReply | undefined): void { this.defaultReply = reply; }

  /** Called as each text delta is written to the wire (the benchmark times delivery from here). */
  onTextDelta: ((text: string) => void) | undefined;
  /** Replies still queued (lets tests assert a rejected request did not consume one). */
  get pending(): number { return this.queue.length; }
  reset(): void {
    this.queue = [];
    this.responder = undefined;
    this.defaultReply = undefined;
    this.requests.length = 0;
  }

  /** Stops listening and destroys open connections (keep-alive, streams in flight). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = await readBody(req);
    let body: any = raw;
    let parsed = true;
    try { body = JSON.parse(raw); } catch { parsed = false; }
    const recorded: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers }, body, receivedAt: Date.now() };
    const index = this.requests.push(recorded) - 1;

    try {
      const path = recorded.url.split('?')[0];
      if (path !== '/v1/messages') throw new RequestError(404, 'not_found_error', `Not found: ${path}`);
      if (recorded.method !== 'POST') throw new RequestError(405, 'invalid_request_error', `Method not allowed: ${recorded.method}`);
      this.checkAuth(req);
      if (!req.headers['anthropic-version']) throw new RequestError(400, 'invalid_request_error', 'anthropic-version: header is required');
      if (!parsed) throw new RequestError(400, 'invalid_request_error', 'There was an issue with the request body: not valid JSON');
      validateParams(body);
    } catch (err) {
      if (!(err instanceof RequestError)) throw err;
      sendError(res, err.status, err.errorType, err.message);
      return;
    }

    let reply = this.queue.shift();
    try {
      reply ??= (await this.responder?.(recorded, index)) ?? this.defaultReply;
    } catch (err) {
      reply = { kind: 'error', status: 500, errorType: 'api_error', message: `fake-anthropic: responder threw: ${String(err)}` };
    }
    reply ??= { kind: 'error', status: 500, errorType: 'api_error', message: `fake-anthropic: no scripted reply for request #${index}` };

    if (reply.hangMs && !(await pause(reply.hangMs, res))) return;
    if (reply.kind === 'error') {
      sendError(res, reply.status, reply.errorType ?? DEFAULT_ERROR_TYPES[reply.status] ?? 'api_error', reply.message, reply);
      return;
    }
    const message = buildMessage(reply, body, raw);
    if (body.stream === true) await streamMessage(res, message, reply, this.onTextDelta);
    else sendJson(res, 200, message);
  }

  private checkAuth(req: http.IncomingMessage): void {
    const apiKey = header(req, 'x-api-key');
    const bearer = /^Bearer\s+(.+)$/i.exec(header(req, 'authorization') ?? '')?.[1];
    const key = apiKey ?? bearer;
    if (!key) throw new RequestError(401, 'authentication_error', 'x-api-key header is required');
    if (this.validKeys && !this.validKeys.has(key)) throw new RequestError(401, 'authentication_error', 'invalid x-api-key');
  }
}

// ---------------------------------------------------------------------------------------------
// Request validation: the cheap subset of the real API's checks that catches conversation bugs.

function validateParams(body: any): void {
  const bad = (msg: string): never => { throw new RequestError(400, 'invalid_request_error', msg); };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) bad('request body must be a JSON object');
  if (typeof body.model !== 'string' || !body.model) bad('model: Field required');
  if (body.max_tokens === undefined) bad('max_tokens: Field required');
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) bad('max_tokens: must be a positive integer');
  if (!Array.isArray(body.messages)) bad('messages: Field required');
  if (body.messages.length === 0) bad('messages: at least one message is required');

  const msgs: any[] = body.messages;
  msgs.forEach((m, i) => {
    // Stricter than the real API (which merges consecutive same-role turns) on purpose: for our
    // engine a repeated role is always a bug in how it builds the conversation.
    const expected = i % 2 === 0 ? 'user' : 'assistant';
    if (m?.role !== expected) {
      bad(`messages.${i}.role: roles must alternate between "user" and "assistant", starting with "user" (got "${m?.role}")`);
    }
    const isFinalAssistant = i === msgs.length - 1 && m.role === 'assistant';
    const empty = typeof m.content === 'string' ? m.content === '' : !Array.isArray(m.content) || m.content.length === 0;
    if (empty && !isFinalAssistant) {
      bad(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
    }
  });

  // Every assistant tool_use must be answered by a tool_result in the very next (user) message,
  // and every tool_result must answer a tool_use of the previous (assistant) message.
  msgs.forEach((m, i) => {
    if (m.role === 'assistant') {
      const answered = new Set(blocksOf(msgs[i + 1], 'tool_result').map((b) => b.tool_use_id));
      const missing = blocksOf(m, 'tool_use').map((b) => b.id).filter((id) => !answered.has(id));
      if (missing.length) {
        bad(
          `messages.${i + 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. ` +
            'Each `tool_use` block must have a corresponding `tool_result` block in the next message.',
        );
      }
      return;
    }
    const offered = new Set(blocksOf(msgs[i - 1], 'tool_use').map((b) => b.id));
    const blocks: any[] = Array.isArray(m.content) ? m.content : [];
    blocks.forEach((b, j) => {
      if (b?.type !== 'tool_result') return;
      if (!offered.has(b.tool_use_id)) {
        bad(
          `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${b.tool_use_id}. ` +
            'Each `tool_result` block must have a corresponding `tool_use` block in the previous message.',
        );
      }
      if (blocks.slice(0, j).some((p) => p?.type !== 'tool_result')) {
        bad(`messages.${i}.content.${j}: \`tool_result\` blocks must come before any other content in the message`);
      }
    });
  });
}

const blocksOf = (m: any, type: string): any[] =>
  (Array.isArray(m?.content) ? m.content : []).filter((b: any) => b?.type === type);

// ---------------------------------------------------------------------------------------------
// Responses.

/** The Message object exactly as the API returns it (non-streaming body; basis of the SSE frames). */
interface WireMessage {
  id: string; type: 'message'; role: 'assistant'; model: string;
  content: Array<{ type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: unknown }>;
  stop_reason: StopReason; stop_sequence: null;
  usage: { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number };
}

function buildMessage(reply: MessageReply, body: any, raw: string): WireMessage {
  const content = reply.content.map((b) =>
    b.type === 'text'
      ? { type: 'text' as const, text: b.text }
      : { type: 'tool_use' as const, id: b.id ?? randomId('toolu_'), name: b.name, input: b.input },
  );
  const outChars = content.reduce((n, b) => n + (b.type === 'text' ? b.text.length : JSON.stringify(b.input ?? {}).length), 0);
  return {
    id: randomId('msg_'),
    type: 'message',
    role: 'assistant',
    model: reply.model ?? body.model,
    content,
    stop_reason: reply.stop_reason ?? (content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn'),
    stop_sequence: null,
    usage: {
      input_tokens: reply.usage?.input_tokens ?? estimateTokens(raw.length),
      output_tokens: reply.usage?.output_tokens ?? estimateTokens(outChars),
      cache_creation_input_tokens: reply.usage?.cache_creation_input_tokens ?? 0,
      cache_read_input_tokens: reply.usage?.cache_read_input_tokens ?? 0,
    },
  };
}

/** Splits on code points (never inside a surrogate pair) into roughly `parts` pieces. */
function chunk(s: string, parts = 4): string[] {
  const cps = Array.from(s);
  const size = Math.max(1, Math.ceil(cps.length / parts));
  const out: string[] = [];
  for (let i = 0; i < cps.length; i += size) out.push(cps.slice(i, i + size).join(''));
  return out;
}

function sseFrames(msg: WireMessage, textParts = 4): Array<[string, unknown]> {
  const frames: Array<[string, unknown]> = [
    ['message_start', { type: 'message_start', message: { ...msg, content: [], stop_reason: null, usage: { ...msg.usage, output_tokens: 1 } } }],
  ];
  msg.content.forEach((block, index) => {
    if (block.type === 'text') {
      frames.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }]);
      for (const text of chunk(block.text, textParts)) {
        frames.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text } }]);
      }
    } else {
      const start = { type: 'tool_use', id: block.id, name: block.name, input: {} };
      frames.push(['content_block_start', { type: 'content_block_start', index, content_block: start }]);
      // The real API opens tool input with an empty partial_json before the real pieces.
      for (const partial_json of ['', ...chunk(JSON.stringify(block.input ?? {}))]) {
        frames.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json } }]);
      }
    }
    frames.push(['content_block_stop', { type: 'content_block_stop', index }]);
    if (index === 0) frames.splice(2, 0, ['ping', { type: 'ping' }]); // real streams ping early, after the first block opens
  });
  if (msg.content.length === 0) frames.push(['ping', { type: 'ping' }]);
  frames.push(
    ['message_delta', { type: 'message_delta', delta: { stop_reason: msg.stop_reason, stop_sequence: null }, usage: { output_tokens: msg.usage.output_tokens } }],
    ['message_stop', { type: 'message_stop' }],
  );
  return frames;
}

async function streamMessage(res: http.ServerResponse, msg: WireMessage, reply: MessageReply, onTextDelta?: (text: string) => void): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': randomId('req_') });
  const frames = sseFrames(msg, reply.textParts);
  const failAt = reply.midStreamError?.afterFrames;
  for (let i = 0; i < frames.length; i++) {
    if (res.destroyed || res.writableEnded) return; // client went away (abort): stop quietly
    if (i > 0 && reply.chunkDelayMs && !(await pause(reply.chunkDelayMs, res))) return;
    if (failAt !== undefined && i === failAt) {
      const e = reply.midStreamError!;
      const type = e.errorType ?? 'overloaded_error';
      res.end(sseFrame('error', { type: 'error', error: { type, message: e.message ?? defaultMessage(type) } }));
      return;
    }
    res.write(sseFrame(frames[i][0], frames[i][1]));
    const delta = (frames[i][1] as { delta?: { type: string; text?: string } }).delta;
    if (delta?.type === 'text_delta') onTextDelta?.(delta.text!);
  }
  res.end();
}

const sseFrame = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

function sendJson(res: http.ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'request-id': randomId('req_'), ...headers });
  res.end(text);
}

function sendError(res: http.ServerResponse, status: number, type: string, message?: string, reply?: ErrorReply): void {
  const headers: Record<string, string> = {};
  if (reply?.retryAfterSeconds !== undefined) headers['retry-after'] = String(reply.retryAfterSeconds);
  if (reply?.retryAfterMs !== undefined) headers['retry-after-ms'] = String(reply.retryAfterMs);
  if (reply?.shouldRetry !== undefined) headers['x-should-retry'] = String(reply.shouldRetry);
  const payload = { type: 'error', error: { type, message: message ?? defaultMessage(type) }, request_id: randomId('req_') };
  sendJson(res, status, payload, headers);
}

function defaultMessage(type: string): string {
  if (type === 'overloaded_error') return 'Overloaded';
  if (type === 'rate_limit_error') return 'Number of request tokens has exceeded your per-minute rate limit';
  return type.replace(/_/g, ' ');
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v || undefined;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Waits `ms`, but resolves early (false) if the client disconnects, so no timer outlives a test. */
function pause(ms: number, res: http.ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve(false);
    const onClose = (): void => { clearTimeout(timer); resolve(false); };
    const timer = setTimeout(() => { res.off('close', onClose); resolve(!res.destroyed); }, ms);
    res.once('close', onClose);
  });
}

// ---------------------------------------------------------------------------------------------
// Scripting helpers.

type ReplyExtras = Partial<Omit<MessageReply, 'kind' | 'content'>>;

export function message(content: ScriptedBlock[], extra: ReplyExtras = {}): MessageReply {
  return { kind: 'message', content, ...extra };
}

export function text(t: string, extra: ReplyExtras = {}): MessageReply {
  return message([{ type: 'text', text: t }], extra);
}

/** A tool call, optionally preceded by some text (as the model usually does). */
export function toolUse(name: string, input: unknown, opts: { id?: string; text?: string } & ReplyExtras = {}): MessageReply {
  const { id, text: preface, ...extra } = opts;
  const blocks: ScriptedBlock[] = preface ? [{ type: 'text', text: preface }] : [];
  blocks.push({ type: 'tool_use', id, name, input });
  return message(blocks, extra);
}

export function apiError(status: number, opts: Omit<ErrorReply, 'kind' | 'status'> = {}): ErrorReply {
  return { kind: 'error', status, ...opts };
}
