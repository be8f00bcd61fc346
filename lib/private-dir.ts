import fs from 'node:fs';

/**
 * Directories holding the store, keys and Temporal's history are owner-only:
 * files inside then stay private whatever mode PGlite or Temporal give them.
 */
export function makePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Makes an existing directory owner-only if others can reach into it; returns the mode it had when it changed it. */
export function tightenDir(dir: string): number | undefined {
  let mode: number;
  try {
    mode = fs.statSync(dir).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if ((mode & 0o077) === 0) return undefined;
  fs.chmodSync(dir, 0o700);
  return mode;
}
