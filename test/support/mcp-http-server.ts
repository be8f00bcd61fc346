/**
 * A real MCP server over HTTP, written with the SDK, for tests and the
 * benchmark: Streamable HTTP at /mcp and the older HTTP+SSE protocol at /sse.
 * Every request must carry `x-api-key: <apiKey>` (401 otherwise).
 *
 * Tools: echo (text), image (a PNG), fail (isError), sleep (answers late),
 * flaky (its first call loses the connection), always_drop (every call does),
 * echo_header (answers with the x-api-key it received), big (a long text), and
 * one whose name is too long to be offered as mcp__<server>__<tool>.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';

/** A 1x1 PNG. */
export const PNG_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
export const LONG_TOOL_NAME = `lookup_${'x'.repeat(60)}`;

type Transport = StreamableHTTPServerTransport | SSEServerTransport;

export class McpHttpTestServer {
  /** Requests refused for a missing or wrong x-api-key. */
  unauthorized = 0;
  /** tools/call requests by tool name, as they arrived (dropped ones included). */
  readonly calls: string[] = [];
  private flakyDropped = false;
  private readonly transports = new Map<string, Transport>();

  private constructor(
    private readonly server: http.Server,
    readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  /** Streamable HTTP endpoint. */
  get url(): string {
    return `${this.baseUrl}/mcp`;
  }
  /** The older HTTP+SSE endpoint (POST to it answers 405, as such servers do). */
  get sseUrl(): string {
    return `${this.baseUrl}/sse`;
  }

  static async start(opts: { apiKey: string; host?: string }): Promise<McpHttpTestServer> {
    const server = http.createServer();
    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const s = new McpHttpTestServer(server, `http://${host}:${port}`, opts.apiKey);
    server.on('request', (req, res) => {
      s.handle(req, res).catch((err) => {
        if (!res.headersSent) res.writeHead(500).end(String(err));
        else res.destroy();
      });
    });
    return s;
  }

  async close(): Promise<void> {
    for (const t of this.transports.values()) await t.close().catch(() => undefined);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.headers['x-api-key'] !== this.apiKey) {
      this.unauthorized += 1;
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"x-api-key is missing or wrong"}');
      return;
    }
    const url = new URL(req.url ?? '/', this.baseUrl);
    const body = req.method === 'POST' ? JSON.parse((await readBody(req)) || 'null') : undefined;
    const call = body?.method === 'tools/call' ? String(body.params?.name) : undefined;
    if (call) {
      this.calls.push(call);
      // Dropped before any answer: the client sees its connection cut mid-request.
      if (call === 'always_drop' || (call === 'flaky' && !this.flakyDropped)) {
        this.flakyDropped = true;
        req.socket.destroy();
        return;
      }
    }
    if (url.pathname === '/mcp') return this.streamable(req, res, body);
    if (url.pathname === '/sse' && req.method === 'GET') {
      const t = new SSEServerTransport('/messages', res);
      this.transports.set(t.sessionId, t);
      res.on('close', () => this.transports.delete(t.sessionId));
      await this.build().connect(t);
      return;
    }
    if (url.pathname === '/messages' && req.method === 'POST') {
      const t = this.transports.get(url.searchParams.get('sessionId') ?? '');
      if (!(t instanceof SSEServerTransport)) return void res.writeHead(404).end('unknown session');
      return t.handlePostMessage(req, res, body);
    }
    res.writeHead(req.method === 'POST' ? 405 : 404).end();
  }

  private async streamable(req: http.IncomingMessage, res: http.ServerResponse, body: unknown): Promise<void> {
    const id = req.headers['mcp-session-id'];
    let t = typeof id === 'string' ? this.transports.get(id) : undefined;
    if (!t) {
      if (typeof id === 'string') return void res.writeHead(404).end('unknown session');
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (sid) => void this.transports.set(sid, created),
        onsessionclosed: (sid) => void this.transports.delete(sid),
      });
      await this.build().connect(created);
      t = created;
    }
    if (!(t instanceof StreamableHTTPServerTransport)) return void res.writeHead(400).end('not a Streamable HTTP session');
    await t.handleRequest(req, res, body);
  }

  private build(): McpServer {
    const server = new McpServer({ name: 'intel-test', version: '1.0.0' });
    const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });
    server.registerTool('echo', { description: 'Echoes its text', inputSchema: { text: z.string().describe('What to echo') } },
      async ({ text: t }) => text(`echo: ${t}`));
    server.registerTool('image', { description: 'Returns a small PNG' }, async () => ({
      content: [{ type: 'text' as const, text: 'a 1x1 image' }, { type: 'image' as const, data: PNG_BASE64, mimeType: 'image/png' }],
    }));
    server.registerTool('fail', { description: 'Always fails' }, async () => ({ ...text('the lookup failed: no such indicator'), isError: true }));
    server.registerTool('sleep', { description: 'Answers after a while', inputSchema: { seconds: z.number() } }, async ({ seconds }) => {
      await new Promise((r) => setTimeout(r, seconds * 1000));
      return text(`slept ${seconds} s`);
    });
    server.registerTool('flaky', { description: 'Its first call loses the connection' }, async () => text('flaky answered'));
    server.registerTool('always_drop', { description: 'Every call loses the connection' }, async () => text('never seen'));
    server.registerTool('echo_header', { description: 'Answers with the x-api-key it received' }, async (extra) =>
      text(`the key was ${String(extra.requestInfo?.headers['x-api-key'])}`));
    server.registerTool('big', { description: 'A long text', inputSchema: { bytes: z.number().int() } }, async ({ bytes }) => text('b'.repeat(bytes)));
    server.registerTool(LONG_TOOL_NAME, { description: 'Too long a name to offer' }, async () => text('unreachable'));
    return server;
  }
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
