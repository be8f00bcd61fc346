import { Router } from 'express';
import { z } from 'zod';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { GatewayDeps } from '../deps';
import { orgOf } from '../org-auth';
import { badRequest, conflict, notFound } from '../errors';
import { parseOr400 } from '../validation';
import { audit } from '../audit';
import { resolveSecret } from '../../store/hive';
import {
  deleteOutput, getDelivery, getOutput, listDeliveries, listOutputs, OutputError, putOutput, resetDelivery,
} from '../../store/outputs';
import type { outputDeliveryWorkflow } from '../../workflows/outputs';

const NAME = /^[A-Za-z0-9_.-]{1,128}$/;
const HIVE_SECRET = /^hive:\/\/secret\/([A-Za-z0-9_.-]{1,128})$/;

export const OutputBody = z.object({
  type: z.literal('webhook').optional(),
  url: z.string().max(2048).regex(/^https?:\/\//i, 'must be an http:// or https:// URL').url().optional(),
  secret: z.string().max(4096).refine((s) => HIVE_SECRET.test(s) || (!s.startsWith('hive://') && s.length >= 16), {
    message: 'must be hive://secret/NAME or a literal of at least 16 characters',
  }).optional(),
  enabled: z.boolean().optional(),
  include_transcript: z.boolean().optional(),
}).strict();

const DeliveriesQuery = z.object({
  session_id: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
}).strict();

/**
 * An organization's outputs: webhooks that receive each ended session's
 * summary and transcript, signed with the output's secret, and the record
 * of every delivery. Org-key authentication comes from hiveRoutes, mounted first.
 */
export function outputRoutes(deps: GatewayDeps): Router {
  const r = Router();
  const nameOf = (raw: string) => {
    if (!NAME.test(raw)) throw badRequest('name: letters, digits, _ . - (at most 128)');
    return raw;
  };

  r.get('/v1/orgs/:orgId/outputs', async (req, res) => {
    res.json({ outputs: await listOutputs(deps.db, deps.keyring, orgOf(req)) });
  });

  r.get('/v1/orgs/:orgId/outputs/:name', async (req, res) => {
    const output = await getOutput(deps.db, deps.keyring, orgOf(req), nameOf(req.params.name));
    if (!output) throw notFound('output not found');
    res.json({ output });
  });

  r.put('/v1/orgs/:orgId/outputs/:name', async (req, res) => {
    const name = nameOf(req.params.name);
    const body = parseOr400(OutputBody, req.body ?? {});
    const orgId = orgOf(req);
    const ref = body.secret && HIVE_SECRET.exec(body.secret);
    if (ref) {
      // Said now rather than at the first delivery: the named secret must exist and be enabled.
      await resolveSecret(deps.db, deps.keyring, orgId, ref[1]).catch((err: Error) => {
        throw badRequest(`secret: ${err.message}`);
      });
    }
    const result = await deps.db
      .transaction((tx) => putOutput(tx, deps.keyring, {
        orgId, name, url: body.url, secret: body.secret, enabled: body.enabled, includeTranscript: body.include_transcript,
      }))
      .catch((err) => {
        throw err instanceof OutputError ? badRequest(err.message) : err;
      });
    res.status(result.created ? 201 : 200).json({
      output: result.record,
      ...(result.generatedSecret
        ? { signing_secret: result.generatedSecret, note: 'the signing secret is shown once; store it now' }
        : {}),
    });
  });

  r.delete('/v1/orgs/:orgId/outputs/:name', async (req, res) => {
    const orgId = orgOf(req);
    const name = nameOf(req.params.name);
    if (!(await deleteOutput(deps.db, orgId, name))) throw notFound('output not found');
    await audit(deps, { actor: { type: 'org', id: orgId }, action: 'output.delete', target: { type: 'output', id: name }, orgId });
    res.json({ deleted: true });
  });

  r.get('/v1/orgs/:orgId/outputs/:name/deliveries', async (req, res) => {
    const q = parseOr400(DeliveriesQuery, req.query, 'query');
    const output = nameOf(req.params.name);
    res.json({ deliveries: await listDeliveries(deps.db, orgOf(req), { output, sessionId: q.session_id, limit: q.limit }) });
  });

  r.post('/v1/orgs/:orgId/deliveries/:deliveryId/redeliver', async (req, res) => {
    const delivery = await getDelivery(deps.db, req.params.deliveryId);
    if (!delivery || delivery.org_id !== orgOf(req)) throw notFound('delivery not found');
    if (delivery.status === 'pending') throw conflict('this delivery is still being attempted');
    if (!(await getOutput(deps.db, deps.keyring, delivery.org_id, delivery.output))) throw conflict(`output "${delivery.output}" no longer exists`);
    try {
      await deps.client.workflow.start<typeof outputDeliveryWorkflow>('outputDeliveryWorkflow', {
        // A second request while this round runs starts nothing; a closed round's id may be reused.
        workflowId: `outputs-${delivery.session_id}-${delivery.id}`,
        taskQueue: deps.config.temporal.taskQueue,
        args: [{ sessionId: delivery.session_id, deliveryIds: [delivery.id] }],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    // Only once the round has started: if Temporal refused it, nothing changed.
    await resetDelivery(deps.db, delivery.id);
    const { org_id: _org, ...shown } = (await getDelivery(deps.db, delivery.id))!;
    res.status(202).json({ delivery: shown });
  });

  return r;
}
