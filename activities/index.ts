import { createDrActivities } from './dr-activities';
import { createFileActivities } from './file-activities';
import { createHibernationActivities } from './hibernation-activities';
import { createMcpActivities } from './mcp-activities';
import { McpConnections } from './mcp-client';
import { createModelActivities } from './model-activities';
import { createOutputActivities } from './output-activities';
import { createWebActivities } from './web-activities';
import { createSandboxActivities } from './sandbox-activities';
import { createSessionActivities } from './session-activities';
import type { ActivityDeps } from './shared';

export type { ActivityDeps } from './shared';
export type { ModelTurn, ToolUseRef } from './model-activities';

/** Every activity the session and debounce workflows call, built over the worker's dependencies. */
export function createActivities(deps: ActivityDeps) {
  // This worker's MCP clients, shared by the calls and the sandbox cleanup that closes them.
  const { mcp: limits, version } = deps.config;
  const mcp = new McpConnections(deps.sandboxes, {
    connectTimeoutMs: limits.connectTimeoutSeconds * 1000,
    callTimeoutMs: limits.callTimeoutSeconds * 1000,
    resultMaxBytes: limits.resultMaxBytes,
  }, version);
  return {
    ...createSessionActivities(deps),
    ...createModelActivities(deps),
    ...createSandboxActivities(deps, mcp),
    ...createMcpActivities(deps, mcp),
    ...createFileActivities(deps),
    ...createHibernationActivities(deps),
    ...createDrActivities(deps),
    ...createOutputActivities(deps),
    ...createWebActivities(deps),
  };
}

export type SessionActivities = ReturnType<typeof createActivities>;
