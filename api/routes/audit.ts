import { Router, type Request, type RequestHandler } from 'express';
import { z } from 'zod';
import type { GatewayDeps } from '../deps';
import { principalOf } from '../auth';
import { badRequest } from '../errors';
import { parseOr400 } from '../validation';
import { AUDIT_ACTIONS, listAudit, type AuditScope } from '../../store/audit';

export const AuditQuery = z.object({
  since: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time' }).optional(),
  action: z.enum(AUDIT_ACTIONS).optional(),
  target_type: z.string().min(1).max(50).optional(),
  target: z.string().min(1).max(500).optional(),
  limit: z.coerce.number().int('must be an integer').min(1).max(500).default(100),
  cursor: z.string().optional(),
}).strict();

const MAX_BIGINT = 9223372036854775807n;
const encodeCursor = (id: string) => Buffer.from(id).toString('base64url');
function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  // Ids are bigint: a larger number would reach Postgres and fail there as a 500.
  if (!/^\d{1,19}$/.test(id) || BigInt(id) > MAX_BIGINT) throw badRequest('cursor: not a cursor this API returned');
  return id;
}

/** A page of the audit trail, newest first, limited to what the caller may see. */
export function auditList(deps: GatewayDeps, scopeOf: (req: Request) => AuditScope): RequestHandler {
  return async (req, res) => {
    const q = parseOr400(AuditQuery, req.query, 'query');
    const rows = await listAudit(deps.db, scopeOf(req), {
      since: q.since,
      action: q.action,
      targetType: q.target_type,
      targetId: q.target,
      beforeId: q.cursor ? decodeCursor(q.cursor) : undefined,
      limit: q.limit + 1,
    });
    const page = rows.slice(0, q.limit);
    res.json({ entries: page, next_cursor: rows.length > q.limit ? encodeCursor(page[page.length - 1].id) : null });
  };
}

/** GET /v1/audit: the calling user's own actions (mounted behind requireUser). */
export function userAuditRoutes(deps: GatewayDeps): Router {
  const r = Router();
  r.get('/v1/audit', auditList(deps, (req) => ({ actor: { type: 'user', id: principalOf(req).userId } })));
  return r;
}
