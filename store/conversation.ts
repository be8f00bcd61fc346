import type { Db } from './db';

export type Role = 'user' | 'assistant';
/** Content blocks in the Anthropic Messages shape (text, tool_use, tool_result, image). */
export type ContentBlock = { type: string; [key: string]: unknown };

export interface StoredMessage {
  key: string;
  role: Role;
  content: ContentBlock[];
  position: number;
}

/**
 * Appends a piece of the conversation under a stable key. A retried activity
 * that stores the same key again gets the first copy back, unchanged.
 */
export async function appendMessage(
  db: Db,
  msg: { sessionId: string; key: string; role: Role; content: ContentBlock[] },
): Promise<{ position: number; inserted: boolean }> {
  return db.transaction(async (tx) => {
    const lock = await tx.query('SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE', [msg.sessionId]);
    if (lock.rows.length === 0) throw new Error(`session ${msg.sessionId} does not exist`);
    const existing = await tx.query<{ position: string }>(
      'SELECT position FROM conversation_messages WHERE session_id = $1 AND message_key = $2',
      [msg.sessionId, msg.key],
    );
    if (existing.rows.length > 0) return { position: Number(existing.rows[0].position), inserted: false };
    const next = await tx.query<{ position: string }>(
      'SELECT COALESCE(MAX(position), 0) + 1 AS position FROM conversation_messages WHERE session_id = $1',
      [msg.sessionId],
    );
    const position = Number(next.rows[0].position);
    await tx.query(
      `INSERT INTO conversation_messages (session_id, position, message_key, role, content)
       VALUES ($1, $2, $3, $4, $5)`,
      [msg.sessionId, position, msg.key, msg.role, JSON.stringify(msg.content)],
    );
    return { position, inserted: true };
  });
}

export async function getMessage(db: Db, sessionId: string, key: string): Promise<StoredMessage | undefined> {
  const { rows } = await db.query<{ message_key: string; role: Role; content: ContentBlock[]; position: string }>(
    'SELECT message_key, role, content, position FROM conversation_messages WHERE session_id = $1 AND message_key = $2',
    [sessionId, key],
  );
  const r = rows[0];
  return r && { key: r.message_key, role: r.role, content: r.content, position: Number(r.position) };
}

/**
 * The conversation as the Messages API wants it: consecutive pieces of the
 * same role merged into one message, tool results ahead of any text in a user
 * message (the API requires results to answer the preceding tool_use first).
 */
export async function loadConversation(
  db: Db,
  sessionId: string,
): Promise<Array<{ role: Role; content: ContentBlock[] }>> {
  const { rows } = await db.query<{ role: Role; content: ContentBlock[] }>(
    'SELECT role, content FROM conversation_messages WHERE session_id = $1 ORDER BY position',
    [sessionId],
  );
  const merged: Array<{ role: Role; content: ContentBlock[] }> = [];
  for (const row of rows) {
    const last = merged[merged.length - 1];
    if (last && last.role === row.role) last.content.push(...row.content);
    else merged.push({ role: row.role, content: [...row.content] });
  }
  repairUnansweredToolUses(merged);
  for (const m of merged) {
    if (m.role === 'user') {
      m.content.sort((a, b) => Number(b.type === 'tool_result') - Number(a.type === 'tool_result'));
    }
  }
  return merged;
}

/**
 * A turn that was interrupted or ended mid-tool leaves tool_use blocks with no
 * result; the API rejects such a history, so each one is answered with an error.
 */
function repairUnansweredToolUses(messages: Array<{ role: Role; content: ContentBlock[] }>): void {
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (m.role !== 'assistant') continue;
    const ids = m.content.filter((b) => b.type === 'tool_use').map((b) => String(b.id));
    if (ids.length === 0) continue;
    let next = messages[i + 1];
    if (!next || next.role !== 'user') {
      next = { role: 'user', content: [] };
      messages.splice(i + 1, 0, next);
    }
    const answered = new Set(next.content.filter((b) => b.type === 'tool_result').map((b) => String(b.tool_use_id)));
    for (const id of ids) {
      if (!answered.has(id)) {
        next.content.push({ type: 'tool_result', tool_use_id: id, is_error: true, content: 'The tool call did not complete: the turn was interrupted.' });
      }
    }
  }
}
