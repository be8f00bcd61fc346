import express, { Router } from 'express';
import cors from 'cors';
import { z } from 'zod';
import type { Payload } from '@temporalio/common';
import type { GatewayDeps } from '../deps';
import { AppError } from '../errors';
import { parseOr400 } from '../validation';
import { OPERATOR_COOKIE, operatorAuth } from '../operator-auth';
import { PayloadDecryptionError } from '../../lib/payload-codec';

/** Temporal's codec-server JSON: Payloads in proto3 JSON, bytes as base64. */
const JsonPayload = z.object({ metadata: z.record(z.string(), z.string()).nullish(), data: z.string().nullish() });
export const CodecBody = z.object({ payloads: z.array(JsonPayload) });
export const OperatorLoginBody = z.object({ token: z.string().min(1).max(1000) });

const fromJson = (p: z.infer<typeof JsonPayload>): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))])),
  data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')),
});
const toJson = (p: Payload) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});

/**
 * The codec endpoint for the Temporal Web UI (`--ui-codec-endpoint
 * <gateway>/codec`) and the CLI (`--codec-endpoint`): decodes and encodes
 * payloads for operators only (see operator-auth.ts), called cross-origin
 * from the UI's origins with credentials.
 */
export function codecRoutes(deps: GatewayDeps): Router {
  const r = Router();
  const auth = operatorAuth(deps.adminToken, deps.config.codec.operatorSessionSeconds);
  const codec = () => {
    if (!deps.payloadCodec) throw new Error('the gateway has no payload codec');
    return deps.payloadCodec;
  };
  const cookie = {
    httpOnly: true,
    // Same-site only: the UI on another port of the same host is same-site; any other site gets no cookie.
    sameSite: 'strict' as const,
    secure: deps.config.files.publicUrl.startsWith('https:'),
    path: '/codec',
  };

  r.use('/codec', cors({
    origin: deps.config.codec.corsOrigins,
    credentials: true,
    methods: ['POST'],
    allowedHeaders: ['content-type', 'x-namespace', 'authorization', 'authorization-extras'],
    maxAge: 600,
  }));

  r.get('/codec/login', (_req, res) => {
    res.type('html').send(LOGIN_PAGE);
  });

  r.post('/codec/login', express.urlencoded({ extended: false, limit: '4kb' }), async (req, res) => {
    const { token } = parseOr400(OperatorLoginBody, req.body ?? {});
    if (!deps.adminToken) throw new AppError(503, 'operators_disabled', 'operator access is disabled: set ADMIN_TOKEN');
    if (!auth.isAdminToken(token)) throw new AppError(401, 'unauthorized', 'not the admin token');
    const seconds = deps.config.codec.operatorSessionSeconds;
    res.cookie(OPERATOR_COOKIE, await auth.issue(), { ...cookie, maxAge: Math.floor(seconds * 1000) });
    // The sign-in form goes back to the Web UI; an API client gets JSON.
    if (req.is('application/x-www-form-urlencoded') && deps.config.codec.corsOrigins[0]) return res.redirect(303, deps.config.codec.corsOrigins[0]);
    res.json({ signed_in: true, expires_in: seconds });
  });

  r.post('/codec/logout', (_req, res) => {
    res.clearCookie(OPERATOR_COOKIE, cookie);
    res.status(204).end();
  });

  for (const op of ['decode', 'encode'] as const) {
    r.post(`/codec/${op}`, auth.require, async (req, res) => {
      const { payloads } = parseOr400(CodecBody, req.body);
      try {
        res.json({ payloads: (await codec()[op](payloads.map(fromJson))).map(toJson) });
      } catch (err) {
        if (err instanceof PayloadDecryptionError) throw new AppError(400, 'undecodable', err.message);
        throw err;
      }
    });
  }
  return r;
}

const LOGIN_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ai-sessions: operator sign-in</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto">
<h1>Operator sign-in</h1>
<p>Signs this browser in to decode Temporal payloads in the Web UI. In the UI's codec server settings, turn on
<em>Include cross-origin credentials</em>.</p>
<form method="post" action="/codec/login">
<label>Admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button>
</form>
</body></html>
`;
