import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from '../lib/log';

export const RUNNER_DIR = path.join(__dirname, '..', 'runner');
export const LABEL_RUNNER_VERSION = 'ai-sessions.runner.version';
const LABEL_RUNNER_DIGEST = 'ai-sessions.runner.digest';

/** A digest of the runner's build context: an image built from other files is stale. */
export function runnerDigest(dir = RUNNER_DIR): string {
  const hash = crypto.createHash('sha256');
  for (const file of fs.readdirSync(dir).sort()) {
    const full = path.join(dir, file);
    if (!fs.statSync(full).isFile()) continue;
    hash.update(file).update('\0').update(fs.readFileSync(full)).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/**
 * Builds the runner image when it is missing, carries another version's
 * label, or was built here from other files. Images named otherwise are the operator's
 * business: they are checked for, never built.
 */
export async function ensureRunnerImage(
  docker: Docker,
  image: string,
  version: string,
  log: Logger,
): Promise<{ built: boolean }> {
  const ours = image.startsWith('ai-sessions-runner:');
  const digest = runnerDigest();
  const current = await docker.getImage(image).inspect().catch(() => undefined);
  const labels = current?.Config?.Labels ?? {};
  // An image built elsewhere (docker-compose's runner-image service) carries the version but no digest.
  const fresh = labels[LABEL_RUNNER_VERSION] === version && (labels[LABEL_RUNNER_DIGEST] ?? digest) === digest;
  if (current && (!ours || fresh)) return { built: false };
  if (!ours) throw new Error(`runner image ${image} is not present on the Docker engine`);
  log.info({ image, reason: current ? 'stale' : 'missing' }, 'building the runner image');
  const files = fs.readdirSync(RUNNER_DIR).filter((f) => fs.statSync(path.join(RUNNER_DIR, f)).isFile());
  const stream = await docker.buildImage(
    { context: RUNNER_DIR, src: files },
    {
      t: image,
      // Debian's mirrors are reached through the host network: the build never runs sandboxes.
      networkmode: 'host',
      buildargs: { RUNNER_VERSION: version },
      labels: { [LABEL_RUNNER_VERSION]: version, [LABEL_RUNNER_DIGEST]: digest },
    },
  );
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: Array<{ error?: string }>) => {
        const failed = err ?? output.find((o) => o.error);
        if (failed) reject(new Error(`runner image build failed: ${err?.message ?? (failed as { error: string }).error}\n${tail.join('')}`));
        else resolve();
      },
      (event: { stream?: string }) => {
        if (!event.stream) return;
        tail.push(event.stream);
        if (tail.length > 30) tail.shift();
      },
    );
  });
  return { built: true };
}
