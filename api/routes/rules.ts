import express, { Router } from 'express';
import { z } from 'zod';
import type { GatewayDeps } from '../deps';
import { orgOf } from '../org-auth';
import { badRequest, notFound } from '../errors';
import { parseOr400 } from '../validation';
import { audit } from '../audit';
import { ingestEvents, parseEvents, parseRuleSource } from '../rule-engine-service';
import { isDrAction } from '../../lib/dr/action';
import { imageProblem } from '../../lib/runner-images';
import { deleteRule, getRule, listDetections, listRules, putRule } from '../../store/rules';

const NAME = /^[A-Za-z0-9_.-]{1,128}$/;
const DetectionsQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict();
// Rules may be written in YAML, events sent as NDJSON: both arrive as text.
const text = express.text({ type: ['application/yaml', 'text/yaml', 'application/x-yaml', 'text/plain', 'application/x-ndjson'], limit: '10mb' });

/** The built-in rule engine: rules per organization, and the event intake that runs them. */
export function ruleRoutes(deps: GatewayDeps): Router {
  const r = Router();
  const nameOf = (raw: string) => {
    if (!NAME.test(raw)) throw badRequest('name: letters, digits, _ . - (at most 128)');
    return raw;
  };

  r.get('/v1/orgs/:orgId/rules', async (req, res) => {
    res.json({ rules: await listRules(deps.db, orgOf(req)) });
  });

  r.get('/v1/orgs/:orgId/rules/:name', async (req, res) => {
    const rule = await getRule(deps.db, orgOf(req), nameOf(req.params.name));
    if (!rule) throw notFound('rule not found');
    res.json({ rule });
  });

  r.put('/v1/orgs/:orgId/rules/:name', text, async (req, res) => {
    const orgId = orgOf(req);
    const name = nameOf(req.params.name);
    const { rule, source, enabled } = parseRuleSource(req.body);
    // The allow-list is configuration, so it is checked here rather than in the pure parser (and again at launch).
    rule.respond.forEach((action, i) => {
      const image = isDrAction(action) ? (action.profile as { image?: string } | undefined)?.image : undefined;
      const problem = imageProblem(image, deps.config, `respond[${i}].profile.image`);
      if (problem) throw badRequest(problem);
    });
    const current = await getRule(deps.db, orgId, name);
    const created = await putRule(deps.db, { orgId, name, enabled: enabled ?? current?.enabled ?? true, source, rule });
    res.status(created ? 201 : 200).json({ rule: await getRule(deps.db, orgId, name) });
  });

  r.delete('/v1/orgs/:orgId/rules/:name', async (req, res) => {
    const orgId = orgOf(req);
    const name = nameOf(req.params.name);
    if (!(await deleteRule(deps.db, orgId, name))) throw notFound('rule not found');
    await audit(deps, { actor: { type: 'org', id: orgId }, action: 'rule.delete', target: { type: 'rule', id: name }, orgId });
    res.json({ deleted: true });
  });

  r.post('/v1/orgs/:orgId/events', text, async (req, res) => {
    res.json(await ingestEvents(deps, orgOf(req), parseEvents(req.body)));
  });

  r.get('/v1/orgs/:orgId/detections', async (req, res) => {
    const q = parseOr400(DetectionsQuery, req.query, 'query');
    res.json({ detections: await listDetections(deps.db, orgOf(req), q.limit) });
  });

  return r;
}
