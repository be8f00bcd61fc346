import type { Db } from './db';

/** Event types of the session stream (api-reference.md and cli.md names). */
export const EVENT_TYPES = [
  'user',
  'assistant',
  'tool_use',
  'tool_result',
  'system',
  'result',
  'session_status',
  'session_end',
  'session_error',
  'tool_approval_request',
  'ask_user_question',
  'usage_delta',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface NewEvent {
  sessionId: string;
  /** Stable per logical event: a retried activity that writes it again stores nothing new. */
  key: string;
  type: EventType;
  payload: Record<string, unknown>;
}

export interface StoredEvent {
  session_id: string;
  seq: number;
  type: EventType;
  payload: Record<string, unknown>;
  created_at: string;
}

export const EVENTS_CHANNEL = 'session_events';
export const DELTAS_CHANNEL = 'session_deltas';

/**
 * Appends an event with the next sequence number. The session row is locked
 * first, so numbers are handed out in commit order with no gaps: a reader that
 * resumes after N never skips one. NOTIFY is delivered when the row commits.
 */
export async function appendEvent(db: Db, event: NewEvent): Promise<{ seq: number; inserted: boolean }> {
  return db.transaction(async (tx) => {
    const session = await tx.query<{ last_event_seq: string }>(
      'SELECT last_event_seq FROM sessions WHERE id = $1 FOR UPDATE',
      [event.sessionId],
    );
    if (session.rows.length === 0) throw new Error(`session ${event.sessionId} does not exist`);
    const existing = await tx.query<{ seq: string }>(
      'SELECT seq FROM session_events WHERE session_id = $1 AND event_key = $2',
      [event.sessionId, event.key],
    );
    if (existing.rows.length > 0) return { seq: Number(existing.rows[0].seq), inserted: false };
    const seq = Number(session.rows[0].last_event_seq) + 1;
    await tx.query('UPDATE sessions SET last_event_seq = $2 WHERE id = $1', [event.sessionId, seq]);
    await tx.query(
      `INSERT INTO session_events (session_id, seq, event_key, type, payload) VALUES ($1, $2, $3, $4, $5)`,
      [event.sessionId, seq, event.key, event.type, JSON.stringify(event.payload)],
    );
    await tx.query('SELECT pg_notify($1, $2)', [
      EVENTS_CHANNEL,
      JSON.stringify({ session_id: event.sessionId, seq, type: event.type }),
    ]);
    return { seq, inserted: true };
  });
}

export async function listEvents(
  db: Db,
  sessionId: string,
  opts: { afterSeq?: number; limit?: number } = {},
): Promise<StoredEvent[]> {
  const { rows } = await db.query<StoredEvent & { seq: string; created_at: Date | string }>(
    `SELECT session_id, seq, type, payload, created_at FROM session_events
      WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
    [sessionId, opts.afterSeq ?? 0, opts.limit ?? 1000],
  );
  return rows.map((r) => ({
    ...r,
    seq: Number(r.seq),
    created_at: new Date(r.created_at).toISOString(),
  }));
}

export interface TextDelta {
  session_id: string;
  /** The conversation message the text belongs to, the content block, and the activity attempt. */
  message_key: string;
  block_index: number;
  attempt: number;
  text: string;
}

/**
 * NOTIFY payloads must be shorter than 8000 bytes (UTF-8, after JSON escaping):
 * a character count is not enough (CJK text is 3 bytes a character, control
 * characters escape to 6), so parts are measured in bytes, with some margin.
 */
const MAX_NOTIFY_BYTES = 7900;

/** Streams text as it arrives; deltas are not stored (the finished message is). */
export async function publishDelta(db: Db, delta: TextDelta): Promise<void> {
  const room = MAX_NOTIFY_BYTES - Buffer.byteLength(JSON.stringify({ ...delta, text: '' }));
  let text = '';
  let size = 0;
  const send = async () => {
    await db.query('SELECT pg_notify($1, $2)', [DELTAS_CHANNEL, JSON.stringify({ ...delta, text })]);
    text = '';
    size = 0;
  };
  // By code point, so a part never ends inside a surrogate pair.
  for (const ch of delta.text) {
    const n = Buffer.byteLength(JSON.stringify(ch)) - 2;
    if (text && size + n > room) await send();
    text += ch;
    size += n;
  }
  if (text) await send();
}
