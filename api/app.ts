import http from 'node:http';
import express from 'express';
import type { GatewayDeps } from './deps';
import { requireUser } from './auth';
import { AppError, errorMiddleware, notFound } from './errors';
import { registerRoutes } from './routes/register';
import { claudeAuthRoutes } from './routes/claude-auth';
import { claudeOAuthRoutes } from './routes/claude-oauth';
import { profileRoutes } from './routes/profiles';
import { sessionRoutes } from './routes/sessions';
import { forkRoutes } from './routes/fork';
import { approvalRoutes } from './routes/approvals';
import { blobRoutes, fileRoutes } from './routes/files';
import { openApiDocument } from './openapi';
import { adminRoutes } from './routes/admin';
import { codecRoutes } from './routes/codec';
import { outputRoutes } from './routes/outputs';
import { hiveRoutes } from './routes/hive';
import { parseAgentRecord } from '../lib/dr/action';
import { drRoutes } from './routes/dr';
import { ruleRoutes } from './routes/rules';
import { orgSessionRoutes } from './routes/org-sessions';
import { userAuditRoutes } from './routes/audit';
import { orgUsageRoutes, userUsageRoutes } from './routes/usage';
import { check, readyzHandler } from '../lib/health';
import { metricsHandler } from '../lib/metrics-endpoint';
import { describeBind, listen, listenerUrl } from '../lib/listen';

/** The gateway's HTTP app. Routes stay thin; the domain lives in services and the store. */
export function createApp(deps: GatewayDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  // Signed file links: authorised by their signature, not a bearer token; the body is the file, not JSON.
  app.use(blobRoutes(deps));
  app.use(express.json({ limit: '1mb' }));
  app.use(requestLog(deps.log));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', version: deps.config.version });
  });

  app.get('/readyz', readyzHandler({
    token: deps.config.metrics.token,
    log: deps.log,
    checks: () => [
      check('temporal', () => deps.client.workflowService.getSystemInfo({})),
      check('store', () => deps.db.query('SELECT 1')),
      check('docker', () => deps.docker.ping()),
    ],
  }));

  // On the API port for one scrape target per gateway; METRICS_TOKEN closes it (lib/metrics-endpoint.ts).
  app.get('/metrics', metricsHandler({ token: deps.config.metrics.token, registries: () => (deps.metrics ? [deps.metrics] : []) }));

  app.get('/openapi', (_req, res) => {
    res.json(openApiDocument(deps.config.version));
  });

  // Admin and org endpoints authenticate with their own tokens, never a user's JWT.
  app.use(adminRoutes(deps));
  app.use(codecRoutes(deps));
  // ai_agent records are checked against the record schema when saved, not only when a rule uses them.
  app.use(hiveRoutes(deps, (data, at) => void parseAgentRecord(data, at)));
  app.use(outputRoutes(deps));
  app.use(drRoutes(deps));
  app.use(ruleRoutes(deps));
  app.use(orgUsageRoutes(deps));
  app.use(orgSessionRoutes(deps));
  // Org and admin routes above take YAML and NDJSON too; the user API below only JSON.
  app.use('/v1', requireJsonBody);
  app.use('/v1', requireUser(deps.auth));
  app.use(registerRoutes(deps));
  app.use(claudeAuthRoutes(deps));
  app.use(claudeOAuthRoutes(deps));
  app.use(profileRoutes(deps));
  app.use(sessionRoutes(deps));
  app.use(forkRoutes(deps));
  app.use(approvalRoutes(deps));
  app.use(userUsageRoutes(deps));
  app.use(fileRoutes(deps));
  app.use(userAuditRoutes(deps));

  app.use((_req, _res, next) => next(notFound('no such endpoint')));
  app.use(errorMiddleware(deps.log));
  return app;
}

/**
 * A body that is not JSON would reach the routes as no body at all and fail
 * with a confusing validation message; say what is wrong instead. Requests
 * without a body (several POSTs take none) pass.
 */
const requireJsonBody: express.RequestHandler = (req, _res, next) => {
  const length = Number(req.headers['content-length'] ?? 0);
  const hasBody = length > 0 || /\bchunked\b/i.test(req.headers['transfer-encoding'] ?? '');
  if (hasBody && ['POST', 'PUT', 'PATCH'].includes(req.method) && !req.is('application/json')) {
    return next(new AppError(415, 'unsupported_media_type', 'send the body as JSON with Content-Type: application/json'));
  }
  next();
};

/** One line per request; the path only, so a `?token=` never reaches the log. */
function requestLog(log: GatewayDeps['log']): express.RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.on('finish', () => {
      log.info(
        { method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - started), user: req.principal?.userId },
        'request',
      );
    });
    next();
  };
}

export interface WebServer {
  url: string;
  host: string;
  port: number;
  /** The bound address and port, e.g. "127.0.0.1:8080". */
  listening: string;
  server: http.Server;
  stop(): Promise<void>;
}

export async function startWebServer(app: express.Express, port: number, host = '0.0.0.0'): Promise<WebServer> {
  const server = http.createServer(app);
  const bound = await listen(server, port, host, { port: 'PORT', host: 'HOST' });
  return {
    url: listenerUrl(host, bound),
    host,
    port: bound,
    listening: describeBind(host, bound),
    server,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
