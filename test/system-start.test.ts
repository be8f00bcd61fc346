import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { Client, Connection } from '@temporalio/client';
import { freePort } from './support/global-setup';
import { freshPostgres, FAST_PERIODS, TEST_KEY } from './support/harness';
import { runEntry, type Proc } from './support/processes';
import { FakeAnthropic, text, toolUse } from './support/fake-anthropic';
import { loadConfig } from '../lib/config';
import { openDb, type Db } from '../store/db';
import { loadKeyring, type Keyring } from '../store/encryption';
import { putCredential, getSession } from '../store/sessions';
import { listEvents } from '../store/events';
import { billedPeriods } from '../store/metering';
import { SessionService } from '../api/session-service';
import { temporalDataConverter } from '../infra/payload-keys';

/**
 * `npm start`'s entry point as a user runs it: the whole system in one
 * process on embedded defaults, stopped with Ctrl-C (SIGINT to the process
 * group) and started again on the same data directory.
 */
describe('the whole system (bin/start.ts)', () => {
  const docker = new Docker();
  let dataDir: string;
  let fake: FakeAnthropic;
  let env: Record<string, string>;
  let system: Proc | undefined;

  const start = async () => {
    system = runEntry('bin/start.ts', env);
    await system.waitFor('is up', 180_000);
    return system;
  };
  const logs: string[] = [];
  const stop = async () => {
    const code = await system!.kill('SIGINT');
    logs.push(system!.output());
    system = undefined;
    return code;
  };

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-start-'));
    // As older versions left it: the start tightens it.
    fs.chmodSync(dataDir, 0o755);
    fake = await FakeAnthropic.start();
    const id = randomUUID().slice(0, 8);
    env = {
      ...(process.env as Record<string, string>),
      ...FAST_PERIODS,
      DATA_DIR: dataDir,
      PORT: String(await freePort()),
      TEMPORAL_PORT: String(await freePort()),
      TEMPORAL_UI_PORT: String(await freePort()),
      WORKER_HTTP_PORT: String(await freePort()),
      TEMPORAL_METRICS_PORT: String(await freePort()),
      TEMPORAL_TASK_QUEUE: `start-${id}`,
      WORKER_HOST_ID: `start-host-${id}`,
      ANTHROPIC_BASE_URL: fake.url,
      LOG_LEVEL: 'debug',
    };
    delete env.TEMPORAL_ADDRESS;
    delete env.DATABASE_URL;
  });
  afterAll(async () => {
    if (system) await stop();
    await fake.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts on embedded defaults, answers health checks, stops on Ctrl-C and starts again on the same data', async () => {
    await start();
    const gateway = `http://127.0.0.1:${env.PORT}`;
    const health = await fetch(`${gateway}/healthz`);
    expect(health.status).toBe(200);
    const ready = await (await fetch(`${gateway}/readyz`)).json();
    expect(ready).toMatchObject({ ready: true, checks: { temporal: { ok: true }, store: { ok: true }, docker: { ok: true } } });
    const ui = await fetch(`http://127.0.0.1:${env.TEMPORAL_UI_PORT}/`);
    expect(ui.status).toBe(200);
    // localhost, where the codec sign-in cookie lives; the gateway on loopback only by default.
    expect(system!.output()).toContain(`Web UI: http://localhost:${env.TEMPORAL_UI_PORT}`);
    expect(system!.output()).toContain(`gateway      http://localhost:${env.PORT}   (listening on 127.0.0.1:${env.PORT};`);
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(fs.existsSync(path.join(dataDir, 'temporal.sqlite'))).toBe(true);
    expect(fs.existsSync(path.join(dataDir, 'pglite'))).toBe(true);
    // With no MASTER_KEY or JWT secret configured, both are generated into the data directory, owner-only.
    for (const f of ['master.key', 'jwt.secret']) expect(fs.statSync(path.join(dataDir, f)).mode & 0o077).toBe(0);

    // The README walkthrough: a token from `npm run token`, register, store a key, a session answers.
    const tokenCmd = runEntry('bin/token.ts', { ...env, npm_config_argv: '' });
    expect(await tokenCmd.exited).toBe(0);
    const auth = { authorization: `Bearer ${tokenCmd.output().trim().split('\n').at(-1)}`, 'content-type': 'application/json' };
    const call = (method: string, p: string, body?: unknown) =>
      fetch(`${gateway}${p}`, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
    expect((await call('POST', '/v1/register')).status).toBe(200);
    expect((await call('POST', '/v1/auth/claude/apikey', { api_key: TEST_KEY })).status).toBe(200);
    const askModel = async (answer: string) => {
      fake.enqueue(text(answer));
      const created = await call('POST', '/v1/sessions', { initial_prompt: 'hello' });
      expect(created.status).toBe(201);
      const { session } = (await created.json()) as { session: { id: string } };
      await waitFor(async () => fake.requests.some((r) => JSON.stringify(r.body).includes('hello') && r.headers.authorization === `Bearer ${TEST_KEY}`));
      fake.reset();
      expect((await call('DELETE', `/v1/sessions/${session.id}`)).status).toBe(200);
    };
    await askModel('before rotation');

    expect(await stop()).toBe(0);
    await expect(fetch(`${gateway}/healthz`)).rejects.toThrow();

    // Rotating the embedded master key: the records are re-wrapped at the next start and still open.
    const rotate = runEntry('bin/rotate-key.ts', env);
    expect(await rotate.exited).toBe(0);
    expect(fs.readFileSync(path.join(dataDir, 'master.key'), 'utf8').trim().split('\n')).toHaveLength(2);
    await start();
    expect(system!.output()).toMatch(/re-wrapped sealed records under master key k2: \{"credentials":1,"profiles":0,"sessions":0,"hive_records":0\}/);
    expect((await fetch(`${gateway}/healthz`)).status).toBe(200);
    await askModel('after rotation');
    expect(await stop()).toBe(0);
    // Requests were logged (at debug level everything is), and neither the key nor the token was.
    expect(system === undefined).toBe(true);
    expect(logs.join('')).toMatch(/"path":"\/v1\/auth\/claude\/apikey","status":200/);
    expect(logs.join('')).not.toContain(TEST_KEY);
    expect(logs.join('')).not.toContain(auth.authorization.slice(7));
  }, 400_000);

  it('refuses to start on a bad configuration value, naming it', async () => {
    const bad = runEntry('bin/start.ts', { ...env, PORT: 'not-a-port', BILLING_PERIOD_SECONDS: '-5' });
    expect(await bad.exited).toBe(1);
    expect(bad.output()).toMatch(/PORT/);
    expect(bad.output()).toMatch(/BILLING_PERIOD_SECONDS/);
  });

  describe('with PostgreSQL as the store', () => {
    let pg: Awaited<ReturnType<typeof freshPostgres>>;
    let db: Db;
    let connection: Connection;
    let service: SessionService;
    let credentialId: string;
    let keyring: Keyring;

    beforeAll(async () => {
      pg = await freshPostgres();
      const shared = { DATABASE_URL: pg.url, MASTER_KEY: randomBytes(32).toString('base64'), AUTH_JWT_SECRET: 'system-test-secret' };
      const refused = runEntry('bin/start.ts', { ...env, DATABASE_URL: pg.url });
      expect(await refused.exited).toBe(1);
      expect(refused.output()).toMatch(/with DATABASE_URL set, MASTER_KEY and AUTH_JWT_SECRET or AUTH_JWKS_URL must be configured/);
      env = { ...env, ...shared };
      keyring = loadKeyring(loadConfig(env).encryption, dataDir).keyring;
      db = await openDb({ databaseUrl: pg.url });
      credentialId = await putCredential(db, keyring, { ownerId: 'u1', type: 'api_key', secret: TEST_KEY });
    });
    afterAll(async () => {
      await connection?.close();
      await db?.close();
      await pg?.drop();
    });

    it('keeps sessions across a stop and start, and ends one whose sandbox vanished meanwhile', async () => {
      await start();
      connection = await Connection.connect({ address: `127.0.0.1:${env.TEMPORAL_PORT}` });
      const config = loadConfig(env);
      service = new SessionService({ db, client: new Client({ connection, dataConverter: temporalDataConverter(config, keyring) }), config, keyring });
      const startUser = () =>
        service.start({ ownerType: 'user', ownerId: 'u1', trigger: 'user', profile: { permission_mode: 'bypassPermissions' }, credentialId });

      fake.enqueue(toolUse('Bash', { command: 'echo before > /workspace/state.txt' }), text('first done'));
      const keep = await startUser();
      const vanish = await startUser();
      await service.prompt(keep.sessionId, 'first');
      await waitFor(async () => (await listEvents(db, keep.sessionId)).some((e) => e.type === 'result'));
      await waitFor(async () => (await getSession(db, vanish.sessionId))?.status === 'running');

      expect(await stop()).toBe(0);
      // Sandboxes stay up while the system is down; one of them disappears meanwhile.
      const kept = (await getSession(db, keep.sessionId))!;
      expect((await docker.getContainer(kept.container_id!).inspect()).State.Running).toBe(true);
      await docker.getContainer((await getSession(db, vanish.sessionId))!.container_id!).remove({ force: true });
      await new Promise((r) => setTimeout(r, Number(FAST_PERIODS.BILLING_PERIOD_SECONDS) * 2000));

      await start();
      await expect(service.waitForEnd(vanish.sessionId)).resolves.toMatchObject({ endReason: 'heartbeat_stale' });

      fake.enqueue(toolUse('Bash', { command: 'cat /workspace/state.txt' }), text('second done'));
      await service.prompt(keep.sessionId, 'second');
      await waitFor(async () => (await listEvents(db, keep.sessionId)).filter((e) => e.type === 'result').length === 2);
      const results = (await listEvents(db, keep.sessionId)).filter((e) => e.type === 'tool_result');
      expect(results.at(-1)!.payload.content).toContain('before');

      // Billing covered the downtime: contiguous periods from the first.
      const periods = await billedPeriods(db, keep.sessionId);
      expect(periods).toEqual(periods.map((_, i) => i));
      expect(periods.length).toBeGreaterThanOrEqual(3);

      await service.terminate(keep.sessionId, 'user_requested');
      await expect(service.waitForEnd(keep.sessionId)).resolves.toMatchObject({ endReason: 'user_requested' });
      expect(await stop()).toBe(0);
    }, 400_000);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('condition not met in time');
}
