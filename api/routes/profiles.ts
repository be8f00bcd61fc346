import { Router } from 'express';
import { z } from 'zod';
import type { GatewayDeps } from '../deps';
import { principalOf } from '../auth';
import { badRequest, conflict, notFound } from '../errors';
import { parseOr400 } from '../validation';
import { audit } from '../audit';
import { requireRegistered } from './claude-auth';
import { keepMaskedSecrets, SessionProfileSchema, type SessionProfile } from '../../lib/profile';
import { imageProblem } from '../../lib/runner-images';
import {
  countProfiles, createProfile, deleteProfile, getProfile, listProfiles, profileSecrets, setDefaultProfile,
  updateProfile, type ProfileRecord,
} from '../../store/profiles';

/** The profile resource's own fields beside the session settings. */
const ProfileMeta = z.object({
  name: z.string().trim().min(1, 'must not be empty').max(100, 'at most 100 characters'),
  description: z.string().max(500, 'at most 500 characters').nullable().optional(),
  is_default: z.boolean().optional(),
  provider: z.literal('anthropic', { message: 'only anthropic is supported by this deployment' }).optional(),
});
export const ProfileBody = SessionProfileSchema.extend(ProfileMeta.shape).strict();
/** A resource read back whole: the fields GET adds are accepted on PUT and ignored (id must match). */
const ReadOnlyFields = z.object({ id: z.string().optional(), created_at: z.string().optional(), updated_at: z.string().optional() });
const ProfileUpdate = ProfileBody.partial().extend(ReadOnlyFields.shape).strict();

const META_KEYS = ['name', 'description', 'is_default', 'provider', 'id', 'created_at', 'updated_at'] as const;
const settingsOf = (body: Record<string, unknown>): SessionProfile =>
  Object.fromEntries(Object.entries(body).filter(([k]) => !(META_KEYS as readonly string[]).includes(k))) as SessionProfile;

export function profileResource(p: ProfileRecord) {
  return {
    id: p.id,
    name: p.name,
    description: p.description ?? '',
    is_default: p.is_default,
    provider: 'anthropic',
    allowed_tools: p.settings.allowed_tools ?? [],
    denied_tools: p.settings.denied_tools ?? [],
    permission_mode: p.settings.permission_mode ?? 'acceptEdits',
    ...p.settings,
    created_at: p.created_at,
    updated_at: p.updated_at,
  };
}

function checkImage(deps: GatewayDeps, image: string | undefined) {
  const problem = imageProblem(image, deps.config);
  if (problem) throw badRequest(problem);
}

export async function roomForProfile(deps: GatewayDeps, userId: string) {
  if ((await countProfiles(deps.db, userId)) >= deps.config.limits.maxProfiles) {
    throw conflict(`at most ${deps.config.limits.maxProfiles} profiles per user`, 'profile_limit');
  }
}

export function profileRoutes(deps: GatewayDeps): Router {
  const r = Router();

  r.get('/v1/profiles', async (req, res) => {
    const me = principalOf(req);
    res.json({ profiles: (await listProfiles(deps.db, me.userId)).map(profileResource) });
  });

  r.post('/v1/profiles', async (req, res) => {
    const me = principalOf(req);
    await requireRegistered(deps, me.userId);
    const body = parseOr400(ProfileBody, req.body);
    checkImage(deps, body.image);
    await roomForProfile(deps, me.userId);
    const created = await createProfile(deps.db, deps.keyring, me.userId, {
      name: body.name,
      description: body.description,
      isDefault: body.is_default,
      profile: settingsOf(body),
    });
    res.status(201).json({ profile: profileResource(created) });
  });

  r.get('/v1/profiles/:profileId', async (req, res) => {
    const me = principalOf(req);
    const p = await getProfile(deps.db, me.userId, req.params.profileId);
    if (!p) throw notFound('profile not found');
    res.json({ profile: profileResource(p) });
  });

  r.put('/v1/profiles/:profileId', async (req, res) => {
    const me = principalOf(req);
    const update = parseOr400(ProfileUpdate, req.body);
    const current = await getProfile(deps.db, me.userId, req.params.profileId);
    if (!current) throw notFound('profile not found');
    // A new image only: a stored one read back and written back is refused when a session starts, not here.
    if (update.image !== current.settings.image) checkImage(deps, update.image);
    if (update.id !== undefined && update.id !== current.id) throw badRequest('id: does not match the profile being updated');
    if (update.is_default === false && current.is_default) {
      throw badRequest('is_default: make another profile the default instead (POST /v1/profiles/{id}/default)');
    }
    // Partial: absent fields keep their values; masked secret values keep what is stored.
    const stored = await profileSecrets(deps.db, deps.keyring, me.userId, current.id);
    const settings = keepMaskedSecrets({ ...current.settings, ...settingsOf(update) }, stored);
    const updated = await updateProfile(deps.db, deps.keyring, me.userId, current.id, {
      name: update.name ?? current.name,
      description: update.description === undefined ? current.description : update.description,
      profile: settings,
    });
    if (update.is_default) await setDefaultProfile(deps.db, me.userId, current.id);
    res.json({ profile: profileResource((await getProfile(deps.db, me.userId, updated!.id))!) });
  });

  r.delete('/v1/profiles/:profileId', async (req, res) => {
    const me = principalOf(req);
    const p = await getProfile(deps.db, me.userId, req.params.profileId);
    if (!p) throw notFound('profile not found');
    if (p.is_default) throw conflict('the default profile cannot be deleted; make another profile the default first', 'default_profile');
    await deleteProfile(deps.db, me.userId, p.id);
    await audit(deps, { actor: { type: 'user', id: me.userId }, action: 'profile.delete', target: { type: 'profile', id: p.id } });
    res.json({ deleted: true });
  });

  r.post('/v1/profiles/:profileId/default', async (req, res) => {
    const me = principalOf(req);
    if (!(await setDefaultProfile(deps.db, me.userId, req.params.profileId))) throw notFound('profile not found');
    res.json({ profile: profileResource((await getProfile(deps.db, me.userId, req.params.profileId))!) });
  });

  return r;
}
