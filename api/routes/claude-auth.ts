import { Router } from 'express';
import { z } from 'zod';
import type { GatewayDeps } from '../deps';
import { principalOf } from '../auth';
import { forbidden } from '../errors';
import { parseOr400 } from '../validation';
import { getUser } from '../../store/users';
import { deleteCredentials, latestCredential, replaceCredential } from '../../store/sessions';

const ApiKeyBody = z.object({
  // The shape only (the key is checked by the API on first use), so a pasted placeholder such as "sk-ant-..." is refused now.
  api_key: z.string().startsWith('sk-ant-', 'API keys must start with sk-ant-').max(500)
    .regex(/^sk-ant-[A-Za-z0-9_-]{8,}$/, 'not an Anthropic API key: sk-ant- followed by at least 8 letters, digits, - or _'),
}).strict();

export async function requireRegistered(deps: GatewayDeps, userId: string) {
  const user = await getUser(deps.db, userId);
  if (!user) throw forbidden('not registered: POST /v1/register first');
  return user;
}

/** Claude credentials: stored sealed, never returned. */
export function claudeAuthRoutes(deps: GatewayDeps): Router {
  const r = Router();

  r.post('/v1/auth/claude/apikey', async (req, res) => {
    const me = principalOf(req);
    await requireRegistered(deps, me.userId);
    const { api_key } = parseOr400(ApiKeyBody, req.body);
    await replaceCredential(deps.db, deps.keyring, { ownerId: me.userId, type: 'api_key', secret: api_key });
    res.json({ success: true, message: 'API key stored successfully' });
  });

  r.get('/v1/auth/claude/status', async (req, res) => {
    const me = principalOf(req);
    const cred = await latestCredential(deps.db, me.userId, 'anthropic');
    res.json(cred ? { has_credentials: true, credential_type: cred.type, created_at: cred.created_at } : { has_credentials: false });
  });

  r.delete('/v1/auth/claude', async (req, res) => {
    const me = principalOf(req);
    const deleted = await deleteCredentials(deps.db, me.userId, 'anthropic');
    res.json({ success: true, deleted: deleted > 0 });
  });

  return r;
}
