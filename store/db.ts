import fs from 'node:fs';
import path from 'node:path';
import { Pool, type PoolClient } from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { makePrivateDir } from '../lib/private-dir';

/** The slice of a Postgres connection the store uses; served by pg or by PGlite. */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Subscribes to NOTIFY on a channel; resolves to an unsubscribe function. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface DbOptions {
  /** postgres:// URL; when absent, PGlite is used. */
  databaseUrl?: string;
  /** PGlite data directory; 'memory' for an in-memory database. */
  pgliteDir?: string;
}

export async function openDb(options: DbOptions): Promise<Db> {
  const db = options.databaseUrl
    ? openPostgres(options.databaseUrl)
    : await openPglite(options.pgliteDir ?? 'memory');
  await migrate(db);
  return db;
}

function openPostgres(url: string): Db {
  const pool = new Pool({ connectionString: url, max: 10 });
  // An idle client that errors (server restart) must not crash the process.
  pool.on('error', () => undefined);
  // One connection holds every LISTEN. It is shared as a promise, so concurrent first callers do
  // not each check out a client (the extra one leaked and made close() wait forever).
  let listener: Promise<PoolClient> | undefined;
  const handlers = new Map<string, Set<(payload: string) => void>>();
  /** Channels LISTENed on the current listener connection. */
  const listening = new Map<string, Promise<unknown>>();
  const connectListener = (): Promise<PoolClient> => {
    const connecting: Promise<PoolClient> = pool.connect().then(
      (client) => {
        client.on('notification', (n) => {
          for (const h of handlers.get(n.channel) ?? []) h(n.payload ?? '');
        });
        // A checked-out client has no pool error handler: without one a dropped connection
        // (server restart) crashed the process. The next listen() connects and LISTENs again.
        client.on('error', () => undefined);
        client.once('error', (err) => {
          if (listener === connecting) {
            listener = undefined;
            listening.clear();
          }
          client.release(err);
        });
        return client;
      },
      (err) => {
        if (listener === connecting) listener = undefined;
        throw err;
      },
    );
    return connecting;
  };
  return {
    kind: 'postgres',
    query: (sql, params) => pool.query(sql, params as unknown[]) as never,
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn(client as unknown as Queryable);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    async listen(channel, onPayload) {
      listener ??= connectListener();
      const client = await listener;
      if (!listening.has(channel)) {
        const ready = client.query(`LISTEN ${quoteIdent(channel)}`);
        listening.set(channel, ready);
        ready.catch(() => listening.get(channel) === ready && listening.delete(channel));
      }
      // Concurrent callers for one channel all wait until the LISTEN is in effect.
      await listening.get(channel);
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
      }
      set.add(onPayload);
      return async () => {
        set!.delete(onPayload);
      };
    },
    async close() {
      const client = await listener?.catch(() => undefined);
      listener = undefined;
      client?.release();
      await pool.end();
    },
  };
}

async function openPglite(dir: string): Promise<Db> {
  if (dir !== 'memory') makePrivateDir(dir);
  const pg = await PGlite.create(dir === 'memory' ? undefined : dir);
  return {
    kind: 'pglite',
    query: (sql, params) => pg.query(sql, params) as never,
    transaction: (fn) => pg.transaction((tx) => fn(tx as unknown as Queryable)),
    listen: async (channel, onPayload) => {
      const unsubscribe = await pg.listen(channel, onPayload);
      return async () => unsubscribe();
    },
    close: () => pg.close(),
  };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

const MIGRATIONS_DIR = path.join(__dirname, 'migrations');
/** Serialises migrations when several gateways and workers start at once. */
const MIGRATION_LOCK = 8_317_004_112;

async function migrate(db: Db): Promise<void> {
  const files = fs
    .readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d+_.+\.sql$/.test(f))
    .sort();
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await tx.query<{ name: string }>('SELECT name FROM schema_migrations');
    const applied = new Set(rows.map((r) => r.name));
    for (const file of files) {
      if (applied.has(file)) continue;
      const sql = fs.readFileSync(path.join(MIGRATIONS_DIR, file), 'utf8');
      for (const statement of splitStatements(sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (name) VALUES ($1)', [file]);
    }
  });
}

/** Migration files hold plain DDL separated by semicolons at line ends (no functions bodies). */
function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter((s) => s.length > 0);
}
