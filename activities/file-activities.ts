import fs from 'node:fs';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { blobPaths, ensureBlobDir } from '../lib/blobs';
import { downloadPathProblem, filenameProblem, isBlobId, UPLOADS_DIR, uploadTargetPath } from '../lib/file-transfer';
import { SandboxGoneError } from './docker-sandbox';
import { withHeartbeat, type ActivityDeps } from './shared';

/**
 * Moves bytes between the blob area and a sandbox, on the Docker host that
 * holds it. Inputs and results are ids, paths and sizes: the bytes stream
 * from file to `docker exec` (or back) and never enter a Temporal payload.
 */

/**
 * Writes stdin to /workspace/uploads/$1 as the sandbox user: through a
 * temporary file and a rename, so a half-written file is never seen under
 * its name and a symlink planted at the name is replaced, not followed.
 */
const PLACE_SCRIPT = `set -eu
mkdir -p ${UPLOADS_DIR}
if [ "$(realpath -e ${UPLOADS_DIR})" != ${UPLOADS_DIR} ]; then echo "${UPLOADS_DIR} is not a directory inside /workspace" >&2; exit 11; fi
t=$(mktemp ${UPLOADS_DIR}/.upload.XXXXXX)
trap 'rm -f "$t"' EXIT
cat > "$t"
chmod 0644 "$t"
mv -fT -- "$t" "${UPLOADS_DIR}/$1"
stat -c %s -- "${UPLOADS_DIR}/$1"`;

/**
 * Resolves $1 inside the container (relative to /workspace, every symlink
 * followed), refuses anything outside /workspace, anything but a regular file
 * and anything over $2 bytes, then writes the file to stdout. The check is
 * repeated on the opened descriptor, so swapping in a symlink after the first
 * check cannot escape. Reports "ok <size> <path>\\0" on stderr before the bytes.
 */
const EXPORT_SCRIPT = `r=$(realpath -e -- "$1" 2>/dev/null) || { printf 'no such file in the session: %s\\n' "$1" >&2; exit 10; }
case "$r" in /workspace/*) ;; /workspace) printf '%s is not a regular file\\n' "$r" >&2; exit 12;; *) printf '%s resolves to %s, outside /workspace: refused\\n' "$1" "$r" >&2; exit 11;; esac
[ -f "$r" ] || { printf '%s is not a regular file\\n' "$r" >&2; exit 12; }
exec 3< "$r" || { printf 'cannot open %s\\n' "$r" >&2; exit 10; }
o=$(readlink /proc/$$/fd/3)
case "$o" in /workspace/*) ;; *) printf '%s resolves outside /workspace: refused\\n' "$1" >&2; exit 11;; esac
[ -f /proc/$$/fd/3 ] || { printf '%s is not a regular file\\n' "$o" >&2; exit 12; }
s=$(stat -L -c %s /proc/$$/fd/3)
[ "$s" -le "$2" ] || { printf '%s is %s bytes, over the limit of %s bytes\\n' "$o" "$s" "$2" >&2; exit 13; }
printf 'ok %s %s\\0' "$s" "$o" >&2
exec cat <&3`;

const EXPORT_REFUSALS: Record<number, string> = {
  10: 'FileNotFound',
  11: 'PathOutsideWorkspace',
  12: 'NotARegularFile',
  13: 'FileTooLarge',
};

const bad = (message: string) => ApplicationFailure.nonRetryable(message, 'InvalidArgument');

export function createFileActivities({ sandboxes, config, log }: ActivityDeps) {
  const dir = config.files.blobDir;

  async function streamExec(...args: Parameters<typeof sandboxes.execStream>) {
    try {
      return await withHeartbeat(() => sandboxes.execStream(...args));
    } catch (err) {
      if (err instanceof SandboxGoneError) throw ApplicationFailure.nonRetryable(err.message, 'SandboxGone');
      throw err;
    }
  }

  return {
    /** Streams an uploaded blob into /workspace/uploads/<filename> as the sandbox user, then deletes the blob. */
    async placeFile(p: { sessionId: string; containerId: string; uploadId: string; filename: string }) {
      if (!isBlobId(p.uploadId, 'up')) throw bad('uploadId: not an upload id');
      const problem = filenameProblem(p.filename);
      if (problem) throw bad(`filename: ${problem}`);
      const target = uploadTargetPath(p.filename);
      const { data } = blobPaths(dir, p.uploadId);
      const stat = await fs.promises.stat(data).catch(() => undefined);
      if (!stat) {
        // A retry after a placement whose result was lost: the blob is gone because the file is in place.
        const there = await sandboxes.exec(p.containerId, ['stat', '-c', '%s', '--', target], { maxOutputBytes: 1024 });
        if (there.exitCode === 0) return { path: target, size: Number(there.stdout.trim()) };
        throw ApplicationFailure.nonRetryable(`upload ${p.uploadId}: no uploaded bytes to place`, 'UploadMissing');
      }
      const r = await streamExec(p.containerId, ['sh', '-c', PLACE_SCRIPT, 'place', p.filename], {
        stdin: fs.createReadStream(data),
        maxTextBytes: 4096,
        signal: Context.current().cancellationSignal,
      });
      if (r.exitCode !== 0) {
        throw ApplicationFailure.nonRetryable(`placing ${target} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`, 'PlaceFailed');
      }
      const size = Number(r.stdout.trim());
      if (size !== stat.size) {
        throw ApplicationFailure.nonRetryable(`placing ${target} failed: wrote ${r.stdout.trim()} of ${stat.size} bytes`, 'PlaceFailed');
      }
      await fs.promises.rm(data, { force: true });
      log.info({ sessionId: p.sessionId, uploadId: p.uploadId, size }, 'file placed in the sandbox');
      return { path: target, size };
    },

    /**
     * Streams a workspace file out into the blob area as <downloadId>.bin.
     * Refusals (outside /workspace, not a file, too large, missing) are
     * non-retryable failures whose type names the reason.
     */
    async exportFile(p: { sessionId: string; containerId: string; downloadId: string; path: string; maxBytes: number }) {
      if (!isBlobId(p.downloadId, 'dl')) throw bad('downloadId: not a download id');
      const problem = downloadPathProblem(p.path);
      if (problem) throw bad(`path: ${problem}`);
      const limit = Math.min(p.maxBytes, config.files.maxBytes);
      await ensureBlobDir(dir);
      const { part, data } = blobPaths(dir, p.downloadId);
      const out = fs.createWriteStream(part, { mode: 0o600 });
      const closed = new Promise<void>((resolve, reject) => {
        out.on('close', resolve);
        out.on('error', reject);
      });
      let r;
      try {
        r = await streamExec(p.containerId, ['sh', '-c', EXPORT_SCRIPT, 'export', p.path, String(limit)], {
          stdout: out,
          maxStdoutBytes: limit,
          maxTextBytes: 8192,
          signal: Context.current().cancellationSignal,
        });
      } finally {
        out.end();
        await closed.catch(() => undefined);
      }
      const fail = async (message: string, type: string) => {
        await fs.promises.rm(part, { force: true });
        return ApplicationFailure.nonRetryable(message, type);
      };
      if (r.overflow) throw await fail(`${p.path} grew over the limit of ${limit} bytes while it was read`, 'FileTooLarge');
      const refusal = EXPORT_REFUSALS[r.exitCode];
      if (refusal) throw await fail(r.stderr.trim(), refusal);
      const header = /^ok (\d+) ([^\0]*)\0/.exec(r.stderr);
      if (r.exitCode !== 0 || !header) {
        throw await fail(`exporting ${p.path} failed: ${r.stderr.replace(/^ok [^\0]*\0/, '').trim() || `exit ${r.exitCode}`}`, 'ExportFailed');
      }
      await fs.promises.rename(part, data);
      log.info({ sessionId: p.sessionId, downloadId: p.downloadId, size: r.stdoutBytes }, 'file exported from the sandbox');
      return { path: header[2], size: r.stdoutBytes };
    },
  };
}
