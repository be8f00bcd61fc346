import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike, Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, McpError, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { mcpResultContent, redactor, type McpContent, type ResultBlock } from '../lib/mcp';
import type { SessionProfile } from '../lib/profile';
import type { DockerSandboxes } from './docker-sandbox';
import { SandboxStdioTransport } from './mcp-transport';
import { checkTarget } from '../lib/web-fetch';

export type McpServerConfig = NonNullable<SessionProfile['mcp_servers']>[string];

/** A server's settings with its header or env values resolved, and those values, masked in anything said about it. */
export interface ResolvedServer {
  name: string;
  config: McpServerConfig;
  secrets: string[];
}

export interface McpLimits {
  connectTimeoutMs: number;
  callTimeoutMs: number;
  resultMaxBytes: number;
}

export interface McpCallOutcome {
  content: ResultBlock[];
  isError: boolean;
}

/** A server that could not be reached or listed; its message holds no secret value. */
export class McpConnectError extends Error {
  override name = 'McpConnectError';
}

interface Connection {
  client: Client;
  transport: Transport;
  redact: (s: string) => string;
}

/**
 * The MCP clients of the sessions whose sandboxes this worker drives, by
 * session id and server name. Activities may run on another worker or after a
 * restart, so a client missing here is connected again on first use.
 */
export class McpConnections {
  private readonly sessions = new Map<string, Map<string, Promise<Connection>>>();

  constructor(
    private readonly sandboxes: DockerSandboxes,
    private readonly limits: McpLimits,
    private readonly clientVersion: string,
  ) {}

  /** Connects to the server (or reuses the connection) and lists its tools, within the connect timeout. */
  async listTools(sessionId: string, containerId: string, server: ResolvedServer): Promise<Tool[]> {
    const redact = redactor(server.secrets);
    const conn = this.connection(sessionId, containerId, server.name, async () => server);
    try {
      return await within(this.limits.connectTimeoutMs, 'the server', async () => {
        const { client } = await conn;
        const tools: Tool[] = [];
        let cursor: string | undefined;
        do {
          const page = await client.listTools(cursor ? { cursor } : undefined, { timeout: this.limits.connectTimeoutMs });
          tools.push(...page.tools);
          cursor = page.nextCursor;
        } while (cursor && tools.length < 1000);
        return tools;
      });
    } catch (err) {
      await this.forget(sessionId, server.name);
      throw err instanceof McpConnectError ? err : new McpConnectError(redact(describe(err)));
    }
  }

  /**
   * Calls a tool. Every failure is an error result for the model, never an
   * exception; a dropped connection is connected again once before the call fails.
   */
  async call(
    sessionId: string,
    containerId: string,
    load: { server: string; resolve: () => Promise<ResolvedServer> },
    tool: string,
    args: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<McpCallOutcome> {
    const fail = (text: string): McpCallOutcome => ({ content: [{ type: 'text', text }], isError: true });
    for (let attempt = 1; ; attempt++) {
      let conn: Connection;
      try {
        conn = await this.connection(sessionId, containerId, load.server, load.resolve);
      } catch (err) {
        return fail(`Could not connect to MCP server ${load.server}: ${(err as Error).message}`);
      }
      try {
        const result = await conn.client.callTool({ name: tool, arguments: args }, undefined, {
          timeout: this.limits.callTimeoutMs,
          signal,
        });
        const content = mcpResultContent(result as { content?: McpContent[] }, this.limits.resultMaxBytes, conn.redact);
        return { content, isError: result.isError === true };
      } catch (err) {
        if (signal.aborted) return fail('Interrupted by the user.');
        if (err instanceof McpError && err.code === ErrorCode.RequestTimeout) {
          return fail(`${tool} on MCP server ${load.server} did not answer within ${this.limits.callTimeoutMs / 1000} s`);
        }
        if (err instanceof McpError && err.code !== ErrorCode.ConnectionClosed) {
          return fail(`MCP server ${load.server} refused the call: ${conn.redact(err.message)}`);
        }
        await this.forget(sessionId, load.server);
        if (attempt === 1) continue;
        return fail(`MCP server ${load.server} dropped the connection: ${conn.redact(describe(err))}`);
      }
    }
  }

  /** Closes the session's clients (its stdio servers end with the sandbox anyway). */
  async closeSession(sessionId: string): Promise<void> {
    const servers = this.sessions.get(sessionId);
    this.sessions.delete(sessionId);
    await Promise.all([...(servers?.values() ?? [])].map((c) => c.then(closeConnection, () => undefined)));
  }

  private connection(sessionId: string, containerId: string, name: string, resolve: () => Promise<ResolvedServer>): Promise<Connection> {
    const servers = this.sessions.get(sessionId) ?? new Map<string, Promise<Connection>>();
    this.sessions.set(sessionId, servers);
    let conn = servers.get(name);
    if (!conn) {
      const pending = resolve().then((server) => this.connect(containerId, server));
      // A failed attempt is not kept: the next call tries again.
      pending.catch(() => (servers.get(name) === pending ? servers.delete(name) : undefined));
      servers.set(name, (conn = pending));
    }
    return conn;
  }

  private async forget(sessionId: string, name: string): Promise<void> {
    const conn = this.sessions.get(sessionId)?.get(name);
    this.sessions.get(sessionId)?.delete(name);
    await conn?.then(closeConnection, () => undefined);
  }

  private async connect(containerId: string, server: ResolvedServer): Promise<Connection> {
    const redact = redactor(server.secrets);
    // A server's answer may be a little over the result cap once encoded; far beyond it, it is refused unread.
    const wireLimit = Math.max(4 * this.limits.resultMaxBytes, 8 * 1024 * 1024);
    const { config } = server;
    const attempt = async (transport: Transport) => {
      const client = new Client({ name: 'ai-sessions', version: this.clientVersion }, { capabilities: {} });
      try {
        await within(this.limits.connectTimeoutMs, 'the server', () => client.connect(transport, { timeout: this.limits.connectTimeoutMs }), () => {
          void transport.close().catch(() => undefined);
        });
        return { client, transport, redact };
      } catch (err) {
        await client.close().catch(() => undefined);
        throw err;
      }
    };
    try {
      if (config.type === 'stdio') {
        const transport = new SandboxStdioTransport(
          () => this.sandboxes.spawn(containerId, [config.command, ...(config.args ?? [])], config.env ?? {}),
          wireLimit,
        );
        try {
          return await attempt(transport);
        } catch (err) {
          const why = await transport.diagnostics();
          throw new Error(why ? `${describe(err)} (${why})` : describe(err));
        }
      }
      const url = new URL(config.url);
      // MCP servers on the operator's own network are legitimate; cloud metadata and the like never are.
      await checkTarget(url, { allowPrivate: true }, AbortSignal.timeout(this.limits.connectTimeoutMs));
      const requestInit = { headers: config.headers ?? {} };
      try {
        return await attempt(new StreamableHTTPClientTransport(url, { requestInit, fetch: cappedFetch(wireLimit) }));
      } catch (err) {
        // A server of the older HTTP+SSE protocol answers the initializing POST with 4xx (not an auth refusal).
        const legacy = err instanceof StreamableHTTPError && err.code !== undefined && err.code >= 400 && err.code < 500 && ![401, 403].includes(err.code);
        if (!legacy) throw err;
        return await attempt(new SSEClientTransport(url, { requestInit }));
      }
    } catch (err) {
      throw new McpConnectError(redact(describe(err)));
    }
  }
}

async function closeConnection({ client, transport }: Connection): Promise<void> {
  // Ends the server's session too, when it keeps one (Streamable HTTP); a slow server is not waited for long.
  if (transport instanceof StreamableHTTPClientTransport) {
    await within(2000, 'the server', () => transport.terminateSession()).catch(() => undefined);
  }
  await client.close().catch(() => undefined);
}

/** Runs fn, failing after ms; onTimeout stops what fn started. */
async function within<T>(ms: number, what: string, fn: () => Promise<T>, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new Error(`${what} did not answer within ${ms / 1000} s`));
    }, ms);
  });
  try {
    return await Promise.race([fn(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * An error's message with its cause (fetch puts the reason there: "fetch failed" alone says
 * little). Read by shape: fetch's errors come from another realm under some runners.
 */
function describe(err: unknown): string {
  const e = err as { message?: unknown; cause?: { message?: unknown; code?: unknown } } | null;
  if (typeof e?.message !== 'string') return String(err);
  const cause = typeof e.cause?.message === 'string' && e.cause.message ? e.cause.message : typeof e.cause?.code === 'string' ? e.cause.code : undefined;
  return cause && !e.message.includes(cause) ? `${e.message} (${cause})` : e.message;
}

/** A fetch that refuses a POST answer (one call's result) longer than limit bytes. */
function cappedFetch(limit: number): FetchLike {
  return async (url, init) => {
    const res = await fetch(url, init);
    if (init?.method !== 'POST' || !res.body) return res;
    let seen = 0;
    const body = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          seen += chunk.byteLength;
          if (seen > limit) ctl.error(new Error(`the server's answer is over ${limit} bytes`));
          else ctl.enqueue(chunk);
        },
      }),
    );
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}
