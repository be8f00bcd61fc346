import { createHash, randomBytes } from 'node:crypto';
import type { Config } from './config';

/**
 * The mechanics of signing in with a Claude account: OAuth 2.0 authorization
 * code with PKCE (RFC 7636, S256) against a configurable authorization server.
 * Written with node:crypto and fetch: oauth4webapi is ESM-only and does not
 * load under the project's CommonJS jest setup.
 */
export type ClaudeOAuthSettings = Config['claudeOAuth'];

/** 32 random bytes, base64url: a 43-character verifier (RFC 7636 §4.1). */
export const newCodeVerifier = (): string => randomBytes(32).toString('base64url');
export const newState = (): string => randomBytes(24).toString('base64url');
/** S256: BASE64URL(SHA256(ASCII(code_verifier))). */
export const codeChallenge = (verifier: string): string => createHash('sha256').update(verifier, 'ascii').digest('base64url');

/** The authorization URL; query parameters already in the configured URL are kept. */
export function authorizeUrl(s: ClaudeOAuthSettings, p: { clientId: string; state: string; codeVerifier: string }): string {
  const url = new URL(s.authorizeUrl);
  const q = url.searchParams;
  q.set('response_type', 'code');
  q.set('client_id', p.clientId);
  q.set('redirect_uri', s.redirectUri);
  q.set('scope', s.scopes);
  q.set('state', p.state);
  q.set('code_challenge', codeChallenge(p.codeVerifier));
  q.set('code_challenge_method', 'S256');
  return url.toString();
}

/** What an 'oauth_token' credential holds, sealed as JSON. */
export interface OAuthTokens {
  access_token: string;
  refresh_token?: string;
  /** Epoch milliseconds. */
  expires_at?: number;
}

export const encodeTokens = (t: OAuthTokens): string => JSON.stringify(t);

/** The stored secret of an 'oauth_token' credential as tokens; a bare token (older records) has no refresh. */
export function decodeTokens(secret: string): OAuthTokens {
  if (!secret.startsWith('{')) return { access_token: secret };
  let parsed: Partial<OAuthTokens> | undefined;
  try {
    parsed = JSON.parse(secret) as Partial<OAuthTokens>;
  } catch {
    parsed = undefined;
  }
  // Never fall back to the raw text: it would hand the refresh token to whoever gets the "access token".
  if (typeof parsed?.access_token !== 'string' || parsed.access_token === '') throw new Error('the stored OAuth credential is unreadable');
  return {
    access_token: parsed.access_token,
    ...(typeof parsed.refresh_token === 'string' ? { refresh_token: parsed.refresh_token } : {}),
    ...(typeof parsed.expires_at === 'number' ? { expires_at: parsed.expires_at } : {}),
  };
}

/** The bearer token of an 'oauth_token' credential's stored secret. */
export const accessTokenOf = (secret: string): string => decodeTokens(secret).access_token;

/**
 * A token endpoint failure, in words safe to show: the server's error code at
 * most, never its description (which may echo what was sent).
 */
export class TokenEndpointError extends Error {
  override name = 'TokenEndpointError';
  constructor(
    /** rejected: the server refused the grant (4xx); unavailable: unreachable, 5xx or a malformed answer. */
    readonly kind: 'rejected' | 'unavailable',
    message: string,
    readonly oauthError?: string,
  ) {
    super(message);
  }
}

const TOKEN_TIMEOUT_MS = 15_000;

/** POSTs a grant to the token endpoint, JSON or form-encoded as configured, and reads the token response. */
export async function requestTokens(s: ClaudeOAuthSettings, params: Record<string, string>): Promise<OAuthTokens> {
  const json = s.tokenFormat === 'json';
  let res: Response;
  try {
    res = await fetch(s.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': json ? 'application/json' : 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: json ? JSON.stringify(params) : new URLSearchParams(params).toString(),
      redirect: 'error',
      signal: AbortSignal.timeout(TOKEN_TIMEOUT_MS),
    });
  } catch {
    throw new TokenEndpointError('unavailable', 'the authorization server could not be reached');
  }
  const text = await res.text().catch(() => '');
  let body: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    body = parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const code = typeof body?.error === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(body.error) ? body.error : undefined;
    if (res.status >= 400 && res.status < 500) {
      throw new TokenEndpointError('rejected', `the authorization server rejected the grant (${code ?? `HTTP ${res.status}`})`, code);
    }
    throw new TokenEndpointError('unavailable', `the authorization server failed (HTTP ${res.status})`);
  }
  const access = body?.access_token;
  if (typeof access !== 'string' || access === '') {
    throw new TokenEndpointError('unavailable', 'the authorization server answered without an access token');
  }
  const expiresIn = Number(body?.expires_in);
  return {
    access_token: access,
    ...(typeof body?.refresh_token === 'string' && body.refresh_token !== '' ? { refresh_token: body.refresh_token } : {}),
    ...(Number.isFinite(expiresIn) && expiresIn > 0 ? { expires_at: Date.now() + expiresIn * 1000 } : {}),
  };
}

/** Exchanges an authorization code (RFC 6749 §4.1.3 with the PKCE verifier). */
export function exchangeCode(
  s: ClaudeOAuthSettings,
  p: { clientId: string; code: string; codeVerifier: string; state: string },
): Promise<OAuthTokens> {
  return requestTokens(s, {
    grant_type: 'authorization_code',
    code: p.code,
    code_verifier: p.codeVerifier,
    redirect_uri: s.redirectUri,
    client_id: p.clientId,
    state: p.state,
  });
}

/** Refresh this long before expiry: a model call must not start with a token about to lapse. */
export const REFRESH_MARGIN_MS = 120_000;

export const needsRefresh = (t: OAuthTokens, now = Date.now()): boolean =>
  t.refresh_token !== undefined && t.expires_at !== undefined && t.expires_at - now < REFRESH_MARGIN_MS;

/** A refresh grant (RFC 6749 §6); a server that does not rotate the refresh token keeps the old one valid. */
export async function refreshTokens(s: ClaudeOAuthSettings, clientId: string, tokens: OAuthTokens): Promise<OAuthTokens> {
  const fresh = await requestTokens(s, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: clientId });
  return { ...fresh, refresh_token: fresh.refresh_token ?? tokens.refresh_token };
}
