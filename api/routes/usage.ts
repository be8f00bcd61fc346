import { Router, type Request, type Response } from 'express';
import type { GatewayDeps } from '../deps';
import { principalOf } from '../auth';
import { orgOf, requireOrgKey } from '../org-auth';
import { parseOr400 } from '../validation';
import { summarizeUsage, usageCsv, usageQuery } from '../../lib/usage';
import { usageRows } from '../../store/usage';

/** A usage report for one owner, as JSON or (format=csv, or Accept: text/csv) as CSV. */
async function sendReport(deps: GatewayDeps, owner: { type: 'user' | 'org'; id: string }, req: Request, res: Response) {
  const q = parseOr400(usageQuery(new Date().toISOString().slice(0, 10)), req.query, 'query');
  const rows = await usageRows(deps.db, owner, q);
  const report = summarizeUsage(q, rows.runtime, rows.model);
  res.vary('Accept');
  const csv = q.format === 'csv' || (q.format === undefined && req.accepts(['application/json', 'text/csv']) === 'text/csv');
  if (!csv) {
    res.json({ usage: report });
    return;
  }
  res.type('text/csv; charset=utf-8').attachment(`usage-${q.from}-${q.to}.csv`).send(usageCsv(report));
}

/** GET /v1/usage: the calling user's sessions (mounted behind the user's bearer token). */
export function userUsageRoutes(deps: GatewayDeps): Router {
  const r = Router();
  r.get('/v1/usage', (req, res) => sendReport(deps, { type: 'user', id: principalOf(req).userId }, req, res));
  return r;
}

/** GET /v1/org/usage: the sessions of the organization whose API key is the bearer token. */
export function orgUsageRoutes(deps: GatewayDeps): Router {
  const r = Router();
  r.get('/v1/org/usage', requireOrgKey(deps.db, { orgInPath: false }), (req, res) => sendReport(deps, { type: 'org', id: orgOf(req) }, req, res));
  return r;
}
