import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ArchiveMissingError, DirectoryArchives } from '../lib/archives';
import { archiveStoreFor } from '../lib/archive-store';
import { ConfigError, loadConfig } from '../lib/config';
import { S3Archives } from '../lib/s3-archives';
import { getSession } from '../store/sessions';
import { startMoto, type MotoServer } from './support/moto';
import { useHarness } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';

/**
 * The S3-compatible archive store against a real S3 server (moto), and one
 * hibernate → resume through the whole stack with the bucket configured.
 */

const MiB = 1024 * 1024;
const BUCKET = 'ais-archives';
const CREDENTIALS = { ARCHIVE_S3_ACCESS_KEY_ID: 'moto-key-id', ARCHIVE_S3_SECRET_ACCESS_KEY: 'moto-secret-never-shown' };

let moto: MotoServer;
/** Filled once moto runs: the harness below reads it in its own beforeAll, which runs after this one. */
const s3Env: Record<string, string> = {};
beforeAll(async () => {
  moto = await startMoto();
  Object.assign(s3Env, { ARCHIVE_S3_BUCKET: BUCKET, ARCHIVE_S3_ENDPOINT: moto.endpoint, ARCHIVE_S3_FORCE_PATH_STYLE: 'true', ...CREDENTIALS });
  await storeWith({}).client.send(new CreateBucketCommand({ Bucket: BUCKET }));
});
afterAll(async () => {
  await moto?.stop();
});

function storeWith(env: Record<string, string>): S3Archives {
  const store = archiveStoreFor(loadConfig({ ...s3Env, ...env }));
  expect(store).toBeInstanceOf(S3Archives);
  return store as S3Archives;
}

/**
 * `size` random bytes in 64 KiB chunks. With `failAfter`, once that many bytes
 * are out the stream errors, or with `abort` is destroyed without an error
 * (a connection closed early).
 */
function source(size: number, failAfter?: number, abort = false): { stream: Readable; sha256: string } {
  const data = randomBytes(size);
  let at = 0;
  const stream = new Readable({
    read() {
      if (failAfter !== undefined && at >= failAfter) return void this.destroy(abort ? undefined : new Error('the engine went away'));
      if (at >= size) return this.push(null);
      this.push(data.subarray(at, (at += 64 * 1024)));
    },
  });
  return { stream, sha256: createHash('sha256').update(data).digest('hex') };
}

async function sha256Of(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

const sessionId = () => `s3-${randomBytes(6).toString('hex')}`;

describe('S3Archives on an S3-compatible server', () => {
  let store: S3Archives;
  beforeAll(() => {
    store = storeWith({ ARCHIVE_S3_PREFIX: 'test/archives/' });
  });
  const keys = async () => ((await store.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'test/' }))).Contents ?? []).map((o) => o.Key);

  it('writes a multi-part stream of unknown length and reads it back byte for byte', async () => {
    const id = sessionId();
    const { stream, sha256 } = source(37 * MiB + 123);
    expect(await store.write(id, 'workspace', stream)).toBe(37 * MiB + 123);
    expect(await keys()).toContain(`test/archives/${id}.workspace.tar`);
    expect(await sha256Of(await store.read(id, 'workspace'))).toEqual({ sha256, bytes: 37 * MiB + 123 });
    expect(await store.has(id)).toBe(true);
    expect(await store.has(id, 'venv')).toBe(false);

    // A small archive (one PUT) replaces it whole.
    const small = source(1000);
    expect(await store.write(id, 'workspace', small.stream)).toBe(1000);
    expect((await sha256Of(await store.read(id, 'workspace'))).sha256).toBe(small.sha256);
  });

  it('keeps the previous archive, and leaves no object or upload, when the source fails midway', async () => {
    const id = sessionId();
    const good = source(2 * MiB);
    await store.write(id, 'workspace', good.stream);

    const sent: string[] = [];
    store.client.middlewareStack.add((next, ctx) => (args) => (sent.push(ctx.commandName!), next(args)), { step: 'initialize', name: 'spy' });
    try {
      // Past the first 16 MiB part, so a multipart upload was under way: it is aborted, not completed.
      await expect(store.write(id, 'workspace', source(40 * MiB, 20 * MiB).stream)).rejects.toThrow('the engine went away');
      expect(sent).toEqual(expect.arrayContaining(['CreateMultipartUploadCommand', 'UploadPartCommand', 'AbortMultipartUploadCommand']));
      expect(sent).not.toContain('CompleteMultipartUploadCommand');
      sent.length = 0;
      await expect(store.write(id, 'workspace', source(40 * MiB, 20 * MiB, true).stream)).rejects.toThrow(/premature close/i);
      expect(sent).toContain('AbortMultipartUploadCommand');
      expect(sent).not.toContain('CompleteMultipartUploadCommand');
    } finally {
      store.client.middlewareStack.remove('spy');
    }
    expect((await sha256Of(await store.read(id, 'workspace'))).sha256).toBe(good.sha256);
    // Within the first part: nothing was sent yet.
    await expect(store.write(id, 'venv', source(4 * MiB, 1 * MiB).stream)).rejects.toThrow('the engine went away');
    expect(await store.has(id, 'venv')).toBe(false);

    expect(await keys()).toEqual(expect.not.arrayContaining([`test/archives/${id}.venv.tar`]));
    const { Uploads } = await store.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `test/archives/${id}.` }));
    expect(Uploads ?? []).toEqual([]);
  });

  it('reports a missing archive as ArchiveMissingError', async () => {
    await expect(store.read(sessionId(), 'workspace')).rejects.toBeInstanceOf(ArchiveMissingError);
    expect(await store.has(sessionId())).toBe(false);
  });

  it('copies server-side, with and without the optional venv; a missing workspace is ArchiveMissingError', async () => {
    const both = sessionId();
    const ws = source(3 * MiB);
    const venv = source(5000);
    await store.write(both, 'workspace', ws.stream);
    await store.write(both, 'venv', venv.stream);
    const fork = sessionId();
    expect(await store.copy(both, fork)).toBe(3 * MiB + 5000);
    expect((await sha256Of(await store.read(fork, 'workspace'))).sha256).toBe(ws.sha256);
    expect((await sha256Of(await store.read(fork, 'venv'))).sha256).toBe(venv.sha256);

    const workspaceOnly = sessionId();
    await store.write(workspaceOnly, 'workspace', source(1000).stream);
    const fork2 = sessionId();
    expect(await store.copy(workspaceOnly, fork2)).toBe(1000);
    expect(await store.has(fork2)).toBe(true);
    expect(await store.has(fork2, 'venv')).toBe(false);

    const venvOnly = sessionId();
    await store.write(venvOnly, 'venv', source(1000).stream);
    const fork3 = sessionId();
    await expect(store.copy(venvOnly, fork3)).rejects.toBeInstanceOf(ArchiveMissingError);
    await expect(store.copy(sessionId(), fork3)).rejects.toBeInstanceOf(ArchiveMissingError);
    expect(await store.has(fork3)).toBe(false);
  });

  it('removes both volumes, counting what was there, and again removes nothing', async () => {
    const id = sessionId();
    const neighbour = `${id}-s`;
    await store.write(id, 'workspace', source(1000).stream);
    await store.write(id, 'venv', source(1000).stream);
    await store.write(neighbour, 'workspace', source(1000).stream);
    expect(await store.remove(id)).toBe(2);
    expect(await store.remove(id)).toBe(0);
    expect(await store.has(id)).toBe(false);
    expect(await store.has(id, 'venv')).toBe(false);
    expect(await store.has(neighbour)).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['a path', '../etc'],
    ['with a slash', 'a/b'],
    ['with a dot', 'a.b'],
    ['too long', 'x'.repeat(129)],
    ['with a space', 'spaced id'],
  ])('refuses a session id %s', async (_, bad) => {
    await expect(store.write(bad, 'workspace', source(10).stream)).rejects.toThrow(/not a session id/);
    await expect(store.read(bad, 'workspace')).rejects.toThrow(/not a session id/);
    await expect(store.has(bad)).rejects.toThrow(/not a session id/);
    await expect(store.copy(bad, sessionId())).rejects.toThrow(/not a session id/);
    await expect(store.copy(sessionId(), bad)).rejects.toThrow(/not a session id/);
    await expect(store.remove(bad)).rejects.toThrow(/not a session id/);
  });
});

describe('DirectoryArchives.remove', () => {
  const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-archives-'));
  afterAll(() => fs.rmSync(blobDir, { recursive: true, force: true }));

  it("removes the session's archives and leftover parts, nobody else's; again it removes nothing", async () => {
    const store = new DirectoryArchives(blobDir);
    expect(await store.remove('no-dir-yet')).toBe(0);
    const id = '0b9c7a9e-3f1e-4c43-9a43-8a4f2f0d5e11';
    fs.mkdirSync(store.dir, { recursive: true });
    const mine = [`${id}.workspace.tar`, `${id}.venv.tar`, `${id}.venv.tar.a1b2c3.part`];
    const others = [`dbq_${id}-s.workspace.tar`, `${id}-s.workspace.tar`, 'other.workspace.tar'];
    for (const n of [...mine, ...others]) fs.writeFileSync(path.join(store.dir, n), 'tar');
    expect(await store.remove(id)).toBe(3);
    expect(await store.remove(id)).toBe(0);
    expect(fs.readdirSync(store.dir).sort()).toEqual(others.sort());
    await expect(store.remove('../x')).rejects.toThrow(/not a session id/);
  });
});

describe('archive store configuration', () => {
  it('uses the directory unless ARCHIVE_S3_BUCKET is set', () => {
    const c = loadConfig({});
    expect(c.archives.s3).toBeUndefined();
    expect(archiveStoreFor(c)).toBeInstanceOf(DirectoryArchives);
    expect(loadConfig({ ARCHIVE_S3_BUCKET: 'b' }).archives.s3).toEqual({
      bucket: 'b', endpoint: undefined, region: 'us-east-1', prefix: 'archives/', forcePathStyle: false, credentials: undefined,
    });
    expect(loadConfig({ ARCHIVE_S3_BUCKET: 'b', ARCHIVE_S3_PREFIX: '', ...CREDENTIALS }).archives.s3).toMatchObject({
      prefix: '', credentials: { accessKeyId: 'moto-key-id', secretAccessKey: 'moto-secret-never-shown' },
    });
  });

  it('names bad variables without showing the secret', () => {
    const bad = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    const msg = bad({ ARCHIVE_S3_BUCKET: 'b', ARCHIVE_S3_SECRET_ACCESS_KEY: 'moto-secret-never-shown' });
    expect(msg).toContain('ARCHIVE_S3_ACCESS_KEY_ID:');
    expect(msg).not.toContain('moto-secret-never-shown');
    expect(bad({ ARCHIVE_S3_ENDPOINT: 'minio:9000' })).toContain('ARCHIVE_S3_ENDPOINT:');
    expect(bad({ ARCHIVE_S3_FORCE_PATH_STYLE: 'maybe' })).toContain('ARCHIVE_S3_FORCE_PATH_STYLE:');
  });
});

describe('hibernation with the S3 store', () => {
  const blobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-s3-hibernate-'));
  afterAll(() => fs.rmSync(blobDir, { recursive: true, force: true }));
  const env: Record<string, string> = { BLOB_DIR: blobDir, HIBERNATE_IDLE_SECONDS: '2', ARCHIVE_S3_PREFIX: 'e2e/' };
  beforeAll(() => void Object.assign(env, s3Env));
  const h = useHarness({ env });

  it('archives an idle session to the bucket and resumes it from there on the next prompt', async () => {
    const dormant = async (id: string) => {
      const deadline = Date.now() + 60_000;
      while ((await getSession(h.db, id))?.dormant_since == null) {
        if (Date.now() > deadline) throw new Error(`${id} did not hibernate`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const output = async (id: string, toolUseId: string) =>
      String((await h.waitForEvent(id, (e) => e.type === 'tool_result' && e.payload.tool_use_id === toolUseId)).payload.content);

    const write = 'head -c 200000 /dev/urandom > blob.bin && echo kept > note.txt && sha256sum blob.bin note.txt';
    h.fake.enqueue(toolUse('Bash', { command: write }, { id: 'toolu_w' }), text('Written.'));
    const id = await h.startSession({ prompt: 'Write files' });
    const before = await output(id, 'toolu_w');
    await dormant(id);

    const store = storeWith({ ARCHIVE_S3_PREFIX: 'e2e/' });
    expect(await store.has(id)).toBe(true);
    expect(fs.existsSync(path.join(blobDir, 'archives'))).toBe(false);
    expect((await getSession(h.db, id))!.archive_bytes).toBeGreaterThan(200_000);

    h.fake.enqueue(toolUse('Bash', { command: 'sha256sum blob.bin note.txt' }, { id: 'toolu_r' }), text('Still there.'));
    await h.service.prompt(id, 'Are they still there?');
    expect(await output(id, 'toolu_r')).toBe(before);
  });
});
