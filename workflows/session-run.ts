import type { CancellationScope } from '@temporalio/workflow';
import type { EndReason } from '../lib/end-reasons';
import { sessionActivities } from './activity-proxies';
import type { ApprovalDecision, PendingRequest } from './messages';
import type { SessionInput, SessionState } from './types';

export type PendingHuman = PendingRequest & { decision?: ApprovalDecision; answerRef?: string };

/**
 * One run of the session workflow: the carried state (what survives
 * continue-as-new), the run's own flags, and the activity proxies. The
 * workflow's parts (handlers, turns, sandbox lifecycle) share this one object
 * instead of a closure, so each lives in a file of its own.
 */
export class SessionRun {
  /** Set once: why the session ends. Everything else checks it. */
  end?: { reason: EndReason; error?: string };
  /** The cancellable work in progress (a prompt, or starting a sandbox); an end or an interrupt cancels it. */
  work?: CancellationScope;
  /** The approval or question the running turn waits on. */
  pending?: PendingHuman;
  /** What the status query reports the session doing. */
  activity: string;
  /** A prompt is running. */
  busy = false;
  hibernating = false;
  /** File transfers waiting for a dormant session to resume. */
  wakeRequests = 0;
  /** The billing watcher of the current sandbox runs, and the flag that stops it. */
  watcherRunning = false;
  stopWatching = false;

  readonly acts: ReturnType<typeof sessionActivities>['acts'];
  readonly model: ReturnType<typeof sessionActivities>['model'];
  readonly provisioning: ReturnType<typeof sessionActivities>['provisioning'];
  readonly onSandbox: ReturnType<typeof sessionActivities>['onSandbox'];
  readonly archiveOn: ReturnType<typeof sessionActivities>['archiveOn'];
  readonly cleanupOn: ReturnType<typeof sessionActivities>['cleanupOn'];

  constructor(
    readonly input: SessionInput,
    readonly s: SessionState,
  ) {
    ({
      acts: this.acts,
      model: this.model,
      provisioning: this.provisioning,
      onSandbox: this.onSandbox,
      archiveOn: this.archiveOn,
      cleanupOn: this.cleanupOn,
    } = sessionActivities(input));
    this.activity = s.sandbox ? 'idle' : s.dormant ? 'dormant' : 'starting';
  }

  get sessionId(): string {
    return this.input.sessionId;
  }
  get timings(): SessionInput['timings'] {
    return this.input.timings;
  }
  get ended(): boolean {
    return this.end !== undefined;
  }

  enqueue(textRef: string): void {
    this.s.promptCount += 1;
    this.s.queue.push({ textRef, promptKey: `p${this.s.promptCount}` });
  }

  /** The first reason wins; whatever is running is cancelled. */
  requestEnd(reason: EndReason, error?: string): void {
    if (!this.end) this.end = { reason, error };
    this.work?.cancel();
  }
}
