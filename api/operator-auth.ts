import crypto from 'node:crypto';
import { parseCookie } from 'cookie';
import type { NextFunction, Request, Response } from 'express';
import { jwtVerify, SignJWT } from 'jose';
import { AppError, unauthorized } from './errors';
import { bearerToken, tokenMatcher } from '../lib/token-match';

export const OPERATOR_COOKIE = 'ais_operator';
const AUDIENCE = 'ai-sessions:codec';

/**
 * Operators are whoever holds ADMIN_TOKEN. Tools (the Temporal CLI's
 * --codec-endpoint, curl) send it as the bearer token; a browser trades it
 * once for a short-lived HttpOnly cookie, which the Web UI sends with
 * "include cross-origin credentials". The cookie's signing key is derived
 * from the admin token, so changing the token ends every operator session.
 */
export interface OperatorAuth {
  /** The admin token checked in constant time. */
  isAdminToken(given: string | undefined): boolean;
  /** A signed cookie value for a signed-in operator. */
  issue(): Promise<string>;
  /** Express middleware: 401 unless the request carries the admin token or a valid operator cookie. */
  require: (req: Request, res: Response, next: NextFunction) => void;
}

export function operatorAuth(adminToken: string | undefined, sessionSeconds: number): OperatorAuth {
  const isAdminToken = tokenMatcher(adminToken);
  const key = adminToken ? new Uint8Array(crypto.hkdfSync('sha256', adminToken, Buffer.alloc(0), 'ai-sessions operator cookie v1', 32)) : undefined;
  const disabled = () => new AppError(503, 'operators_disabled', 'operator access is disabled: set ADMIN_TOKEN');

  async function validCookie(value: string | undefined): Promise<boolean> {
    if (!value || !key) return false;
    try {
      await jwtVerify(value, key, { audience: AUDIENCE, algorithms: ['HS256'] });
      return true;
    } catch {
      return false;
    }
  }

  return {
    isAdminToken,
    async issue() {
      if (!key) throw disabled();
      return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('operator').setAudience(AUDIENCE)
        .setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + Math.ceil(sessionSeconds)).sign(key);
    },
    require(req, _res, next) {
      if (!adminToken) return next(disabled());
      if (isAdminToken(bearerToken(req.headers))) return next();
      // Express parses no cookies without middleware.
      validCookie(parseCookie(req.headers.cookie ?? '')[OPERATOR_COOKIE]).then(
        (ok) => next(ok ? undefined : unauthorized('operators only: send ADMIN_TOKEN as the bearer token, or sign in at /codec/login')),
        next,
      );
    },
  };
}
