import { pipeline, Transform, type TransformCallback } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { ARCHIVE_VOLUMES, ArchiveMissingError, isOptional, type ArchiveVolume } from '../lib/archives';
import { archiveStoreFor } from '../lib/archive-store';
import { markDormant } from '../store/hibernation';
import { SandboxGoneError } from './docker-sandbox';
import { sessionStore, withHeartbeat, type ActivityDeps } from './shared';
import { getSession } from '../store/sessions';

/**
 * Hibernation and resume: the sandbox's volumes go to the archive store and
 * come back into a new sandbox, streamed by the Docker engine (owners, modes,
 * symlinks kept). Archive and restore run on the Docker host holding the
 * container; markDormant on the shared queue.
 */
export function createHibernationActivities({ db, sandboxes, config, log }: ActivityDeps) {
  const archives = archiveStoreFor(config);
  const store = sessionStore(db);
  const volumes = Object.entries(ARCHIVE_VOLUMES) as Array<[ArchiveVolume, string]>;

  /**
   * Whether the venv differs from the image's: anything in it changed since
   * the sandbox's baseline mark (an install or a change writes files, an
   * uninstall changes their directory), or an earlier archive of it (restored
   * into this sandbox). Unpacking its ~1,000 small files costs seconds, so an
   * untouched venv is left to the image. No mark (it is in /tmp, the agent's
   * to delete) counts as changed.
   */
  const venvChanged = async (sessionId: string, containerId: string, dir: string) => {
    if (await archives.has(sessionId, 'venv')) return true;
    const r = await sandboxes.exec(containerId, ['find', dir, '-newer', VENV_BASELINE, '-print', '-quit'], { maxOutputBytes: 4096 });
    return r.exitCode !== 0 || r.stdout.trim() !== '';
  };

  const onSandbox = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await withHeartbeat(fn);
    } catch (err) {
      if (err instanceof SandboxGoneError) throw ApplicationFailure.nonRetryable(err.message, 'SandboxGone');
      if (err instanceof ArchiveMissingError) throw ApplicationFailure.nonRetryable(err.message, 'ArchiveMissing');
      throw err;
    }
  };

  return {
    /** Writes the session's archive from its running sandbox; a retry simply writes it again. */
    async archiveSandbox(p: { sessionId: string; containerId: string }) {
      const started = Date.now();
      const bytes = await onSandbox(async () => {
        let total = 0;
        for (const [volume, dir] of volumes) {
          if (isOptional(volume) && !(await venvChanged(p.sessionId, p.containerId, dir))) continue;
          total += await archives.write(p.sessionId, volume, await sandboxes.exportDir(p.containerId, dir));
        }
        return total;
      });
      log.info({ sessionId: p.sessionId, bytes, ms: Date.now() - started }, 'sandbox archived');
      return { bytes };
    },

    /** Unpacks the session's archive into its new sandbox; unpacking again over it is harmless. */
    async restoreSandbox(p: { sessionId: string; containerId: string }) {
      const started = Date.now();
      await onSandbox(async () => {
        for (const [volume, dir] of volumes) {
          const head = new TarHead();
          const tar = await archives.read(p.sessionId, volume).catch((err) => {
            if (err instanceof ArchiveMissingError && isOptional(volume)) return undefined;
            throw err;
          });
          if (!tar) continue;
          try {
            // The new volume starts as the image's copy: emptied first, what was deleted before hibernating stays deleted.
            const emptied = await sandboxes.exec(p.containerId, ['find', dir, '-mindepth', '1', '-delete'], { maxOutputBytes: 4096 });
            if (emptied.exitCode !== 0) throw new Error(`could not empty ${dir} before restoring it: ${emptied.stderr.trim().slice(0, 500)}`);
            // pipeline, not pipe: a read error destroys what the engine reads from, so the upload fails instead of hanging.
            await sandboxes.importDir(p.containerId, dir, pipeline(tar, head, () => undefined));
          } finally {
            tar.destroy();
          }
          // The engine's unpack leaves the target directory's own time at "now": put back the archived one.
          const mtime = head.firstMtime();
          const r = mtime === undefined ? undefined : await sandboxes.exec(p.containerId, ['touch', '-m', '-d', `@${mtime}`, dir], { maxOutputBytes: 4096 });
          if (r && r.exitCode !== 0) log.warn({ sessionId: p.sessionId, dir, err: r.stderr.trim() }, 'could not restore the directory time');
        }
      });
      // Watchers see it happen: GET alone would show the session waking up.
      await store.emit(p.sessionId, `restored-${p.containerId}`, 'system', {
        subtype: 'workspace_restored',
        message: 'The workspace was restored from its archive into a new sandbox.',
      });
      log.info({ sessionId: p.sessionId, ms: Date.now() - started }, 'sandbox restored');
    },

    async markDormant(p: { sessionId: string; bytes: number }) {
      const row = await getSession(db, p.sessionId);
      // Already marked (a retry after it landed): nothing to add.
      if (!row || row.status === 'ended' || (row.dormant_since !== null && row.container_id === null)) return;
      // Keyed by the sandbox it replaces, so a retry writes the event once.
      await store.emit(p.sessionId, `hibernated-${row.container_id}`, 'system', {
        subtype: 'hibernated',
        message: 'Idle: the workspace was archived and the sandbox removed, so no compute is billed. The next prompt resumes the session.',
        archive_bytes: p.bytes,
      });
      await markDormant(db, p.sessionId, p.bytes);
    },
  };
}

/** Marked when the sandbox is ready, before the agent's first command: hibernation compares the venv with it. */
const VENV_BASELINE = '/tmp/.ai-sessions-venv-baseline';

export async function markVenvBaseline(sandboxes: ActivityDeps['sandboxes'], containerId: string): Promise<void> {
  const r = await sandboxes.exec(containerId, ['touch', VENV_BASELINE], { maxOutputBytes: 4096 });
  if (r.exitCode !== 0) throw new Error(`could not mark the sandbox's venv baseline: ${r.stderr.trim().slice(0, 500)}`);
}

/** Passes a tar stream through, keeping its first blocks to read the first entry's (the directory's own) mtime. */
class TarHead extends Transform {
  private head: Buffer[] = [];
  private kept = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.kept < 8192) {
      this.head.push(chunk);
      this.kept += chunk.length;
    }
    cb(null, chunk);
  }

  firstMtime(): number | undefined {
    const buf = Buffer.concat(this.head);
    const field = (h: Buffer, at: number, len: number) => parseInt(h.subarray(at, at + len).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    for (let off = 0; off + 512 <= buf.length; ) {
      const h = buf.subarray(off, off + 512);
      const type = String.fromCharCode(h[156]);
      const size = field(h, 124, 12);
      if (type !== 'x' && type !== 'g') return field(h, 136, 12);
      // A PAX header block first: its mtime record wins.
      const mtime = /\d+ mtime=(\d+)/.exec(buf.subarray(off + 512, off + 512 + size).toString('latin1'));
      if (mtime) return Number(mtime[1]);
      off += 512 + Math.ceil(size / 512) * 512;
    }
    return undefined;
  }
}
