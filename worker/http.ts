import http from 'node:http';
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
import { describeBind, listen, listenerUrl } from '../lib/listen';

export interface WorkerHttp {
  url: string;
  host: string;
  port: number;
  /** The bound address and port, e.g. "127.0.0.1:9464". */
  listening: string;
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
  const host = deps.host ?? config.metrics.workerHost ?? '0.0.0.0';
  const port = await listen(server, deps.port ?? config.metrics.workerPort, host, { port: 'WORKER_HTTP_PORT', host: 'WORKER_HTTP_HOST' });
  return {
    url: listenerUrl(host, port),
    host,
    port,
    listening: describeBind(host, port),
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
