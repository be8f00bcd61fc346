import { Router } from 'express';
import type { GatewayDeps } from '../deps';
import { principalOf } from '../auth';
import { conflict, forbidden, notFound } from '../errors';
import { deleteUser, getUser, registerUser } from '../../store/users';
import { createProfile } from '../../store/profiles';
import { removeArchives, terminateAll } from './sessions';

/** The two profiles every user starts with (tool-permissions.md, "Defaults shipped to new users"). */
const READ_ONLY_ALLOW = [
  'Read',
  'Bash(cat:*)', 'Bash(head:*)', 'Bash(tail:*)', 'Bash(less:*)',
  'Bash(grep:*)', 'Bash(sed:*)', 'Bash(awk:*)', 'Bash(jq:*)',
  'Bash(ls:*)', 'Bash(find:*)', 'Bash(wc:*)',
];

export function registerRoutes(deps: GatewayDeps): Router {
  const r = Router();

  r.post('/v1/register', async (req, res) => {
    const me = principalOf(req);
    await deps.rateLimits.registration(me.userId);
    const domains = deps.config.registration.emailDomains;
    if (domains?.length) {
      // The domain follows the last '@': "x@example.com@evil.test" is a mailbox at evil.test.
      const domain = me.email?.includes('@') ? me.email.slice(me.email.lastIndexOf('@') + 1).toLowerCase() : undefined;
      if (!domain || !domains.includes(domain)) throw forbidden('email domain not in the allowed list');
    }
    const created = await deps.db.transaction(async (tx) => {
      const { user, created } = await registerUser(tx, { id: me.userId, email: me.email });
      return created ? user : undefined;
    });
    if (!created) throw conflict('user already registered', 'already_registered');
    await createProfile(deps.db, deps.keyring, me.userId, {
      name: 'Default',
      description: 'Read-only baseline: reads and common inspection commands run without asking',
      isDefault: true,
      profile: { permission_mode: 'acceptEdits', allowed_tools: READ_ONLY_ALLOW, denied_tools: [] },
    });
    await createProfile(deps.db, deps.keyring, me.userId, {
      name: 'Full Permissions',
      description: 'Every tool runs without asking',
      profile: { permission_mode: 'bypassPermissions', allowed_tools: [], denied_tools: [] },
    });
    res.json({ registered: true, registered_at: created.registered_at });
  });

  r.delete('/v1/register', async (req, res) => {
    const me = principalOf(req);
    if (!(await getUser(deps.db, me.userId))) throw notFound('user is not registered');
    await terminateAll(deps, me.userId);
    await removeArchives(deps, await deleteUser(deps.db, me.userId));
    res.json({ deregistered: true });
  });

  return r;
}
