import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response, type NextFunction } from 'express';
import type Docker from 'dockerode';
import type { Client } from '@temporalio/client';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';

export interface AppDeps {
  db: Db;
  client: Client;
  docker: Docker;
  log: Logger;
  version: string;
}

/** The gateway's HTTP app. Routes stay thin; the domain lives in services. */
export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '1mb' }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', version: deps.version });
  });

  app.get('/readyz', async (_req, res) => {
    const checks = await Promise.all([
      check('temporal', () => deps.client.workflowService.getSystemInfo({})),
      check('store', () => deps.db.query('SELECT 1')),
      check('docker', () => deps.docker.ping()),
    ]);
    const ready = checks.every((c) => c.ok);
    res.status(ready ? 200 : 503).json({ ready, checks: Object.fromEntries(checks.map((c) => [c.name, c])) });
  });

  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'not_found', message: 'no such endpoint' } });
  });
  app.use((err: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    const status = err.status && err.status >= 400 && err.status < 500 ? err.status : 500;
    if (status === 500) deps.log.error({ err: err.message }, 'request failed');
    const message = err.type === 'entity.parse.failed' ? 'request body is not valid JSON' : status === 500 ? 'internal error' : err.message;
    res.status(status).json({ error: { code: status === 500 ? 'internal' : 'bad_request', message } });
  });
  return app;
}

async function check(name: string, fn: () => Promise<unknown>) {
  const started = Date.now();
  try {
    await Promise.race([fn(), new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), 3000))]);
    return { name, ok: true, ms: Date.now() - started };
  } catch (err) {
    return { name, ok: false, error: (err as Error).message };
  }
}

export interface WebServer {
  url: string;
  stop(): Promise<void>;
}

export async function startWebServer(app: express.Express, port: number, host = '0.0.0.0'): Promise<WebServer> {
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' ? 'localhost' : host;
  return {
    url: `http://${shownHost}:${addr.port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
