import { Context } from '@temporalio/activity';
import { mcpToolName, type McpToolSpec } from '../lib/mcp';
import { getMessage } from '../store/conversation';
import { getMcpTools, setMcpTools } from '../store/mcp-tools';
import { sessionProfile, setActivity } from '../store/sessions';
import type { McpConnections, McpServerConfig, ResolvedServer } from './mcp-client';
import { resolveHiveValues, sessionStore, withHeartbeat, type ActivityDeps } from './shared';
import { observeTool } from '../lib/metrics';

/**
 * The session's MCP servers: started and listed once the sandbox is up, then
 * called like built-in tools. They run on the sandbox host's task queue, where
 * this worker keeps the clients (stdio servers live inside that sandbox).
 */
export function createMcpActivities({ db, keyring, log }: ActivityDeps, mcp: McpConnections) {
  const store = sessionStore(db);

  /** Header and env values are resolved here, in the activity: they reach only the server, never history. */
  async function resolve(orgId: string | null, name: string, server: McpServerConfig): Promise<ResolvedServer> {
    if (server.type === 'http') {
      const headers = await resolveHiveValues(db, keyring, orgId, server.headers ?? {});
      return { name, config: { ...server, headers }, secrets: Object.values(headers) };
    }
    const env = await resolveHiveValues(db, keyring, orgId, server.env ?? {});
    return { name, config: { ...server, env }, secrets: Object.values(env) };
  }

  /** How a worker without the client (another worker, a restart) connects again. */
  const loader = (sessionId: string, server: string) => ({
    server,
    resolve: async () => {
      const session = await store.sessionOrFail(sessionId);
      const config = (await sessionProfile(db, keyring, sessionId))?.mcp_servers?.[server];
      if (!config) throw new Error(`the session has no MCP server ${server}`);
      return resolve(session.org_id, server, config);
    },
  });

  return {
    /**
     * Connects every configured server and stores the tools they offer. A server
     * that fails is reported in a system event and left out; the session goes on.
     */
    async startMcpServers({ sessionId, containerId }: { sessionId: string; containerId: string }) {
      const session = await store.sessionOrFail(sessionId);
      const servers = Object.entries((await sessionProfile(db, keyring, sessionId))?.mcp_servers ?? {}).sort(([a], [b]) => a.localeCompare(b));
      if (servers.length === 0) return { connected: 0, failed: 0, tools: 0 };
      const listed = await withHeartbeat(() =>
        Promise.all(
          servers.map(async ([name, config]) => {
            try {
              return { name, tools: await mcp.listTools(sessionId, containerId, await resolve(session.org_id, name, config)) };
            } catch (err) {
              return { name, error: (err as Error)?.message ?? String(err) };
            }
          }),
        ),
      );
      const specs: McpToolSpec[] = [];
      for (const s of listed) {
        const problems: string[] = [];
        const seen = new Set<string>();
        for (const t of s.tools ?? []) {
          const named = mcpToolName(s.name, t.name);
          if ('problem' in named) problems.push(named.problem);
          else if (!seen.has(named.name)) {
            seen.add(named.name);
            specs.push({ name: named.name, server: s.name, tool: t.name, description: t.description, input_schema: t.inputSchema });
          }
        }
        if (s.error !== undefined) {
          await store.emit(sessionId, `mcp-failed-${s.name}`, 'system', {
            subtype: 'mcp_server_failed',
            server: s.name,
            message: `MCP server ${s.name} did not start: ${s.error}. The session goes on without its tools.`,
          });
          log.warn({ sessionId, server: s.name }, 'MCP server did not start (see the session events)');
        }
        if (problems.length > 0) {
          await store.emit(sessionId, `mcp-skipped-${s.name}`, 'system', { subtype: 'mcp_tools_skipped', server: s.name, message: problems.join('; ') });
        }
      }
      await setMcpTools(db, sessionId, specs);
      await store.emit(sessionId, 'mcp-servers', 'system', {
        subtype: 'mcp_servers',
        servers: listed.map((s) => ({
          name: s.name,
          status: s.error === undefined ? 'connected' : 'failed',
          tools: specs.filter((t) => t.server === s.name).map((t) => t.name),
        })),
      });
      const failed = listed.filter((s) => s.error !== undefined).length;
      return { connected: listed.length - failed, failed, tools: specs.length };
    },

    /** One MCP tool call; its outcome (text and images, or an error) is stored as the tool_result. */
    async callMcpTool(p: { sessionId: string; containerId: string; turn: number; toolUseId: string }) {
      const existing = await getMessage(db, p.sessionId, `tool_result-${p.toolUseId}`);
      if (existing) return { isError: existing.content[0]?.is_error === true };
      const use = await store.storedToolUse(p.sessionId, p.turn, p.toolUseId);
      await setActivity(db, p.sessionId, 'running_tool');
      const spec = (await getMcpTools(db, p.sessionId)).find((t) => t.name === use.name);
      const ctx = Context.current();
      const outcome = spec
        ? await observeTool(use.name, () =>
            withHeartbeat(() => mcp.call(p.sessionId, p.containerId, loader(p.sessionId, spec.server), spec.tool, use.input ?? {}, ctx.cancellationSignal)),
          )
        : { content: [{ type: 'text' as const, text: `${use.name} is not a tool of this session's MCP servers` }], isError: true };
      ctx.cancellationSignal.throwIfAborted();
      await store.storeToolResult(p.sessionId, p.toolUseId, outcome.content, outcome.isError);
      return { isError: outcome.isError };
    },
  };
}
