import type { Db } from './db';
import { appendEvent } from './events';
import { recordBillingPeriods } from './metering';
import { markEnded } from './sessions';
import { purgeSessionContent } from './users';

/** Registers (or refreshes) the Docker host a worker drives, with its task queue. */
export async function registerDockerHost(db: Db, hostId: string, taskQueue: string): Promise<void> {
  await db.query(
    `INSERT INTO docker_hosts (host_id, task_queue) VALUES ($1, $2)
     ON CONFLICT (host_id) DO UPDATE SET task_queue = EXCLUDED.task_queue, last_seen_at = now()`,
    [hostId, taskQueue],
  );
}

export async function dockerHosts(db: Db): Promise<Array<{ hostId: string; taskQueue: string }>> {
  const { rows } = await db.query<{ host_id: string; task_queue: string }>('SELECT host_id, task_queue FROM docker_hosts ORDER BY host_id');
  return rows.map((r) => ({ hostId: r.host_id, taskQueue: r.task_queue }));
}

/** Forgets hosts no worker has registered or swept for this long (decommissioned machines). */
export async function forgetDockerHosts(db: Db, silentSeconds: number): Promise<number> {
  const { rows } = await db.query(
    `DELETE FROM docker_hosts WHERE last_seen_at < now() - make_interval(secs => $1::double precision) RETURNING host_id`,
    [silentSeconds],
  );
  return rows.length;
}

export async function openSessions(db: Db): Promise<Array<{ id: string; createdAt: string; startedAt: string | null }>> {
  const { rows } = await db.query<{ id: string; created_at: Date | string; started_at: Date | string | null }>(
    `SELECT id, created_at, started_at FROM sessions WHERE status <> 'ended' ORDER BY created_at`,
  );
  return rows.map((r) => ({
    id: r.id,
    createdAt: new Date(r.created_at).toISOString(),
    startedAt: r.started_at === null ? null : new Date(r.started_at).toISOString(),
  }));
}

export async function sessionStatuses(db: Db, ids: string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const { rows } = await db.query<{ id: string; status: string }>('SELECT id, status FROM sessions WHERE id = ANY($1::text[])', [ids]);
  return new Map(rows.map((r) => [r.id, r.status]));
}

/**
 * Ends a session whose workflow can no longer do it, as the workflow's own
 * endSession would: the same events under the same keys, so a retry (or an
 * endSession still finishing on some worker) writes nothing twice. The events
 * come before the status, so a crash in between leaves the session open and
 * the next run completes it.
 */
export async function endAbandonedSession(db: Db, sessionId: string, message: string): Promise<boolean> {
  const { rows } = await db.query<{ status: string }>('SELECT status FROM sessions WHERE id = $1', [sessionId]);
  if (!rows[0] || rows[0].status === 'ended') return false;
  await appendEvent(db, { sessionId, key: 'session-error', type: 'session_error', payload: { error: message, details: 'end reason: failed' } });
  await appendEvent(db, { sessionId, key: 'session-end', type: 'session_end', payload: { reason: 'failed', exit_code: 1 } });
  await markEnded(db, sessionId, { reason: 'failed', exitCode: 1, errorMessage: message });
  return true;
}

/**
 * Records every billing period the sandbox started before `until` (when the
 * workflow closed). The origin is the sandbox's creation time as the periods
 * already recorded say it, else the time the session started running.
 */
export async function recordFinalPeriods(db: Db, sessionId: string, until: string, defaultPeriodSeconds: number): Promise<number> {
  const { rows } = await db.query<{ origin: Date | string | null; period_seconds: number | null }>(
    `SELECT COALESCE(
              (SELECT period_start - make_interval(secs => period_index * period_seconds) FROM billing_periods
                WHERE session_id = $1 ORDER BY period_index LIMIT 1),
              s.started_at) AS origin,
            (SELECT period_seconds FROM billing_periods WHERE session_id = $1 ORDER BY period_index LIMIT 1) AS period_seconds
       FROM sessions s WHERE s.id = $1`,
    [sessionId],
  );
  const origin = rows[0]?.origin;
  if (!origin) return 0;
  const periodSeconds = Number(rows[0].period_seconds ?? defaultPeriodSeconds);
  const originIso = new Date(origin).toISOString();
  const last = Math.floor((Date.parse(until) - Date.parse(originIso)) / (periodSeconds * 1000));
  return recordBillingPeriods(db, { sessionId, sandboxStartedAt: originIso, periodSeconds, fromIndex: 0, toIndex: last });
}

/** Ended sessions past retention whose content is still there, oldest first. */
export async function expiredSessions(db: Db, retentionSeconds: number, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM sessions
      WHERE status = 'ended' AND purged_at IS NULL
        AND COALESCE(terminated_at, created_at) < now() - make_interval(secs => $1::double precision)
      ORDER BY terminated_at LIMIT $2`,
    [retentionSeconds, limit],
  );
  return rows.map((r) => r.id);
}

/**
 * Deletes what expired sessions hold (events, conversation, stored text,
 * secrets, tool lists) and marks them deleted and purged. The row stays with
 * its billing periods and model usage: they are the platform's accounting.
 */
export async function purgeSessions(db: Db, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.transaction(async (tx) => {
    await purgeSessionContent(tx, 'id = ANY($1::text[])', [ids]);
    await tx.query('DELETE FROM session_mcp_tools WHERE session_id = ANY($1::text[])', [ids]);
    await tx.query('UPDATE sessions SET purged_at = now() WHERE id = ANY($1::text[])', [ids]);
  });
}
