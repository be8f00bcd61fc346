import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from './global-setup';

/** Where scripts/setup-host.sh (SETUP_TEST_TOOLS=1) installs moto's server; MOTO_SERVER overrides it. */
const MOTO_SERVER = process.env.MOTO_SERVER ?? path.join(__dirname, '..', '..', '.tools', 'moto', 'bin', 'moto_server');

export interface MotoServer {
  /** http://127.0.0.1:<port>: an S3-compatible endpoint (path-style, any credentials). */
  endpoint: string;
  stop(): Promise<void>;
}

/** A real S3-compatible server (moto) on a free port, answering before this resolves. */
export async function startMoto(timeoutMs = 30_000): Promise<MotoServer> {
  if (!fs.existsSync(MOTO_SERVER)) {
    throw new Error(`moto_server is not installed at ${MOTO_SERVER}: run SETUP_TEST_TOOLS=1 bash scripts/setup-host.sh`);
  }
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(MOTO_SERVER, ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited (${child.exitCode}):\n${stderr}`);
    const up = await fetch(`${endpoint}/moto-api/data.json`).then((r) => r.ok, () => false);
    if (up) return { endpoint, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`moto_server did not answer on ${endpoint} within ${timeoutMs} ms:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
