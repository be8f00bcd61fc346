import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createAuthenticator, mintToken } from '../api/auth';
import { AppError } from '../api/errors';
import { TEST_JWT_SECRET, useHarness } from './support/harness';

/** Token verification with a JWKS served over real HTTP, and with HS256 plus issuer and audience. */
describe('bearer tokens', () => {
  let jwks: http.Server;
  let jwksUrl: string;
  let sign: (claims: { sub?: string; iss?: string; aud?: string; kid?: string }) => Promise<string>;

  beforeAll(async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    jwks = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
    sign = async ({ sub = 'carol', iss = 'https://idp.test', aud = 'ai-sessions', kid = 'k1' }) => {
      let jwt = new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid }).setIssuedAt().setExpirationTime('5m').setIssuer(iss).setAudience(aud);
      if (sub) jwt = jwt.setSubject(sub);
      return jwt.sign(privateKey);
    };
  });
  afterAll(async () => {
    await new Promise((r) => jwks.close(r));
  });

  const auth = () => createAuthenticator({ jwksUrl, issuer: 'https://idp.test', audience: 'ai-sessions' }, undefined);

  it('accepts a token signed by a key of the JWKS, with the right issuer and audience', async () => {
    await expect(auth().verify(await sign({}))).resolves.toEqual({ userId: 'carol' });
  });

  it.each([
    ['another issuer', { iss: 'https://evil.test' }],
    ['another audience', { aud: 'something-else' }],
    ['an unknown key id', { kid: 'k2' }],
    ['no subject', { sub: '' }],
  ])('refuses %s with a 401', async (_name, claims) => {
    const err = await auth().verify(await sign(claims)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).status).toBe(401);
  });

  it('refuses an HS256 token when only the JWKS is trusted, and a JWKS token when only the secret is', async () => {
    await expect(auth().verify(await mintToken('some-secret', { sub: 'x', issuer: 'https://idp.test', audience: 'ai-sessions' }))).rejects.toThrow(/invalid/);
    const secretOnly = createAuthenticator({}, TEST_JWT_SECRET);
    await expect(secretOnly.verify(await sign({}))).rejects.toThrow(/invalid/);
    await expect(secretOnly.verify(await mintToken(TEST_JWT_SECRET, { sub: 'dave' }))).resolves.toEqual({ userId: 'dave' });
  });

  describe('registration rate limit', () => {
    const h = useHarness({ env: { RATE_LIMIT_REGISTRATIONS: '2' } });

    it('answers 429 with Retry-After past RATE_LIMIT_REGISTRATIONS per user', async () => {
      const gateway = await h.startGateway();
      const token = await mintToken(TEST_JWT_SECRET, { sub: 'eager' });
      const register = () => fetch(`${gateway.url}/v1/register`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      expect((await register()).status).toBe(200);
      expect((await register()).status).toBe(409);
      const limited = await register();
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      // Another user is counted apart.
      const other = await mintToken(TEST_JWT_SECRET, { sub: 'patient' });
      expect((await fetch(`${gateway.url}/v1/register`, { method: 'POST', headers: { authorization: `Bearer ${other}` } })).status).toBe(200);
    });
  });
});
