import { createDrActivities } from './dr-activities';
import { createFileActivities } from './file-activities';
import { createModelActivities } from './model-activities';
import { createSandboxActivities } from './sandbox-activities';
import { createSessionActivities } from './session-activities';
import type { ActivityDeps } from './shared';

export type { ActivityDeps } from './shared';
export type { ModelTurn, ToolUseRef } from './model-activities';

/** Every activity the session and debounce workflows call, built over the worker's dependencies. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createSessionActivities(deps),
    ...createModelActivities(deps),
    ...createSandboxActivities(deps),
    ...createFileActivities(deps),
    ...createDrActivities(deps),
  };
}

export type SessionActivities = ReturnType<typeof createActivities>;
