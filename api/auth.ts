import type { NextFunction, Request, Response } from 'express';
import { createRemoteJWKSet, jwtVerify, SignJWT, type JWTVerifyGetKey } from 'jose';
import type { Config } from '../lib/config';
import { bearerToken } from '../lib/token-match';
import { unauthorized } from './errors';

export interface Principal {
  userId: string;
  email?: string;
}

export interface Authenticator {
  verify(token: string): Promise<Principal>;
}

/**
 * Bearer tokens: HS256 with AUTH_JWT_SECRET (or the embedded default's
 * generated secret), or keys from AUTH_JWKS_URL; issuer and audience are
 * checked when configured. The user is the token's `sub`.
 */
export function createAuthenticator(auth: Partial<Config['auth']>, jwtSecret: string | undefined): Authenticator {
  const jwks: JWTVerifyGetKey | undefined = auth.jwksUrl ? createRemoteJWKSet(new URL(auth.jwksUrl)) : undefined;
  const secret = jwtSecret ? new TextEncoder().encode(jwtSecret) : undefined;
  if (!jwks && !secret) throw new Error('no JWT secret or JWKS URL to verify tokens with');
  const options = {
    ...(auth.issuer ? { issuer: auth.issuer } : {}),
    ...(auth.audience ? { audience: auth.audience } : {}),
    ...(jwks ? {} : { algorithms: ['HS256'] }),
  };
  return {
    async verify(token) {
      try {
        const { payload } = jwks ? await jwtVerify(token, jwks, options) : await jwtVerify(token, secret!, options);
        if (typeof payload.sub !== 'string' || payload.sub === '') throw new Error('no sub');
        return { userId: payload.sub, ...(typeof payload.email === 'string' ? { email: payload.email } : {}) };
      } catch {
        // The reason stays here: a client learns only that the token was not accepted.
        throw unauthorized('invalid or expired token');
      }
    },
  };
}

export async function mintToken(
  jwtSecret: string,
  claims: { sub: string; email?: string; issuer?: string; audience?: string; expiresIn?: string },
): Promise<string> {
  let jwt = new SignJWT(claims.email ? { email: claims.email } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(claims.expiresIn ?? '24h');
  if (claims.issuer) jwt = jwt.setIssuer(claims.issuer);
  if (claims.audience) jwt = jwt.setAudience(claims.audience);
  return jwt.sign(new TextEncoder().encode(jwtSecret));
}

// Lives in lib/ so the metrics endpoint parses it the same way.
export { bearerToken };

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}

export function requireUser(auth: Authenticator) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    try {
      const token = bearerToken(req.headers);
      if (!token) throw unauthorized();
      req.principal = await auth.verify(token);
      next();
    } catch (err) {
      next(err);
    }
  };
}

export function principalOf(req: Request): Principal {
  if (!req.principal) throw unauthorized();
  return req.principal;
}
