import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { SearchAttributeKey } from '@temporalio/common/lib/search-attributes';
import type { SearchAttributeType } from '@temporalio/common';
import type { Logger } from '../lib/log';
import { makePrivateDir } from '../lib/private-dir';

export interface DevServerOptions {
  cliPath?: string;
  /** SQLite file for persistence; in memory when absent. */
  dbFile?: string;
  port: number;
  uiPort: number;
  ip?: string;
  namespace: string;
  searchAttributes: SearchAttributeKey<SearchAttributeType>[];
  dynamicConfig?: Record<string, string | number>;
  /** Where the Web UI sends payloads to be decoded (the gateway's /codec). */
  uiCodecEndpoint?: string;
  log: Logger;
}

export interface DevServer {
  address: string;
  uiUrl: string;
  stop(): Promise<void>;
}

/**
 * A real Temporal server (`temporal server start-dev`). With a CLI on hand we
 * run it ourselves, so its SQLite file outlives us and Ctrl-C stops it
 * cleanly; without one, the SDK downloads and runs it.
 */
export async function startDevServer(o: DevServerOptions): Promise<DevServer> {
  const ip = o.ip ?? '127.0.0.1';
  const address = `${ip}:${o.port}`;
  // localhost, not the IP: the codec sign-in cookie (SameSite=Strict) is set for localhost (README).
  const uiUrl = `http://${ip === '127.0.0.1' || ip === '0.0.0.0' ? 'localhost' : ip}:${o.uiPort}`;
  const dynamic = Object.entries(o.dynamicConfig ?? {}).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${v}`]);
  const attrs = o.searchAttributes.flatMap((k) => ['--search-attribute', `${k.name}=${k.type}`]);
  const codec = o.uiCodecEndpoint ? ['--ui-codec-endpoint', o.uiCodecEndpoint] : [];
  if (o.dbFile) makePrivateDir(path.dirname(o.dbFile));
  if (!o.cliPath) {
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        ip,
        port: o.port,
        uiPort: o.uiPort,
        ui: true,
        namespace: o.namespace,
        dbFilename: o.dbFile,
        searchAttributes: o.searchAttributes,
        extraArgs: [...dynamic, ...codec],
      },
    });
    return { address, uiUrl, stop: () => env.teardown() };
  }
  const args = [
    'server', 'start-dev', '--ip', ip, '--port', String(o.port), '--ui-port', String(o.uiPort),
    '--namespace', o.namespace, '--log-level', 'warn', ...(o.dbFile ? ['--db-filename', o.dbFile] : []), ...attrs, ...dynamic, ...codec,
  ];
  const child = spawn(o.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitUntilServing(address, child, exited, () => output);
  o.log.debug({ address, pid: child.pid }, 'temporal dev server up');
  return { address, uiUrl, stop: () => stopChild(child, exited) };
}

async function waitUntilServing(
  address: string,
  child: ChildProcess,
  exited: Promise<number | null>,
  output: () => string,
): Promise<void> {
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (done) throw new Error(`temporal dev server exited during start:\n${output()}`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      await conn.workflowService.getSystemInfo({});
      await conn.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  child.kill('SIGKILL');
  throw new Error(`temporal dev server did not answer on ${address} within 60 s:\n${output()}`);
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
