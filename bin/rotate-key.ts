import { ConfigError, loadConfig } from '../lib/config';
import { rotateKeyFile } from '../store/encryption';

/**
 * `npm run rotate-key`: a new master key for the embedded default. Records
 * are re-wrapped under it when the system next starts (PGlite belongs to the
 * running process, so that is where the work happens). With MASTER_KEY
 * configured, rotate by configuration instead.
 */
function main() {
  const config = loadConfig();
  if (config.encryption.masterKey) {
    throw new ConfigError(
      'MASTER_KEY is configured: set the new key in MASTER_KEY with a new MASTER_KEY_ID, move the old one to ' +
        'MASTER_KEYS_RETIRED as id:key, and restart; every record is re-wrapped at start',
    );
  }
  const id = rotateKeyFile(config.dataDir);
  console.log(`new master key ${id} in ${config.dataDir}/master.key; records are re-wrapped at the next start`);
}

try {
  main();
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
