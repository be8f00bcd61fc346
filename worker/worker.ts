import os from 'node:os';
import Docker from 'dockerode';
import { NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { Client } from '@temporalio/client';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/log';
import type { Db } from '../store/db';
import type { Keyring } from '../store/encryption';
import { createActivities } from '../activities';
import { DockerSandboxes } from '../activities/docker-sandbox';
import { createReaperActivities } from '../activities/reaper-activities';
import { registerDockerHost } from '../store/reaper';
import { ensureReaperSchedule } from './reaper-schedule';
import { temporalDataConverter } from '../infra/payload-keys';
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
  const activityDeps = { db: deps.db, sandboxes: new DockerSandboxes(docker), config, log: deps.log, keyring: deps.keyring, hostId };
  const activities = createActivities(activityDeps);
  // The reaper asks Temporal about session workflows and host queues over the worker's own connection.
  // One data converter for the workers and their client: every payload is encrypted (infra/payload-keys.ts).
  const dataConverter = temporalDataConverter(config, deps.keyring);
  const temporal = new Client({ connection: deps.connection, namespace: config.temporal.namespace, dataConverter });
  const reaper = createReaperActivities({ ...activityDeps, temporal });
  const common = {
    connection: deps.connection,
    namespace: config.temporal.namespace,
    dataConverter,
    activities: { ...activities, ...reaper },
    // Ctrl-C must not wait on a long tool: unfinished activities are retried when a worker returns.
    shutdownGraceTime: '2s' as const,
  };
  const shared = await Worker.create({
    ...common,
    taskQueue: config.temporal.taskQueue,
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
  });
  const host = await Worker.create({ ...common, taskQueue: sandboxTaskQueue(config.temporal.taskQueue, hostId) });
  // The reaper sweeps every registered host whose queue is polled, and runs on a schedule every worker keeps current.
  await registerDockerHost(deps.db, hostId, sandboxTaskQueue(config.temporal.taskQueue, hostId));
  await ensureReaperSchedule(temporal, config).catch((err: Error) =>
    deps.log.error({ err: err.message }, 'could not create or update the reaper schedule; sandboxes of abandoned sessions stay until it runs'),
  );
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
