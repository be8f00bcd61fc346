import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../lib/config';
import { createLogger } from '../lib/log';
import { loadSecrets } from '../infra/secrets';

/**
 * `npm run org -- create --name acme` and `npm run org -- key --org ORG_ID`:
 * administration through the running gateway's admin endpoint (PGlite
 * belongs to that process, so this works on the embedded default too).
 * GATEWAY_URL defaults to this machine's gateway; the token is ADMIN_TOKEN or
 * the one generated into the data directory.
 */
async function main() {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { name: { type: 'string' }, org: { type: 'string' }, 'revoke-others': { type: 'boolean', default: false } },
  });
  const config = loadConfig();
  const { adminToken } = loadSecrets(config, createLogger('error'));
  if (!adminToken) throw new ConfigError('no admin token: set ADMIN_TOKEN');
  const base = process.env.GATEWAY_URL ?? `http://127.0.0.1:${config.port}`;
  const call = async (path: string, body: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${res.status}: ${JSON.stringify(json.error ?? json)}`);
    return json;
  };
  const [command] = positionals;
  if (command === 'create' && values.name) {
    const r = await call('/v1/admin/orgs', { name: values.name });
    console.log(JSON.stringify({ org: r.org, api_key: r.api_key }, null, 2));
  } else if (command === 'key' && values.org) {
    const r = await call(`/v1/admin/orgs/${encodeURIComponent(values.org)}/keys`, { revoke_others: values['revoke-others'] });
    console.log(JSON.stringify(r, null, 2));
  } else {
    throw new ConfigError('usage: npm run org -- create --name NAME | key --org ORG_ID [--revoke-others]');
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
