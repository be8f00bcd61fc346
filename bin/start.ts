import path from 'node:path';
import Docker from 'dockerode';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime } from '@temporalio/worker';
import { ConfigError, loadConfig } from '../lib/config';
import { createLogger } from '../lib/log';
import { openDb } from '../store/db';
import { createWorkers } from '../worker/worker';
import { startWorkerHttp } from '../worker/http';
import { temporalMetricsOptions, TemporalLogger } from '../worker/telemetry';
import { startGateway } from '../api/gateway';
import { findTemporalCli } from '../infra/temporal-cli';
import { startDevServer, type DevServer } from '../infra/temporal-dev-server';
import { ensureSearchAttributes } from '../infra/search-attributes';
import { ensureRunnerImage } from '../infra/runner-image';
import { loadSecrets } from '../infra/secrets';
import { temporalDataConverter } from '../infra/payload-keys';
import { rewrapAtStart } from '../store/rewrap';
import { browserUrl, ListenError } from '../lib/listen';
import { SEARCH_ATTRIBUTE_KEYS } from '../workflows/messages';

/**
 * The whole system in one process on embedded defaults: a Temporal dev
 * server with its SQLite file in DATA_DIR, PGlite in DATA_DIR, the worker and
 * the gateway. Each embedded part is skipped when its address is configured.
 * Its listeners are on loopback unless HOST / WORKER_HTTP_HOST say otherwise.
 */
async function main() {
  const config = loadConfig();
  const log = createLogger(config.logLevel, 'ai-sessions');
  Runtime.install({ logger: new TemporalLogger(), telemetryOptions: temporalMetricsOptions(config) });
  const secrets = loadSecrets(config, log);

  const docker = new Docker();
  await docker.ping().catch((err: Error) => {
    throw new Error(`cannot reach the Docker engine (${err.message}); run scripts/setup-host.sh or set DOCKER_HOST`);
  });
  const image = await ensureRunnerImage(docker, config.runnerImage, config.version, log);
  if (image.built) log.info({ image: config.runnerImage }, 'runner image built');

  let devServer: DevServer | undefined;
  let address = config.temporal.address;
  let uiUrl: string | undefined;
  if (!address) {
    devServer = await startDevServer({
      cliPath: await findTemporalCli(config.temporal.cliPath, log),
      dbFile: path.join(config.dataDir, 'temporal.sqlite'),
      port: config.temporal.port,
      uiPort: config.temporal.uiPort,
      namespace: config.temporal.namespace,
      searchAttributes: SEARCH_ATTRIBUTE_KEYS,
      // The Web UI decodes payloads through the gateway, for signed-in operators (api/routes/codec.ts).
      uiCodecEndpoint: `${config.files.publicUrl}/codec`,
      log,
    });
    address = devServer.address;
    uiUrl = devServer.uiUrl;
    started.push(() => devServer!.stop());
  }
  const connection = await Connection.connect({ address });
  started.push(() => connection.close());
  const added = await ensureSearchAttributes(connection, config.temporal.namespace).catch((err: Error) => {
    log.warn({ err: err.message }, 'could not register search attributes; filtering in the UI will be limited');
    return [];
  });
  if (added.length) log.info({ added }, 'search attributes registered');
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config, secrets.keyring) });

  const db = await openDb({ databaseUrl: config.databaseUrl, pgliteDir: path.join(config.dataDir, 'pglite') });
  started.push(() => db.close());
  await rewrapAtStart(db, secrets.keyring, (line) => console.log(line));
  const workerConnection = await NativeConnection.connect({ address });
  started.push(() => workerConnection.close());
  const workers = await createWorkers({ config, connection: workerConnection, db, log, docker, keyring: secrets.keyring });
  const running = workers.run();
  started.push(async () => {
    await workers.shutdown();
    await running.catch(() => undefined);
  });
  const workerWeb = await startWorkerHttp({ config, db, connection: workerConnection, docker, log, host: config.metrics.workerHost ?? '127.0.0.1' });
  started.push(() => workerWeb.stop());
  const web = await startGateway({ config, db, client, log, secrets, docker, host: config.host ?? '127.0.0.1' });

  const gatewayUrl = browserUrl(web.host, web.port);
  const workerUrl = browserUrl(workerWeb.host, workerWeb.port);
  console.log(`ai-sessions ${config.version} is up`);
  console.log(`  gateway      ${gatewayUrl}   (listening on ${web.listening}; health: ${gatewayUrl}/healthz)`);
  console.log(`  temporal     ${address}${uiUrl ? `   (Web UI: ${uiUrl})` : ''}`);
  console.log(`  store        ${config.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : `PGlite in ${path.join(config.dataDir, 'pglite')}`}`);
  console.log(`  worker host  ${workers.hostId}, runner image ${config.runnerImage}`);
  console.log(`  metrics      ${gatewayUrl}/metrics (gateway), ${workerUrl}/metrics (worker on ${workerWeb.listening}, with the Temporal SDK's)`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping; sandboxes stay up and sessions carry on at the next start');
    await web.stop();
    await workers.shutdown();
    await running.catch(() => undefined);
    await workerWeb.stop();
    await workerConnection.close();
    await connection.close();
    await db.close();
    await devServer?.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

/** What has started so far; stopped newest first when a later step fails (a port in use, say). */
const started: Array<() => Promise<unknown>> = [];

main().catch(async (err) => {
  if (err instanceof ConfigError) console.error(err.message);
  else if (err instanceof ListenError) console.error(`ai-sessions failed to start: ${err.message}`);
  else console.error(`ai-sessions failed to start: ${err?.stack ?? err}`);
  for (const undo of started.reverse()) await undo().catch(() => undefined);
  process.exit(1);
});
