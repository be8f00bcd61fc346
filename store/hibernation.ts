import type { Queryable } from './db';

/** The session has no sandbox now: its workspace rests in an archive of `bytes` until the next prompt. */
export async function markDormant(db: Queryable, id: string, bytes: number): Promise<void> {
  await db.query(
    `UPDATE sessions SET dormant_since = now(), archived_at = now(), archive_bytes = $2, activity = 'dormant',
       container_id = NULL, sandbox_host = NULL
     WHERE id = $1 AND status <> 'ended'`,
    [id, bytes],
  );
}

/** A fork's copy of its source's archive, restored into its first sandbox. */
export async function markArchiveCopied(db: Queryable, id: string, bytes: number): Promise<void> {
  await db.query('UPDATE sessions SET archived_at = now(), archive_bytes = $2 WHERE id = $1', [id, bytes]);
}

/**
 * A fork's start: it records its source and inherits the source's
 * conversation. Copied keys get a prefix, so the fork's own prompts and turns
 * (user-p1, assistant-1, …) never collide with the source's.
 */
export async function recordFork(db: Queryable, p: { id: string; sourceId: string }): Promise<void> {
  await db.query('UPDATE sessions SET forked_from_session_id = $2 WHERE id = $1', [p.id, p.sourceId]);
  await db.query(
    `INSERT INTO conversation_messages (session_id, position, message_key, role, content)
     SELECT $2, position, 'forked-' || message_key, role, content FROM conversation_messages WHERE session_id = $1`,
    [p.sourceId, p.id],
  );
}

export async function conversationLength(db: Queryable, sessionId: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM conversation_messages WHERE session_id = $1', [sessionId]);
  return Number(rows[0].n);
}
