import { randomUUID } from 'node:crypto';
import type { Db, Queryable } from './db';
import { joinSecrets, splitSecrets, type ProfileSecrets, type SessionProfile } from '../lib/profile';
import { open, seal, type Keyring } from './encryption';
import { accessTokenOf } from '../lib/claude-oauth';

export type SessionStatus = 'starting' | 'running' | 'ended';

export interface SessionRow {
  id: string;
  owner_type: 'user' | 'org';
  owner_id: string;
  org_id: string | null;
  trigger: 'user' | 'dr';
  name: string | null;
  status: SessionStatus;
  activity: string;
  model: string;
  profile: SessionProfile;
  credential_id: string | null;
  workflow_id: string;
  container_id: string | null;
  sandbox_host: string | null;
  created_at: string;
  started_at: string | null;
  terminated_at: string | null;
  end_reason: string | null;
  exit_code: number | null;
  error_message: string | null;
  last_event_seq: number;
  forked_from_session_id: string | null;
  deleted_at: string | null;
  /** Hibernated: no sandbox, the workspace archived (store/hibernation.ts). */
  dormant_since: string | null;
  /** When the newest archive was written; whether it is still the workspace: hasCurrentArchive. */
  archived_at: string | null;
  archive_bytes: number | null;
  rule_name: string | null;
  /** Retention (the reaper) removed its content. */
  purged_at: string | null;
}

export type SessionState = 'starting' | 'running' | 'dormant' | 'ended';
export const SESSION_STATES: readonly SessionState[] = ['starting', 'running', 'dormant', 'ended'];

/** The state users see: a hibernated session is dormant; an ended one is ended whether or not it hibernated first. */
export function sessionState(s: Pick<SessionRow, 'status' | 'dormant_since'>): SessionState {
  if (s.status === 'ended') return 'ended';
  return s.dormant_since !== null ? 'dormant' : s.status;
}

/**
 * Whether the session's archive is its workspace as it is now: no sandbox has
 * run since it was written. That holds while dormant (markEnded keeps
 * dormant_since, so also for a session that ended dormant) and for a fork
 * whose copy was never restored. After a resume the archive is out of date
 * (the next hibernation replaces it): a fork then gets the conversation only.
 */
export function hasCurrentArchive(s: Pick<SessionRow, 'archived_at' | 'dormant_since' | 'started_at'>): boolean {
  return s.archived_at !== null && (s.dormant_since !== null || s.started_at === null);
}

/** Non-deleted sessions by state, for the gauge. */
export async function countSessionsByState(db: Queryable): Promise<Map<SessionState, number>> {
  const { rows } = await db.query<{ status: SessionStatus; dormant_since: unknown; n: string }>(
    `SELECT status, min(dormant_since) AS dormant_since, count(*) AS n FROM sessions
      WHERE deleted_at IS NULL GROUP BY status, dormant_since IS NULL`,
  );
  const counts = new Map<SessionState, number>(SESSION_STATES.map((s) => [s, 0]));
  for (const r of rows) {
    const state = sessionState({ status: r.status, dormant_since: toIso(r.dormant_since) });
    counts.set(state, counts.get(state)! + Number(r.n));
  }
  return counts;
}

export interface NewSession {
  id: string;
  ownerType: 'user' | 'org';
  ownerId: string;
  orgId?: string;
  trigger: 'user' | 'dr';
  name?: string;
  model: string;
  profile: SessionProfile;
  credentialId?: string;
  workflowId: string;
  ruleName?: string;
}

/** Stores the session; secret profile values are sealed, the rest stays readable. */
export async function createSession(db: Queryable, keyring: Keyring, s: NewSession): Promise<void> {
  const { settings, secrets } = splitSecrets(s.profile);
  await db.query(
    `INSERT INTO sessions (id, owner_type, owner_id, org_id, trigger, name, model, profile, sealed_secrets, credential_id, workflow_id, rule_name)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [s.id, s.ownerType, s.ownerId, s.orgId ?? null, s.trigger, s.name ?? null, s.model,
      JSON.stringify(settings), secrets ? seal(keyring, JSON.stringify(secrets)) : null, s.credentialId ?? null, s.workflowId, s.ruleName ?? null],
  );
}

/** The session's whole profile, secret values included: for the activities that pass them on. */
export async function sessionProfile(db: Queryable, keyring: Keyring, id: string): Promise<SessionProfile | undefined> {
  const { rows } = await db.query<{ profile: SessionProfile; sealed_secrets: string | null }>(
    'SELECT profile, sealed_secrets FROM sessions WHERE id = $1',
    [id],
  );
  const r = rows[0];
  if (!r) return undefined;
  const secrets = r.sealed_secrets ? (JSON.parse(open(keyring, r.sealed_secrets)) as ProfileSecrets) : undefined;
  return joinSecrets(r.profile, secrets);
}

function toIso(v: unknown): string | null {
  return v === null || v === undefined ? null : new Date(v as string).toISOString();
}

export async function getSession(db: Queryable, id: string): Promise<SessionRow | undefined> {
  const { rows } = await db.query<Record<string, unknown>>('SELECT * FROM sessions WHERE id = $1', [id]);
  return rows[0] && sessionRow(rows[0]);
}

function sessionRow(r: Record<string, unknown>): SessionRow {
  const { sealed_secrets: _sealed, ...rest } = r;
  return {
    ...(rest as unknown as SessionRow),
    created_at: toIso(r.created_at)!,
    started_at: toIso(r.started_at),
    terminated_at: toIso(r.terminated_at),
    deleted_at: toIso(r.deleted_at),
    dormant_since: toIso(r.dormant_since),
    archived_at: toIso(r.archived_at),
    archive_bytes: r.archive_bytes === null || r.archive_bytes === undefined ? null : Number(r.archive_bytes),
    purged_at: toIso(r.purged_at),
    last_event_seq: Number(r.last_event_seq),
  };
}

/** An owner's sessions, newest first, after the (created_at, id) of the cursor. */
export async function listSessions(
  db: Queryable,
  owner: { type: 'user' | 'org'; id: string },
  opts: { status?: SessionStatus; limit: number; after?: { createdAt: string; id: string } },
): Promise<Array<SessionRow & { cursor: { createdAt: string; id: string } }>> {
  const params: unknown[] = [owner.type, owner.id, opts.limit];
  let where = 'owner_type = $1 AND owner_id = $2 AND deleted_at IS NULL';
  if (opts.status) {
    params.push(opts.status);
    where += ` AND status = $${params.length}`;
  }
  if (opts.after) {
    params.push(opts.after.createdAt, opts.after.id);
    where += ` AND (created_at, id) < ($${params.length - 1}::timestamptz, $${params.length})`;
  }
  const { rows } = await db.query<Record<string, unknown>>(
    // The cursor keeps the timestamp's full precision: a millisecond Date would skip rows.
    `SELECT *, created_at::text AS cursor_ts FROM sessions WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT $3`,
    params,
  );
  return rows.map((r) => {
    const { cursor_ts, ...rest } = r;
    return { ...sessionRow(rest), cursor: { createdAt: String(cursor_ts), id: String(r.id) } };
  });
}

export async function countActiveSessions(db: Queryable, owner: { type: 'user' | 'org'; id: string }): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM sessions WHERE owner_type = $1 AND owner_id = $2 AND status <> 'ended'`,
    [owner.type, owner.id],
  );
  return Number(rows[0].n);
}

export async function markRunning(
  db: Queryable,
  id: string,
  sandbox: { containerId: string; host: string },
): Promise<void> {
  await db.query(
    `UPDATE sessions SET status = 'running', started_at = COALESCE(started_at, now()),
       container_id = $2, sandbox_host = $3, dormant_since = NULL,
       activity = CASE WHEN activity IN ('dormant', 'starting') THEN 'idle' ELSE activity END
     WHERE id = $1 AND status <> 'ended'`,
    [id, sandbox.containerId, sandbox.host],
  );
}

export async function setActivity(db: Queryable, id: string, activity: string): Promise<void> {
  await db.query(`UPDATE sessions SET activity = $2 WHERE id = $1 AND status <> 'ended'`, [id, activity]);
}

export async function markEnded(
  db: Queryable,
  id: string,
  end: { reason: string; exitCode: number; errorMessage?: string },
): Promise<void> {
  await db.query(
    `UPDATE sessions SET status = 'ended', activity = 'ended', terminated_at = COALESCE(terminated_at, now()),
       end_reason = COALESCE(end_reason, $2), exit_code = COALESCE(exit_code, $3),
       error_message = COALESCE(error_message, $4)
     WHERE id = $1`,
    [id, end.reason, end.exitCode, end.errorMessage ?? null],
  );
}

/** Claim check: large or sensitive text is stored and the workflow carries its id. */
export async function putText(db: Queryable, sessionId: string, kind: string, body: string): Promise<string> {
  const id = `txt_${randomUUID()}`;
  await db.query('INSERT INTO session_texts (id, session_id, kind, body) VALUES ($1, $2, $3, $4)', [
    id, sessionId, kind, body,
  ]);
  return id;
}

/** Removes a stored text that was never handed to a workflow (a prompt the session refused). */
export async function deleteText(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM session_texts WHERE id = $1', [id]);
}

export async function getText(db: Queryable, id: string): Promise<string> {
  const { rows } = await db.query<{ body: string }>('SELECT body FROM session_texts WHERE id = $1', [id]);
  if (rows.length === 0) throw new Error(`stored text ${id} not found`);
  return rows[0].body;
}

export type CredentialType = 'api_key' | 'oauth_token';

/** Stores a model credential sealed; the plaintext never rests in the store. */
export async function putCredential(
  db: Queryable,
  keyring: Keyring,
  c: { ownerId: string; type: CredentialType; secret: string; provider?: string },
): Promise<string> {
  const id = `cred_${randomUUID()}`;
  await db.query('INSERT INTO credentials (id, owner_id, type, secret, provider) VALUES ($1, $2, $3, $4, $5)', [
    id, c.ownerId, c.type, seal(keyring, c.secret), c.provider ?? 'anthropic',
  ]);
  return id;
}

export async function getCredential(
  db: Queryable,
  keyring: Keyring,
  id: string,
): Promise<{ type: CredentialType; secret: string } | undefined> {
  const { rows } = await db.query<{ type: CredentialType; secret: string }>(
    'SELECT type, secret FROM credentials WHERE id = $1',
    [id],
  );
  if (!rows[0]) return undefined;
  const secret = open(keyring, rows[0].secret);
  // An OAuth credential is sealed as JSON with its refresh token and expiry: callers get the access token.
  return { type: rows[0].type, secret: rows[0].type === 'oauth_token' ? accessTokenOf(secret) : secret };
}

/**
 * Sets the owner's credential for a provider. The record keeps its id, so
 * running sessions pick up a replaced key at their next model call.
 */
export async function replaceCredential(
  db: Queryable,
  keyring: Keyring,
  c: { ownerId: string; type: CredentialType; secret: string; provider?: string },
): Promise<string> {
  const provider = c.provider ?? 'anthropic';
  const { rows } = await db.query<{ id: string }>(
    `UPDATE credentials SET type = $3, secret = $4, created_at = now()
      WHERE id = (SELECT id FROM credentials WHERE owner_id = $1 AND provider = $2 ORDER BY created_at DESC LIMIT 1)
      RETURNING id`,
    [c.ownerId, provider, c.type, seal(keyring, c.secret)],
  );
  return rows[0]?.id ?? putCredential(db, keyring, { ...c, provider });
}

export async function latestCredential(
  db: Queryable,
  ownerId: string,
  provider: string,
): Promise<{ id: string; type: CredentialType; created_at: string } | undefined> {
  const { rows } = await db.query<{ id: string; type: CredentialType; created_at: Date }>(
    'SELECT id, type, created_at FROM credentials WHERE owner_id = $1 AND provider = $2 ORDER BY created_at DESC LIMIT 1',
    [ownerId, provider],
  );
  return rows[0] && { ...rows[0], created_at: new Date(rows[0].created_at).toISOString() };
}

export async function deleteCredentials(db: Queryable, ownerId: string, provider: string): Promise<number> {
  const { rows } = await db.query('DELETE FROM credentials WHERE owner_id = $1 AND provider = $2 RETURNING id', [ownerId, provider]);
  return rows.length;
}

export async function activeSessionsWithSandbox(db: Db): Promise<Array<{ id: string; container_id: string }>> {
  const { rows } = await db.query<{ id: string; container_id: string }>(
    `SELECT id, container_id FROM sessions WHERE status <> 'ended' AND container_id IS NOT NULL`,
  );
  return rows;
}
