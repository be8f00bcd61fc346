import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type Docker from 'dockerode';
import type { NativeConnection } from '@temporalio/worker';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import { check, readyzHandler } from '../lib/health';
import { workerRegistry } from '../lib/metrics';
import { metricsHandler, scrapeText } from '../lib/metrics-endpoint';
import { temporalMetricsUrl } from './telemetry';

export interface WorkerHttp {
  url: string;
  stop(): Promise<void>;
}

/**
 * The worker's operator endpoints on WORKER_HTTP_PORT: /healthz (the process
 * answers), /readyz (Temporal, the store and this host's Docker engine) and
 * /metrics (activities' metrics plus the Temporal SDK's).
 */
export async function startWorkerHttp(deps: {
  config: Config;
  db: Db;
  connection: NativeConnection;
  docker: Docker;
  /** Where failed readiness checks are logged in full. */
  log: Logger;
  port?: number;
  host?: string;
}): Promise<WorkerHttp> {
  const { config } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', version: config.version });
  });
  app.get('/readyz', readyzHandler({
    token: config.metrics.token,
    log: deps.log,
    checks: () => [
      check('temporal', () => deps.connection.workflowService.getSystemInfo({})),
      check('store', () => deps.db.query('SELECT 1')),
      check('docker', () => deps.docker.ping()),
    ],
  }));
  const sdkUrl = temporalMetricsUrl(config);
  app.get('/metrics', metricsHandler({
    token: config.metrics.token,
    registries: () => [workerRegistry],
    ...(sdkUrl ? { extra: () => scrapeText(sdkUrl) } : {}),
  }));
  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'not_found', message: 'no such endpoint' } });
  });

  const server = http.createServer(app);
  const host = deps.host ?? '0.0.0.0';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.port ?? config.metrics.workerPort, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host === '0.0.0.0' ? 'localhost' : host}:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
