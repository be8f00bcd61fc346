import Docker from 'dockerode';
import type { Client } from '@temporalio/client';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import type { PlatformSecrets } from '../infra/secrets';
import { createApp, startWebServer, type WebServer } from './app';
import { createAuthenticator } from './auth';
import { createRateLimits } from './rate-limits';
import { SessionService } from './session-service';
import type { GatewayDeps } from './deps';
import { attachSessionSockets } from './ws';
import { completeUpload, requestDownload, requestUpload } from './files';
import { createPayloadCodec } from '../infra/payload-keys';
import { gatewayRegistry } from './metrics';

/** The gateway process's parts, wired once: used by `npm start` and by api/main.ts. */
export async function startGateway(p: {
  config: Config;
  db: Db;
  client: Client;
  log: Logger;
  secrets: PlatformSecrets;
  docker?: Docker;
  port?: number;
  host?: string;
}): Promise<WebServer & { deps: GatewayDeps; sockets: ReturnType<typeof attachSessionSockets> }> {
  const deps: GatewayDeps = {
    db: p.db,
    client: p.client,
    docker: p.docker ?? new Docker(),
    log: p.log,
    config: p.config,
    keyring: p.secrets.keyring,
    auth: createAuthenticator(p.config.auth, p.secrets.jwtSecret),
    service: new SessionService({ db: p.db, client: p.client, config: p.config, keyring: p.secrets.keyring }),
    rateLimits: createRateLimits(p.config.limits),
    adminToken: p.secrets.adminToken,
    payloadCodec: createPayloadCodec(p.config, p.secrets.keyring),
  };
  const web = await startWebServer(createApp(deps), p.port ?? p.config.port, p.host ?? p.config.host);
  const sockets = attachSessionSockets(web.server, {
    db: p.db,
    service: deps.service,
    config: p.config,
    log: p.log,
    auth: deps.auth,
    files: {
      upload: (userId, sessionId, body) => requestUpload(deps, userId, sessionId, body),
      complete: (userId, sessionId, body) => completeUpload(deps, userId, sessionId, body),
      download: (userId, sessionId, body) => requestDownload(deps, userId, sessionId, body),
    },
  });
  deps.metrics = gatewayRegistry({ db: p.db, wsClients: () => sockets.clients() });
  // Signed file links point at this gateway; with port 0 the port is only known now.
  if (!p.config.files.publicUrlConfigured) deps.publicUrl = web.url;
  return {
    ...web,
    deps,
    sockets,
    async stop() {
      await sockets.close();
      await web.stop();
    },
  };
}
