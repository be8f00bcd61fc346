import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Where hibernated sessions' workspaces rest: one tar per sandbox volume,
 * named after the session: files in a directory, or objects in an
 * S3-compatible bucket (lib/s3-archives.ts); lib/archive-store.ts picks one.
 */
export interface ArchiveStore {
  /** Stores the stream as the session's archive of that volume, whole or not at all; returns its size. */
  write(sessionId: string, volume: ArchiveVolume, tar: Readable): Promise<number>;
  /** The stored bytes; ArchiveMissingError when there are none. */
  read(sessionId: string, volume: ArchiveVolume): Promise<Readable>;
  /** Whether the session has an archive of the volume (by default the workspace's: the venv's is optional). */
  has(sessionId: string, volume?: ArchiveVolume): Promise<boolean>;
  /** Makes `to`'s archives a copy of `from`'s (a fork), whole or not at all. */
  copy(from: string, to: string): Promise<number>;
  /** Deletes the session's archives (after retention); returns how many there were, 0 once gone. */
  remove(sessionId: string): Promise<number>;
}

/**
 * The sandbox volumes an archive keeps: the workspace always, the venv only
 * when something was installed into it (unchanged, the image provides it).
 */
export const ARCHIVE_VOLUMES = { workspace: '/workspace', venv: '/opt/venv' } as const;
export type ArchiveVolume = keyof typeof ARCHIVE_VOLUMES;
export const archiveVolumes = Object.keys(ARCHIVE_VOLUMES) as ArchiveVolume[];
export const isOptional = (volume: ArchiveVolume) => volume === 'venv';

export class ArchiveMissingError extends Error {
  override name = 'ArchiveMissingError';
}

/** `<sessionId>.<volume>.tar`. Session ids become file names and object keys: nothing that could climb out of the directory or prefix. */
export function archiveName(sessionId: string, volume: ArchiveVolume): string {
  return `${checkedSessionId(sessionId)}.${volume}.tar`;
}

export function checkedSessionId(sessionId: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(sessionId)) throw new Error(`not a session id: ${JSON.stringify(sessionId)}`);
  return sessionId;
}

/** Archives as files in `<BLOB_DIR>/archives` (the reaper removes them after retention). */
export class DirectoryArchives implements ArchiveStore {
  readonly dir: string;
  constructor(blobDir: string) {
    this.dir = path.join(blobDir, 'archives');
  }

  file(sessionId: string, volume: ArchiveVolume): string {
    return path.join(this.dir, archiveName(sessionId, volume));
  }

  async write(sessionId: string, volume: ArchiveVolume, tar: Readable): Promise<number> {
    const target = this.file(sessionId, volume);
    const part = await this.partFor(target);
    try {
      await pipeline(tar, fs.createWriteStream(part, { mode: 0o600 }));
      const { size } = await fs.promises.stat(part);
      await fs.promises.rename(part, target);
      return size;
    } finally {
      await fs.promises.rm(part, { force: true });
    }
  }

  async read(sessionId: string, volume: ArchiveVolume): Promise<Readable> {
    const file = this.file(sessionId, volume);
    const handle = await fs.promises.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new ArchiveMissingError(`the workspace archive of session ${sessionId} is gone (${volume})`);
      throw err;
    });
    return handle.createReadStream();
  }

  async has(sessionId: string, volume: ArchiveVolume = 'workspace'): Promise<boolean> {
    return fs.promises.access(this.file(sessionId, volume)).then(() => true, () => false);
  }

  async copy(from: string, to: string): Promise<number> {
    let bytes = 0;
    for (const v of archiveVolumes) {
      const source = this.file(from, v);
      const target = this.file(to, v);
      const part = await this.partFor(target);
      try {
        // A hard link costs nothing and the source's next hibernation replaces its file, never rewrites it.
        const copied = await fs.promises.link(source, part).then(() => true, async (err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') return fs.promises.copyFile(source, part).then(() => true);
          if (isOptional(v)) return false;
          throw new ArchiveMissingError(`the workspace archive of session ${from} is gone (${v})`);
        });
        if (!copied) continue;
        bytes += (await fs.promises.stat(part)).size;
        await fs.promises.rename(part, target);
      } finally {
        await fs.promises.rm(part, { force: true });
      }
    }
    return bytes;
  }

  async remove(sessionId: string): Promise<number> {
    const prefix = `${checkedSessionId(sessionId)}.`;
    const names = await fs.promises.readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    // The volumes' archives, and any `.part` a write left behind when its process died.
    const mine = names.filter((n) => n.startsWith(prefix));
    for (const name of mine) await fs.promises.rm(path.join(this.dir, name), { force: true, recursive: true });
    return mine.length;
  }

  private async partFor(target: string): Promise<string> {
    await fs.promises.mkdir(this.dir, { recursive: true, mode: 0o700 });
    return `${target}.${randomBytes(6).toString('hex')}.part`;
  }
}
