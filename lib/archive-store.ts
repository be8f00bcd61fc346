import { DirectoryArchives, type ArchiveStore } from './archives';
import type { Config } from './config';
import { S3Archives } from './s3-archives';

/** The configured archive store: the S3-compatible bucket when ARCHIVE_S3_BUCKET is set, else `<BLOB_DIR>/archives`. */
export function archiveStoreFor(config: Pick<Config, 'archives' | 'files'>): ArchiveStore {
  return config.archives.s3 ? new S3Archives(config.archives.s3) : new DirectoryArchives(config.files.blobDir);
}
