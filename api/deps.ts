import type Docker from 'dockerode';
import type { Client } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import type { Registry } from 'prom-client';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import type { Keyring } from '../store/encryption';
import type { Authenticator } from './auth';
import type { RateLimits } from './rate-limits';
import type { SessionService } from './session-service';

/** What the gateway's routes work with; built once per process. */
export interface GatewayDeps {
  db: Db;
  client: Client;
  docker: Docker;
  log: Logger;
  config: Config;
  keyring: Keyring;
  auth: Authenticator;
  service: SessionService;
  rateLimits: RateLimits;
  /** Guards /v1/admin; undefined disables it. */
  adminToken?: string;
  /** The base of signed file links when PUBLIC_URL is unset: the address the gateway really listens on. */
  publicUrl?: string;
  /** The Temporal payload codec, served to operators at /codec (the same one the Temporal client uses). */
  payloadCodec?: PayloadCodec;
  /** This gateway's scrape-time gauges (api/metrics.ts), set once its WebSocket layer is attached. */
  metrics?: Registry;
}
