import { Router, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { GatewayDeps } from '../deps';
import { AppError, notFound, unauthorized } from '../errors';
import { bearerToken, tokenMatcher } from '../../lib/token-match';
import { parseOr400 } from '../validation';
import { audit } from '../audit';
import { auditList } from './audit';
import { addOrgKey, createOrg, getOrg, keyPrefix, listOrgs, revokeOrgKeys } from '../../store/orgs';

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
    await audit(deps, { actor: ADMIN, action: 'org.create', target: { type: 'org', id: org.id }, orgId: org.id, details: { name } });
    res.status(201).json({ org, api_key: apiKey, note: 'the API key is shown once; store it now' });
  });

  r.post('/v1/admin/orgs/:orgId/keys', async (req, res) => {
    const body = parseOr400(KeyBody, req.body ?? {});
    if (!(await getOrg(deps.db, req.params.orgId))) throw notFound('organization not found');
    const orgId = req.params.orgId;
    const revoked = body.revoke_others ? await revokeOrgKeys(deps.db, orgId) : 0;
    if (revoked > 0) await audit(deps, { actor: ADMIN, action: 'org_key.revoke', target: { type: 'org', id: orgId }, orgId, details: { revoked } });
    const apiKey = await addOrgKey(deps.db, orgId, body.name);
    // The key's shown prefix identifies it without making it usable.
    await audit(deps, { actor: ADMIN, action: 'org_key.create', target: { type: 'org', id: orgId }, orgId, details: { name: body.name ?? null, key_prefix: keyPrefix(apiKey) } });
    res.status(201).json({ api_key: apiKey, revoked });
  });

  r.get('/v1/admin/audit', auditList(deps, () => ({ all: true })));

  return r;
}

/** One ADMIN_TOKEN, so one administrator identity in the trail. */
const ADMIN = { type: 'admin', id: 'admin' } as const;

function requireAdmin(adminToken: string | undefined) {
  const isAdmin = tokenMatcher(adminToken);
  return (req: Request, _res: Response, next: NextFunction) => {
    if (!adminToken) return next(new AppError(503, 'admin_disabled', 'administration is disabled: set ADMIN_TOKEN'));
    if (!isAdmin(bearerToken(req.headers))) return next(unauthorized('missing or invalid admin token'));
    next();
  };
}
