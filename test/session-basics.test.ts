import { sessionContainers, useHarness } from './support/harness';
import { text, toolUse } from './support/fake-anthropic';
import { billedPeriods } from '../store/metering';
import { getSession } from '../store/sessions';
import { sandboxTaskQueue, sessionWorkflowId } from '../workflows/messages';

describe('a session on the real stack', () => {
  const h = useHarness();

  it('runs Bash, Write and Read inside the sandbox, reports a result and removes the container', async () => {
    h.fake.enqueue(
      toolUse('Bash', { command: 'id -u && pwd && echo from-bash > made-by-bash.txt' }),
      toolUse('Write', { file_path: '/workspace/notes/report.md', content: 'line one\nline two\n' }),
      toolUse('Read', { file_path: 'notes/report.md' }),
      text('All three tools worked.'),
    );
    const sessionId = await h.startSession({ prompt: 'Exercise the tools', profile: { permission_mode: 'bypassPermissions', one_shot: true } });

    const outcome = await h.waitForEnd(sessionId);
    expect(outcome.endReason).toBe('completed');

    const events = await h.events(sessionId);
    const results = events.filter((e) => e.type === 'tool_result').map((e) => e.payload);
    expect(results).toHaveLength(3);
    expect(results[0].content).toContain('1000\n/workspace');
    expect(results[0].is_error).toBe(false);
    expect(String(results[1].content)).toContain('report.md');
    expect(results[2].content).toMatch(/^\s+1\tline one\n\s+2\tline two/);

    const result = events.find((e) => e.type === 'result')!;
    expect(result.payload).toMatchObject({ success: true, summary: 'All three tools worked.', turns: 4 });
    expect(events.at(-1)!.type).toBe('session_end');
    expect(events.at(-1)!.payload).toMatchObject({ reason: 'completed', exit_code: 0 });
    // Sequence numbers are 1..n with no gaps.
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));

    expect(await sessionContainers(h.docker, sessionId)).toHaveLength(0);
    const row = await getSession(h.db, sessionId);
    expect(row).toMatchObject({ status: 'ended', end_reason: 'completed', exit_code: 0 });
    expect((await billedPeriods(h.db, sessionId)).length).toBeGreaterThanOrEqual(1);

    // Everything that touched the container ran on the queue of the Docker host holding it.
    const history = await h.client.workflow.getHandle(sessionWorkflowId(sessionId)).fetchHistory();
    const scheduled = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes)
      .filter((a) => a && ['runTool', 'recordUsage', 'cleanupSandbox'].includes(a.activityType?.name ?? ''));
    expect(scheduled.length).toBeGreaterThanOrEqual(5);
    for (const a of scheduled) expect(a!.taskQueue?.name).toBe(sandboxTaskQueue(h.config.temporal.taskQueue, row!.sandbox_host!));
    expect(row!.sandbox_host).toBe(h.config.docker.hostId);

    // The model saw each tool's output in the next request.
    const last = h.fake.requests.at(-1)!.body;
    const lastUser = last.messages.at(-1);
    expect(lastUser.role).toBe('user');
    expect(lastUser.content[0]).toMatchObject({ type: 'tool_result', content: expect.stringContaining('line two') });
  });
});
