import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, type UpdateDefinition } from '@temporalio/common';
import type { GatewayDeps } from './deps';
import { AppError, conflict, forbidden, notFound } from './errors';
import { parseOr400 } from './validation';
import { blobPaths, listMeta, readMeta, removeBlob, sweepBlobs, writeMeta, type BlobMeta } from '../lib/blobs';
import { downloadPathProblem, filenameProblem, isBlobId, uploadTargetPath, UPLOADS_DIR } from '../lib/file-transfer';
import { getSession, type SessionRow } from '../store/sessions';
import { exportFileUpdate, placeFileUpdate, sessionWorkflowId } from '../workflows/messages';

/**
 * File transfer for user sessions, shared by the REST routes
 * (api/routes/files.ts) and the WebSocket frames. The gateway hands out
 * links to itself signed with HMAC-SHA256 (method, id, expiry); the bytes go
 * to and from the blob area on disk, and the session workflow only ever
 * receives an id and a path, so no file byte enters Temporal history.
 */

export const tooLarge = (message: string) => new AppError(413, 'file_too_large', message);

const filename = z.string().superRefine((v, ctx) => {
  const problem = filenameProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const filePath = z.string().superRefine((v, ctx) => {
  const problem = downloadPathProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Bodies as the REST contract has them; the WebSocket's extra fields (request_id) are ignored. */
export const UploadRequestBody = z.object({
  filename,
  content_type: z.string().max(255).optional(),
  size: z.number().int('must be an integer').min(0),
});
export const UploadCompleteBody = z.object({ upload_id: z.string().min(1) });
/** The WebSocket's upload_complete names the file (filename or path) rather than the upload id. */
const CompleteInput = z.object({
  upload_id: z.string().min(1).optional(),
  filename: z.string().min(1).optional(),
  path: z.string().min(1).optional(),
}).refine((v) => v.upload_id !== undefined || v.filename !== undefined || v.path !== undefined, {
  message: 'upload_id is required',
  path: ['upload_id'],
});
export const DownloadRequestBody = z.object({ path: filePath });

const mib = (n: number) => (n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n} bytes`);

/** A session of this user; anyone else's is "not found", so ids reveal nothing. */
async function ownSession(deps: GatewayDeps, userId: string, id: string): Promise<SessionRow> {
  const s = await getSession(deps.db, id);
  if (!s || s.deleted_at || s.owner_type !== 'user' || s.owner_id !== userId) throw notFound('session not found');
  return s;
}

function requireRunning(s: SessionRow) {
  if (s.status !== 'running') throw conflict(`session is ${s.status}, not running`, 'session_not_running');
}

// ---- signed links -------------------------------------------------------

export type LinkMethod = 'PUT' | 'GET';

function linkKey(deps: Pick<GatewayDeps, 'config' | 'keyring'>): Buffer {
  if (deps.config.files.urlSecret) return Buffer.from(deps.config.files.urlSecret, 'utf8');
  // Derived from the current master key: every gateway sharing the master key checks every link.
  const master = deps.keyring.keys.get(deps.keyring.currentId);
  if (!master) throw new Error('no master key to sign file links with');
  return Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), 'ai-sessions file links v1', 32));
}

function signature(deps: Pick<GatewayDeps, 'config' | 'keyring'>, method: LinkMethod, id: string, expires: number): string {
  return crypto.createHmac('sha256', linkKey(deps)).update(`${method}\n${id}\n${expires}`).digest('base64url');
}

/** The link's query string: `expires` (unix seconds) and `sig`. Exported so tests can sign edge cases. */
export function signLink(deps: Pick<GatewayDeps, 'config' | 'keyring'>, method: LinkMethod, id: string, expires: number): string {
  return `expires=${expires}&sig=${signature(deps, method, id, expires)}`;
}

function linkUrl(deps: GatewayDeps, method: LinkMethod, id: string, expires: number): string {
  const base = deps.publicUrl ?? deps.config.files.publicUrl;
  return `${base}/v1/io/blobs/${id}?${signLink(deps, method, id, expires)}`;
}

/** Checks a link's signature and expiry (403 otherwise); returns the blob id. */
export function verifyLink(deps: GatewayDeps, method: LinkMethod, id: string, query: Record<string, unknown>): string {
  const expires = typeof query.expires === 'string' && /^\d{1,12}$/.test(query.expires) ? Number(query.expires) : undefined;
  const sig = typeof query.sig === 'string' ? query.sig : undefined;
  if (!isBlobId(id)) throw forbidden('invalid file link');
  if (expires === undefined || !sig) throw forbidden('invalid file link: expires and sig are required');
  const expected = Buffer.from(signature(deps, method, id, expires));
  const given = Buffer.from(sig);
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) throw forbidden('invalid file link signature');
  if (expires * 1000 < Date.now()) throw forbidden('file link expired');
  return id;
}

function expiry(deps: GatewayDeps) {
  const expires = Math.floor(Date.now() / 1000 + deps.config.files.urlTtlSeconds);
  return { expires, expiresAt: new Date(expires * 1000).toISOString() };
}

const newId = (kind: 'up' | 'dl') => `${kind}_${crypto.randomBytes(16).toString('hex')}`;

// ---- housekeeping ---------------------------------------------------------

const lastSweep = new Map<string, number>();
/** At most once a minute per blob area: drops expired records and orphaned bytes (best effort, in the background). */
function maybeSweep(deps: GatewayDeps) {
  const dir = deps.config.files.blobDir;
  const now = Date.now();
  if ((lastSweep.get(dir) ?? 0) + 60_000 > now) return;
  lastSweep.set(dir, now);
  // An upload may be completed a while after its link expired; a download link is over when it expires.
  const graceMs = Math.max(3600, deps.config.files.urlTtlSeconds) * 1000;
  void sweepBlobs(dir, graceMs).catch((err) => deps.log.warn({ err: (err as Error).message }, 'blob sweep failed'));
}

// ---- the workflow --------------------------------------------------------

/** Failure types of the file updates, as HTTP errors. */
const FAILURE_STATUS: Record<string, (m: string) => AppError> = {
  SessionNotRunning: (m) => conflict(m, 'session_not_running'),
  SandboxGone: () => conflict('the session sandbox is gone', 'session_not_running'),
  InvalidArgument: (m) => new AppError(400, 'invalid_request', m),
  FileNotFound: (m) => new AppError(404, 'file_not_found', m),
  PathOutsideWorkspace: (m) => new AppError(403, 'path_outside_workspace', m),
  NotARegularFile: (m) => new AppError(400, 'not_a_file', m),
  FileTooLarge: (m) => tooLarge(m),
  UploadMissing: (m) => conflict(m, 'upload_incomplete'),
};

async function fileUpdate<Ret, Arg>(
  deps: GatewayDeps,
  sessionId: string,
  update: UpdateDefinition<Ret, [Arg]>,
  arg: Arg,
): Promise<Ret> {
  const handle = deps.client.workflow.getHandle(sessionWorkflowId(sessionId));
  for (let attempt = 0; ; attempt++) {
    try {
      return await handle.executeUpdate(update, { args: [arg] });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw conflict('session is not running', 'session_not_running');
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
      const cause = err.cause instanceof ApplicationFailure ? err.cause : undefined;
      // The store says running a moment before the workflow has its sandbox: wait that moment out.
      if (cause?.type === 'SessionNotRunning' && attempt < 10 && (await getSession(deps.db, sessionId))?.status === 'running') {
        await new Promise((r) => setTimeout(r, 300));
        continue;
      }
      const toError = cause?.type ? FAILURE_STATUS[cause.type] : undefined;
      if (toError) throw toError(cause!.message);
      deps.log.warn({ sessionId, err: cause?.message ?? err.message }, 'file transfer failed');
      throw new AppError(502, 'file_transfer_failed', `file transfer failed: ${cause?.message ?? err.message}`);
    }
  }
}

// ---- the operations ------------------------------------------------------

export interface UploadTicket {
  upload_url: string;
  upload_id: string;
  target_path: string;
  expires_at: string;
}

/** A signed link to PUT a file's bytes to; they land in /workspace/uploads/<filename> on completion. */
export async function requestUpload(deps: GatewayDeps, userId: string, sessionId: string, body: unknown): Promise<UploadTicket> {
  const s = await ownSession(deps, userId, sessionId);
  const req = parseOr400(UploadRequestBody, body);
  const max = deps.config.files.maxBytes;
  if (req.size > max) throw tooLarge(`size: ${req.size} bytes is over the limit of ${mib(max)}`);
  requireRunning(s);
  await deps.rateLimits.upload(s.id);
  maybeSweep(deps);
  const id = newId('up');
  const { expires, expiresAt } = expiry(deps);
  const target = uploadTargetPath(req.filename);
  await writeMeta(deps.config.files.blobDir, {
    id,
    kind: 'upload',
    sessionId: s.id,
    userId,
    expiresAt,
    size: req.size,
    filename: req.filename,
    contentType: req.content_type,
    path: target,
  });
  return { upload_url: linkUrl(deps, 'PUT', id, expires), upload_id: id, target_path: target, expires_at: expiresAt };
}

/** Places an uploaded file in the sandbox. Takes upload_id, or (WebSocket) the filename or target path of an upload. */
export async function completeUpload(
  deps: GatewayDeps,
  userId: string,
  sessionId: string,
  body: unknown,
): Promise<{ success: true; path: string }> {
  const s = await ownSession(deps, userId, sessionId);
  const req = parseOr400(CompleteInput, body);
  const dir = deps.config.files.blobDir;
  let meta: BlobMeta | undefined;
  if (req.upload_id !== undefined) {
    meta = await readMeta(dir, req.upload_id);
  } else {
    const name = req.filename ?? (path.posix.dirname(req.path!) === UPLOADS_DIR ? path.posix.basename(req.path!) : undefined);
    const mine = (await listMeta(dir)).filter((m) => m.kind === 'upload' && m.sessionId === s.id && m.filename === name);
    meta = mine.sort((a, b) => Number(b.received ?? false) - Number(a.received ?? false) || b.expiresAt.localeCompare(a.expiresAt))[0];
  }
  if (!meta || meta.kind !== 'upload' || meta.sessionId !== s.id || meta.userId !== userId) {
    throw notFound('upload_id: no such upload for this session');
  }
  requireRunning(s);
  const received = meta.received && fs.existsSync(blobPaths(dir, meta.id).data);
  if (!received) throw conflict('the file has not been uploaded: PUT its bytes to upload_url first', 'upload_incomplete');
  const placed = await fileUpdate(deps, s.id, placeFileUpdate, { uploadId: meta.id, filename: meta.filename });
  await removeBlob(dir, meta.id);
  return { success: true, path: placed.path };
}

/** Copies a workspace file out of the sandbox and returns a signed link to GET it. */
export async function requestDownload(
  deps: GatewayDeps,
  userId: string,
  sessionId: string,
  body: unknown,
): Promise<{ download_url: string; expires_at: string }> {
  const s = await ownSession(deps, userId, sessionId);
  const req = parseOr400(DownloadRequestBody, body);
  requireRunning(s);
  maybeSweep(deps);
  const id = newId('dl');
  const exported = await fileUpdate(deps, s.id, exportFileUpdate, { downloadId: id, path: req.path, maxBytes: deps.config.files.maxBytes });
  const { expires, expiresAt } = expiry(deps);
  await writeMeta(deps.config.files.blobDir, {
    id,
    kind: 'download',
    sessionId: s.id,
    userId,
    expiresAt,
    size: exported.size,
    filename: path.posix.basename(exported.path),
    path: exported.path,
  });
  return { download_url: linkUrl(deps, 'GET', id, expires), expires_at: expiresAt };
}
