import { randomUUID } from 'node:crypto';
import type { Db, Queryable } from './db';
import { open, seal, type Keyring } from './encryption';
import { joinSecrets, splitSecrets, type ProfileSecrets, type SessionProfile } from '../lib/profile';

export interface ProfileRecord {
  id: string;
  user_id: string;
  name: string;
  description: string | null;
  is_default: boolean;
  /** The profile with secret values masked. */
  settings: SessionProfile;
  created_at: string;
  updated_at: string;
}

interface Row extends Omit<ProfileRecord, 'created_at' | 'updated_at'> {
  sealed_secrets: string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

const COLUMNS = 'id, user_id, name, description, is_default, settings, sealed_secrets, created_at, updated_at';

function record(r: Row): ProfileRecord {
  const { sealed_secrets: _sealed, ...rest } = r;
  return { ...rest, created_at: new Date(r.created_at).toISOString(), updated_at: new Date(r.updated_at).toISOString() };
}

export async function listProfiles(db: Queryable, userId: string): Promise<ProfileRecord[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM profiles WHERE user_id = $1 ORDER BY created_at, id`, [userId]);
  return rows.map(record);
}

export async function countProfiles(db: Queryable, userId: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM profiles WHERE user_id = $1', [userId]);
  return Number(rows[0].n);
}

async function row(db: Queryable, userId: string, id: string): Promise<Row | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM profiles WHERE user_id = $1 AND id = $2`, [userId, id]);
  return rows[0];
}

export async function getProfile(db: Queryable, userId: string, id: string): Promise<ProfileRecord | undefined> {
  const r = await row(db, userId, id);
  return r && record(r);
}

export async function getDefaultProfileId(db: Queryable, userId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM profiles WHERE user_id = $1 AND is_default', [userId]);
  return rows[0]?.id;
}

/** The stored secret values of a profile, opened. */
export async function profileSecrets(db: Queryable, keyring: Keyring, userId: string, id: string): Promise<ProfileSecrets | undefined> {
  const r = await row(db, userId, id);
  return r?.sealed_secrets ? (JSON.parse(open(keyring, r.sealed_secrets)) as ProfileSecrets) : undefined;
}

/** The whole profile, secret values included: for starting a session from it. */
export async function fullProfile(db: Queryable, keyring: Keyring, userId: string, id: string): Promise<SessionProfile | undefined> {
  const r = await row(db, userId, id);
  if (!r) return undefined;
  return joinSecrets(r.settings, r.sealed_secrets ? (JSON.parse(open(keyring, r.sealed_secrets)) as ProfileSecrets) : undefined);
}

export interface ProfileFields {
  name: string;
  description?: string | null;
  profile: SessionProfile;
}

export async function createProfile(
  db: Db,
  keyring: Keyring,
  userId: string,
  f: ProfileFields & { isDefault?: boolean },
): Promise<ProfileRecord> {
  const id = `prof_${randomUUID()}`;
  const { settings, secrets } = splitSecrets(f.profile);
  return db.transaction(async (tx) => {
    if (f.isDefault) await tx.query('UPDATE profiles SET is_default = false WHERE user_id = $1 AND is_default', [userId]);
    await tx.query(
      `INSERT INTO profiles (id, user_id, name, description, is_default, settings, sealed_secrets)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [id, userId, f.name, f.description ?? null, f.isDefault === true, JSON.stringify(settings),
        secrets ? seal(keyring, JSON.stringify(secrets)) : null],
    );
    return (await getProfile(tx, userId, id))!;
  });
}

export async function updateProfile(db: Db, keyring: Keyring, userId: string, id: string, f: ProfileFields): Promise<ProfileRecord | undefined> {
  const { settings, secrets } = splitSecrets(f.profile);
  await db.query(
    `UPDATE profiles SET name = $3, description = $4, settings = $5, sealed_secrets = $6, updated_at = now()
      WHERE user_id = $1 AND id = $2`,
    [userId, id, f.name, f.description ?? null, JSON.stringify(settings), secrets ? seal(keyring, JSON.stringify(secrets)) : null],
  );
  return getProfile(db, userId, id);
}

export async function setDefaultProfile(db: Db, userId: string, id: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    const exists = await tx.query('SELECT 1 FROM profiles WHERE user_id = $1 AND id = $2 FOR UPDATE', [userId, id]);
    if (exists.rows.length === 0) return false;
    await tx.query('UPDATE profiles SET is_default = false, updated_at = now() WHERE user_id = $1 AND is_default AND id <> $2', [userId, id]);
    await tx.query('UPDATE profiles SET is_default = true, updated_at = now() WHERE user_id = $1 AND id = $2', [userId, id]);
    return true;
  });
}

export async function deleteProfile(db: Queryable, userId: string, id: string): Promise<void> {
  await db.query('DELETE FROM profiles WHERE user_id = $1 AND id = $2 AND NOT is_default', [userId, id]);
}
