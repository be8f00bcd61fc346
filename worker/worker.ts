import os from 'node:os';
import Docker from 'dockerode';
import { NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import type { Keyring } from '../store/encryption';
import { createActivities } from '../activities';
import { DockerSandboxes } from '../activities/docker-sandbox';
import { sandboxTaskQueue } from '../workflows/messages';

export interface WorkerDeps {
  config: Config;
  connection: NativeConnection;
  db: Db;
  log: Logger;
  keyring: Keyring;
  docker?: Docker;
  /** A prebuilt bundle (tests build one per run); otherwise workflows/ is bundled at start. */
  workflowBundle?: WorkflowBundleOption;
}

export interface SessionWorkers {
  hostId: string;
  run(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Two workers in one process: the shared queue (workflows, model calls,
 * provisioning) and this Docker host's own queue, which takes every activity
 * that touches a sandbox living here.
 */
export async function createWorkers(deps: WorkerDeps): Promise<SessionWorkers> {
  const { config } = deps;
  const hostId = config.docker.hostId ?? os.hostname();
  const docker = deps.docker ?? new Docker();
  const activities = createActivities({
    db: deps.db,
    sandboxes: new DockerSandboxes(docker),
    config,
    log: deps.log,
    keyring: deps.keyring,
    hostId,
  });
  const common = {
    connection: deps.connection,
    namespace: config.temporal.namespace,
    activities,
    // Ctrl-C must not wait on a long tool: unfinished activities are retried when a worker returns.
    shutdownGraceTime: '2s' as const,
  };
  const shared = await Worker.create({
    ...common,
    taskQueue: config.temporal.taskQueue,
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
  });
  const host = await Worker.create({ ...common, taskQueue: sandboxTaskQueue(config.temporal.taskQueue, hostId) });
  let running: Promise<void> | undefined;
  return {
    hostId,
    run() {
      running ??= Promise.all([shared.run(), host.run()]).then(() => undefined);
      return running;
    },
    async shutdown() {
      for (const w of [shared, host]) if (w.getState() === 'RUNNING') w.shutdown();
      await running;
    },
  };
}
