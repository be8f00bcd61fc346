import { randomUUID } from 'node:crypto';
import { ArchiveMissingError, type ArchiveStore } from '../lib/archives';
import { archiveStoreFor } from '../lib/archive-store';
import { parseProfile, ProfileError, type SessionProfile } from '../lib/profile';
import { claimFork, conversationLength, discardFork, markArchiveCopied, recordFork, releaseFork } from '../store/hibernation';
import { fullProfile, getDefaultProfileId } from '../store/profiles';
import {
  countActiveSessions, getSession, hasCurrentArchive, latestCredential, markEnded, sessionState, type SessionRow,
} from '../store/sessions';
import type { GatewayDeps } from './deps';
import { AppError, badRequest, conflict, forbidden, notFound } from './errors';

/**
 * Forking (api-reference.md, "Fork Preflight Check" and "Fork Session"): a
 * dormant or ended session of the caller becomes the start of a new one with
 * the caller's profile, its conversation and (when its archive is its current
 * workspace: hasCurrentArchive) a copy of its workspace.
 */
export interface ForkRequest {
  name?: string;
  profile_id?: string;
  initial_prompt?: string;
  acknowledge_missing_tools?: string[];
}

const gone = (message: string) => new AppError(410, 'gone', message);
/** A fork claim this old is from a gateway that died mid-fork; no copy takes this long. */
const CLAIM_STALE_SECONDS = 15 * 60;

export class ForkService {
  private readonly archives: ArchiveStore;
  constructor(private readonly deps: GatewayDeps) {
    this.archives = archiveStoreFor(deps.config);
  }

  async preflight(userId: string, sourceId: string, profileId?: string) {
    const source = await this.source(userId, sourceId);
    const state = sessionState(source);
    const profile = await this.profile(userId, profileId);
    const sourceMcps = Object.keys(source.profile.mcp_servers ?? {});
    const problem = await this.problem(source).catch((err: AppError) => err);
    return {
      source_session_id: source.id,
      source_session_type: source.trigger === 'dr' ? 'api' : 'user',
      source_status: state,
      source_name: source.name,
      source_lifetime_days: Math.floor((Date.parse(source.terminated_at ?? new Date().toISOString()) - Date.parse(source.created_at)) / 86_400_000),
      default_fork_name: defaultName(source),
      source_mcp_servers: sourceMcps,
      missing_mcps: sourceMcps.filter((m) => !(m in (profile.mcp_servers ?? {}))),
      is_forkable: problem === undefined,
      is_forkable_reason: problem?.message ?? '',
      history_available: (await conversationLength(this.deps.db, source.id)) > 0,
    };
  }

  /**
   * Records the fork with its conversation, then copies the source's archive
   * (outside the transaction: a slow copy holds no connection) and starts it;
   * returns its row. One fork of a source at a time: another answers 409.
   */
  async fork(userId: string, sourceId: string, req: ForkRequest): Promise<SessionRow> {
    const { db, log } = this.deps;
    const source = await this.source(userId, sourceId);
    const claim = randomUUID();
    if (!(await claimFork(db, source.id, claim, CLAIM_STALE_SECONDS))) {
      throw conflict('a fork of this session is already in progress', 'fork_in_progress');
    }
    try {
      return await this.forkClaimed(userId, source, req);
    } finally {
      // Left behind, the claim only delays the next fork until it is stale.
      await releaseFork(db, source.id, claim).catch((err: Error) => log.error({ sourceId: source.id, err: err.message }, 'fork claim not released'));
    }
  }

  private async forkClaimed(userId: string, source: SessionRow, req: ForkRequest): Promise<SessionRow> {
    const { db, config, service } = this.deps;
    const problem = await this.problem(source);
    if (problem) throw problem;
    const profile = await this.profile(userId, req.profile_id);
    const missing = Object.keys(source.profile.mcp_servers ?? {}).filter((m) => !(m in (profile.mcp_servers ?? {})));
    const unacknowledged = missing.filter((m) => !(req.acknowledge_missing_tools ?? []).includes(m));
    if (unacknowledged.length) {
      throw new AppError(412, 'missing_mcps', `the source uses MCP servers the fork's profile lacks: ${unacknowledged.join(', ')}; acknowledge them in acknowledge_missing_tools`);
    }
    const credential = await latestCredential(db, userId, 'anthropic');
    if (!credential) throw forbidden('no stored credentials for anthropic: POST /v1/auth/claude/apikey first');
    if ((await countActiveSessions(db, { type: 'user', id: userId })) >= config.limits.maxConcurrentSessions) {
      throw new AppError(429, 'session_limit', `maximum concurrent sessions (${config.limits.maxConcurrentSessions}) reached`);
    }
    const sessionId = randomUUID();
    await db.transaction(async (tx) => {
      await service.record(tx, {
        sessionId,
        ownerType: 'user',
        ownerId: userId,
        trigger: 'user',
        name: req.name ?? defaultName(source),
        profile,
        credentialId: credential.id,
        initialPrompt: req.initial_prompt,
      });
      await recordFork(tx, { id: sessionId, sourceId: source.id });
    });
    // Only an archive no sandbox has run past: after a resume it is older than the workspace, and the fork gets the conversation alone.
    if (hasCurrentArchive(source)) {
      try {
        await markArchiveCopied(db, sessionId, await this.archives.copy(source.id, sessionId));
      } catch (err) {
        await this.discard(sessionId, err as Error);
        if (err instanceof ArchiveMissingError) throw gone(`${err.message}: it was removed after the retention period`);
        throw new AppError(500, 'fork_failed', 'the source’s workspace archive could not be copied; no fork was made, try again');
      }
    }
    await service.launch(sessionId);
    return (await getSession(db, sessionId))!;
  }

  /**
   * Undoes a fork whose archive copy failed: its archives, then its rows.
   * Should the archives stay, the row stays too, ended, so the reaper removes
   * them after the retention period instead of leaving files no row names.
   */
  private async discard(sessionId: string, cause: Error): Promise<void> {
    const { db, log } = this.deps;
    log.error({ sessionId, err: cause.message }, 'fork failed: workspace archive not copied');
    try {
      await this.archives.remove(sessionId);
      await discardFork(db, sessionId);
    } catch (err) {
      log.error({ sessionId, err: (err as Error).message }, 'failed fork not fully removed; ending it for the reaper');
      await markEnded(db, sessionId, { reason: 'failed', exitCode: 1, errorMessage: 'the fork could not copy its source’s workspace' }).catch(() => undefined);
    }
  }

  /**
   * The caller's session. Anyone else's, an organization's included, is "not
   * found" as in GET /v1/sessions/:id, so ids reveal nothing: user tokens here
   * carry no org permission (ai_agent.set) that could make it forkable.
   */
  private async source(userId: string, id: string): Promise<SessionRow> {
    const s = await getSession(this.deps.db, id);
    if (!s || s.owner_type !== 'user' || s.owner_id !== userId) throw notFound('session not found');
    // Retention (the reaper) removed its content: gone, not merely deleted by the user.
    if (s.purged_at) throw gone('the session is past its retention period: its conversation and workspace are gone');
    if (s.deleted_at) throw notFound('session not found');
    return s;
  }

  /** Why the source cannot be forked now, if it cannot. */
  private async problem(s: SessionRow): Promise<AppError | undefined> {
    const state = sessionState(s);
    if (state !== 'dormant' && state !== 'ended') return conflict(`the session is ${state}: only a dormant or ended session can be forked`, 'not_forkable');
    if (hasCurrentArchive(s) && !(await this.archives.has(s.id))) return gone('the session’s workspace archive is no longer available: it was removed after the retention period');
    return undefined;
  }

  private async profile(userId: string, profileId?: string): Promise<SessionProfile> {
    const { db, keyring } = this.deps;
    const id = profileId ?? (await getDefaultProfileId(db, userId));
    const base = id ? await fullProfile(db, keyring, userId, id) : {};
    if (!base) throw badRequest('profile_id: no such profile');
    try {
      return parseProfile(base);
    } catch (err) {
      if (err instanceof ProfileError) throw badRequest(err.message);
      throw err;
    }
  }
}

const defaultName = (s: SessionRow) => `Fork of ${s.name ?? s.id}`;
