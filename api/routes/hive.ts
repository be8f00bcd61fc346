import { Router } from 'express';
import { z } from 'zod';
import type { GatewayDeps } from '../deps';
import { orgOf, requireOrgKey } from '../org-auth';
import { badRequest, notFound } from '../errors';
import { parseOr400 } from '../validation';
import { audit } from '../audit';
import { deleteHive, getHive, HIVES, listHive, putHive, type Hive } from '../../store/hive';

const NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/** What each hive's records hold; ai_agent records are checked against the AI Agent record schema. */
const SecretBody = z.object({ data: z.object({ secret: z.string().min(1).max(65536) }).strict(), enabled: z.boolean().optional() }).strict();
const LookupBody = z.object({
  data: z.object({ values: z.array(z.string().max(4096)).max(1_000_000) }).strict(),
  enabled: z.boolean().optional(),
}).strict();
const AgentBody = z.object({ data: z.record(z.string(), z.unknown()), enabled: z.boolean().optional() }).strict();

export type AgentRecordValidator = (data: unknown, path: string) => void;

/**
 * The organization's hive over REST: `secret` (values sealed, never returned),
 * `ai_agent` and `lookup` records, each with an enabled flag.
 */
export function hiveRoutes(deps: GatewayDeps, validateAgent?: AgentRecordValidator): Router {
  const r = Router();
  r.use('/v1/orgs/:orgId', requireOrgKey(deps.db));

  const hiveOf = (raw: string): Hive => {
    if (!(HIVES as readonly string[]).includes(raw)) throw notFound(`no hive "${raw.slice(0, 64)}" (hives: ${HIVES.join(', ')})`);
    return raw as Hive;
  };
  const nameOf = (raw: string) => {
    if (!NAME.test(raw)) throw badRequest('name: letters, digits, _ . - (at most 128)');
    return raw;
  };

  r.get('/v1/orgs/:orgId/hive/:hive', async (req, res) => {
    res.json({ records: await listHive(deps.db, orgOf(req), hiveOf(req.params.hive)) });
  });

  r.get('/v1/orgs/:orgId/hive/:hive/:name', async (req, res) => {
    const rec = await getHive(deps.db, orgOf(req), hiveOf(req.params.hive), nameOf(req.params.name));
    if (!rec) throw notFound('record not found');
    res.json({ record: rec });
  });

  r.put('/v1/orgs/:orgId/hive/:hive/:name', async (req, res) => {
    const hive = hiveOf(req.params.hive);
    const name = nameOf(req.params.name);
    const orgId = orgOf(req);
    let data: Record<string, unknown>;
    let secret: string | undefined;
    let enabled: boolean | undefined;
    if (hive === 'secret') {
      const body = parseOr400(SecretBody, req.body);
      secret = body.data.secret;
      data = {};
      enabled = body.enabled;
    } else if (hive === 'lookup') {
      const body = parseOr400(LookupBody, req.body);
      data = body.data;
      enabled = body.enabled;
    } else {
      const body = parseOr400(AgentBody, req.body);
      try {
        validateAgent?.(body.data, 'data');
      } catch (err) {
        throw badRequest((err as Error).message);
      }
      data = body.data;
      enabled = body.enabled;
    }
    const current = await getHive(deps.db, orgId, hive, name);
    const { record, created } = await putHive(deps.db, deps.keyring, {
      orgId, hive, name, data, secret, enabled: enabled ?? current?.enabled ?? true,
    });
    res.status(created ? 201 : 200).json({ record });
  });

  r.delete('/v1/orgs/:orgId/hive/:hive/:name', async (req, res) => {
    const orgId = orgOf(req);
    const hive = hiveOf(req.params.hive);
    const name = nameOf(req.params.name);
    if (!(await deleteHive(deps.db, orgId, hive, name))) throw notFound('record not found');
    await audit(deps, { actor: { type: 'org', id: orgId }, action: 'hive.delete', target: { type: 'hive_record', id: `${hive}/${name}` }, orgId });
    res.json({ deleted: true });
  });

  return r;
}
