import type Anthropic from '@anthropic-ai/sdk';
import { ApplicationFailure } from '@temporalio/common';
import { modelCredential } from '../store/oauth';
import type { SessionRow } from '../store/sessions';
import { modelClient } from './model';
import { hiveSecret, hiveSecretName, type ActivityDeps } from './shared';

/**
 * The model client for a session, its credential opened here in the activity:
 * a hive secret for D&R sessions, else the stored API key or OAuth token.
 */
export async function sessionModelClient(
  { db, keyring, config }: Pick<ActivityDeps, 'db' | 'keyring' | 'config'>,
  session: Pick<SessionRow, 'credential_id' | 'org_id'>,
): Promise<Anthropic> {
  if (!session.credential_id) throw ApplicationFailure.nonRetryable('session has no model credential', 'ModelAuthError');
  const hiveName = hiveSecretName(session.credential_id);
  const credential = hiveName
    ? { type: 'api_key' as const, secret: await hiveSecret(db, keyring, session.org_id, hiveName) }
    : await modelCredential(db, keyring, config.claudeOAuth, session.credential_id);
  if (!credential) throw ApplicationFailure.nonRetryable('the model credential was deleted', 'ModelAuthError');
  return modelClient(credential, config.model.baseURL);
}
