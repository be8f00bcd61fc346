import { Router } from 'express';
import { z } from 'zod';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { GatewayDeps } from '../deps';
import { orgOf, requireOrgKey } from '../org-auth';
import { badRequest, conflict, notFound } from '../errors';
import { parseOr400 } from '../validation';
import { decodeCursor, encodeCursor, historyPage, sessionResource } from './sessions';
import { getSession, listSessions, type SessionRow } from '../../store/sessions';
import { audit } from '../audit';
import { auditList } from './audit';
import { sessionUsage } from '../../store/usage';

const ListQuery = z.object({
  status: z.enum(['starting', 'running', 'ended']).optional(),
  limit: z.coerce.number().int('must be an integer').min(1).max(200).default(50),
  cursor: z.string().optional(),
}).strict();

/**
 * Sessions an organization owns (D&R and org API), as cli.md's `ai session`
 * commands see them: the org API key decides which organization.
 */
export function orgSessionRoutes(deps: GatewayDeps): Router {
  const r = Router();
  r.use('/v1/org', requireOrgKey(deps.db, { orgInPath: false }));
  const owner = (orgId: string) => ({ type: 'org' as const, id: orgId });

  async function orgSession(orgId: string, id: string): Promise<SessionRow> {
    const s = await getSession(deps.db, id);
    if (!s || s.deleted_at || s.owner_type !== 'org' || s.owner_id !== orgId) throw notFound('session not found');
    return s;
  }

  r.get('/v1/org/sessions', async (req, res) => {
    const q = parseOr400(ListQuery, req.query, 'query');
    const rows = await listSessions(deps.db, owner(orgOf(req)), {
      status: q.status,
      limit: q.limit + 1,
      after: q.cursor ? decodeCursor(q.cursor) : undefined,
    });
    const page = rows.slice(0, q.limit);
    res.json({
      sessions: page.map((s) => sessionResource(s, { trigger_rule: s.rule_name })),
      next_cursor: rows.length > q.limit ? encodeCursor(page[page.length - 1].cursor) : null,
    });
  });

  r.get('/v1/org/sessions/:sessionId', async (req, res) => {
    const s = await orgSession(orgOf(req), req.params.sessionId);
    res.json({ session: sessionResource(s, { trigger_rule: s.rule_name, ...(await sessionUsage(deps.db, s.id)) }) });
  });

  r.get('/v1/org/sessions/:sessionId/history', async (req, res) => {
    const s = await orgSession(orgOf(req), req.params.sessionId);
    res.json(await historyPage(deps, s.id, req.query));
  });

  r.delete('/v1/org/sessions/:sessionId', async (req, res) => {
    const s = await orgSession(orgOf(req), req.params.sessionId);
    if (s.status === 'ended') throw conflict('session has already ended', 'session_not_running');
    try {
      await deps.service.terminate(s.id, 'org_api_requested');
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      throw badRequest('the session has no running workflow');
    }
    const orgId = orgOf(req);
    await audit(deps, { actor: { type: 'org', id: orgId }, action: 'session.terminate', target: { type: 'session', id: s.id }, orgId, details: { reason: 'org_api_requested' } });
    res.json({ terminated: true });
  });

  // Everything about this organization, whoever acted (its key, or an administrator on its keys).
  r.get('/v1/org/audit', auditList(deps, (req) => ({ orgId: orgOf(req) })));

  return r;
}
