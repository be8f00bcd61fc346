import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../lib/config';
import { createLogger } from '../lib/log';
import { loadSecrets } from '../infra/secrets';
import { mintToken } from '../api/auth';

/**
 * `npm run token -- --user alice`: a bearer token for a local user, signed
 * with the same secret the gateway verifies with (AUTH_JWT_SECRET, or the one
 * generated into the data directory).
 */
async function main() {
  const { values } = parseArgs({
    options: {
      user: { type: 'string', short: 'u', default: 'local-user' },
      email: { type: 'string' },
      expires: { type: 'string', default: '24h' },
    },
  });
  const config = loadConfig();
  const { jwtSecret } = loadSecrets(config, createLogger('error'));
  if (!jwtSecret) throw new ConfigError('tokens are verified with AUTH_JWKS_URL here: get one from that issuer');
  const token = await mintToken(jwtSecret, {
    sub: values.user!,
    email: values.email,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    expiresIn: values.expires,
  });
  console.log(token);
}

main().catch((err) => {
  console.error(err instanceof ConfigError || err instanceof TypeError ? err.message : err);
  process.exit(1);
});
