import type { Db, Queryable } from './db';

export interface UserRow {
  id: string;
  email: string | null;
  registered_at: string;
}

/** Registers a user; `created` is false when they were registered already. */
export async function registerUser(db: Queryable, u: { id: string; email?: string }): Promise<{ user: UserRow; created: boolean }> {
  const inserted = await db.query<UserRow>(
    'INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id, email, registered_at',
    [u.id, u.email ?? null],
  );
  if (inserted.rows[0]) return { user: row(inserted.rows[0]), created: true };
  return { user: (await getUser(db, u.id))!, created: false };
}

export async function getUser(db: Queryable, id: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>('SELECT id, email, registered_at FROM users WHERE id = $1', [id]);
  return rows[0] && row(rows[0]);
}

/**
 * Removes a user with their profiles, credentials and session records. Usage
 * and billing rows stay: they are the platform's accounting, not the user's data.
 * Returns the user's session ids: the caller removes their workspace archives
 * once this has committed (blob storage is not part of the transaction).
 */
export async function deleteUser(db: Db, id: string): Promise<string[]> {
  return db.transaction(async (tx) => {
    await tx.query('DELETE FROM credentials WHERE owner_id = $1', [id]);
    const { rows } = await tx.query<{ id: string }>(`SELECT id FROM sessions WHERE owner_type = 'user' AND owner_id = $1`, [id]);
    await purgeSessionContent(tx, `owner_type = 'user' AND owner_id = $1`, [id]);
    await tx.query('DELETE FROM users WHERE id = $1', [id]);
    return rows.map((r) => r.id);
  });
}

/** Deletes what sessions hold (events, conversation, stored text, sealed secrets) and marks them deleted. */
export async function purgeSessionContent(tx: Queryable, where: string, params: unknown[]): Promise<void> {
  const ids = `SELECT id FROM sessions WHERE ${where}`;
  await tx.query(`DELETE FROM session_events WHERE session_id IN (${ids})`, params);
  await tx.query(`DELETE FROM conversation_messages WHERE session_id IN (${ids})`, params);
  await tx.query(`DELETE FROM session_texts WHERE session_id IN (${ids})`, params);
  await tx.query(`UPDATE sessions SET deleted_at = COALESCE(deleted_at, now()), sealed_secrets = NULL WHERE ${where}`, params);
}

function row(r: UserRow): UserRow {
  return { ...r, registered_at: new Date(r.registered_at).toISOString() };
}
