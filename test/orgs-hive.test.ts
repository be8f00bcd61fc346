import { mintToken } from '../api/auth';
import { resolveSecret } from '../store/hive';
import { runEntry } from './support/processes';
import { TEST_ADMIN_TOKEN, TEST_JWT_SECRET, useHarness, type Harness } from './support/harness';
import { callApi } from './support/http';

type Gateway = Awaited<ReturnType<Harness['startGateway']>>;

describe('organizations and their hive', () => {
  const h = useHarness();
  let gw: Gateway;
  beforeAll(async () => {
    gw = await h.startGateway();
  });

  const call = async (method: string, path: string, token?: string, body?: unknown) => {
    const r = await callApi(gw.url, method, path, { token, body });
    return { ...r, text: r.raw };
  };
  const newOrg = async (name: string) => {
    const r = await call('POST', '/v1/admin/orgs', TEST_ADMIN_TOKEN, { name });
    expect(r.status).toBe(201);
    return { id: r.body.org.id as string, key: r.body.api_key as string };
  };

  it('creates organizations only with the admin token, showing each key once', async () => {
    expect((await call('POST', '/v1/admin/orgs', undefined, { name: 'x' })).status).toBe(401);
    expect((await call('POST', '/v1/admin/orgs', 'not-the-admin-token-at-all', { name: 'x' })).status).toBe(401);
    expect((await call('POST', '/v1/admin/orgs', await mintToken(TEST_JWT_SECRET, { sub: 'u' }), { name: 'x' })).status).toBe(401);
    const bad = await call('POST', '/v1/admin/orgs', TEST_ADMIN_TOKEN, { name: '', extra: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/name/);

    const acme = await newOrg('acme');
    expect(acme.key).toMatch(/^ais_org_/);
    const list = await call('GET', '/v1/admin/orgs', TEST_ADMIN_TOKEN);
    expect(list.body.orgs.map((o: { name: string }) => o.name)).toContain('acme');
    expect(list.text).not.toContain(acme.key);
    // Only a hash is kept.
    const { rows } = await h.db.query<{ key_hash: string }>('SELECT key_hash FROM org_api_keys WHERE org_id = $1', [acme.id]);
    expect(rows[0].key_hash).not.toContain(acme.key.slice(8, 20));
  });

  it('is disabled without an admin token', async () => {
    const closed = await h.startGateway({ ADMIN_TOKEN: '' });
    const res = await fetch(`${closed.url}/v1/admin/orgs`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
    expect(res.status).toBe(503);
  });

  it('keeps each org to its own key: not a user JWT, not another org key, not a revoked key', async () => {
    const a = await newOrg('org-a');
    const b = await newOrg('org-b');
    const path = (org: string) => `/v1/orgs/${org}/hive/secret`;
    expect((await call('GET', path(a.id), a.key)).status).toBe(200);
    expect((await call('GET', path(a.id), b.key)).status).toBe(403);
    expect((await call('GET', path(a.id))).status).toBe(401);
    expect((await call('GET', path(a.id), await mintToken(TEST_JWT_SECRET, { sub: 'someone' }))).status).toBe(401);
    const rotated = await call('POST', `/v1/admin/orgs/${a.id}/keys`, TEST_ADMIN_TOKEN, { revoke_others: true });
    expect(rotated.status).toBe(201);
    expect((await call('GET', path(a.id), a.key)).status).toBe(401);
    expect((await call('GET', path(a.id), rotated.body.api_key)).status).toBe(200);
  });

  it('stores secrets sealed, never returns them, and resolves them for activities', async () => {
    const org = await newOrg('secrets-org');
    const base = `/v1/orgs/${org.id}/hive/secret`;
    const value = 'sk-ant-hive-secret-0123456789';
    const created = await call('PUT', `${base}/anthropic-key`, org.key, { data: { secret: value } });
    expect(created.status).toBe(201);
    expect((await call('PUT', `${base}/anthropic-key`, org.key, { data: { secret: value } })).status).toBe(200);
    const read = await call('GET', `${base}/anthropic-key`, org.key);
    expect(read.body.record).toMatchObject({ name: 'anthropic-key', enabled: true, data: {} });
    const listed = await call('GET', base, org.key);
    for (const text of [created.text, read.text, listed.text]) expect(text).not.toContain(value);
    const { rows } = await h.db.query<{ sealed: string }>(`SELECT sealed FROM hive_records WHERE org_id = $1`, [org.id]);
    expect(rows[0].sealed.startsWith('v1.')).toBe(true);
    expect(rows[0].sealed).not.toContain(value);
    await expect(resolveSecret(h.db, h.keyring, org.id, 'anthropic-key')).resolves.toBe(value);

    // Disabled: it stays, and cannot be used, and says so.
    expect((await call('PUT', `${base}/anthropic-key`, org.key, { data: { secret: value }, enabled: false })).status).toBe(200);
    await expect(resolveSecret(h.db, h.keyring, org.id, 'anthropic-key')).rejects.toThrow('hive://secret/anthropic-key is disabled');
    await expect(resolveSecret(h.db, h.keyring, org.id, 'nope')).rejects.toThrow('hive://secret/nope does not exist');

    expect((await call('PUT', `${base}/empty`, org.key, { data: {} })).status).toBe(400);
    expect((await call('PUT', `${base}/bad name!`, org.key, { data: { secret: 'x' } })).status).toBe(400);
    expect((await call('GET', `/v1/orgs/${org.id}/hive/widgets`, org.key)).status).toBe(404);
    expect((await call('DELETE', `${base}/anthropic-key`, org.key)).status).toBe(200);
    expect((await call('GET', `${base}/anthropic-key`, org.key)).status).toBe(404);
  });

  it('keeps lookup lists and ai_agent records readable', async () => {
    const org = await newOrg('records-org');
    const lookup = await call('PUT', `/v1/orgs/${org.id}/hive/lookup/threat-domains`, org.key, { data: { values: ['evil.test', 'bad.test'] } });
    expect(lookup.status).toBe(201);
    expect((await call('GET', `/v1/orgs/${org.id}/hive/lookup/threat-domains`, org.key)).body.record.data.values).toEqual(['evil.test', 'bad.test']);
    const agent = { prompt: 'Triage the detection.', anthropic_secret: 'hive://secret/anthropic-key', permission_mode: 'bypassPermissions' };
    expect((await call('PUT', `/v1/orgs/${org.id}/hive/ai_agent/triage`, org.key, { data: agent })).status).toBe(201);
    expect((await call('GET', `/v1/orgs/${org.id}/hive/ai_agent/triage`, org.key)).body.record.data).toEqual(agent);
    // A record that could never start a session is refused when saved, naming the field, and the stored one stays.
    const bad = await call('PUT', `/v1/orgs/${org.id}/hive/ai_agent/triage`, org.key, { data: { ...agent, max_turns: 'many' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^data\.max_turns: /);
    const noPrompt = await call('PUT', `/v1/orgs/${org.id}/hive/ai_agent/other`, org.key, { data: { anthropic_secret: 'hive://secret/k' } });
    expect(noPrompt.status).toBe(400);
    expect((await call('GET', `/v1/orgs/${org.id}/hive/ai_agent/triage`, org.key)).body.record.data).toEqual(agent);
    expect((await call('GET', `/v1/orgs/${org.id}/hive/ai_agent/other`, org.key)).status).toBe(404);
  });

  it('has a command that creates an organization through the running gateway', async () => {
    const env = { ...h.env, GATEWAY_URL: gw.url, ADMIN_TOKEN: TEST_ADMIN_TOKEN };
    const cmd = runEntry('bin/org.ts', env, ['create', '--name', 'from-the-command']);
    expect(await cmd.exited).toBe(0);
    const out = JSON.parse(cmd.output().slice(cmd.output().indexOf('{'))) as { org: { id: string }; api_key: string };
    expect((await call('GET', `/v1/orgs/${out.org.id}/hive/secret`, out.api_key)).status).toBe(200);
    const usage = runEntry('bin/org.ts', env, ['frobnicate']);
    expect(await usage.exited).toBe(1);
    expect(usage.output()).toMatch(/usage: npm run org -- create --name NAME/);
  });
});
