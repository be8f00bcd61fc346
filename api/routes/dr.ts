import { Router } from 'express';
import type { GatewayDeps } from '../deps';
import { orgOf } from '../org-auth';
import { launchAction } from '../dr-service';

/** The entry for an external D&R engine: one `start ai agent` action and the event that fired it. */
export function drRoutes(deps: GatewayDeps): Router {
  const r = Router();
  // Org-key authentication for /v1/orgs/:orgId is applied by hiveRoutes, mounted first.
  r.post('/v1/orgs/:orgId/dr/start', async (req, res) => {
    const result = await launchAction(deps, orgOf(req), req.body);
    res.status(result.status === 'started' ? 201 : result.status === 'queued' ? 202 : 200).json(result);
  });
  return r;
}
