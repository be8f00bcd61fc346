import type { Db } from './db';
import { recordAudit, REAPER_ACTOR } from './audit';
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

/** The organization a session's audit entries concern: its org, or the org that owns it. */
const SESSION_ORG = `COALESCE(org_id, CASE WHEN owner_type = 'org' THEN owner_id END)`;

/**
 * Ends a session whose workflow can no longer do it, as the workflow's own
 * endSession would: the same events under the same keys, so a retry (or an
 * endSession still finishing on some worker) writes nothing twice. The events
 * come before the status, so a crash in between leaves the session open and
 * the next run completes it. The status and its audit entry commit together.
 */
export async function endAbandonedSession(db: Db, sessionId: string, end: { message: string; reason: string }): Promise<boolean> {
  const { rows } = await db.query<{ status: string }>('SELECT status FROM sessions WHERE id = $1', [sessionId]);
  if (!rows[0] || rows[0].status === 'ended') return false;
  const { message } = end;
  await appendEvent(db, { sessionId, key: 'session-error', type: 'session_error', payload: { error: message, details: 'end reason: failed' } });
  await appendEvent(db, { sessionId, key: 'session-end', type: 'session_end', payload: { reason: 'failed', exit_code: 1 } });
  return db.transaction(async (tx) => {
    const { rows: locked } = await tx.query<{ status: string; org_id: string | null }>(
      `SELECT status, ${SESSION_ORG} AS org_id FROM sessions WHERE id = $1 FOR UPDATE`,
      [sessionId],
    );
    if (!locked[0] || locked[0].status === 'ended') return false;
    await markEnded(tx, sessionId, { reason: 'failed', exitCode: 1, errorMessage: message });
    await recordAudit(tx, {
      actor: REAPER_ACTOR,
      action: 'session.reaped',
      target: { type: 'session', id: sessionId },
      orgId: locked[0].org_id,
      details: { reason: end.reason },
    });
    return true;
  });
}

/**
 * Records the billing periods the session's last sandbox started before
 * `until` (when its workflow closed) and that the workflow did not record.
 * They continue from the latest recorded period: a resumed session's sandbox
 * numbers its periods on from the previous one's, so only the latest row
 * dates the current numbering. Nothing is recorded for a dormant session
 * (hibernation settled its sandbox's periods), nor when the latest period
 * predates the newest archive: then the sandbox that resumed the session
 * recorded no period yet and its start is unknown; charging from the old
 * numbering would bill the dormant time.
 */
export async function recordFinalPeriods(
  db: Db,
  sessionId: string,
  p: { until: string; defaultPeriodSeconds: number; pricePerMinuteUsd: number },
): Promise<number> {
  const { rows } = await db.query<{
    started_at: Date | string | null;
    dormant_since: Date | string | null;
    archived_at: Date | string | null;
    period_index: number | null;
    period_start: Date | string | null;
    period_seconds: number | null;
  }>(
    `SELECT s.started_at, s.dormant_since, s.archived_at, b.period_index, b.period_start, b.period_seconds
       FROM sessions s
       LEFT JOIN LATERAL (SELECT period_index, period_start, period_seconds FROM billing_periods
                           WHERE session_id = s.id ORDER BY period_index DESC LIMIT 1) b ON true
      WHERE s.id = $1`,
    [sessionId],
  );
  const r = rows[0];
  if (!r || r.dormant_since !== null) return 0;
  let origin: number;
  let fromIndex: number;
  let periodSeconds: number;
  if (r.period_index !== null && r.period_start !== null) {
    const latestStart = new Date(r.period_start).getTime();
    if (r.archived_at !== null && new Date(r.archived_at).getTime() >= latestStart) return 0;
    periodSeconds = Number(r.period_seconds);
    fromIndex = Number(r.period_index) + 1;
    origin = latestStart - Number(r.period_index) * periodSeconds * 1000;
  } else {
    if (r.started_at === null) return 0;
    periodSeconds = p.defaultPeriodSeconds;
    fromIndex = 0;
    origin = new Date(r.started_at).getTime();
  }
  const last = Math.floor((Date.parse(p.until) - origin) / (periodSeconds * 1000));
  return recordBillingPeriods(db, {
    sessionId,
    sandboxStartedAt: new Date(origin).toISOString(),
    periodSeconds,
    fromIndex,
    toIndex: last,
    pricePerMinuteUsd: p.pricePerMinuteUsd,
  });
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
 * secrets, tool lists) and marks them deleted and purged, each with an audit
 * entry. The row stays with its billing periods and model usage: they are the
 * platform's accounting.
 */
export async function purgeSessions(db: Db, ids: string[], retentionSeconds: number): Promise<void> {
  if (ids.length === 0) return;
  await db.transaction(async (tx) => {
    await purgeSessionContent(tx, 'id = ANY($1::text[])', [ids]);
    await tx.query('DELETE FROM session_mcp_tools WHERE session_id = ANY($1::text[])', [ids]);
    // Only rows not purged yet: a retried batch records no second entry.
    const { rows } = await tx.query<{ id: string; org_id: string | null }>(
      `UPDATE sessions SET purged_at = now() WHERE id = ANY($1::text[]) AND purged_at IS NULL RETURNING id, ${SESSION_ORG} AS org_id`,
      [ids],
    );
    for (const r of rows) {
      await recordAudit(tx, {
        actor: REAPER_ACTOR,
        action: 'session.purged',
        target: { type: 'session', id: r.id },
        orgId: r.org_id,
        details: { retention_seconds: retentionSeconds },
      });
    }
  });
}
