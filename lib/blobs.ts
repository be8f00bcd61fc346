import fs from 'node:fs';
import path from 'node:path';
import { isBlobId } from './file-transfer';

/**
 * The blob area: a directory where uploaded bytes wait to be placed in a
 * sandbox and exported bytes wait to be downloaded. The gateway writes and
 * serves them; the worker on the sandbox's Docker host reads and writes them.
 * In production BLOB_DIR must be a directory every gateway and worker shares
 * (a network file system); bytes never travel through Temporal.
 *
 * Per id: `<id>.json` (what it is, whose, until when), `<id>.part` (bytes
 * arriving) and `<id>.bin` (complete bytes).
 */
export interface BlobMeta {
  id: string;
  kind: 'upload' | 'download';
  sessionId: string;
  userId: string;
  /** When the signed link stops working. */
  expiresAt: string;
  /** Declared size (upload) or exported size (download). */
  size: number;
  filename: string;
  contentType?: string;
  /** Download: the resolved path inside the sandbox. Upload: the target path. */
  path: string;
  /** Upload: the bytes have arrived. */
  received?: boolean;
  sha256?: string;
}

export function blobPaths(dir: string, id: string) {
  // Ids become file names: never anything but the generated shape.
  if (!isBlobId(id)) throw new Error(`not a blob id: ${JSON.stringify(id)}`);
  return {
    meta: path.join(dir, `${id}.json`),
    part: path.join(dir, `${id}.part`),
    data: path.join(dir, `${id}.bin`),
  };
}

export async function ensureBlobDir(dir: string): Promise<void> {
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
}

export async function readMeta(dir: string, id: string): Promise<BlobMeta | undefined> {
  if (!isBlobId(id)) return undefined;
  try {
    return JSON.parse(await fs.promises.readFile(blobPaths(dir, id).meta, 'utf8')) as BlobMeta;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Written whole or not at all (rename), so a concurrent reader never sees half a record. */
export async function writeMeta(dir: string, meta: BlobMeta): Promise<void> {
  await ensureBlobDir(dir);
  const file = blobPaths(dir, meta.id).meta;
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await fs.promises.writeFile(tmp, JSON.stringify(meta), { mode: 0o600 });
  await fs.promises.rename(tmp, file);
}

export async function removeBlob(dir: string, id: string): Promise<void> {
  const p = blobPaths(dir, id);
  await Promise.all([p.data, p.part, p.meta].map((f) => fs.promises.rm(f, { force: true })));
}

/** Every meta record in the area (for lookups by session and for sweeping). */
export async function listMeta(dir: string): Promise<BlobMeta[]> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: BlobMeta[] = [];
  for (const name of names) {
    const id = name.endsWith('.json') ? name.slice(0, -5) : undefined;
    if (!id || !isBlobId(id)) continue;
    const meta = await readMeta(dir, id).catch(() => undefined);
    if (meta) out.push(meta);
  }
  return out;
}

/**
 * Removes what nobody can use any more: records (and bytes) whose link expired
 * more than graceMs ago, and bytes without a record older than that.
 */
export async function sweepBlobs(dir: string, graceMs: number, now = Date.now()): Promise<number> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  const ids = new Set(names.map((n) => n.replace(/\.(json|part|bin)$/, '')).filter((id) => isBlobId(id)));
  for (const id of ids) {
    const meta = await readMeta(dir, id).catch(() => undefined);
    let stale: boolean;
    if (meta) {
      stale = Date.parse(meta.expiresAt) + graceMs < now;
    } else {
      const p = blobPaths(dir, id);
      const stats = await Promise.all([p.data, p.part].map((f) => fs.promises.stat(f).catch(() => undefined)));
      const newest = Math.max(0, ...stats.map((s) => s?.mtimeMs ?? 0));
      stale = newest + graceMs < now;
    }
    if (stale) {
      await removeBlob(dir, id).catch(() => undefined);
      removed += 1;
    }
  }
  return removed;
}
