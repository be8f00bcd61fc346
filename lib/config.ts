import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { version } from '../package.json';
import { IMAGE_REF } from './runner-images';
import { ModelPricesInput, priceTable } from './pricing';

/**
 * The one place the environment is read. Every period is configuration so
 * tests can shorten it to seconds; defaults follow the reference contract.
 */
const seconds = (fallback: number) => z.coerce.number().positive().default(fallback);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/** Ids of payload keys derived from master keys (infra/payload-keys.ts); configured ids may not take them. */
export const DERIVED_PAYLOAD_KEY_PREFIX = 'master-';
const DERIVED_PREFIX_MESSAGE = `ids must not start with "${DERIVED_PAYLOAD_KEY_PREFIX}" (kept for keys derived from master keys)`;
/** An address to listen on: an IP literal or a host name; unset lets each entry point choose (bin/start.ts loopback, the services all interfaces). */
const listenHost = optionalString.refine(
  (v) => v === undefined || net.isIP(v) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(v),
  { message: 'must be an IP address or a host name' },
);
const payloadKeyEntries = (v: string) => v.split(',').map((e) => e.trim()).filter(Boolean);

/** A 32-byte key written as 64 hex digits or base64. */
const isKey32 = (v: string) => /^[0-9a-f]{64}$/i.test(v) || (/^[A-Za-z0-9+/_-]+={0,2}$/.test(v) && Buffer.from(v, 'base64').length === 32);

const flag = (fallback: boolean) =>
  z.enum(['true', 'false', '1', '0', 'yes', 'no']).default(fallback ? 'true' : 'false').transform((v) => ['true', '1', 'yes'].includes(v));

const EnvSchema = z.object({
  TEMPORAL_ADDRESS: optionalString,
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('ai-sessions'),
  TEMPORAL_CLI_PATH: optionalString,
  TEMPORAL_PORT: z.coerce.number().int().min(1).max(65535).default(7233),
  TEMPORAL_UI_PORT: z.coerce.number().int().min(1).max(65535).default(8233),
  DATABASE_URL: optionalString.refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), {
    message: 'must be a postgres:// or postgresql:// URL',
  }),
  DATA_DIR: z.string().min(1).default('.data'),
  DOCKER_HOST: optionalString,
  RUNNER_IMAGE: z.string().min(1).default(`ai-sessions-runner:${version}`),
  /** Other images a profile may name (comma-separated refs); RUNNER_IMAGE is always allowed. */
  RUNNER_IMAGE_ALLOWLIST: z.string().optional().transform((v) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean))
    .superRefine((refs, ctx) => {
      const bad = refs.filter((r) => !IMAGE_REF.test(r));
      if (bad.length) ctx.addIssue({ code: 'custom', message: `not image references (name[:tag][@sha256:digest]): ${bad.join(', ')}` });
    }),
  WORKER_HOST_ID: optionalString,
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** The gateway's listen address; unset: 127.0.0.1 under `npm start`, 0.0.0.0 for api/main.ts (containers). */
  HOST: listenHost,
  /** The worker's own HTTP listener (/metrics, /healthz, /readyz); 0 picks a free port. */
  WORKER_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /** Its listen address; unset: 127.0.0.1 under `npm start`, 0.0.0.0 for worker/main.ts. */
  WORKER_HTTP_HOST: listenHost,
  /** The Temporal SDK's Prometheus exporter, on loopback, merged into the worker's /metrics; 0 turns it off. */
  TEMPORAL_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9465),
  /** When set, /metrics (gateway and worker) needs it as the bearer token. */
  METRICS_TOKEN: optionalString.refine((v) => v === undefined || v.length >= 16, { message: 'must be at least 16 characters' }),
  ANTHROPIC_BASE_URL: optionalString.refine((v) => v === undefined || /^https?:\/\//.test(v), {
    message: 'must be an http:// or https:// URL',
  }),
  DEFAULT_MODEL: z.string().min(1).default('claude-sonnet-4-6'),
  MODEL_MAX_TOKENS: z.coerce.number().int().min(1).max(128000).default(8192),
  /** JSON: model prefix → {input, output, cache_write?, cache_read?} in USD per million tokens, over the built-in table. */
  MODEL_PRICES: optionalString
    .transform((v, ctx) => {
      if (v === undefined) return {};
      try {
        return JSON.parse(v) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'is not valid JSON' });
        return z.NEVER;
      }
    })
    .pipe(ModelPricesInput),
  /** USD per minute of sandbox runtime, recorded with each billing period; runtime is not priced by default. */
  RUNTIME_PRICE_PER_MINUTE_USD: z.coerce.number().nonnegative().default(0),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BILLING_PERIOD_SECONDS: seconds(60),
  APPROVAL_TIMEOUT_SECONDS: seconds(300),
  STARTUP_TIMEOUT_SECONDS: seconds(120),
  MAX_TTL_SECONDS: seconds(86400),
  SANDBOX_CHECK_SECONDS: seconds(30),
  /** A user session idle this long (no prompt, no turn, nothing pending) is hibernated; 0 never hibernates. */
  HIBERNATE_IDLE_SECONDS: z.coerce.number().nonnegative().default(900),
  MODEL_CALL_TIMEOUT_SECONDS: seconds(600),
  ACTIVITY_HEARTBEAT_SECONDS: seconds(30),
  TOOL_TIMEOUT_SECONDS: seconds(120),
  TOOL_MAX_TIMEOUT_SECONDS: seconds(600),
  TOOL_OUTPUT_LIMIT_BYTES: z.coerce.number().int().min(1024).default(30000),
  /** MCP servers: connecting and listing tools at session start, each call, and the size of a result (text and images). */
  MCP_CONNECT_TIMEOUT_SECONDS: seconds(30),
  MCP_CALL_TIMEOUT_SECONDS: seconds(120),
  MCP_RESULT_MAX_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  SANDBOX_CPUS: z.coerce.number().positive().max(64).default(1),
  SANDBOX_MEMORY_MB: z.coerce.number().int().min(64).default(1024),
  SANDBOX_PIDS_LIMIT: z.coerce.number().int().min(16).default(256),
  AUTH_JWT_SECRET: optionalString,
  AUTH_JWKS_URL: optionalString.refine((v) => v === undefined || /^https?:\/\//.test(v), {
    message: 'must be an http:// or https:// URL',
  }),
  AUTH_ISSUER: optionalString,
  AUTH_AUDIENCE: optionalString,
  ADMIN_TOKEN: optionalString.refine((v) => v === undefined || v.length >= 24, { message: 'must be at least 24 characters' }),
  MASTER_KEY: optionalString,
  MASTER_KEY_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)').default('k1'),
  /** Retired master keys, still needed to open records not yet re-wrapped: "id:base64key,id:base64key". */
  MASTER_KEYS_RETIRED: optionalString,
  /** Temporal payloads are encrypted (AES-256-GCM); without PAYLOAD_KEY the key is derived from the master key. */
  PAYLOAD_KEY: optionalString.refine((v) => v === undefined || isKey32(v), { message: 'must be 32 bytes, as 64 hex digits or base64' }),
  PAYLOAD_KEY_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)')
    .refine((v) => !v.startsWith(DERIVED_PAYLOAD_KEY_PREFIX), { message: DERIVED_PREFIX_MESSAGE })
    .default('p1'),
  /** Retired payload keys, still needed to decode older history: "id:key,id:key". */
  PAYLOAD_KEYS_RETIRED: optionalString.superRefine((v, ctx) => {
    if (v === undefined) return;
    const entries = payloadKeyEntries(v);
    if (!entries.every((e) => /^[A-Za-z0-9_.-]{1,64}:/.test(e) && isKey32(e.slice(e.indexOf(':') + 1)))) {
      ctx.addIssue({ code: 'custom', message: 'entries are id:key, each key 32 bytes as 64 hex digits or base64' });
      return;
    }
    // A repeated id would silently replace the other key, leaving older history undecodable. Ids are not secret; keys never appear.
    const ids = entries.map((e) => e.slice(0, e.indexOf(':')));
    if (ids.some((id) => id.startsWith(DERIVED_PAYLOAD_KEY_PREFIX))) ctx.addIssue({ code: 'custom', message: DERIVED_PREFIX_MESSAGE });
    const twice = [...new Set(ids.filter((id, i) => ids.indexOf(id) !== i))];
    if (twice.length) ctx.addIssue({ code: 'custom', message: `each id at most once; repeated: ${twice.join(', ')}` });
  }),
  /** Browser origins allowed to call the codec endpoint (the Temporal Web UI); default the embedded UI. */
  CODEC_CORS_ORIGINS: optionalString,
  /** How long an operator's codec sign-in (an HttpOnly cookie) lasts. */
  OPERATOR_SESSION_SECONDS: seconds(8 * 3600),
  REGISTRATION_EMAIL_DOMAINS: optionalString,
  MAX_CONCURRENT_SESSIONS: z.coerce.number().int().min(1).default(10),
  IDEMPOTENCY_WINDOW_SECONDS: seconds(86400),
  MAX_PROFILES: z.coerce.number().int().min(2).default(10),
  RATE_LIMIT_WINDOW_SECONDS: seconds(60),
  RATE_LIMIT_REGISTRATIONS: z.coerce.number().int().min(1).default(10),
  RATE_LIMIT_SESSION_CREATES: z.coerce.number().int().min(1).default(10),
  RATE_LIMIT_PROMPTS: z.coerce.number().int().min(1).default(60),
  RATE_LIMIT_UPLOADS: z.coerce.number().int().min(1).default(10),
  /** File transfer: where bytes wait (default <DATA_DIR>/blobs; a directory every gateway and worker shares in production). */
  BLOB_DIR: optionalString,
  UPLOAD_MAX_BYTES: z.coerce.number().int().min(1).default(100 * 1024 * 1024),
  /** How long a signed upload or download link works. */
  FILE_URL_TTL_SECONDS: seconds(3600),
  /** The HMAC key of signed file links; derived from the master key when unset. */
  FILE_URL_SECRET: optionalString.refine((v) => v === undefined || v.length >= 32, { message: 'must be at least 32 characters' }),
  /** The gateway's address as clients reach it, the base of signed file links (default http://localhost:<PORT>). */
  PUBLIC_URL: optionalString.refine((v) => v === undefined || /^https?:\/\/[^/]/.test(v), {
    message: 'must be an http:// or https:// URL',
  }),
  WS_MESSAGES_PER_SECOND: z.coerce.number().int().min(1).default(100),
  WS_PING_SECONDS: seconds(30),
  WS_IDLE_SECONDS: seconds(60),
  WS_REPLAY_SECONDS: seconds(60),
  WS_MAX_MESSAGE_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  /** Claude account sign-in (authorization code with PKCE); the flow is off until a client id is set. */
  CLAUDE_OAUTH_AUTHORIZE_URL: z.string().regex(/^https?:\/\//, 'must be an http:// or https:// URL').default('https://claude.ai/oauth/authorize'),
  CLAUDE_OAUTH_TOKEN_URL: z.string().regex(/^https?:\/\//, 'must be an http:// or https:// URL').default('https://console.anthropic.com/v1/oauth/token'),
  CLAUDE_OAUTH_TOKEN_FORMAT: z.enum(['json', 'form']).default('json'),
  CLAUDE_OAUTH_CLIENT_ID: optionalString,
  CLAUDE_OAUTH_REDIRECT_URI: z.string().min(1).default('https://console.anthropic.com/oauth/code/callback'),
  CLAUDE_OAUTH_SCOPES: z.string().min(1).default('user:profile user:inference'),
  OAUTH_FLOW_TTL_SECONDS: seconds(300),
  /** WebFetch (fetched by the worker): loopback, private and link-local targets are refused unless allowed; cloud metadata always is. */
  WEBFETCH_ALLOW_PRIVATE: flag(false),
  WEBFETCH_TIMEOUT_SECONDS: seconds(30),
  WEBFETCH_MAX_BYTES: z.coerce.number().int().min(1024).default(5 * 1024 * 1024),
  /** WebSearch: a SearXNG-compatible JSON endpoint; without one the tool is not offered. */
  WEBSEARCH_URL: optionalString.refine((v) => v === undefined || /^https?:\/\//.test(v), { message: 'must be an http:// or https:// URL' }),
  WEBSEARCH_MAX_RESULTS: z.coerce.number().int().min(1).max(50).default(10),
  /** Org outputs (webhooks): each delivery is retried with exponential backoff up to the attempt limit. */
  OUTPUT_TIMEOUT_SECONDS: seconds(15),
  OUTPUT_RETRY_INITIAL_SECONDS: seconds(5),
  OUTPUT_RETRY_MAX_SECONDS: seconds(600),
  OUTPUT_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(10),
  /** Lets webhooks reach loopback and private addresses (a receiver on the same host or network). */
  OUTPUT_ALLOW_PRIVATE: flag(false),
  /** The reaper: how often it runs, and how long ended sessions' records and archives are kept. */
  REAPER_PERIOD_SECONDS: seconds(60),
  SESSION_RETENTION_SECONDS: seconds(30 * 86400),
  /** Hibernation archives in an S3-compatible bucket instead of <BLOB_DIR>/archives; credentials default to the SDK's chain. */
  ARCHIVE_S3_BUCKET: optionalString,
  ARCHIVE_S3_ENDPOINT: optionalString.refine((v) => v === undefined || /^https?:\/\/[^/]/.test(v), { message: 'must be an http:// or https:// URL' }),
  ARCHIVE_S3_REGION: z.string().min(1).default('us-east-1'),
  ARCHIVE_S3_PREFIX: z.string().refine((v) => !v.startsWith('/'), { message: 'must not start with /' }).default('archives/'),
  ARCHIVE_S3_FORCE_PATH_STYLE: flag(false),
  ARCHIVE_S3_ACCESS_KEY_ID: optionalString,
  ARCHIVE_S3_SECRET_ACCESS_KEY: optionalString,
}).superRefine((env, ctx) => {
  // Messages name the variables, never their values.
  if (env.PAYLOAD_KEY && payloadKeyEntries(env.PAYLOAD_KEYS_RETIRED ?? '').some((e) => e.slice(0, e.indexOf(':')) === env.PAYLOAD_KEY_ID)) {
    ctx.addIssue({ code: 'custom', path: ['PAYLOAD_KEYS_RETIRED'], message: 'an id equal to PAYLOAD_KEY_ID would replace the current key' });
  }
  if ((env.ARCHIVE_S3_ACCESS_KEY_ID === undefined) !== (env.ARCHIVE_S3_SECRET_ACCESS_KEY === undefined)) {
    const missing = env.ARCHIVE_S3_ACCESS_KEY_ID === undefined ? 'ARCHIVE_S3_ACCESS_KEY_ID' : 'ARCHIVE_S3_SECRET_ACCESS_KEY';
    ctx.addIssue({ code: 'custom', path: [missing], message: 'set both ARCHIVE_S3_ACCESS_KEY_ID and ARCHIVE_S3_SECRET_ACCESS_KEY, or neither' });
  }
});

export type Config = ReturnType<typeof toConfig>;

function toConfig(env: z.infer<typeof EnvSchema>) {
  const dataDir = path.resolve(env.DATA_DIR);
  return {
    version,
    temporal: {
      address: env.TEMPORAL_ADDRESS,
      namespace: env.TEMPORAL_NAMESPACE,
      taskQueue: env.TEMPORAL_TASK_QUEUE,
      cliPath: env.TEMPORAL_CLI_PATH,
      port: env.TEMPORAL_PORT,
      uiPort: env.TEMPORAL_UI_PORT,
    },
    databaseUrl: env.DATABASE_URL,
    dataDir,
    files: {
      // A shared directory in production (gateways serve it, the worker on each Docker host fills and empties it).
      blobDir: env.BLOB_DIR ? path.resolve(env.BLOB_DIR) : path.join(dataDir, 'blobs'),
      maxBytes: env.UPLOAD_MAX_BYTES,
      urlTtlSeconds: env.FILE_URL_TTL_SECONDS,
      urlSecret: env.FILE_URL_SECRET,
      publicUrl: (env.PUBLIC_URL ?? `http://localhost:${env.PORT}`).replace(/\/+$/, ''),
      /** False when PUBLIC_URL is unset: the gateway then uses the address it really listens on. */
      publicUrlConfigured: env.PUBLIC_URL !== undefined,
    },
    docker: { host: env.DOCKER_HOST, hostId: env.WORKER_HOST_ID },
    runnerImage: env.RUNNER_IMAGE,
    runnerImageAllowlist: env.RUNNER_IMAGE_ALLOWLIST,
    port: env.PORT,
    /** Undefined when HOST is unset: the entry point picks its own default. */
    host: env.HOST,
    metrics: { token: env.METRICS_TOKEN, workerPort: env.WORKER_HTTP_PORT, workerHost: env.WORKER_HTTP_HOST, temporalPort: env.TEMPORAL_METRICS_PORT },
    model: {
      baseURL: env.ANTHROPIC_BASE_URL,
      defaultModel: env.DEFAULT_MODEL,
      maxTokens: env.MODEL_MAX_TOKENS,
    },
    pricing: {
      models: priceTable(env.MODEL_PRICES),
      runtimePerMinuteUsd: env.RUNTIME_PRICE_PER_MINUTE_USD,
    },
    logLevel: env.LOG_LEVEL,
    periods: {
      billingSeconds: env.BILLING_PERIOD_SECONDS,
      approvalTimeoutSeconds: env.APPROVAL_TIMEOUT_SECONDS,
      startupTimeoutSeconds: env.STARTUP_TIMEOUT_SECONDS,
      maxTtlSeconds: env.MAX_TTL_SECONDS,
      sandboxCheckSeconds: env.SANDBOX_CHECK_SECONDS,
      hibernateIdleSeconds: env.HIBERNATE_IDLE_SECONDS,
      modelCallTimeoutSeconds: env.MODEL_CALL_TIMEOUT_SECONDS,
      heartbeatSeconds: env.ACTIVITY_HEARTBEAT_SECONDS,
    },
    tools: {
      defaultTimeoutSeconds: env.TOOL_TIMEOUT_SECONDS,
      maxTimeoutSeconds: env.TOOL_MAX_TIMEOUT_SECONDS,
      outputLimitBytes: env.TOOL_OUTPUT_LIMIT_BYTES,
    },
    mcp: {
      connectTimeoutSeconds: env.MCP_CONNECT_TIMEOUT_SECONDS,
      callTimeoutSeconds: env.MCP_CALL_TIMEOUT_SECONDS,
      resultMaxBytes: env.MCP_RESULT_MAX_BYTES,
    },
    auth: {
      jwtSecret: env.AUTH_JWT_SECRET,
      jwksUrl: env.AUTH_JWKS_URL,
      issuer: env.AUTH_ISSUER,
      audience: env.AUTH_AUDIENCE,
      adminToken: env.ADMIN_TOKEN,
    },
    encryption: {
      masterKey: env.MASTER_KEY,
      masterKeyId: env.MASTER_KEY_ID,
      retiredKeys: env.MASTER_KEYS_RETIRED,
    },
    payloads: {
      key: env.PAYLOAD_KEY,
      keyId: env.PAYLOAD_KEY_ID,
      retiredKeys: env.PAYLOAD_KEYS_RETIRED,
    },
    codec: {
      corsOrigins: env.CODEC_CORS_ORIGINS?.split(',').map((o) => o.trim().replace(/\/+$/, '')).filter(Boolean) ?? [
        `http://localhost:${env.TEMPORAL_UI_PORT}`,
        `http://127.0.0.1:${env.TEMPORAL_UI_PORT}`,
      ],
      operatorSessionSeconds: env.OPERATOR_SESSION_SECONDS,
    },
    registration: {
      emailDomains: env.REGISTRATION_EMAIL_DOMAINS?.split(',').map((d) => d.trim().toLowerCase()).filter(Boolean),
    },
    limits: {
      maxConcurrentSessions: env.MAX_CONCURRENT_SESSIONS,
      idempotencyWindowSeconds: env.IDEMPOTENCY_WINDOW_SECONDS,
      maxProfiles: env.MAX_PROFILES,
      rateWindowSeconds: env.RATE_LIMIT_WINDOW_SECONDS,
      registrations: env.RATE_LIMIT_REGISTRATIONS,
      sessionCreates: env.RATE_LIMIT_SESSION_CREATES,
      prompts: env.RATE_LIMIT_PROMPTS,
      uploads: env.RATE_LIMIT_UPLOADS,
    },
    ws: {
      messagesPerSecond: env.WS_MESSAGES_PER_SECOND,
      pingSeconds: env.WS_PING_SECONDS,
      idleSeconds: env.WS_IDLE_SECONDS,
      replaySeconds: env.WS_REPLAY_SECONDS,
      maxMessageBytes: env.WS_MAX_MESSAGE_BYTES,
    },
    claudeOAuth: {
      authorizeUrl: env.CLAUDE_OAUTH_AUTHORIZE_URL,
      tokenUrl: env.CLAUDE_OAUTH_TOKEN_URL,
      tokenFormat: env.CLAUDE_OAUTH_TOKEN_FORMAT,
      clientId: env.CLAUDE_OAUTH_CLIENT_ID,
      redirectUri: env.CLAUDE_OAUTH_REDIRECT_URI,
      scopes: env.CLAUDE_OAUTH_SCOPES,
      flowTtlSeconds: env.OAUTH_FLOW_TTL_SECONDS,
    },
    webFetch: {
      allowPrivate: env.WEBFETCH_ALLOW_PRIVATE,
      timeoutSeconds: env.WEBFETCH_TIMEOUT_SECONDS,
      maxBytes: env.WEBFETCH_MAX_BYTES,
    },
    webSearch: {
      url: env.WEBSEARCH_URL,
      maxResults: env.WEBSEARCH_MAX_RESULTS,
    },
    outputs: {
      timeoutSeconds: env.OUTPUT_TIMEOUT_SECONDS,
      allowPrivate: env.OUTPUT_ALLOW_PRIVATE,
      retry: {
        initialSeconds: env.OUTPUT_RETRY_INITIAL_SECONDS,
        maxSeconds: env.OUTPUT_RETRY_MAX_SECONDS,
        maxAttempts: env.OUTPUT_MAX_ATTEMPTS,
      },
    },
    sandbox: {
      cpus: env.SANDBOX_CPUS,
      memoryMb: env.SANDBOX_MEMORY_MB,
      pidsLimit: env.SANDBOX_PIDS_LIMIT,
    },
    reaper: {
      periodSeconds: env.REAPER_PERIOD_SECONDS,
      retentionSeconds: env.SESSION_RETENTION_SECONDS,
    },
    archives: {
      /** Set when ARCHIVE_S3_BUCKET is; otherwise archives are files in <BLOB_DIR>/archives. */
      s3: env.ARCHIVE_S3_BUCKET === undefined ? undefined : {
        bucket: env.ARCHIVE_S3_BUCKET,
        endpoint: env.ARCHIVE_S3_ENDPOINT,
        region: env.ARCHIVE_S3_REGION,
        prefix: env.ARCHIVE_S3_PREFIX,
        forcePathStyle: env.ARCHIVE_S3_FORCE_PATH_STYLE,
        credentials: env.ARCHIVE_S3_ACCESS_KEY_ID && env.ARCHIVE_S3_SECRET_ACCESS_KEY
          ? { accessKeyId: env.ARCHIVE_S3_ACCESS_KEY_ID, secretAccessKey: env.ARCHIVE_S3_SECRET_ACCESS_KEY }
          : undefined,
      },
    },
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment; throws a ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return toConfig(parsed.data);
}
