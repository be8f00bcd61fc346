import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { ConfigError, loadConfig } from '../lib/config';
import { createLogger } from '../lib/log';
import { openDb } from '../store/db';
import { loadSecrets } from '../infra/secrets';
import { temporalDataConverter } from '../infra/payload-keys';
import { rewrapAtStart } from '../store/rewrap';
import { startGateway } from './gateway';
import { ListenError } from '../lib/listen';

/** The gateway on its own, for scaling out behind a load balancer. */
async function main() {
  const config = loadConfig();
  const log = createLogger(config.logLevel, 'gateway');
  const secrets = loadSecrets(config, log);
  const db = await openDb({ databaseUrl: config.databaseUrl, pgliteDir: path.join(config.dataDir, 'pglite') });
  await rewrapAtStart(db, secrets.keyring, (line) => log.info(line));
  const connection = await Connection.connect({ address: config.temporal.address ?? `127.0.0.1:${config.temporal.port}` });
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config, secrets.keyring) });
  // All interfaces unless HOST is set: in a container, loopback would be unreachable from outside.
  const web = await startGateway({ config, db, client, log, secrets, host: config.host ?? '0.0.0.0' });
  log.info({ url: web.url, listening: web.listening }, 'gateway listening');
  const stop = async () => {
    await web.stop();
    await connection.close();
    await db.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err) => {
  console.error(err instanceof ConfigError ? err.message : err instanceof ListenError ? `gateway failed: ${err.message}` : `gateway failed: ${err?.stack ?? err}`);
  process.exit(1);
});
