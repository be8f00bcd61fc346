import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import type { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../lib/config';
import { createLogger, type Logger } from '../lib/log';
import { ListenError } from '../lib/listen';
import { loadSecrets } from '../infra/secrets';
import { openDb } from '../store/db';
import { findTemporalCli } from '../infra/temporal-cli';
import { startDevServer } from '../infra/temporal-dev-server';
import { startWebServer } from '../api/app';
import { startGateway } from '../api/gateway';
import { startWorkerHttp } from '../worker/http';
import { freePort } from './support/global-setup';
import { TEST_JWT_SECRET, useHarness } from './support/harness';
import { mintToken } from '../api/auth';

/**
 * What a new user's first `npm start` exposes: the data directory's modes,
 * the addresses listeners bind, a port already in use, and bodies sent
 * without a JSON content type.
 */

const mode = (p: string) => fs.statSync(p).mode & 0o777;
const quietLog = () => ({ warn: jest.fn(), info: jest.fn(), debug: jest.fn(), error: jest.fn() }) as unknown as Logger & { warn: jest.Mock };

describe('the data directory is owner-only', () => {
  let root: string;
  const oldUmask = process.umask(0o022); // the usual umask, under which the walkthrough saw 0755 and 0666
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-modes-'));
    fs.chmodSync(root, 0o755);
  });
  afterAll(() => {
    process.umask(oldUmask);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('creates DATA_DIR 0700 with its generated secrets', () => {
    const dataDir = path.join(root, 'fresh', 'data');
    const config = loadConfig({ DATA_DIR: dataDir });
    const log = quietLog();
    loadSecrets(config, log);
    expect(mode(dataDir)).toBe(0o700);
    expect(fs.existsSync(path.join(dataDir, 'master.key'))).toBe(true);
    expect(log.warn.mock.calls.some(([, msg]) => /changed its mode/.test(String(msg)))).toBe(false);
  });

  it('tightens an existing 0755 DATA_DIR at start, and says so', () => {
    const dataDir = path.join(root, 'old');
    fs.mkdirSync(dataDir, { mode: 0o755 });
    fs.chmodSync(dataDir, 0o755);
    const log = quietLog();
    loadSecrets(loadConfig({ DATA_DIR: dataDir }), log);
    expect(mode(dataDir)).toBe(0o700);
    expect(log.warn).toHaveBeenCalledWith({ dir: dataDir, was: '755' }, expect.stringMatching(/DATA_DIR was open to other users: changed its mode to 0700/));
  });

  it('creates the PGlite directory and its parents 0700', async () => {
    const dataDir = path.join(root, 'store');
    const db = await openDb({ pgliteDir: path.join(dataDir, 'pglite') });
    try {
      expect(mode(dataDir)).toBe(0o700);
      expect(mode(path.join(dataDir, 'pglite'))).toBe(0o700);
    } finally {
      await db.close();
    }
  });

  it("creates the embedded Temporal's database directory 0700", async () => {
    const dataDir = path.join(root, 'temporal');
    const server = await startDevServer({
      cliPath: await findTemporalCli(process.env.TEMPORAL_CLI_PATH, createLogger('silent')),
      dbFile: path.join(dataDir, 'temporal.sqlite'),
      port: await freePort(),
      uiPort: await freePort(),
      namespace: 'default',
      searchAttributes: [],
      log: createLogger('silent'),
    });
    try {
      expect(mode(dataDir)).toBe(0o700);
      expect(fs.existsSync(path.join(dataDir, 'temporal.sqlite'))).toBe(true);
      // The address printed for the Web UI is localhost, where the codec sign-in cookie lives.
      expect(server.uiUrl).toMatch(/^http:\/\/localhost:\d+$/);
    } finally {
      await server.stop();
    }
  }, 90_000);
});

describe('a port already in use', () => {
  let holder: net.Server;
  let port: number;
  beforeAll(async () => {
    holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    port = (holder.address() as net.AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => holder.close(() => resolve())));

  it('is one clear error naming PORT for the gateway', async () => {
    const err = await startWebServer(express(), port, '127.0.0.1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect((err as Error).message).toBe(`port ${port} on 127.0.0.1 is already in use (PORT); stop what holds it or set PORT to a free port`);
  });

  it('is one clear error naming WORKER_HTTP_PORT for the worker', async () => {
    const config = loadConfig({ WORKER_HTTP_PORT: String(port), WORKER_HTTP_HOST: '127.0.0.1' });
    const err = await startWorkerHttp({
      config,
      db: {} as never,
      connection: {} as NativeConnection,
      docker: {} as never,
      log: createLogger('silent'),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect((err as Error).message).toMatch(new RegExp(`^port ${port} on 127\\.0\\.0\\.1 is already in use \\(WORKER_HTTP_PORT\\).*WORKER_HTTP_PORT`));
  });
});

describe('the gateway', () => {
  const h = useHarness({ noWorker: true });

  it('binds HOST: with HOST=127.0.0.1 it is not reachable on another local address', async () => {
    const gateway = await startGateway({
      config: loadConfig({ ...h.env, HOST: '127.0.0.1', PORT: '0' }),
      db: h.db,
      client: h.client,
      log: createLogger('silent'),
      secrets: { keyring: h.keyring, jwtSecret: TEST_JWT_SECRET },
      docker: h.docker,
    });
    try {
      expect(gateway.listening).toBe(`127.0.0.1:${gateway.port}`);
      expect(gateway.url).toBe(`http://127.0.0.1:${gateway.port}`);
      expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
      const other = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
      if (!other) return; // no non-loopback IPv4 address on this machine: nothing else to try
      const connected = await new Promise<boolean>((resolve) => {
        const s = net.connect(gateway.port, other.address, () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
      expect(connected).toBe(false);
    } finally {
      await gateway.stop();
    }
  });

  describe('with a request body that is not JSON', () => {
    let url: string;
    let token: string;
    beforeAll(async () => {
      url = (await h.startGateway()).url;
      token = await mintToken(TEST_JWT_SECRET, { sub: 'user-415', email: 'user-415@example.com' });
    });

    const send = (method: string, p: string, body: string | undefined, headers: Record<string, string> = {}) =>
      fetch(`${url}${p}`, { method, headers: { authorization: `Bearer ${token}`, ...headers }, body });

    it.each([
      ['POST', '/v1/sessions/x/approvals/y', '{"decision":"y"}', {}],
      ['POST', '/v1/profiles', '{"name":"p"}', { 'content-type': 'text/plain' }],
      ['PUT', '/v1/profiles/p1', 'name=p', { 'content-type': 'application/x-www-form-urlencoded' }],
      ['PATCH', '/v1/sessions/x', '{}', { 'content-type': 'text/plain' }],
    ])('%s %s answers 415 and says what to send', async (method, p, body, headers) => {
      const res = await send(method, p, body, headers);
      expect(res.status).toBe(415);
      expect(await res.json()).toEqual({
        error: { code: 'unsupported_media_type', message: 'send the body as JSON with Content-Type: application/json' },
      });
    });

    it('answers 415 to a chunked body too', async () => {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(`${url}/v1/profiles`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.once('error', reject);
        req.write('{"name":');
        req.end('"p"}');
      });
      expect(status).toBe(415);
    });

    it('lets requests without a body through, and JSON as before', async () => {
      const register = await send('POST', '/v1/register', undefined);
      expect(register.status).not.toBe(415);
      expect(register.status).toBeLessThan(300);
      const json = await send('POST', '/v1/sessions/nope/approvals/r1', JSON.stringify({ decision: 'y' }), { 'content-type': 'application/json; charset=utf-8' });
      expect(json.status).not.toBe(415);
    });

    it('leaves the signed blob upload (a raw body) alone', async () => {
      const res = await send('PUT', '/v1/io/blobs/some-id?exp=1&sig=x', 'raw bytes', { 'content-type': 'application/octet-stream' });
      expect(res.status).not.toBe(415);
    });
  });
});
