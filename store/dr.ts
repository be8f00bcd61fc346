import type { Queryable } from './db';

/**
 * Claims an idempotent key for a new session, or returns the session that
 * holds it. A claim older than the window is replaced: the window counts
 * from the first request, whether its session still runs or ended.
 */
export async function claimIdempotentKey(
  tx: Queryable,
  c: { orgId: string; key: string; sessionId: string; windowSeconds: number },
): Promise<{ claimed: true } | { claimed: false; sessionId: string }> {
  await tx.query(
    `INSERT INTO dr_idempotency (org_id, key, session_id) VALUES ($1, $2, $3) ON CONFLICT (org_id, key) DO NOTHING`,
    [c.orgId, c.key, c.sessionId],
  );
  // Locks the row: concurrent requests for one key line up here.
  const { rows } = await tx.query<{ session_id: string; expired: boolean }>(
    `SELECT session_id, first_seen_at < now() - make_interval(secs => $3) AS expired
       FROM dr_idempotency WHERE org_id = $1 AND key = $2 FOR UPDATE`,
    [c.orgId, c.key, c.windowSeconds],
  );
  const row = rows[0];
  if (row.session_id === c.sessionId) return { claimed: true };
  if (!row.expired) return { claimed: false, sessionId: row.session_id };
  await tx.query('UPDATE dr_idempotency SET session_id = $3, first_seen_at = now() WHERE org_id = $1 AND key = $2', [
    c.orgId, c.key, c.sessionId,
  ]);
  return { claimed: true };
}
