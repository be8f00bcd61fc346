import { Router } from 'express';
import { z } from 'zod';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { GatewayDeps } from '../deps';
import { principalOf } from '../auth';
import { badRequest, conflict, forbidden, notFound } from '../errors';
import { parseOr400 } from '../validation';
import { requireRegistered } from './claude-auth';
import { profileResource, roomForProfile } from './profiles';
import { validatePatterns } from '../../lib/permissions';
import { parseProfile, ProfileError, type SessionProfile } from '../../lib/profile';
import {
  countActiveSessions, getSession, latestCredential, listSessions, sessionProfile, type SessionRow,
} from '../../store/sessions';
import { createProfile, fullProfile, getDefaultProfileId } from '../../store/profiles';
import { purgeSessionContent } from '../../store/users';
import { audit } from '../audit';
import { sessionUsage } from '../../store/usage';
import { archiveStoreFor } from '../../lib/archive-store';
import { sessionResource } from '../../store/session-resource';
import { listEvents } from '../../store/events';

export { sessionResource };

const toolList = z.array(z.string()).max(200).superRefine((patterns, ctx) => {
  for (const message of validatePatterns(patterns)) ctx.addIssue({ code: 'custom', message });
});

const CreateBody = z.object({
  name: z.string().trim().min(1).max(200).optional(),
  profile_id: z.string().min(1).optional(),
  allowed_tools: toolList.optional(),
  denied_tools: toolList.optional(),
  initial_prompt: z.string().min(1).max(1_000_000).optional(),
  provider: z.literal('anthropic', { message: 'only anthropic is supported by this deployment' }).optional(),
  // LimaCharlie organization credentials: accepted for compatibility; sessions here do not use them.
  lc_credentials: z.object({ type: z.string(), org_api_key: z.string().optional() }).optional(),
}).strict();

const ListQuery = z.object({
  status: z.enum(['starting', 'running', 'ended']).optional(),
  limit: z.coerce.number().int('must be an integer').min(1).max(200).default(50),
  cursor: z.string().optional(),
}).strict();

const HistoryQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(5000).default(1000),
}).strict();

/**
 * A page of a session's stored events (after, limit in the query): one shape
 * for the owner's and the organization's history routes. Ownership is the caller's check.
 */
export async function historyPage(deps: Pick<GatewayDeps, 'db'>, sessionId: string, query: unknown) {
  const q = parseOr400(HistoryQuery, query, 'query');
  const events = await listEvents(deps.db, sessionId, { afterSeq: q.after, limit: q.limit });
  return {
    events: events.map((e) => ({ type: e.type, seq: e.seq, timestamp: e.created_at, session_id: e.session_id, payload: e.payload })),
    next_after: events.length === q.limit ? events[events.length - 1].seq : null,
  };
}

const CaptureBody = z.object({
  name: z.string().trim().min(1).max(100),
  description: z.string().max(500).optional(),
}).strict();

export const encodeCursor = (c: { createdAt: string; id: string }) => Buffer.from(JSON.stringify([c.createdAt, c.id])).toString('base64url');
export function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof createdAt !== 'string' || typeof id !== 'string' || Number.isNaN(Date.parse(createdAt))) throw new Error();
    return { createdAt, id };
  } catch {
    throw badRequest('cursor: not a cursor this API returned');
  }
}

/** A session of this user; anyone else's is "not found", so ids reveal nothing. */
export async function ownSession(deps: GatewayDeps, userId: string, id: string): Promise<SessionRow> {
  const s = await getSession(deps.db, id);
  if (!s || s.deleted_at || s.owner_type !== 'user' || s.owner_id !== userId) throw notFound('session not found');
  return s;
}

/**
 * Deletes the workspace archives of sessions whose content was just purged.
 * A failure is logged, not raised: the purge has committed, and the reaper
 * still removes the archives once the retention period is over.
 */
export async function removeArchives(deps: Pick<GatewayDeps, 'config' | 'log'>, sessionIds: string[]): Promise<void> {
  const archives = archiveStoreFor(deps.config);
  for (const id of sessionIds) {
    await archives.remove(id).catch((err: Error) => deps.log.error({ sessionId: id, err: err.message }, 'workspace archive not removed'));
  }
}

/** Ends every running session of a user (deregistration). */
export async function terminateAll(deps: GatewayDeps, userId: string): Promise<void> {
  for (const status of ['starting', 'running'] as const) {
    for (const s of await listSessions(deps.db, { type: 'user', id: userId }, { status, limit: 200 })) {
      await deps.service.terminate(s.id, 'user_requested').catch(() => undefined);
      await deps.service.waitForEnd(s.id).catch(() => undefined);
    }
  }
}

export function sessionRoutes(deps: GatewayDeps): Router {
  const r = Router();
  const owner = (userId: string) => ({ type: 'user' as const, id: userId });

  r.get('/v1/sessions', async (req, res) => {
    const me = principalOf(req);
    const q = parseOr400(ListQuery, req.query, 'query');
    const rows = await listSessions(deps.db, owner(me.userId), {
      status: q.status,
      limit: q.limit + 1,
      after: q.cursor ? decodeCursor(q.cursor) : undefined,
    });
    const page = rows.slice(0, q.limit);
    res.json({
      sessions: page.map((s) => sessionResource(s)),
      next_cursor: rows.length > q.limit ? encodeCursor(page[page.length - 1].cursor) : null,
    });
  });

  r.post('/v1/sessions', async (req, res) => {
    const me = principalOf(req);
    await requireRegistered(deps, me.userId);
    const body = parseOr400(CreateBody, req.body);
    await deps.rateLimits.sessionCreate(me.userId);
    const credential = await latestCredential(deps.db, me.userId, 'anthropic');
    if (!credential) throw forbidden('no stored credentials for anthropic: POST /v1/auth/claude/apikey first');
    const profileId = body.profile_id ?? (await getDefaultProfileId(deps.db, me.userId));
    const base = profileId ? await fullProfile(deps.db, deps.keyring, me.userId, profileId) : {};
    if (!base) throw badRequest('profile_id: no such profile');
    let profile: SessionProfile;
    try {
      profile = parseProfile({
        ...base,
        ...(body.allowed_tools ? { allowed_tools: body.allowed_tools } : {}),
        // A profile's denials always survive: the session may add to them, never remove one.
        denied_tools: [...new Set([...(base.denied_tools ?? []), ...(body.denied_tools ?? [])])],
      });
    } catch (err) {
      // The merge can break a rule neither part broke (the denied list grows past its maximum): the request's fault.
      if (err instanceof ProfileError) throw badRequest(err.message);
      throw err;
    }
    if ((await countActiveSessions(deps.db, owner(me.userId))) >= deps.config.limits.maxConcurrentSessions) {
      throw conflict(`maximum concurrent sessions (${deps.config.limits.maxConcurrentSessions}) reached`, 'session_limit');
    }
    const { sessionId } = await deps.service.start({
      ownerType: 'user',
      ownerId: me.userId,
      trigger: 'user',
      name: body.name,
      profile,
      credentialId: credential.id,
      initialPrompt: body.initial_prompt,
    });
    const s = (await getSession(deps.db, sessionId))!;
    res.status(201).json({ session: { id: s.id, status: s.status, region: 'local', created_at: s.created_at, name: s.name } });
  });

  r.get('/v1/sessions/:sessionId', async (req, res) => {
    const me = principalOf(req);
    const s = await ownSession(deps, me.userId, req.params.sessionId);
    // Runtime from the billing periods, tokens and cost from the model calls.
    res.json({ session: sessionResource(s, await sessionUsage(deps.db, s.id)) });
  });

  // Events without a socket: REST clients (playbooks answering approvals) see what happened.
  r.get('/v1/sessions/:sessionId/history', async (req, res) => {
    const me = principalOf(req);
    const s = await ownSession(deps, me.userId, req.params.sessionId);
    res.json(await historyPage(deps, s.id, req.query));
  });

  r.delete('/v1/sessions/:sessionId', async (req, res) => {
    const me = principalOf(req);
    const s = await ownSession(deps, me.userId, req.params.sessionId);
    if (s.status === 'ended') throw conflict('session has already ended', 'session_not_running');
    try {
      await deps.service.terminate(s.id, 'user_requested');
      // Audited only when a workflow was there to end.
      await audit(deps, { actor: { type: 'user', id: me.userId }, action: 'session.terminate', target: { type: 'session', id: s.id }, details: { reason: 'user_requested' } });
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    res.json({ terminated: true });
  });

  r.delete('/v1/sessions/:sessionId/record', async (req, res) => {
    const me = principalOf(req);
    const s = await ownSession(deps, me.userId, req.params.sessionId);
    if (s.status !== 'ended') throw conflict('only ended sessions can be deleted; terminate it first', 'session_not_ended');
    await deps.db.transaction((tx) => purgeSessionContent(tx, 'id = $1', [s.id]));
    await removeArchives(deps, [s.id]);
    await audit(deps, { actor: { type: 'user', id: me.userId }, action: 'session.delete', target: { type: 'session', id: s.id } });
    res.json({ deleted: true });
  });

  r.post('/v1/sessions/:sessionId/capture-profile', async (req, res) => {
    const me = principalOf(req);
    const s = await ownSession(deps, me.userId, req.params.sessionId);
    const body = parseOr400(CaptureBody, req.body);
    await roomForProfile(deps, me.userId);
    const profile = (await sessionProfile(deps.db, deps.keyring, s.id).catch(() => undefined)) ?? s.profile;
    const created = await createProfile(deps.db, deps.keyring, me.userId, {
      name: body.name,
      description: body.description ?? `Captured from session ${s.id}`,
      profile,
    });
    res.status(201).json({ profile: profileResource(created) });
  });

  return r;
}
