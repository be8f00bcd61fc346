import type { NextFunction, Request, Response } from 'express';
import type { Db } from '../store/db';
import { orgForKey } from '../store/orgs';
import { forbidden, unauthorized } from './errors';
import { bearerToken } from './auth';

declare module 'express-serve-static-core' {
  interface Request {
    orgId?: string;
  }
}

/**
 * Org endpoints (/v1/orgs/{orgId}/…) take an org API key as the bearer token.
 * A user JWT is not an org key, and one org's key does not open another org.
 */
export function requireOrgKey(db: Db, opts: { orgInPath: boolean } = { orgInPath: true }) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    try {
      const key = bearerToken(req.headers);
      if (!key) throw unauthorized('an org API key is required as the bearer token');
      const orgId = await orgForKey(db, key);
      if (!orgId) throw unauthorized('invalid or revoked org API key');
      if (opts.orgInPath && orgId !== req.params.orgId) throw forbidden('this API key belongs to another organization');
      req.orgId = orgId;
      next();
    } catch (err) {
      next(err);
    }
  };
}

export function orgOf(req: Request): string {
  if (!req.orgId) throw unauthorized();
  return req.orgId;
}
