import crypto from 'node:crypto';
import type { Db, Queryable } from './db';

export interface OrgRow {
  id: string;
  name: string;
  created_at: string;
}

const KEY_PREFIX = 'ais_org_';
const hash = (key: string) => crypto.createHash('sha256').update(key).digest('hex');
/** What may be shown of a key (listings, the audit trail): too short to use. */
export const keyPrefix = (key: string) => key.slice(0, KEY_PREFIX.length + 6);

/** Creates an organization with its first API key; the key is returned here and never again. */
export async function createOrg(db: Db, name: string): Promise<{ org: OrgRow; apiKey: string }> {
  const id = `org_${crypto.randomUUID()}`;
  return db.transaction(async (tx) => {
    await tx.query('INSERT INTO orgs (id, name) VALUES ($1, $2)', [id, name]);
    const apiKey = await addOrgKey(tx, id, 'initial');
    return { org: (await getOrg(tx, id))!, apiKey };
  });
}

/** A new API key for an org: 256 random bits, so a plain SHA-256 is enough to store. */
export async function addOrgKey(db: Queryable, orgId: string, name?: string): Promise<string> {
  const key = `${KEY_PREFIX}${crypto.randomBytes(32).toString('base64url')}`;
  await db.query('INSERT INTO org_api_keys (id, org_id, key_hash, key_prefix, name) VALUES ($1, $2, $3, $4, $5)', [
    `key_${crypto.randomUUID()}`, orgId, hash(key), keyPrefix(key), name ?? null,
  ]);
  return key;
}

export async function getOrg(db: Queryable, id: string): Promise<OrgRow | undefined> {
  const { rows } = await db.query<OrgRow>('SELECT id, name, created_at FROM orgs WHERE id = $1', [id]);
  return rows[0] && { ...rows[0], created_at: new Date(rows[0].created_at).toISOString() };
}

export async function listOrgs(db: Queryable): Promise<OrgRow[]> {
  const { rows } = await db.query<OrgRow>('SELECT id, name, created_at FROM orgs ORDER BY created_at, id');
  return rows.map((r) => ({ ...r, created_at: new Date(r.created_at).toISOString() }));
}

/** The org a presented key belongs to, if it is a live key. */
export async function orgForKey(db: Queryable, key: string): Promise<string | undefined> {
  if (!key.startsWith(KEY_PREFIX)) return undefined;
  const { rows } = await db.query<{ org_id: string }>(
    `UPDATE org_api_keys SET last_used_at = now() WHERE key_hash = $1 AND revoked_at IS NULL RETURNING org_id`,
    [hash(key)],
  );
  return rows[0]?.org_id;
}

export async function revokeOrgKeys(db: Queryable, orgId: string): Promise<number> {
  const { rows } = await db.query('UPDATE org_api_keys SET revoked_at = now() WHERE org_id = $1 AND revoked_at IS NULL RETURNING id', [orgId]);
  return rows.length;
}
