import type { Queryable } from './db';

export const AUDIT_ACTIONS = [
  'session.approve_tool',
  'session.deny_tool',
  'session.answer_question',
  'session.terminate',
  'session.delete',
  'profile.delete',
  'org.create',
  'org_key.create',
  'org_key.revoke',
  'hive.delete',
  'rule.delete',
  'output.delete',
  // The platform's own actions (actor type 'system').
  'session.reaped',
  'session.purged',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export type ActorType = 'user' | 'org' | 'admin' | 'system';
export interface Actor {
  type: ActorType;
  id: string;
}

/** The reaper: it ends abandoned sessions and purges expired ones. */
export const REAPER_ACTOR: Actor = { type: 'system', id: 'reaper' };

export interface AuditEntry {
  actor: Actor;
  action: AuditAction;
  target: { type: string; id: string };
  /** The organization the entry concerns, so it can read it whoever acted. */
  orgId?: string | null;
  /** Ids and choices only: never secrets, prompts or answers. */
  details?: Record<string, unknown>;
}

export interface AuditRecord {
  id: string;
  at: string;
  actor: Actor;
  action: string;
  target: { type: string; id: string };
  org_id: string | null;
  details: Record<string, unknown>;
}

export async function recordAudit(db: Queryable, e: AuditEntry): Promise<void> {
  await db.query(
    `INSERT INTO audit_log (actor_type, actor_id, action, target_type, target_id, org_id, details)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [e.actor.type, e.actor.id, e.action, e.target.type, e.target.id, e.orgId ?? null, JSON.stringify(e.details ?? {})],
  );
}

/** Whose entries a reader may see: a user's own actions, everything about an org, or all (admin). */
export type AuditScope = { actor: Actor } | { orgId: string } | { all: true };

export interface AuditQuery {
  since?: string;
  action?: string;
  targetType?: string;
  targetId?: string;
  /** Entries older than this id (the cursor). */
  beforeId?: string;
  limit: number;
}

/** Newest first. */
export async function listAudit(db: Queryable, scope: AuditScope, q: AuditQuery): Promise<AuditRecord[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if ('actor' in scope) {
    add('actor_type = ?', scope.actor.type);
    add('actor_id = ?', scope.actor.id);
  } else if ('orgId' in scope) {
    add('org_id = ?', scope.orgId);
  }
  if (q.since) add('at >= ?::timestamptz', q.since);
  if (q.action) add('action = ?', q.action);
  if (q.targetType) add('target_type = ?', q.targetType);
  if (q.targetId) add('target_id = ?', q.targetId);
  if (q.beforeId) add('id < ?::bigint', q.beforeId);
  params.push(q.limit);
  const { rows } = await db.query<{
    id: string | number; at: string | Date; actor_type: ActorType; actor_id: string; action: string;
    target_type: string; target_id: string; org_id: string | null; details: Record<string, unknown>;
  }>(
    `SELECT id, at, actor_type, actor_id, action, target_type, target_id, org_id, details FROM audit_log
     ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${params.length}`,
    params,
  );
  return rows.map((r) => ({
    id: String(r.id),
    at: new Date(r.at).toISOString(),
    actor: { type: r.actor_type, id: r.actor_id },
    action: r.action,
    target: { type: r.target_type, id: r.target_id },
    org_id: r.org_id,
    details: r.details,
  }));
}
