import type { Queryable } from './db';
import { open, seal, type Keyring } from './encryption';
import { bumpDrVersion } from './rules';

export const HIVES = ['secret', 'ai_agent', 'lookup'] as const;
export type Hive = (typeof HIVES)[number];

export interface HiveRecord {
  name: string;
  enabled: boolean;
  /** The record's data; for secrets, never the value. */
  data: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

type Row = HiveRecord & { sealed: string | null };
const record = ({ sealed: _sealed, ...r }: Row): HiveRecord => ({
  ...r,
  created_at: new Date(r.created_at).toISOString(),
  updated_at: new Date(r.updated_at).toISOString(),
});

export async function listHive(db: Queryable, orgId: string, hive: Hive): Promise<HiveRecord[]> {
  const { rows } = await db.query<Row>(
    'SELECT name, enabled, data, sealed, created_at, updated_at FROM hive_records WHERE org_id = $1 AND hive = $2 ORDER BY name',
    [orgId, hive],
  );
  return rows.map(record);
}

export async function getHive(db: Queryable, orgId: string, hive: Hive, name: string): Promise<HiveRecord | undefined> {
  const { rows } = await db.query<Row>(
    'SELECT name, enabled, data, sealed, created_at, updated_at FROM hive_records WHERE org_id = $1 AND hive = $2 AND name = $3',
    [orgId, hive, name],
  );
  return rows[0] && record(rows[0]);
}

/** Creates or replaces a record; a secret's value is sealed, its data keeps no copy. */
export async function putHive(
  db: Queryable,
  keyring: Keyring,
  r: { orgId: string; hive: Hive; name: string; enabled: boolean; data: Record<string, unknown>; secret?: string },
): Promise<{ record: HiveRecord; created: boolean }> {
  const sealed = r.secret === undefined ? null : seal(keyring, r.secret);
  const { rows } = await db.query<Row & { created: boolean }>(
    `INSERT INTO hive_records (org_id, hive, name, enabled, data, sealed) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (org_id, hive, name) DO UPDATE SET enabled = EXCLUDED.enabled, data = EXCLUDED.data,
       sealed = COALESCE(EXCLUDED.sealed, hive_records.sealed), updated_at = now()
     RETURNING name, enabled, data, sealed, created_at, updated_at, (xmax = 0) AS created`,
    [r.orgId, r.hive, r.name, r.enabled, JSON.stringify(r.data), sealed],
  );
  const { created, ...row } = rows[0];
  if (r.hive === 'lookup') await bumpDrVersion(db, r.orgId);
  return { record: record(row), created };
}

export async function deleteHive(db: Queryable, orgId: string, hive: Hive, name: string): Promise<boolean> {
  const { rows } = await db.query('DELETE FROM hive_records WHERE org_id = $1 AND hive = $2 AND name = $3 RETURNING name', [orgId, hive, name]);
  if (rows.length > 0 && hive === 'lookup') await bumpDrVersion(db, orgId);
  return rows.length > 0;
}

export class HiveError extends Error {
  override name = 'HiveError';
}

/**
 * A secret's value, for an activity about to use it. A missing or disabled
 * record is an error that names it (never the value).
 */
export async function resolveSecret(db: Queryable, keyring: Keyring, orgId: string, name: string): Promise<string> {
  const { rows } = await db.query<{ enabled: boolean; sealed: string | null }>(
    `SELECT enabled, sealed FROM hive_records WHERE org_id = $1 AND hive = 'secret' AND name = $2`,
    [orgId, name],
  );
  if (!rows[0] || !rows[0].sealed) throw new HiveError(`hive://secret/${name} does not exist`);
  if (!rows[0].enabled) throw new HiveError(`hive://secret/${name} is disabled`);
  return open(keyring, rows[0].sealed);
}
