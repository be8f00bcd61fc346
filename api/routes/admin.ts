import crypto from 'node:crypto';
import { Router, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { GatewayDeps } from '../deps';
import { AppError, notFound, unauthorized } from '../errors';
import { bearerToken } from '../auth';
import { parseOr400 } from '../validation';
import { addOrgKey, createOrg, getOrg, listOrgs, revokeOrgKeys } from '../../store/orgs';

const OrgBody = z.object({ name: z.string().trim().min(1).max(200) }).strict();
const KeyBody = z.object({ name: z.string().trim().min(1).max(200).optional(), revoke_others: z.boolean().optional() }).strict();

/** Administration behind ADMIN_TOKEN: organizations and their API keys (each shown once). */
export function adminRoutes(deps: GatewayDeps): Router {
  const r = Router();
  r.use('/v1/admin', requireAdmin(deps.adminToken));

  r.get('/v1/admin/orgs', async (_req, res) => {
    res.json({ orgs: await listOrgs(deps.db) });
  });

  r.post('/v1/admin/orgs', async (req, res) => {
    const { name } = parseOr400(OrgBody, req.body);
    const { org, apiKey } = await createOrg(deps.db, name);
    res.status(201).json({ org, api_key: apiKey, note: 'the API key is shown once; store it now' });
  });

  r.post('/v1/admin/orgs/:orgId/keys', async (req, res) => {
    const body = parseOr400(KeyBody, req.body ?? {});
    if (!(await getOrg(deps.db, req.params.orgId))) throw notFound('organization not found');
    const revoked = body.revoke_others ? await revokeOrgKeys(deps.db, req.params.orgId) : 0;
    const apiKey = await addOrgKey(deps.db, req.params.orgId, body.name);
    res.status(201).json({ api_key: apiKey, revoked });
  });

  return r;
}

function requireAdmin(adminToken: string | undefined) {
  const expected = adminToken ? crypto.createHash('sha256').update(adminToken).digest() : undefined;
  return (req: Request, _res: Response, next: NextFunction) => {
    if (!expected) return next(new AppError(503, 'admin_disabled', 'administration is disabled: set ADMIN_TOKEN'));
    const given = bearerToken(req.headers);
    const digest = given ? crypto.createHash('sha256').update(given).digest() : undefined;
    if (!digest || !crypto.timingSafeEqual(digest, expected)) return next(unauthorized('missing or invalid admin token'));
    next();
  };
}
