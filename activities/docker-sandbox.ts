import { PassThrough } from 'node:stream';
import Docker from 'dockerode';

/** Labels that mark what the platform created, so cleanup and the reaper can find it. */
export const LABEL_MANAGED = 'ai-sessions.managed';
export const LABEL_SESSION = 'ai-sessions.session';

export interface SandboxSpec {
  sessionId: string;
  image: string;
  /** Only values a profile deliberately passes: never the model key or platform secrets. */
  env: Record<string, string>;
  network: boolean;
  cpus: number;
  memoryMb: number;
  pidsLimit: number;
}

export interface SandboxInfo {
  containerId: string;
  /** When the container was created, by the engine's clock: the start of billing. */
  createdAt: string;
}

export interface ExecOptions {
  stdin?: string;
  timeoutMs?: number;
  /** Output beyond this many bytes (stdout and stderr together) is dropped and counted. */
  maxOutputBytes: number;
  signal?: AbortSignal;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Bytes produced in all, including what was dropped. */
  totalBytes: number;
  truncated: boolean;
}

export class SandboxGoneError extends Error {
  override name = 'SandboxGoneError';
}

const names = (sessionId: string) => ({
  container: `ais-${sessionId}`,
  workspace: `ais-ws-${sessionId}`,
  venv: `ais-venv-${sessionId}`,
});

/**
 * One Docker container per session: read-only root, writable only at
 * /workspace and /opt/venv (volumes) and /tmp (tmpfs), non-root, no
 * capabilities, no network unless asked, with cpu, memory and pids limits.
 */
export class DockerSandboxes {
  constructor(readonly docker: Docker) {}

  /** Idempotent: a retried provision finds the container it created before. */
  async provision(spec: SandboxSpec): Promise<SandboxInfo> {
    const n = names(spec.sessionId);
    const labels = { [LABEL_MANAGED]: 'true', [LABEL_SESSION]: spec.sessionId };
    let container = this.docker.getContainer(n.container);
    let info = await container.inspect().catch((err) => (isNotFound(err) ? undefined : Promise.reject(err)));
    if (!info) {
      for (const v of [n.workspace, n.venv]) await this.docker.createVolume({ Name: v, Labels: labels });
      try {
        container = await this.docker.createContainer({
          name: n.container,
          Image: spec.image,
          Labels: labels,
          User: '1000:1000',
          WorkingDir: '/workspace',
          Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
          NetworkDisabled: !spec.network,
          HostConfig: {
            NetworkMode: spec.network ? 'bridge' : 'none',
            ReadonlyRootfs: true,
            CapDrop: ['ALL'],
            SecurityOpt: ['no-new-privileges'],
            PidsLimit: spec.pidsLimit,
            Memory: spec.memoryMb * 1024 * 1024,
            MemorySwap: spec.memoryMb * 1024 * 1024,
            NanoCpus: Math.round(spec.cpus * 1e9),
            Tmpfs: { '/tmp': 'rw,exec,nosuid,nodev,size=256m' },
            Mounts: [
              { Type: 'volume', Source: n.workspace, Target: '/workspace' },
              { Type: 'volume', Source: n.venv, Target: '/opt/venv' },
            ],
          },
        });
      } catch (err) {
        // A concurrent attempt created it first: use that one.
        if (!isConflict(err)) throw err;
        container = this.docker.getContainer(n.container);
      }
      info = await container.inspect();
    }
    if (!info.State.Running) await container.start().catch((err) => (isNotModified(err) ? undefined : Promise.reject(err)));
    return { containerId: info.Id, createdAt: new Date(info.Created).toISOString() };
  }

  async isRunning(containerId: string): Promise<boolean> {
    try {
      const info = await this.docker.getContainer(containerId).inspect();
      return info.State.Running;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Removes the container and its volumes; safe to call again and for sessions that never started. */
  async destroy(sessionId: string): Promise<{ removed: boolean }> {
    const n = names(sessionId);
    let removed = false;
    try {
      await this.docker.getContainer(n.container).remove({ force: true, v: true });
      removed = true;
    } catch (err) {
      if (!isNotFound(err) && !isConflictRemoval(err)) throw err;
    }
    for (const v of [n.workspace, n.venv]) {
      await this.docker.getVolume(v).remove().catch((err) => (isNotFound(err) ? undefined : Promise.reject(err)));
    }
    return { removed };
  }

  /** Runs argv inside the sandbox as the sandbox user; stdout and stderr are kept apart. */
  async exec(containerId: string, argv: string[], opts: ExecOptions): Promise<ExecResult> {
    const container = this.docker.getContainer(containerId);
    let exec: Docker.Exec;
    try {
      exec = await container.exec({
        Cmd: argv,
        AttachStdin: opts.stdin !== undefined,
        AttachStdout: true,
        AttachStderr: true,
        User: '1000:1000',
        WorkingDir: '/workspace',
      });
    } catch (err) {
      if (isNotFound(err) || isNotRunning(err)) throw new SandboxGoneError(`sandbox ${containerId.slice(0, 12)} is gone`);
      throw err;
    }
    // Aborted before it started: never start it (nothing would be there to stop it later).
    if (opts.signal?.aborted) return { exitCode: -1, stdout: '', stderr: '', totalBytes: 0, truncated: false };
    const stream = await exec.start({ hijack: true, stdin: opts.stdin !== undefined });
    const out = new CappedBuffer(opts.maxOutputBytes);
    const err = new CappedBuffer(opts.maxOutputBytes);
    const stdout = new PassThrough().on('data', (c: Buffer) => out.push(c, err));
    const stderr = new PassThrough().on('data', (c: Buffer) => err.push(c, out));
    this.docker.modem.demuxStream(stream, stdout, stderr);
    if (opts.stdin !== undefined) stream.end(opts.stdin);
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        stream.destroy();
        resolve();
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      // An abort during exec.start() has already fired: 'abort' listeners added now never run.
      if (opts.signal?.aborted) onAbort();
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', reject);
    });
    const inspected = await exec.inspect();
    return {
      exitCode: inspected.ExitCode ?? -1,
      stdout: out.text(),
      stderr: err.text(),
      totalBytes: out.total + err.total,
      truncated: out.dropped || err.dropped,
    };
  }
}

/** Keeps the first bytes of a stream, shared with a sibling so the cap covers both. */
class CappedBuffer {
  private chunks: Buffer[] = [];
  kept = 0;
  total = 0;
  dropped = false;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer, sibling: CappedBuffer): void {
    this.total += chunk.length;
    const room = this.cap - this.kept - sibling.kept;
    if (room <= 0) {
      this.dropped = true;
      return;
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part.length < chunk.length) this.dropped = true;
    this.chunks.push(part);
    this.kept += part.length;
  }
  text(): string {
    // A cut in the middle of a UTF-8 sequence decodes to U+FFFD, never throws.
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}
const isNotFound = (err: unknown) => statusOf(err) === 404;
const isConflict = (err: unknown) => statusOf(err) === 409;
const isNotModified = (err: unknown) => statusOf(err) === 304;
const isNotRunning = (err: unknown) => statusOf(err) === 409;
/** "removal already in progress" */
const isConflictRemoval = (err: unknown) => statusOf(err) === 409;
