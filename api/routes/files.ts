import crypto from 'node:crypto';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Router, type Request, type Response } from 'express';
import type { GatewayDeps } from '../deps';
import { principalOf } from '../auth';
import { AppError, badRequest, notFound } from '../errors';
import { completeUpload, requestDownload, requestUpload, tooLarge, verifyLink } from '../files';
import { blobPaths, ensureBlobDir, readMeta, writeMeta } from '../../lib/blobs';

/** File transfer behind the bearer token: signed links for a session's uploads and downloads. */
export function fileRoutes(deps: GatewayDeps): Router {
  const r = Router();

  r.post('/v1/io/sessions/:sessionId/upload', async (req, res) => {
    res.json(await requestUpload(deps, principalOf(req).userId, req.params.sessionId, req.body));
  });

  r.post('/v1/io/sessions/:sessionId/upload/complete', async (req, res) => {
    res.json(await completeUpload(deps, principalOf(req).userId, req.params.sessionId, req.body));
  });

  r.post('/v1/io/sessions/:sessionId/download', async (req, res) => {
    res.json(await requestDownload(deps, principalOf(req).userId, req.params.sessionId, req.body));
  });

  return r;
}

/**
 * The signed links themselves. They carry their own authority (an HMAC over
 * method, id and expiry), so they are mounted before the bearer middleware
 * and before the JSON body parser: the body is the file, streamed to disk.
 */
export function blobRoutes(deps: GatewayDeps): Router {
  const r = Router();

  r.put('/v1/io/blobs/:blobId', async (req, res) => {
    const id = verifyLink(deps, 'PUT', req.params.blobId, req.query);
    const dir = deps.config.files.blobDir;
    const meta = await readMeta(dir, id);
    if (!meta || meta.kind !== 'upload') throw notFound('no such upload (completed or expired)');
    const declared = meta.size;
    const length = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
    if (length !== undefined && length > declared) return refuseOversize(req, res, declared);
    await ensureBlobDir(dir);
    const { part, data } = blobPaths(dir, id);
    const received = await receive(req, part, declared);
    if (received === 'over') return refuseOversize(req, res, declared);
    if (received.bytes !== declared) {
      await fs.promises.rm(part, { force: true });
      throw badRequest(`received ${received.bytes} bytes, but the upload declared ${declared}`);
    }
    await fs.promises.rename(part, data);
    await writeMeta(dir, { ...meta, received: true, sha256: received.sha256 });
    res.json({ received: received.bytes, sha256: received.sha256 });
  });

  r.get('/v1/io/blobs/:blobId', async (req, res) => {
    const id = verifyLink(deps, 'GET', req.params.blobId, req.query);
    const meta = await readMeta(deps.config.files.blobDir, id);
    const file = blobPaths(deps.config.files.blobDir, id).data;
    const stat = meta?.kind === 'download' ? await fs.promises.stat(file).catch(() => undefined) : undefined;
    if (!meta || !stat) throw notFound('no such download (expired?)');
    res.set({
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(stat.size),
      'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(meta.filename)}`,
      'Cache-Control': 'no-store',
    });
    await pipeline(fs.createReadStream(file), res);
  });

  return r;
}

/**
 * Streams the request body into `part`, hashing it; stops reading as soon as
 * it passes `limit` bytes. Backpressure: the request pauses while the disk catches up.
 */
function receive(req: Request, part: string, limit: number): Promise<{ bytes: number; sha256: string } | 'over'> {
  return new Promise((resolve, reject) => {
    const out = fs.createWriteStream(part, { mode: 0o600 });
    const hash = crypto.createHash('sha256');
    let bytes = 0;
    let done = false;
    const fail = (err: unknown) => {
      if (done) return;
      done = true;
      out.destroy();
      fs.promises.rm(part, { force: true }).finally(() => reject(err));
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > limit) {
        done = true;
        req.off('data', onData);
        req.pause();
        out.destroy();
        fs.promises.rm(part, { force: true }).finally(() => resolve('over'));
        return;
      }
      hash.update(chunk);
      if (!out.write(chunk)) {
        req.pause();
        out.once('drain', () => {
          if (!done) req.resume();
        });
      }
    };
    req.on('data', onData);
    req.on('end', () => {
      if (done) return;
      out.end(() => {
        if (done) return;
        done = true;
        resolve({ bytes, sha256: hash.digest('hex') });
      });
    });
    req.on('error', fail);
    // The client went away before the end of the body.
    req.on('close', () => {
      if (!req.complete) fail(new AppError(400, 'upload_aborted', 'the upload was interrupted'));
    });
    out.on('error', fail);
  });
}

/**
 * 413 without reading the rest. The whole answer is written at once but the
 * response is ended (which closes the connection) a moment later: closing a
 * socket with unread bytes resets it, and the client would see the reset
 * instead of the 413.
 */
function refuseOversize(req: Request, res: Response, declared: number) {
  const err = tooLarge(`the upload is larger than its declared size of ${declared} bytes`);
  const body = JSON.stringify({ error: { code: err.code, message: err.message } });
  req.pause();
  res.writeHead(err.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    Connection: 'close',
  });
  res.write(body);
  const closeLater = setTimeout(() => res.end(), 2000);
  closeLater.unref();
  req.socket.once('close', () => clearTimeout(closeLater));
}
