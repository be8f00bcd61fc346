import { ActivityFailure, ApplicationFailure, setHandler, TemporalFailure } from '@temporalio/workflow';
import { downloadPathProblem, filenameProblem, isBlobId } from '../lib/file-transfer';
import { exportFileUpdate, placeFileUpdate } from './messages';
import type { sessionActivities } from './activity-proxies';
import type { SessionState } from './types';

/**
 * The session's file transfer updates. The workflow only passes ids and
 * paths; the activities on the sandbox's own Docker host move the bytes
 * between the blob area and the container. Refused while there is no
 * sandbox (starting) or once the session is ending; a dormant session is
 * woken first (awake).
 */
export function handleFileUpdates(p: {
  sessionId: string;
  state: SessionState;
  ended: () => boolean;
  onSandbox: ReturnType<typeof sessionActivities>['onSandbox'];
  /** Resolves once the session has a sandbox, resuming a hibernated one. */
  awake: () => Promise<void>;
}) {
  const { sessionId, state } = p;
  const sandboxOrReject = () => {
    if (p.ended() || !state.sandbox) throw ApplicationFailure.nonRetryable('the session is not running', 'SessionNotRunning');
    return state.sandbox;
  };
  const refuseUnlessRunning = () => {
    if (p.ended() || !(state.sandbox || state.dormant)) throw ApplicationFailure.nonRetryable('the session is not running', 'SessionNotRunning');
  };
  const invalid = (message: string) => ApplicationFailure.nonRetryable(message, 'InvalidArgument');

  setHandler(
    placeFileUpdate,
    async ({ uploadId, filename }) => {
      await p.awake();
      const sandbox = sandboxOrReject();
      try {
        return await p.onSandbox(sandbox.hostId).placeFile({ sessionId, containerId: sandbox.containerId, uploadId, filename });
      } catch (err) {
        throw asUpdateFailure(err);
      }
    },
    {
      validator: (a) => {
        if (!a || !isBlobId(a.uploadId, 'up')) throw invalid('placeFile: uploadId is not an upload id');
        const problem = filenameProblem(a.filename);
        if (problem) throw invalid(`placeFile: filename ${problem}`);
        refuseUnlessRunning();
      },
    },
  );

  setHandler(
    exportFileUpdate,
    async ({ downloadId, path, maxBytes }) => {
      await p.awake();
      const sandbox = sandboxOrReject();
      try {
        return await p.onSandbox(sandbox.hostId).exportFile({ sessionId, containerId: sandbox.containerId, downloadId, path, maxBytes });
      } catch (err) {
        throw asUpdateFailure(err);
      }
    },
    {
      validator: (a) => {
        if (!a || !isBlobId(a.downloadId, 'dl')) throw invalid('exportFile: downloadId is not a download id');
        const problem = downloadPathProblem(a.path);
        if (problem) throw invalid(`exportFile: path ${problem}`);
        if (typeof a.maxBytes !== 'number' || !(a.maxBytes > 0)) throw invalid('exportFile: maxBytes must be a positive number');
        refuseUnlessRunning();
      },
    },
  );
}

/** The activity's own failure (its type names the reason) as the update's failure, for the gateway to map. */
function asUpdateFailure(err: unknown): unknown {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return ApplicationFailure.nonRetryable(cause.message, cause.type);
  if (cause instanceof TemporalFailure) return ApplicationFailure.nonRetryable(cause.message, 'FileTransferFailed');
  return err;
}
