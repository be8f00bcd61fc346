import { randomBytes, randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, DefaultLogger, makeTelemetryFilterString } from '@temporalio/worker';
import { Client as PgClient } from 'pg';
import { loadConfig, type Config } from '../../lib/config';
import { reaperScheduleId } from '../../workflows/messages';
import { createLogger, type Logger } from '../../lib/log';
import { openDb, type Db } from '../../store/db';
import { putCredential } from '../../store/sessions';
import { loadKeyring, type Keyring } from '../../store/encryption';
import { listEvents, type StoredEvent } from '../../store/events';
import { createWorkers, type SessionWorkers } from '../../worker/worker';
import { SessionService } from '../../api/session-service';
import type { SessionProfile } from '../../lib/profile';
import { FakeAnthropic } from './fake-anthropic';
import { startGateway } from '../../api/gateway';
import { temporalDataConverter } from '../../infra/payload-keys';
import { temporalMetricsOptions } from '../../worker/telemetry';

type Gateway = Awaited<ReturnType<typeof startGateway>>;

export const TEST_KEY = 'sk-ant-test-key-0123456789abcdef';
export const TEST_JWT_SECRET = 'test-jwt-secret-for-hs256-0123456789abcdef';
export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
export const ADMIN_PG = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let runtimeInstalled = false;
/** Once per test file; the first harness's config decides whether the SDK's metrics are exported (TEMPORAL_METRICS_PORT). */
function installRuntime(config: Config) {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  // Tests provoke failures on purpose; the SDK's retry warnings would bury real output.
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR', other: 'ERROR' }) }, ...temporalMetricsOptions(config) },
  });
}

/** A fresh PostgreSQL database on the machine's server; dropped by the returned function. */
export async function freshPostgres(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `ais_test_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const admin = new PgClient({ connectionString: ADMIN_PG });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = ADMIN_PG.replace(/\/[^/]*$/, `/${name}`);
  return {
    url,
    async drop() {
      const c = new PgClient({ connectionString: ADMIN_PG });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface HarnessOptions {
  store?: 'pglite' | 'postgres';
  env?: Record<string, string>;
  /** Start no worker (tests that run workers in other processes). */
  noWorker?: boolean;
  /** The workers' logger (a test that reads what was logged). */
  log?: Logger;
}

export interface Harness {
  config: Config;
  env: Record<string, string>;
  db: Db;
  client: Client;
  service: SessionService;
  fake: FakeAnthropic;
  docker: Docker;
  keyring: Keyring;
  workers?: SessionWorkers;
  credentialId: string;
  databaseUrl?: string;
  startSession(p?: { prompt?: string; profile?: SessionProfile; trigger?: 'user' | 'dr'; ownerId?: string }): Promise<string>;
  events(sessionId: string): Promise<StoredEvent[]>;
  waitForEvent(sessionId: string, match: (e: StoredEvent) => boolean, timeoutMs?: number): Promise<StoredEvent>;
  waitForEnd(sessionId: string): Promise<{ endReason: string; errorMessage?: string }>;
  startWorkers(): Promise<SessionWorkers>;
  /** A gateway on this harness's store, Temporal and keys (port 0), stopped by close(); env overrides apply to it alone. */
  startGateway(env?: Record<string, string>): Promise<Gateway>;
  close(): Promise<void>;
}

/** Short periods so time-based behaviour runs in seconds on a real server. */
export const FAST_PERIODS = {
  BILLING_PERIOD_SECONDS: '2',
  APPROVAL_TIMEOUT_SECONDS: '20',
  STARTUP_TIMEOUT_SECONDS: '60',
  SANDBOX_CHECK_SECONDS: '1',
  ACTIVITY_HEARTBEAT_SECONDS: '3',
  MODEL_CALL_TIMEOUT_SECONDS: '60',
};

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const address = process.env.TEST_TEMPORAL_ADDRESS;
  if (!address) throw new Error('TEST_TEMPORAL_ADDRESS is unset: run the tests through jest (global setup)');
  const fake = await FakeAnthropic.start();
  const pg = opts.store === 'postgres' ? await freshPostgres() : undefined;
  const id = randomUUID().slice(0, 8);
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    TEMPORAL_ADDRESS: address,
    TEMPORAL_TASK_QUEUE: `test-${id}`,
    WORKER_HOST_ID: `host-${id}`,
    ANTHROPIC_BASE_URL: fake.url,
    MASTER_KEY: randomBytes(32).toString('hex'),
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: 'warn',
    // Parallel suites (and the worker processes some start) must not contend for the default ports.
    TEMPORAL_METRICS_PORT: '0',
    WORKER_HTTP_PORT: '0',
    ...FAST_PERIODS,
    ...(pg ? { DATABASE_URL: pg.url } : {}),
    ...opts.env,
  };
  if (!pg) delete env.DATABASE_URL;
  const config = loadConfig(env);
  installRuntime(config);
  const log = opts.log ?? createLogger(config.logLevel, 'test');
  const db = await openDb({ databaseUrl: config.databaseUrl, pgliteDir: 'memory' });
  const connection = await Connection.connect({ address });
  const { keyring } = loadKeyring(config.encryption, config.dataDir);
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter: temporalDataConverter(config, keyring) });
  const service = new SessionService({ db, client, config, keyring });
  const docker = new Docker();
  const credentialId = await putCredential(db, keyring, { ownerId: 'user-1', type: 'api_key', secret: TEST_KEY });
  const started: SessionWorkers[] = [];
  const workerConnections: NativeConnection[] = [];
  const sessionIds: string[] = [];
  const gateways: Gateway[] = [];

  const h: Harness = {
    config,
    env,
    db,
    client,
    service,
    fake,
    docker,
    keyring,
    credentialId,
    databaseUrl: pg?.url,
    async startWorkers() {
      const nc = await NativeConnection.connect({ address });
      workerConnections.push(nc);
      const workers = await createWorkers({
        config,
        connection: nc,
        db,
        log,
        docker,
        keyring,
        workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! },
      });
      void workers.run();
      started.push(workers);
      return workers;
    },
    async startSession(p = {}) {
      const { sessionId } = await service.start({
        ownerType: p.trigger === 'dr' ? 'org' : 'user',
        ownerId: p.ownerId ?? 'user-1',
        trigger: p.trigger ?? 'user',
        profile: p.profile ?? { permission_mode: 'bypassPermissions' },
        credentialId,
        initialPrompt: p.prompt,
      });
      sessionIds.push(sessionId);
      return sessionId;
    },
    async startGateway(overrides = {}) {
      const g = await startGateway({
        config: Object.keys(overrides).length ? loadConfig({ ...env, ...overrides }) : config,
        db,
        client,
        log: createLogger('silent'),
        secrets: { keyring, jwtSecret: TEST_JWT_SECRET, adminToken: overrides.ADMIN_TOKEN === '' ? undefined : TEST_ADMIN_TOKEN },
        docker,
        port: 0,
        host: '127.0.0.1',
      });
      gateways.push(g);
      return g;
    },
    events: (sessionId) => listEvents(db, sessionId),
    async waitForEvent(sessionId, match, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const found = (await listEvents(db, sessionId)).find(match);
        if (found) return found;
        await new Promise((r) => setTimeout(r, 100));
      }
      const seen = (await listEvents(db, sessionId)).map((e) => e.type).join(', ');
      throw new Error(`timed out waiting for an event in ${sessionId}; saw: ${seen}`);
    },
    waitForEnd: (sessionId) => service.waitForEnd(sessionId),
    async close() {
      for (const g of gateways) await g.stop().catch(() => undefined);
      // Sessions still running are terminated so no container outlives the suite.
      for (const sid of sessionIds) {
        await service.terminate(sid, 'user_requested').catch(() => undefined);
        await service.waitForEnd(sid).catch(() => undefined);
      }
      for (const w of started) await w.shutdown().catch(() => undefined);
      for (const nc of workerConnections) await nc.close().catch(() => undefined);
      // This suite's reaper schedule would otherwise keep starting runs that no worker will take.
      await client.schedule.getHandle(reaperScheduleId(config.temporal.taskQueue)).delete().catch(() => undefined);
      await connection.close();
      await db.close();
      await fake.close();
      await pg?.drop();
    },
  };
  if (!opts.noWorker) await h.startWorkers();
  return h;
}

/**
 * The harness for a describe block: started before its tests, the model
 * stand-in reset before each, everything closed after. Reads go to the live
 * harness, so the returned object can be used like one.
 */
export function useHarness(opts: HarnessOptions = {}): Harness {
  let current: Harness | undefined;
  beforeAll(async () => {
    current = await startHarness(opts);
  });
  beforeEach(() => current?.fake.reset());
  afterAll(async () => {
    await current?.close();
  });
  return new Proxy({} as Harness, {
    get(_target, key) {
      if (!current) throw new Error('the harness is used before beforeAll started it');
      return current[key as keyof Harness];
    },
  });
}

/** Containers the platform created for a session, running or not. */
export async function sessionContainers(docker: Docker, sessionId: string) {
  return docker.listContainers({ all: true, filters: { label: [`ai-sessions.session=${sessionId}`] } });
}
