import type { Queryable } from './db';
import type { McpToolSpec } from '../lib/mcp';

/** Stores the MCP tools a session offers, replacing any earlier list (a retried start). */
export async function setMcpTools(db: Queryable, sessionId: string, tools: McpToolSpec[]): Promise<void> {
  await db.query(
    `INSERT INTO session_mcp_tools (session_id, tools) VALUES ($1, $2)
     ON CONFLICT (session_id) DO UPDATE SET tools = EXCLUDED.tools, listed_at = now()`,
    [sessionId, JSON.stringify(tools)],
  );
}

/** The session's MCP tools; none when it has no servers or they have not started yet. */
export async function getMcpTools(db: Queryable, sessionId: string): Promise<McpToolSpec[]> {
  const { rows } = await db.query<{ tools: McpToolSpec[] }>('SELECT tools FROM session_mcp_tools WHERE session_id = $1', [sessionId]);
  return rows[0]?.tools ?? [];
}
