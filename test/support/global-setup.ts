import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { bundleWorkflowCode } from '@temporalio/worker';
import { createLogger } from '../../lib/log';
import { loadConfig } from '../../lib/config';
import { findTemporalCli } from '../../infra/temporal-cli';
import { startDevServer, type DevServer } from '../../infra/temporal-dev-server';
import { ensureRunnerImage } from '../../infra/runner-image';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/messages';
import { FAILURE_CONVERTER_PATH } from '../../infra/payload-keys';

/**
 * A free port for a server a test starts itself and may restart on the same
 * port. Picked below the kernel's ephemeral range (32768 and up here), where
 * outgoing connections and port-0 listeners of parallel suites cannot take it
 * between the check and the restart.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port found between 20000 and 32000');
}

/**
 * One real Temporal dev server and one workflow bundle for the whole run;
 * each test file brings its own task queue, store and model stand-in.
 */
export default async function globalSetup(): Promise<void> {
  const log = createLogger('warn', 'test-setup');
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
  const docker = new Docker();
  try {
    await docker.ping();
  } catch (err) {
    throw new Error(`the tests need a Docker engine (run scripts/setup-host.sh): ${(err as Error).message}`);
  }
  await ensureRunnerImage(docker, config.runnerImage, config.version, log);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-test-'));
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), failureConverterPath: FAILURE_CONVERTER_PATH, logger: quietBundleLogger });
  const bundlePath = path.join(dir, 'workflow-bundle.js');
  fs.writeFileSync(bundlePath, bundle.code);

  const port = await freePort();
  const server: DevServer = await startDevServer({
    cliPath: await findTemporalCli(process.env.TEMPORAL_CLI_PATH, log),
    port,
    uiPort: await freePort(),
    namespace: 'default',
    searchAttributes: SEARCH_ATTRIBUTE_KEYS,
    // Small enough that the long-conversation test really continues as new.
    dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 400 },
    log,
  });
  process.env.TEST_TEMPORAL_ADDRESS = server.address;
  process.env.TEST_WORKFLOW_BUNDLE = bundlePath;
  process.env.TEST_TMP_DIR = dir;
  (globalThis as { __aisTestServer?: DevServer }).__aisTestServer = server;
}

const quietBundleLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (m: string) => console.warn(m),
  error: (m: string) => console.error(m),
};
