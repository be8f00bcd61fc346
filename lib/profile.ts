import { z } from 'zod';
import { PERMISSION_MODES, validatePatterns, type PermissionMode, type PermissionRules } from './permissions';
import { IMAGE_REF } from './runner-images';
import { MAX_MCP_SERVER_NAME } from './mcp';

/** Names the sandbox environment may not override: they would change how tools run. */
const RESERVED_ENV = /^(PATH|HOME|USER|LD_[A-Z_]*|PYTHON(PATH|HOME))$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const toolList = z.array(z.string()).max(200).superRefine((patterns, ctx) => {
  for (const message of validatePatterns(patterns)) ctx.addIssue({ code: 'custom', message });
});

// A missing field says when it is required (the path names the field); other problems keep zod's message.
const required = (type: string) => ({
  error: (iss: { input?: unknown }) => (iss.input === undefined ? `required when type is ${type}` : undefined),
});
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const mcpServer = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('http'),
    url: z.string(required('http')).regex(/^https?:\/\/[^/\s]/, 'url must be an http:// or https:// URL'),
    headers: z.record(z.string().regex(HEADER_NAME, 'not a valid HTTP header name'),
      z.string().max(8192).regex(/^[^\r\n\0]*$/, 'header values cannot hold line breaks')).optional(),
  }).strict(),
  z.object({
    type: z.literal('stdio'),
    command: z.string(required('stdio')).min(1, 'command cannot be empty'),
    args: z.array(z.string()).max(256).optional(),
    env: z.record(z.string().regex(ENV_NAME, 'environment names are letters, digits and _'), z.string().max(32768)).optional(),
  }).strict(),
], { error: (iss) => (iss.code === 'invalid_union' ? 'must be "http" or "stdio"' : undefined) });

/**
 * A session's settings: a user profile, an ai_agent record or an inline D&R
 * profile all reduce to this. Absent fields keep their meaning (a D&R session
 * with neither tool list nor permission_mode allows every tool).
 */
export const SessionProfileSchema = z.object({
  allowed_tools: toolList.optional(),
  denied_tools: toolList.optional(),
  permission_mode: z.enum(PERMISSION_MODES as unknown as [PermissionMode, ...PermissionMode[]]).optional(),
  model: z.string().min(1).max(200).optional(),
  max_turns: z.number().int().min(1).max(100000).optional(),
  max_budget_usd: z.number().positive().max(1_000_000).optional(),
  one_shot: z.boolean().optional(),
  ttl_seconds: z.number().int().min(1).optional(),
  environment: z.record(z.string().regex(ENV_NAME, 'environment names are letters, digits and _')
    .refine((k) => !RESERVED_ENV.test(k), 'this environment name is reserved by the sandbox'), z.string().max(32768))
    .optional(),
  mcp_servers: z.record(z.string().regex(/^[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*$/, 'server names are letters, digits, - and single _')
    .max(MAX_MCP_SERVER_NAME, `server names have at most ${MAX_MCP_SERVER_NAME} characters, so that mcp__<server>__<tool> fits the 64 of a tool name`), mcpServer).optional(),
  network_access: z.boolean().optional(),
  /** The sandbox image, when not the default; checked against RUNNER_IMAGE_ALLOWLIST where config is known. */
  image: z.string().max(255).regex(IMAGE_REF, 'must be an image reference such as name:tag').optional(),
}).strict();

export type SessionProfile = z.infer<typeof SessionProfileSchema>;

export function permissionRules(profile: SessionProfile, trigger: 'user' | 'dr'): PermissionRules {
  const unset = profile.allowed_tools === undefined && profile.denied_tools === undefined
    && profile.permission_mode === undefined;
  return {
    allowed: profile.allowed_tools ?? [],
    denied: profile.denied_tools ?? [],
    mode: profile.permission_mode ?? 'acceptEdits',
    allowAll: trigger === 'dr' && unset,
  };
}

/** Parses a profile; the error names every field at fault. */
export function parseProfile(input: unknown): SessionProfile {
  const r = SessionProfileSchema.safeParse(input);
  if (!r.success) {
    // A bad record key (a reserved environment name) wraps the reason in its own issues: show that reason.
    const reason = (i: (typeof r.error.issues)[number]) =>
      i.code === 'invalid_key' && i.issues.length > 0 ? i.issues.map((x) => x.message).join(', ') : i.message;
    throw new ProfileError(r.error.issues.map((i) => `${i.path.join('.') || 'profile'}: ${reason(i)}`).join('; '));
  }
  return r.data;
}

export class ProfileError extends Error {
  override name = 'ProfileError';
}

/** What a reader sees in place of a secret value; writing it back keeps the stored value. */
export const MASKED = '********';

/** The secret values of a profile: environment values and MCP header/env values. */
export interface ProfileSecrets {
  environment?: Record<string, string>;
  mcp?: Record<string, { headers?: Record<string, string>; env?: Record<string, string> }>;
}

const mask = (values: Record<string, string> | undefined) =>
  values && Object.fromEntries(Object.keys(values).map((k) => [k, MASKED]));

/** Splits a profile into what may be shown and stored plainly, and what must be sealed. */
export function splitSecrets(profile: SessionProfile): { settings: SessionProfile; secrets?: ProfileSecrets } {
  const secrets: ProfileSecrets = {};
  const settings: SessionProfile = { ...profile };
  if (profile.environment && Object.keys(profile.environment).length > 0) {
    secrets.environment = profile.environment;
    settings.environment = mask(profile.environment);
  }
  if (profile.mcp_servers) {
    settings.mcp_servers = {};
    for (const [name, server] of Object.entries(profile.mcp_servers)) {
      const values = server.type === 'http' ? { headers: server.headers } : { env: server.env };
      if (values.headers || values.env) (secrets.mcp ??= {})[name] = values;
      settings.mcp_servers[name] =
        server.type === 'http'
          ? { ...server, ...(server.headers ? { headers: mask(server.headers) } : {}) }
          : { ...server, ...(server.env ? { env: mask(server.env) } : {}) };
    }
  }
  return { settings, secrets: secrets.environment || secrets.mcp ? secrets : undefined };
}

/** The whole profile again, for the activities that need the values. */
export function joinSecrets(settings: SessionProfile, secrets: ProfileSecrets | undefined): SessionProfile {
  if (!secrets) return settings;
  const profile: SessionProfile = { ...settings };
  if (secrets.environment) profile.environment = secrets.environment;
  if (settings.mcp_servers) {
    profile.mcp_servers = Object.fromEntries(
      Object.entries(settings.mcp_servers).map(([name, server]) => {
        const s = secrets.mcp?.[name];
        if (server.type === 'http') return [name, s?.headers ? { ...server, headers: s.headers } : server];
        return [name, s?.env ? { ...server, env: s.env } : server];
      }),
    );
  }
  return profile;
}

/**
 * An update's secret values: a masked value keeps what was stored under that
 * name, so a profile read and written back loses nothing.
 */
export function keepMaskedSecrets(incoming: SessionProfile, stored: ProfileSecrets | undefined): SessionProfile {
  const keep = (values: Record<string, string> | undefined, old: Record<string, string> | undefined) =>
    values && Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v === MASKED && old?.[k] !== undefined ? old[k] : v]));
  const result: SessionProfile = { ...incoming, environment: keep(incoming.environment, stored?.environment) };
  if (incoming.environment === undefined) delete result.environment;
  if (incoming.mcp_servers) {
    result.mcp_servers = Object.fromEntries(
      Object.entries(incoming.mcp_servers).map(([name, server]) => {
        const old = stored?.mcp?.[name];
        if (server.type === 'http') return [name, server.headers ? { ...server, headers: keep(server.headers, old?.headers) } : server];
        return [name, server.env ? { ...server, env: keep(server.env, old?.env) } : server];
      }),
    );
  }
  return result;
}
