import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { bundleWorkflowCode } from '@temporalio/worker';
import { createLogger } from '../lib/log';
import { loadConfig } from '../lib/config';
import { findTemporalCli } from '../infra/temporal-cli';
import { startDevServer } from '../infra/temporal-dev-server';
import { ensureRunnerImage } from '../infra/runner-image';
import { SEARCH_ATTRIBUTE_KEYS } from '../workflows/messages';
import { FAILURE_CONVERTER_PATH } from '../infra/payload-keys';
import { freePort } from '../test/support/global-setup';
import { startHarness, type Harness } from '../test/support/harness';

/** The real stack for a benchmark: a Temporal dev server, a worker, a store and the model stand-in. */
export async function startBenchStack(env: Record<string, string> = {}): Promise<{ h: Harness; stop(): Promise<void> }> {
  const log = createLogger('warn', 'bench');
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
  await ensureRunnerImage(new Docker(), config.runnerImage, config.version, log);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ais-bench-'));
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), failureConverterPath: FAILURE_CONVERTER_PATH, logger: silentBundler });
  fs.writeFileSync(path.join(dir, 'bundle.js'), bundle.code);
  const server = await startDevServer({
    cliPath: await findTemporalCli(process.env.TEMPORAL_CLI_PATH, log),
    port: await freePort(),
    uiPort: await freePort(),
    namespace: 'default',
    searchAttributes: SEARCH_ATTRIBUTE_KEYS,
    log,
  });
  process.env.TEST_TEMPORAL_ADDRESS = server.address;
  process.env.TEST_WORKFLOW_BUNDLE = path.join(dir, 'bundle.js');
  const h = await startHarness({ env: { BILLING_PERIOD_SECONDS: '60', SANDBOX_CHECK_SECONDS: '30', ...env } });
  return {
    h,
    async stop() {
      await h.close();
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const silentBundler = {
  log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined,
  warn: (m: string) => console.warn(m), error: (m: string) => console.error(m),
};

export const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
