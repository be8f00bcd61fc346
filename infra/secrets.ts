import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, type Config } from '../lib/config';
import type { Logger } from '../lib/log';
import { loadKeyring, type Keyring } from '../store/encryption';
import { makePrivateDir, tightenDir } from '../lib/private-dir';

export interface PlatformSecrets {
  keyring: Keyring;
  /** The HS256 secret tokens are verified with, unless a JWKS URL is configured. */
  jwtSecret?: string;
  /** Guards the admin endpoints; unset with DATABASE_URL and no ADMIN_TOKEN, which disables them. */
  adminToken?: string;
}

/**
 * The master key and the JWT secret. On the embedded default both are
 * generated into the data directory (with a warning); with DATABASE_URL set
 * the system is shared, and refuses to start without them configured.
 */
export function loadSecrets(config: Config, log: Logger): PlatformSecrets {
  secureDataDir(config.dataDir, log);
  if (config.databaseUrl) {
    const missing = [
      !config.encryption.masterKey && 'MASTER_KEY',
      !config.auth.jwtSecret && !config.auth.jwksUrl && 'AUTH_JWT_SECRET or AUTH_JWKS_URL',
    ].filter(Boolean);
    if (missing.length) throw new ConfigError(`with DATABASE_URL set, ${missing.join(' and ')} must be configured`);
  }
  const { keyring, generated } = loadKeyring(config.encryption, config.dataDir);
  if (!config.encryption.masterKey) {
    log.warn({ file: path.join(config.dataDir, 'master.key') }, generated ? 'MASTER_KEY is unset: generated a master key into the data directory' : 'MASTER_KEY is unset: using the master key in the data directory');
  }
  const embedded = !config.databaseUrl;
  const jwtSecret = config.auth.jwtSecret ?? (config.auth.jwksUrl ? undefined : dataDirSecret(config.dataDir, 'jwt.secret'));
  const adminToken = config.auth.adminToken ?? (embedded ? dataDirSecret(config.dataDir, 'admin.token') : undefined);
  return { keyring, jwtSecret, adminToken };
}

/** Older versions left DATA_DIR 0755, so other local users could read transcripts and keys: each start tightens it. */
export function secureDataDir(dataDir: string, log: Logger): void {
  try {
    const was = tightenDir(dataDir);
    if (was !== undefined) log.warn({ dir: dataDir, was: was.toString(8) }, 'DATA_DIR was open to other users: changed its mode to 0700');
  } catch (err) {
    log.warn({ dir: dataDir, err: (err as Error).message }, 'could not make DATA_DIR owner-only (0700); other local users may be able to read it');
  }
}

/** A random secret kept in the data directory (owner-only), made on first use. */
function dataDirSecret(dataDir: string, name: string): string {
  const file = path.join(dataDir, name);
  if (!fs.existsSync(file)) {
    makePrivateDir(dataDir);
    fs.writeFileSync(file, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  }
  return fs.readFileSync(file, 'utf8').trim();
}
