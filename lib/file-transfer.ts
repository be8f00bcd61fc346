/**
 * File transfer rules shared by the gateway, the workflow and the sandbox
 * activities. Pure (no Node modules): the workflow bundle imports it.
 */
export const WORKSPACE_DIR = '/workspace';
export const UPLOADS_DIR = '/workspace/uploads';
/** The reference's limit (100 MB), as a default of UPLOAD_MAX_BYTES. */
export const DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024;
export const MAX_PATH_LENGTH = 4096;

export type BlobKind = 'up' | 'dl';
const BLOB_ID = /^(up|dl)_[0-9a-f]{32}$/;

/** Upload and download ids name files in the blob area: only this exact shape is ever accepted. */
export function isBlobId(id: unknown, kind?: BlobKind): id is string {
  return typeof id === 'string' && BLOB_ID.test(id) && (kind === undefined || id.startsWith(`${kind}_`));
}

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

/** Why a name cannot be an uploaded file's name in /workspace/uploads, or undefined when it can. */
export function filenameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'must be a non-empty file name';
  if (name.includes('\0')) return 'must not contain a NUL character';
  if (name.includes('/')) return "must be a plain file name, without '/'";
  if (name === '.' || name.includes('..')) return "must not be '.' or contain '..'";
  // eslint-disable-next-line no-control-regex
  if (/[\u0001-\u001f\u007f]/.test(name)) return 'must not contain control characters';
  if (utf8Length(name) > 255) return 'must be at most 255 bytes (UTF-8)';
  return undefined;
}

/** Why a path cannot be asked for as a download, before the sandbox resolves it. */
export function downloadPathProblem(p: unknown): string | undefined {
  if (typeof p !== 'string' || p === '') return 'must be a non-empty path';
  if (p.includes('\0')) return 'must not contain a NUL character';
  if (p.length > MAX_PATH_LENGTH) return `must be at most ${MAX_PATH_LENGTH} characters`;
  return undefined;
}

export const uploadTargetPath = (filename: string) => `${UPLOADS_DIR}/${filename}`;
