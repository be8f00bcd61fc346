import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadKeyring, needsRewrap, open, rewrap, rotateKeyFile, seal, EncryptionError, type Keyring } from '../store/encryption';
import { openDb, type Db } from '../store/db';
import { rewrapAll } from '../store/rewrap';
import { createSession, getCredential, putCredential, sessionProfile } from '../store/sessions';
import { createProfile, fullProfile } from '../store/profiles';
import { registerUser } from '../store/users';
import { createOrg } from '../store/orgs';
import { putHive, resolveSecret } from '../store/hive';
import { freshPostgres } from './support/harness';

const key = () => crypto.randomBytes(32);
const ring = (currentId: string, entries: Array<[string, Buffer]>): Keyring => ({ currentId, keys: new Map(entries) });

describe('envelope encryption', () => {
  const k1 = key();
  const k2 = key();
  const one = ring('k1', [['k1', k1]]);
  const rotated = ring('k2', [['k1', k1], ['k2', k2]]);
  const onlyNew = ring('k2', [['k2', k2]]);

  it.each(['', 'sk-ant-api03-secret', 'ünïcødé ✓ 🗝️', 'x'.repeat(100_000)])('round-trips %#', (plain) => {
    const sealed = seal(one, plain);
    expect(sealed.startsWith('v1.k1.')).toBe(true);
    if (plain.length > 8) expect(sealed).not.toContain(plain);
    expect(open(one, sealed)).toBe(plain);
  });

  it('uses a fresh data key and IV per record', () => {
    expect(seal(one, 'same')).not.toBe(seal(one, 'same'));
  });

  it.each([
    ['a flipped ciphertext byte', (s: string) => { const p = s.split('.'); const b = Buffer.from(p[4], 'base64url'); b[0] ^= 1; p[4] = b.toString('base64url'); return p.join('.'); }],
    ['a flipped wrapped-key byte', (s: string) => { const p = s.split('.'); const b = Buffer.from(p[2], 'base64url'); b[20] ^= 1; p[2] = b.toString('base64url'); return p.join('.'); }],
    ['another key id', (s: string) => s.replace('v1.k1.', 'v1.k9.')],
    ['not sealed at all', () => 'plain text'],
  ])('refuses %s', (_name, tamper) => {
    expect(() => open(one, tamper(seal(one, 'secret')))).toThrow(EncryptionError);
  });

  it('re-wraps under the current key without touching the ciphertext', () => {
    const sealed = seal(one, 'rotate me');
    expect(needsRewrap(rotated, sealed)).toBe(true);
    const again = rewrap(rotated, sealed);
    expect(again.startsWith('v1.k2.')).toBe(true);
    expect(again.split('.')[4]).toBe(sealed.split('.')[4]);
    expect(needsRewrap(rotated, again)).toBe(false);
    expect(open(onlyNew, again)).toBe('rotate me');
    expect(() => open(onlyNew, sealed)).toThrow(/master key k1 is not configured/);
  });

  describe('keys from configuration and the data directory', () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-keys-'));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('generates an owner-only key file once, then reuses it', () => {
      const first = loadKeyring({ masterKeyId: 'k1' }, dir);
      expect(first.generated).toBe(true);
      expect(fs.statSync(path.join(dir, 'master.key')).mode & 0o077).toBe(0);
      const second = loadKeyring({ masterKeyId: 'k1' }, dir);
      expect(second.generated).toBe(false);
      expect(open(second.keyring, seal(first.keyring, 'kept'))).toBe('kept');
    });

    it('rotates the key file: a new current key, the old one still opens', () => {
      const before = loadKeyring({ masterKeyId: 'k1' }, dir).keyring;
      const sealed = seal(before, 'old record');
      expect(rotateKeyFile(dir)).toBe('k2');
      const after = loadKeyring({ masterKeyId: 'k1' }, dir).keyring;
      expect(after.currentId).toBe('k2');
      expect(open(after, sealed)).toBe('old record');
    });

    it('takes MASTER_KEY as hex or base64, retired keys as id:key, and names a bad one', () => {
      const k = key();
      const hex = loadKeyring({ masterKey: k.toString('hex'), masterKeyId: 'prod2', retiredKeys: `prod1:${k1.toString('base64')}` }, dir).keyring;
      const b64 = loadKeyring({ masterKey: k.toString('base64'), masterKeyId: 'prod2' }, dir).keyring;
      expect(hex.currentId).toBe('prod2');
      expect(open(b64, seal(hex, 'same key'))).toBe('same key');
      expect(open(hex, seal(ring('prod1', [['prod1', k1]]), 'retired'))).toBe('retired');
      expect(() => loadKeyring({ masterKey: 'too-short', masterKeyId: 'bad' }, dir)).toThrow(/master key bad must be 32 bytes/);
      expect(() => loadKeyring({ masterKey: k.toString('hex'), masterKeyId: 'x', retiredKeys: 'nocolon' }, dir)).toThrow(/id:key/);
    });
  });
});

describe.each(['pglite', 'postgres'] as const)('re-wrapping every sealed record (%s)', (kind) => {
  let db: Db;
  let pg: Awaited<ReturnType<typeof freshPostgres>> | undefined;
  beforeAll(async () => {
    pg = kind === 'postgres' ? await freshPostgres() : undefined;
    db = await openDb({ databaseUrl: pg?.url, pgliteDir: 'memory' });
  });
  afterAll(async () => {
    await db?.close();
    await pg?.drop();
  });

  it('moves credentials, profile secrets and session secrets to the new key, and they still open', async () => {
    const k1 = key();
    const old = ring('k1', [['k1', k1]]);
    const both = ring('k2', [['k1', k1], ['k2', key()]]);
    const newOnly = ring('k2', [['k2', both.keys.get('k2')!]]);
    await registerUser(db, { id: 'u-rot' });
    const credId = await putCredential(db, old, { ownerId: 'u-rot', type: 'api_key', secret: 'sk-ant-rotate' });
    const profile = await createProfile(db, old, 'u-rot', { name: 'p', profile: { environment: { TOKEN: 'env-secret' } } });
    await createSession(db, old, {
      id: `s-rot-${kind}`, ownerType: 'user', ownerId: 'u-rot', trigger: 'user', model: 'm',
      profile: { environment: { API: 'session-secret' } }, credentialId: credId, workflowId: 'w',
    });

    const { org } = await createOrg(db, 'rotating');
    await putHive(db, old, { orgId: org.id, hive: 'secret', name: 'vt', enabled: true, data: {}, secret: 'hive-secret' });

    expect(await rewrapAll(db, both)).toEqual({ credentials: 1, profiles: 1, sessions: 1, hive_records: 1 });
    expect(await rewrapAll(db, both)).toEqual({ credentials: 0, profiles: 0, sessions: 0, hive_records: 0 });
    await expect(resolveSecret(db, newOnly, org.id, 'vt')).resolves.toBe('hive-secret');
    expect((await getCredential(db, newOnly, credId))?.secret).toBe('sk-ant-rotate');
    expect((await fullProfile(db, newOnly, 'u-rot', profile.id))?.environment).toEqual({ TOKEN: 'env-secret' });
    expect((await sessionProfile(db, newOnly, `s-rot-${kind}`))?.environment).toEqual({ API: 'session-secret' });
    const { rows } = await db.query<{ secret: string }>('SELECT secret FROM credentials WHERE id = $1', [credId]);
    expect(rows[0].secret.startsWith('v1.k2.')).toBe(true);
    expect(rows[0].secret).not.toContain('sk-ant-rotate');
  });
});
