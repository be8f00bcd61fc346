import type { Db } from './db';
import { needsRewrap, rewrap, type Keyring } from './encryption';

/** Every sealed column in the store. */
const SEALED = [
  { table: 'credentials', column: 'secret', key: 'id' },
  { table: 'profiles', column: 'sealed_secrets', key: 'id' },
  { table: 'sessions', column: 'sealed_secrets', key: 'id' },
  { table: 'hive_records', column: 'sealed', key: "org_id || '/' || hive || '/' || name" },
] as const;

/**
 * Re-wraps every record sealed under a retired master key with the current
 * one. Safe to run from several processes at once: a row changes only if it
 * still holds the value that was read.
 */
export async function rewrapAll(db: Db, keyring: Keyring): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const { table, column, key } of SEALED) {
    counts[table] = 0;
    const { rows } = await db.query<{ id: string; value: string }>(
      `SELECT ${key} AS id, ${column} AS value FROM ${table} WHERE ${column} IS NOT NULL AND split_part(${column}, '.', 2) <> $1`,
      [keyring.currentId],
    );
    for (const r of rows) {
      if (!needsRewrap(keyring, r.value)) continue;
      const updated = await db.query(`UPDATE ${table} SET ${column} = $3 WHERE ${key} = $1 AND ${column} = $2 RETURNING 1`, [
        r.id, r.value, rewrap(keyring, r.value),
      ]);
      counts[table] += updated.rows.length;
    }
  }
  return counts;
}

/** At start: brings every record under the current master key, and says so when there was work. */
export async function rewrapAtStart(db: Db, keyring: Keyring, say: (line: string) => void): Promise<void> {
  const counts = await rewrapAll(db, keyring);
  if (Object.values(counts).some((n) => n > 0)) {
    say(`re-wrapped sealed records under master key ${keyring.currentId}: ${JSON.stringify(counts)}`);
  }
}
