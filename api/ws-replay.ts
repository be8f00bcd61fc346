import type { Queryable } from '../store/db';
import type { StoredEvent } from '../store/events';

/**
 * Store reads the session socket needs beyond listEvents: where a replay starts,
 * the stored end of a session, and the latest human request before a point.
 */

type Row = Omit<StoredEvent, 'seq' | 'created_at'> & { seq: string | number; created_at: Date | string };

const COLUMNS = 'session_id, seq, type, payload, created_at';

function toEvent(r: Row): StoredEvent {
  return { ...r, seq: Number(r.seq), created_at: new Date(r.created_at).toISOString() };
}

/**
 * The first seq stored within the last `seconds` (null when none) and the
 * highest seq, read in one statement so no event falls between the two.
 */
export async function replayBounds(db: Queryable, sessionId: string, seconds: number): Promise<{ first: number | null; last: number }> {
  const { rows } = await db.query<{ first: string | number | null; last: string | number }>(
    `SELECT
       (SELECT MIN(seq) FROM session_events
         WHERE session_id = $1 AND created_at >= now() - ($2::double precision * interval '1 second')) AS first,
       (SELECT COALESCE(MAX(seq), 0) FROM session_events WHERE session_id = $1) AS last`,
    [sessionId, seconds],
  );
  const r = rows[0];
  return { first: r?.first === null || r?.first === undefined ? null : Number(r.first), last: Number(r?.last ?? 0) };
}

export async function sessionEndEvent(db: Queryable, sessionId: string): Promise<StoredEvent | undefined> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM session_events WHERE session_id = $1 AND type = 'session_end' ORDER BY seq DESC LIMIT 1`,
    [sessionId],
  );
  return rows[0] && toEvent(rows[0]);
}

/** The most recent tool_approval_request or ask_user_question stored at or before `atOrBefore`. */
export async function latestRequestEvent(db: Queryable, sessionId: string, atOrBefore: number): Promise<StoredEvent | undefined> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM session_events
      WHERE session_id = $1 AND seq <= $2 AND type IN ('tool_approval_request', 'ask_user_question')
      ORDER BY seq DESC LIMIT 1`,
    [sessionId, atOrBefore],
  );
  return rows[0] && toEvent(rows[0]);
}
