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

/**
 * Claims the source for one fork (store/migrations/017_fork_claims.sql);
 * false while another fork of it is in progress. A claim older than
 * `staleSeconds` is from a gateway that died mid-fork: taken over.
 */
export async function claimFork(db: Queryable, sourceId: string, claimId: string, staleSeconds: number): Promise<boolean> {
  const { rows } = await db.query(
    `INSERT INTO fork_claims (source_session_id, claim_id) VALUES ($1, $2)
     ON CONFLICT (source_session_id) DO UPDATE SET claim_id = EXCLUDED.claim_id, claimed_at = now()
       WHERE fork_claims.claimed_at < now() - make_interval(secs => $3::double precision)
     RETURNING claim_id`,
    [sourceId, claimId, staleSeconds],
  );
  return rows.length > 0;
}

export async function releaseFork(db: Queryable, sourceId: string, claimId: string): Promise<void> {
  await db.query('DELETE FROM fork_claims WHERE source_session_id = $1 AND claim_id = $2', [sourceId, claimId]);
}

/** Deletes a fork that could not be made (its conversation and prompt go with it): it never ran. */
export async function discardFork(db: Queryable, id: string): Promise<void> {
  await db.query(`DELETE FROM sessions WHERE id = $1 AND forked_from_session_id IS NOT NULL AND started_at IS NULL`, [id]);
}
