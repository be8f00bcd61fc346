import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { getSession } from '../store/sessions';
import { listEvents, type StoredEvent } from '../store/events';
import { sessionResource } from '../store/session-resource';
import { sessionUsage } from '../store/usage';
import { resolveSecret } from '../store/hive';
import { getDelivery, outputTarget, planDeliveries, recordAttempt } from '../store/outputs';
import { SIGNATURE_HEADER, signWebhook } from '../lib/webhook-signature';
import { postJson } from '../lib/http-post';
import { WebFetchError } from '../lib/web-fetch';
import type { ActivityDeps } from './shared';

const HIVE_SECRET = /^hive:\/\/secret\/([A-Za-z0-9_.-]{1,128})$/;

/** Delivery of an ended session's summary and transcript to the outputs of its organization. */
export function createOutputActivities({ db, keyring, config, log }: ActivityDeps) {
  return {
    /** Pending deliveries for every enabled output, plus the retry policy the workflow applies to them. */
    async planOutputDeliveries({ sessionId, deliveryIds }: { sessionId: string; deliveryIds?: string[] }) {
      if (deliveryIds) return { deliveryIds, retry: config.outputs.retry };
      const session = await getSession(db, sessionId);
      const orgId = session?.owner_type === 'org' ? session.owner_id : undefined;
      return { deliveryIds: orgId ? await planDeliveries(db, orgId, sessionId) : [], retry: config.outputs.retry };
    },

    /** One attempt: POST the signed payload; anything but a 2xx answer is a failure to retry. */
    async deliverOutput({ deliveryId }: { deliveryId: string }) {
      const delivery = await getDelivery(db, deliveryId);
      if (!delivery) throw ApplicationFailure.nonRetryable(`delivery ${deliveryId} not found`, 'DeliveryNotFound');
      if (delivery.status === 'delivered') return { status: 'delivered' as const };
      const target = await outputTarget(db, keyring, delivery.org_id, delivery.output);
      if (!target) throw ApplicationFailure.nonRetryable(`output "${delivery.output}" no longer exists`, 'OutputDeleted');

      const attempt = Context.current().info.attempt;
      const started = Date.now();
      const finish = async (outcome: 'delivered' | 'retrying', statusCode?: number, error?: string) => {
        await recordAttempt(db, deliveryId, {
          attempt, at: new Date(started).toISOString(), status_code: statusCode, error, duration_ms: Date.now() - started,
        }, outcome);
      };

      let secret: string;
      try {
        const ref = HIVE_SECRET.exec(target.secret);
        secret = ref ? await resolveSecret(db, keyring, delivery.org_id, ref[1]) : target.secret;
      } catch (err) {
        await finish('retrying', undefined, (err as Error).message);
        throw err;
      }
      const body = JSON.stringify(await payload(delivery.id, delivery.session_id, target.includeTranscript));
      const timestamp = Math.floor(Date.now() / 1000);
      try {
        const res = await postJson(target.url, body, {
          headers: {
            'user-agent': `ai-sessions/${config.version}`,
            'x-ai-sessions-event': 'session.ended',
            'x-ai-sessions-delivery': delivery.id,
            [SIGNATURE_HEADER]: signWebhook(secret, body, timestamp),
          },
          timeoutMs: config.outputs.timeoutSeconds * 1000,
          policy: { allowPrivate: config.outputs.allowPrivate },
        });
        if (res.status >= 200 && res.status < 300) {
          await finish('delivered', res.status);
          log.info({ deliveryId, output: delivery.output, sessionId: delivery.session_id, attempt }, 'output delivered');
          return { status: 'delivered' as const };
        }
        await finish('retrying', res.status, `the receiver answered HTTP ${res.status}`);
        throw ApplicationFailure.retryable(`the receiver answered HTTP ${res.status}`, 'DeliveryRejected');
      } catch (err) {
        if (err instanceof ApplicationFailure) throw err;
        const message = (err as Error).message;
        await finish('retrying', undefined, message);
        // A refused address stays refused until the operator changes the output or the policy: no retries.
        if (err instanceof WebFetchError && err.code === 'refused') throw ApplicationFailure.nonRetryable(message, 'DeliveryRefused');
        throw ApplicationFailure.retryable(message, 'DeliveryFailed');
      }
    },

    /** After the last attempt: the delivery is failed, with the reason its attempts gave. */
    async failOutputDelivery({ deliveryId, reason }: { deliveryId: string; reason: string }) {
      await db.query(`UPDATE output_deliveries SET status = 'failed', last_error = COALESCE(last_error, $2), updated_at = now() WHERE id = $1 AND status = 'pending'`, [deliveryId, reason]);
      log.warn({ deliveryId }, 'output delivery failed');
    },
  };

  async function payload(deliveryId: string, sessionId: string, includeTranscript: boolean) {
    const s = await getSession(db, sessionId);
    if (!s) throw ApplicationFailure.nonRetryable(`session ${sessionId} not found`, 'SessionNotFound');
    const events = await allEvents(sessionId);
    const results = events.filter((e) => e.type === 'result');
    const last = results[results.length - 1]?.payload as { summary?: string; success?: boolean; turns?: number } | undefined;
    return {
      type: 'session.ended',
      delivery_id: deliveryId,
      org_id: s.owner_id,
      // As GET /v1/org/sessions/{id} shows it, usage figures included.
      session: sessionResource(s, { trigger_rule: s.rule_name, ...(await sessionUsage(db, s.id)) }),
      summary: last?.summary ?? null,
      success: last?.success ?? null,
      turns: last?.turns ?? null,
      ...(includeTranscript
        ? { transcript: events.map((e) => ({ seq: e.seq, type: e.type, timestamp: e.created_at, payload: e.payload })) }
        : {}),
    };
  }

  async function allEvents(sessionId: string): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    for (;;) {
      const page = await listEvents(db, sessionId, { afterSeq: out.length ? out[out.length - 1].seq : 0, limit: 1000 });
      out.push(...page);
      if (page.length < 1000) return out;
    }
  }
}
