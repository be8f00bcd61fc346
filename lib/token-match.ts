import crypto from 'node:crypto';

/** The bearer token of a request: the Authorization header, or `?token=` where allowed (WebSockets). */
export function bearerToken(headers: { authorization?: string }, url?: URL): string | undefined {
  const h = headers.authorization;
  if (h && /^Bearer\s+\S+$/i.test(h)) return h.replace(/^Bearer\s+/i, '');
  return url?.searchParams.get('token') ?? undefined;
}

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();

/**
 * A constant-time check of a given token against one configured secret
 * (ADMIN_TOKEN, METRICS_TOKEN). Both are hashed first so timingSafeEqual
 * compares equal lengths and the secret's length does not leak. Without a
 * secret nothing matches.
 */
export function tokenMatcher(secret: string | undefined): (given?: string) => boolean {
  if (!secret) return () => false;
  const expected = digest(secret);
  return (given) => !!given && crypto.timingSafeEqual(digest(given), expected);
}
