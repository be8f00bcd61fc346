import { pipeline, Readable, Transform } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  S3Client,
  S3ServiceException,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ArchiveMissingError, archiveName, archiveVolumes, checkedSessionId, isOptional, type ArchiveStore, type ArchiveVolume } from './archives';
import type { Config } from './config';

export type S3ArchiveOptions = NonNullable<Config['archives']['s3']>;

/** 10,000 parts of 16 MiB: archives up to about 160 GB, at most 4 parts (64 MiB) in memory per write. */
const PART_SIZE = 16 * 1024 * 1024;
const QUEUE_SIZE = 4;

/**
 * Archives as objects `<prefix><sessionId>.<volume>.tar` in an S3-compatible
 * bucket (AWS, MinIO, Ceph...). A PUT or a completed multipart upload
 * replaces an object whole, so a write that fails leaves the previous archive.
 */
export class S3Archives implements ArchiveStore {
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(opts: S3ArchiveOptions) {
    this.bucket = opts.bucket;
    this.prefix = opts.prefix;
    this.client = new S3Client({
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle,
      // Unset: the SDK's default chain (environment, profile, instance or task role).
      credentials: opts.credentials,
    });
  }

  key(sessionId: string, volume: ArchiveVolume): string {
    return `${this.prefix}${archiveName(sessionId, volume)}`;
  }

  async write(sessionId: string, volume: ArchiveVolume, tar: Readable): Promise<number> {
    const Key = this.key(sessionId, volume);
    let bytes = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        cb(null, chunk);
      },
    });
    // A source that errors or closes early destroys `counted` with an error, which fails
    // the upload; Upload then aborts its multipart upload (leavePartsOnError is false).
    pipeline(tar, counted, () => undefined);
    const upload = new Upload({ client: this.client, params: { Bucket: this.bucket, Key, Body: counted }, partSize: PART_SIZE, queueSize: QUEUE_SIZE });
    try {
      await upload.done();
    } catch (err) {
      counted.destroy();
      throw err;
    }
    return bytes;
  }

  async read(sessionId: string, volume: ArchiveVolume): Promise<Readable> {
    const Key = this.key(sessionId, volume);
    try {
      const { Body } = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      if (!(Body instanceof Readable)) throw new Error(`s3://${this.bucket}/${Key} answered without a body stream`);
      return Body;
    } catch (err) {
      if (isMissing(err)) throw new ArchiveMissingError(`the workspace archive of session ${sessionId} is gone (${volume})`);
      throw err;
    }
  }

  async has(sessionId: string, volume: ArchiveVolume = 'workspace'): Promise<boolean> {
    return (await this.head(this.key(sessionId, volume))) !== undefined;
  }

  /** Server-side copies (CopyObject: one request, up to 5 GiB per object). */
  async copy(from: string, to: string): Promise<number> {
    let bytes = 0;
    for (const v of archiveVolumes) {
      const source = this.key(from, v);
      const target = this.key(to, v);
      const head = await this.head(source);
      if (!head) {
        if (isOptional(v)) continue;
        throw new ArchiveMissingError(`the workspace archive of session ${from} is gone (${v})`);
      }
      // If-Match: the size counted is that of the object copied, even if the source is rewritten meanwhile.
      await this.client.send(
        new CopyObjectCommand({ Bucket: this.bucket, Key: target, CopySource: `${this.bucket}/${encodeKey(source)}`, CopySourceIfMatch: head.ETag }),
      );
      bytes += head.ContentLength ?? 0;
    }
    return bytes;
  }

  async remove(sessionId: string): Promise<number> {
    checkedSessionId(sessionId);
    let removed = 0;
    // Head before delete: S3 deletes answer the same whether the object existed or not.
    for (const v of archiveVolumes) {
      const Key = this.key(sessionId, v);
      if (!(await this.head(Key))) continue;
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
      removed += 1;
    }
    return removed;
  }

  private async head(Key: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }
}

/** No such object: NoSuchKey from GET, a bodiless 404 (NotFound) from HEAD. A missing bucket is a configuration error, not a missing archive. */
function isMissing(err: unknown): boolean {
  return err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404 && err.name !== 'NoSuchBucket';
}

const encodeKey = (key: string) => key.split('/').map(encodeURIComponent).join('/');
