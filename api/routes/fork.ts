import { Router } from 'express';
import { z } from 'zod';
import type { GatewayDeps } from '../deps';
import { principalOf } from '../auth';
import { parseOr400 } from '../validation';
import { ForkService } from '../fork-service';
import { requireRegistered } from './claude-auth';
import { sessionResource } from './sessions';

export const ForkBody = z.object({
  name: z.string().trim().min(1).max(200).optional(),
  profile_id: z.string().min(1).optional(),
  initial_prompt: z.string().min(1).max(1_000_000).optional(),
  acknowledge_missing_tools: z.array(z.string().min(1).max(200)).max(100).optional(),
}).strict();

const PreflightQuery = z.object({ profile_id: z.string().min(1).optional() }).strict();

/** Fork preflight and fork of the caller's dormant or ended sessions. */
export function forkRoutes(deps: GatewayDeps): Router {
  const r = Router();
  const forks = new ForkService(deps);

  r.get('/v1/sessions/:sessionId/fork-preflight', async (req, res) => {
    const me = principalOf(req);
    const q = parseOr400(PreflightQuery, req.query, 'query');
    res.json(await forks.preflight(me.userId, req.params.sessionId, q.profile_id));
  });

  r.post('/v1/sessions/:sessionId/fork', async (req, res) => {
    const me = principalOf(req);
    await requireRegistered(deps, me.userId);
    const body = parseOr400(ForkBody, req.body ?? {});
    await deps.rateLimits.sessionCreate(me.userId);
    const s = await forks.fork(me.userId, req.params.sessionId, body);
    res.status(201).json({ session: sessionResource(s) });
  });

  return r;
}
