import { DirectoryArchives, type ArchiveStore } from './archives';
import type { Config } from './config';

/** The configured archive store: the S3-compatible bucket when ARCHIVE_S3_BUCKET is set, else `<BLOB_DIR>/archives`. */
export function archiveStoreFor(config: Pick<Config, 'archives' | 'files'>): ArchiveStore {
  if (!config.archives.s3) return new DirectoryArchives(config.files.blobDir);
  // Loaded only when a bucket is configured: the AWS SDK adds about 100 ms to every process start.
  const { S3Archives } = require('./s3-archives') as typeof import('./s3-archives');
  return new S3Archives(config.archives.s3);
}
