import path from 'node:path';
import Docker from 'dockerode';
import { NativeConnection, Runtime } from '@temporalio/worker';
import { ConfigError, loadConfig } from '../lib/config';
import { createLogger } from '../lib/log';
import { openDb } from '../store/db';
import { ensureRunnerImage } from '../infra/runner-image';
import { loadSecrets } from '../infra/secrets';
import { createWorkers } from './worker';
import { startWorkerHttp } from './http';
import { temporalMetricsOptions, TemporalLogger } from './telemetry';
import { ListenError } from '../lib/listen';

/**
 * A worker on its own, for scaling out: it needs a Temporal server
 * (TEMPORAL_ADDRESS) and a shared store (DATABASE_URL); PGlite belongs to a
 * single process, so it is only for trying things on one machine.
 */
async function main() {
  const config = loadConfig();
  const log = createLogger(config.logLevel, 'worker');
  Runtime.install({ logger: new TemporalLogger(), telemetryOptions: temporalMetricsOptions(config) });
  const { keyring } = loadSecrets(config, log);
  if (!config.databaseUrl) log.warn('DATABASE_URL is unset: this worker uses PGlite in DATA_DIR, which no other process can share');
  const docker = new Docker();
  await ensureRunnerImage(docker, config.runnerImage, config.version, log);
  const db = await openDb({ databaseUrl: config.databaseUrl, pgliteDir: path.join(config.dataDir, 'pglite') });
  const address = config.temporal.address ?? `127.0.0.1:${config.temporal.port}`;
  const connection = await NativeConnection.connect({ address });
  const workers = await createWorkers({ config, connection, db, log, docker, keyring });
  // All interfaces unless WORKER_HTTP_HOST is set: Prometheus scrapes it from another container.
  const web = await startWorkerHttp({ config, db, connection, docker, log, host: config.metrics.workerHost ?? '0.0.0.0' });
  console.log(`worker running: temporal ${address}, task queue ${config.temporal.taskQueue}, docker host ${workers.hostId}; ${web.url}/metrics, /readyz (listening on ${web.listening})`);
  const stop = async () => {
    await workers.shutdown();
    await web.stop();
    await connection.close();
    await db.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  await workers.run();
}

main().catch((err) => {
  console.error(err instanceof ConfigError ? err.message : err instanceof ListenError ? `worker failed: ${err.message}` : `worker failed: ${err?.stack ?? err}`);
  process.exit(1);
});
