import { Router } from 'express';
import { z } from 'zod';
import type { GatewayDeps } from '../deps';
import { principalOf } from '../auth';
import { AppError, badRequest, conflict, notFound } from '../errors';
import { parseOr400 } from '../validation';
import { requireRegistered } from './claude-auth';
import { authorizeUrl, encodeTokens, exchangeCode, newCodeVerifier, newState, TokenEndpointError, type OAuthTokens } from '../../lib/claude-oauth';
import { claimFlow, completeFlow, createFlow, liveFlow, releaseFlow } from '../../store/oauth';
import { replaceCredential } from '../../store/sessions';

export const OAuthUrlQuery = z.object({ session_id: z.string().min(1).max(200) }).strict();

export const OAuthCodeBody = z.object({
  session_id: z.string().min(1).max(200),
  /** The code as the authorization server showed it; "code#state" (as Claude's callback page shows it) is accepted. */
  code: z.string().trim().min(1).max(4096),
}).strict();

const gone = () => notFound('no such OAuth flow, or it has expired: POST /v1/auth/claude/start again');
const used = () => conflict('this OAuth flow has already been used: POST /v1/auth/claude/start again', 'oauth_flow_used');

/**
 * Signing in with a Claude account: start → url → code, an authorization code
 * flow with PKCE (S256). The verifier stays sealed in the store; tokens go
 * into the user's sealed 'oauth_token' credential. Neither the code, the
 * verifier nor a token is ever answered or logged.
 */
export function claudeOAuthRoutes(deps: GatewayDeps): Router {
  const r = Router();
  const settings = deps.config.claudeOAuth;

  const clientId = (): string => {
    if (!settings.clientId) throw new AppError(503, 'oauth_not_configured', 'Claude OAuth sign-in is not configured on this deployment (CLAUDE_OAUTH_CLIENT_ID)');
    return settings.clientId;
  };

  r.post('/v1/auth/claude/start', async (req, res) => {
    const me = principalOf(req);
    await requireRegistered(deps, me.userId);
    clientId();
    const ttl = settings.flowTtlSeconds;
    const { id } = await createFlow(deps.db, deps.keyring, { userId: me.userId, state: newState(), codeVerifier: newCodeVerifier(), ttlSeconds: ttl });
    res.json({
      oauth_session_id: id,
      expires_in: Math.max(1, Math.floor(ttl)),
      message: `Get the authorization URL from GET /v1/auth/claude/url?session_id=${id}`,
    });
  });

  r.get('/v1/auth/claude/url', async (req, res) => {
    const me = principalOf(req);
    await requireRegistered(deps, me.userId);
    const { session_id } = parseOr400(OAuthUrlQuery, req.query, 'query');
    const flow = await liveFlow(deps.db, deps.keyring, me.userId, session_id);
    if (!flow) throw gone();
    if (flow.status === 'completed') throw used();
    if (!flow.codeVerifier) throw gone();
    // The URL is built at once: there is no asynchronous step, so the answer is never 'pending'.
    res.json({
      status: 'url_ready',
      url: authorizeUrl(settings, { clientId: clientId(), state: flow.state, codeVerifier: flow.codeVerifier }),
      message: 'Open the URL, authorize, then POST the code shown to /v1/auth/claude/code',
    });
  });

  r.post('/v1/auth/claude/code', async (req, res) => {
    const me = principalOf(req);
    await requireRegistered(deps, me.userId);
    const body = parseOr400(OAuthCodeBody, req.body);
    const id = clientId();
    const flow = await liveFlow(deps.db, deps.keyring, me.userId, body.session_id);
    if (!flow) throw gone();
    if (flow.status === 'completed') throw used();
    if (flow.status === 'exchanging') throw conflict('a code for this OAuth flow is being exchanged', 'oauth_flow_busy');
    const hash = body.code.indexOf('#');
    const code = hash >= 0 ? body.code.slice(0, hash) : body.code;
    if (hash >= 0 && body.code.slice(hash + 1) !== flow.state) {
      throw badRequest('code: it belongs to a different authorization (state mismatch)');
    }
    if (code === '') throw badRequest('code: empty');
    if (!(await claimFlow(deps.db, me.userId, flow.id))) throw conflict('this OAuth flow is in use or has expired', 'oauth_flow_busy');

    let tokens: OAuthTokens;
    try {
      tokens = await exchangeCode(settings, { clientId: id, code, codeVerifier: flow.codeVerifier!, state: flow.state });
    } catch (err) {
      await releaseFlow(deps.db, flow.id);
      if (err instanceof TokenEndpointError) {
        deps.log.warn({ userId: me.userId, flow: flow.id, kind: err.kind, oauthError: err.oauthError }, 'Claude OAuth code exchange failed');
        throw err.kind === 'rejected'
          ? new AppError(400, 'oauth_code_rejected', `the authorization code was not accepted: ${err.message}`)
          : new AppError(502, 'oauth_server_error', err.message);
      }
      throw err;
    }
    try {
      await deps.db.transaction(async (tx) => {
        await replaceCredential(tx, deps.keyring, { ownerId: me.userId, type: 'oauth_token', secret: encodeTokens(tokens) });
        await completeFlow(tx, flow.id);
      });
    } catch (err) {
      await releaseFlow(deps.db, flow.id).catch(() => undefined);
      throw err;
    }
    deps.log.info({ userId: me.userId, flow: flow.id }, 'Claude OAuth credential stored');
    res.json({ success: true, status: 'completed', message: 'Claude credentials stored' });
  });

  return r;
}
