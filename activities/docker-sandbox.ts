import { once } from 'node:events';
import { PassThrough, Writable, type Readable } from 'node:stream';
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

  /**
   * A directory's contents as a tar stream read by the engine itself, so
   * owners, modes, symlinks and times are kept whatever the sandbox user may
   * read ("dir/." names the entries "./…", ready for importDir).
   */
  async exportDir(containerId: string, dir: string): Promise<Readable> {
    try {
      return (await this.docker.getContainer(containerId).getArchive({ path: `${dir}/.` })) as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new SandboxGoneError(`sandbox ${containerId.slice(0, 12)} is gone`);
      throw err;
    }
  }

  /**
   * Unpacks a tar stream from exportDir into dir (a volume, so the read-only
   * root does not refuse it). The engine extracts as root and, without
   * copyUIDGID, keeps each entry's owner.
   */
  async importDir(containerId: string, dir: string, tar: Readable): Promise<void> {
    try {
      await this.docker.getContainer(containerId).putArchive(tar, { path: dir });
    } catch (err) {
      if (isNotFound(err)) throw new SandboxGoneError(`sandbox ${containerId.slice(0, 12)} is gone`);
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

  /** An exec of argv as the sandbox user in /workspace; a missing or stopped container is SandboxGoneError. */
  private async createExec(containerId: string, argv: string[], withStdin: boolean, env?: Record<string, string>): Promise<Docker.Exec> {
    try {
      return await this.docker.getContainer(containerId).exec({
        Cmd: argv,
        AttachStdin: withStdin,
        AttachStdout: true,
        AttachStderr: true,
        User: '1000:1000',
        WorkingDir: '/workspace',
        ...(env ? { Env: Object.entries(env).map(([k, v]) => `${k}=${v}`) } : {}),
      });
    } catch (err) {
      if (isNotFound(err) || isNotRunning(err)) throw new SandboxGoneError(`sandbox ${containerId.slice(0, 12)} is gone`);
      throw err;
    }
  }

  /**
   * Starts a long-lived process as the sandbox user with its standard streams
   * attached (an MCP stdio server). It runs until its stdin closes or the
   * sandbox ends; env is added to the sandbox's environment for it alone.
   */
  async spawn(containerId: string, argv: string[], env: Record<string, string>): Promise<AttachedProcess> {
    const exec = await this.createExec(containerId, argv, true, env);
    const stream = await exec.start({ hijack: true, stdin: true });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    this.docker.modem.demuxStream(stream, stdout, stderr);
    const ended = new Promise<void>((resolve) => {
      const end = () => {
        stdout.end();
        stderr.end();
        resolve();
      };
      stream.once('end', end);
      stream.once('close', end);
      // A broken connection ends the process's streams like an exit does; the caller sees 'ended'.
      stream.on('error', end);
    });
    return {
      stdin: stream,
      stdout,
      stderr,
      ended,
      exitCode: async () => (await exec.inspect()).ExitCode ?? null,
      close: () => {
        stream.end();
        stream.destroy();
      },
    };
  }

  /** Runs argv inside the sandbox as the sandbox user; stdout and stderr are kept apart. */
  async exec(containerId: string, argv: string[], opts: ExecOptions): Promise<ExecResult> {
    const exec = await this.createExec(containerId, argv, opts.stdin !== undefined);
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

  /**
   * Runs argv as the sandbox user with bytes, not text: stdin from a stream,
   * stdout into a stream, backpressure honoured both ways (files of any size
   * never sit in memory). Without a stdout sink, stdout is kept as text like
   * stderr. Stdout beyond maxStdoutBytes stops the command (overflow: true).
   */
  async execStream(containerId: string, argv: string[], opts: StreamExecOptions): Promise<StreamExecResult> {
    const exec = await this.createExec(containerId, argv, opts.stdin !== undefined);
    opts.signal?.throwIfAborted();
    const stream = await exec.start({ hijack: true, stdin: opts.stdin !== undefined });
    const text = new CappedBuffer(opts.maxTextBytes);
    const errText = new CappedBuffer(opts.maxTextBytes);
    const maxStdout = opts.maxStdoutBytes ?? Number.POSITIVE_INFINITY;
    let stdoutBytes = 0;
    let overflow = false;
    const demux = new DockerDemux(async (type, payload) => {
      if (type === 2) return errText.push(payload, text);
      if (type !== 1 || overflow) return;
      stdoutBytes += payload.length;
      if (stdoutBytes > maxStdout) {
        overflow = true;
        stream.destroy();
        return;
      }
      if (!opts.stdout) return text.push(payload, errText);
      if (!opts.stdout.write(payload)) await once(opts.stdout, 'drain');
    });
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: unknown) => {
        if (settled) return;
        settled = true;
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) {
          stream.destroy();
          reject(err);
        } else resolve();
      };
      const onAbort = () => settle(opts.signal!.reason ?? new Error('aborted'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      demux.on('finish', () => settle());
      demux.on('error', settle);
      opts.stdout?.on('error', settle);
      stream.on('error', (err) => (overflow ? settle() : settle(err)));
      // A connection cut without an end: whatever arrived is all there is.
      stream.on('close', () => {
        if (!demux.writableEnded) demux.end();
      });
      stream.pipe(demux);
      if (opts.stdin) {
        opts.stdin.on('error', settle);
        opts.stdin.pipe(stream);
      }
    });
    if (overflow) return { exitCode: -1, stdout: '', stderr: errText.text(), stdoutBytes, overflow };
    const inspected = await exec.inspect();
    return { exitCode: inspected.ExitCode ?? -1, stdout: text.text(), stderr: errText.text(), stdoutBytes, overflow };
  }
}

/** A process started by spawn(): its standard streams, and how it ended. */
export interface AttachedProcess {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /** Settles when its output ends: it exited, its stdin was closed, or the sandbox is gone. */
  ended: Promise<void>;
  exitCode(): Promise<number | null>;
  /** Closes its stdin and the connection. */
  close(): void;
}

export interface StreamExecOptions {
  stdin?: Readable;
  /** Where stdout's bytes go; without it stdout is kept as text (capped like stderr). */
  stdout?: Writable;
  maxStdoutBytes?: number;
  /** The cap of the kept text (stderr, and stdout when there is no sink). */
  maxTextBytes: number;
  signal?: AbortSignal;
}

export interface StreamExecResult {
  exitCode: number;
  /** Kept text of stdout when no sink was given. */
  stdout: string;
  stderr: string;
  stdoutBytes: number;
  /** Stdout went past maxStdoutBytes and the command was cut off. */
  overflow: boolean;
}

/** Splits Docker's multiplexed exec stream (8-byte frame headers) and waits on the consumer of each frame. */
class DockerDemux extends Writable {
  private pending: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (type: number, payload: Buffer) => void | Promise<void>) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.frames().then(() => cb(), cb);
  }
  private async frames(): Promise<void> {
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) return;
      const type = this.pending[0];
      const payload = this.pending.subarray(8, 8 + size);
      this.pending = this.pending.subarray(8 + size);
      await this.onFrame(type, payload);
    }
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
