import { sessionContainers, type Harness, useHarness } from './support/harness';
import { text, toolUse, type RecordedRequest } from './support/fake-anthropic';
import { DockerSandboxes } from '../activities/docker-sandbox';
import { WorkflowUpdateFailedError } from '../api/session-service';
import type { StoredEvent } from '../store/events';

/**
 * Tool approvals on the real stack: the permission rules decide, a human answers through the
 * approve/answer updates, and the model sees what happened in the next request it receives.
 */

const WAIT = 60_000;

/** The first request the model stand-in received that carries a tool_result for this tool_use. */
function requestAnswering(h: Harness, toolUseId: string): RecordedRequest | undefined {
  return h.fake.requests.find((r) => toolResultIn(r, toolUseId) !== undefined);
}
function toolResultIn(r: RecordedRequest, toolUseId: string): any {
  for (const m of r.body?.messages ?? []) {
    if (!Array.isArray(m.content)) continue;
    const b = m.content.find((c: any) => c?.type === 'tool_result' && c.tool_use_id === toolUseId);
    if (b) return b;
  }
  return undefined;
}
const resultText = (block: any): string =>
  typeof block?.content === 'string' ? block.content : JSON.stringify(block?.content ?? '');

async function waitForCount(h: Harness, sessionId: string, match: (e: StoredEvent) => boolean, n: number): Promise<StoredEvent[]> {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const found = (await h.events(sessionId)).filter(match);
    if (found.length >= n) return found;
    if (Date.now() > deadline) {
      const seen = (await h.events(sessionId)).map((e) => e.type).join(', ');
      throw new Error(`timed out waiting for ${n} matching events in ${sessionId}; saw: ${seen}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ofType = (events: StoredEvent[], type: string) => events.filter((e) => e.type === type);
const toolResultEvent = (events: StoredEvent[], id: string) =>
  events.find((e) => e.type === 'tool_result' && e.payload.tool_use_id === id)?.payload as any;

/** Runs a command in the session's container (as the sandbox user), outside the session's own tools. */
async function execInSandbox(h: Harness, sessionId: string, command: string) {
  const [c] = await sessionContainers(h.docker, sessionId);
  if (!c) throw new Error(`session ${sessionId} has no container`);
  return new DockerSandboxes(h.docker).exec(c.Id, ['bash', '-c', command], { maxOutputBytes: 64 * 1024 });
}

async function endSession(h: Harness, sessionId: string) {
  await h.service.terminate(sessionId, 'user_requested').catch(() => undefined);
  return h.waitForEnd(sessionId);
}

async function updateError(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('the update was accepted, expected a rejection');
}
/** The validator's message: the client wraps it as the cause of a WorkflowUpdateFailedError. */
const messageOf = (err: Error): string => `${err.message} ${(err as { cause?: Error }).cause?.message ?? ''}`;

describe('tool approvals on the real stack', () => {
  const h = useHarness();

  it('asks before a Bash call no rule allows, shows the pending request in the status, and runs it on "y"', async () => {
    const command = 'echo approved-output && id -u';
    h.fake.enqueue(toolUse('Bash', { command }, { id: 'toolu_approve_y' }), text('It ran.'));
    const sessionId = await h.startSession({ prompt: 'run it', profile: { permission_mode: 'acceptEdits', one_shot: true } });

    const request = await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request', WAIT);
    expect(request.payload).toMatchObject({
      request_id: 'toolu_approve_y',
      tool_name: 'Bash',
      input: { command },
      expires_at: expect.any(String),
    });
    expect(Date.parse(String(request.payload.expires_at))).toBeGreaterThan(Date.parse(request.created_at) - 5_000);

    const status = await h.service.status(sessionId);
    expect(status.activity).toBe('waiting_approval');
    expect(status.pending).toMatchObject({ kind: 'approval', requestId: 'toolu_approve_y', toolName: 'Bash', expiresAt: request.payload.expires_at });
    // Nothing runs while the approval is pending.
    expect(ofType(await h.events(sessionId), 'tool_result')).toHaveLength(0);
    expect(h.fake.requests).toHaveLength(1);

    await expect(h.service.approve(sessionId, 'toolu_approve_y', 'y')).resolves.toEqual({ accepted: true });
    expect(await h.waitForEnd(sessionId)).toMatchObject({ endReason: 'completed' });

    const events = await h.events(sessionId);
    const result = toolResultEvent(events, 'toolu_approve_y');
    expect(result).toMatchObject({ is_error: false });
    expect(result.content).toContain('approved-output\n1000');
    expect(ofType(events, 'result').map((e) => e.payload)).toEqual([expect.objectContaining({ success: true, summary: 'It ran.' })]);
    expect(resultText(toolResultIn(requestAnswering(h, 'toolu_approve_y')!, 'toolu_approve_y'))).toContain('approved-output');
  });

  it('"n" sends the model a declined error, runs nothing, and the session carries on', async () => {
    h.fake.enqueue(
      toolUse('Bash', { command: 'touch /workspace/declined.txt && echo made' }, { id: 'toolu_decline' }),
      text('Understood, I will not create it.'),
      text('Still here.'),
    );
    const sessionId = await h.startSession({ prompt: 'make a file', profile: { permission_mode: 'acceptEdits' } });
    await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request', WAIT);
    await h.service.approve(sessionId, 'toolu_decline', 'n');

    await waitForCount(h, sessionId, (e) => e.type === 'result', 1);
    const events = await h.events(sessionId);
    expect(toolResultEvent(events, 'toolu_decline')).toMatchObject({ is_error: true, content: expect.stringMatching(/declined/i) });
    expect(ofType(events, 'result')[0]!.payload).toMatchObject({ success: true, summary: 'Understood, I will not create it.' });

    // The model was told, in the request right after the call.
    const next = h.fake.requests[1]!;
    const block = toolResultIn(next, 'toolu_decline');
    expect(block).toMatchObject({ is_error: true });
    expect(resultText(block)).toMatch(/user declined/i);

    // The command never ran.
    const check = await execInSandbox(h, sessionId, 'test -e /workspace/declined.txt && echo present || echo absent');
    expect(check.stdout.trim()).toBe('absent');

    // The session goes on taking prompts.
    await h.service.prompt(sessionId, 'anything else?');
    const results = await waitForCount(h, sessionId, (e) => e.type === 'result', 2);
    expect(results[1]!.payload).toMatchObject({ success: true, summary: 'Still here.' });
    expect((await h.service.status(sessionId)).status).toBe('running');
    await endSession(h, sessionId);
  });

  it('"session" runs the call and approves the same command prefix for the rest of the session', async () => {
    h.fake.enqueue(
      toolUse('Bash', { command: 'ls -la /workspace' }, { id: 'toolu_sess_1' }),
      toolUse('Bash', { command: 'ls /tmp' }, { id: 'toolu_sess_2' }),
      toolUse('Bash', { command: 'cat /etc/hostname' }, { id: 'toolu_sess_3' }),
      text('Listed and read.'),
    );
    const sessionId = await h.startSession({ prompt: 'look around', profile: { permission_mode: 'acceptEdits', one_shot: true } });
    await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request', WAIT);
    await h.service.approve(sessionId, 'toolu_sess_1', 'session');

    // `ls /tmp` runs without asking; `cat` is another command and asks again.
    const second = await waitForCount(h, sessionId, (e) => e.type === 'tool_approval_request', 2);
    expect(second[1]!.payload).toMatchObject({ request_id: 'toolu_sess_3', tool_name: 'Bash', input: { command: 'cat /etc/hostname' } });
    let events = await h.events(sessionId);
    expect(toolResultEvent(events, 'toolu_sess_1')).toMatchObject({ is_error: false, content: expect.stringContaining('total') });
    expect(toolResultEvent(events, 'toolu_sess_2')).toMatchObject({ is_error: false });
    expect((await h.service.status(sessionId)).pending).toMatchObject({ requestId: 'toolu_sess_3' });

    await h.service.approve(sessionId, 'toolu_sess_3', 'y');
    expect(await h.waitForEnd(sessionId)).toMatchObject({ endReason: 'completed' });
    events = await h.events(sessionId);
    expect(ofType(events, 'tool_approval_request').map((e) => e.payload.request_id)).toEqual(['toolu_sess_1', 'toolu_sess_3']);
    expect(toolResultEvent(events, 'toolu_sess_3')).toMatchObject({ is_error: false });
    expect(ofType(events, 'result')[0]!.payload).toMatchObject({ success: true, summary: 'Listed and read.' });
  });

  it('a Bash(prefix:*) deny rule refuses the call with no approval, even in bypassPermissions, and the session goes on', async () => {
    h.fake.enqueue(
      toolUse('Bash', { command: 'mkdir -p /workspace/x && echo made' }, { id: 'toolu_deny_mk' }),
      toolUse('Bash', { command: 'ls && rm -rf /workspace/x' }, { id: 'toolu_deny_rm' }),
      toolUse('Bash', { command: 'test -d /workspace/x && echo still-there' }, { id: 'toolu_deny_check' }),
      text('The rm was refused.'),
    );
    const sessionId = await h.startSession({
      prompt: 'clean up',
      profile: { denied_tools: ['Bash(rm:*)'], permission_mode: 'bypassPermissions', one_shot: true },
    });
    expect(await h.waitForEnd(sessionId)).toMatchObject({ endReason: 'completed' });

    const events = await h.events(sessionId);
    expect(ofType(events, 'tool_approval_request')).toHaveLength(0);
    expect(toolResultEvent(events, 'toolu_deny_rm')).toMatchObject({ is_error: true, content: expect.stringMatching(/^Permission denied/) });
    expect(toolResultEvent(events, 'toolu_deny_check')).toMatchObject({ is_error: false, content: expect.stringContaining('still-there') });
    expect(ofType(events, 'result')[0]!.payload).toMatchObject({ success: true, summary: 'The rm was refused.' });

    const block = toolResultIn(requestAnswering(h, 'toolu_deny_rm')!, 'toolu_deny_rm');
    expect(block).toMatchObject({ is_error: true });
    expect(resultText(block)).toMatch(/^Permission denied.*Bash\(rm:\*\)/);
  });

  it('a Bash(prefix:*) allow rule runs every stage it covers without asking, and asks for a substitution', async () => {
    h.fake.enqueue(
      toolUse('Bash', { command: 'echo hi | echo there' }, { id: 'toolu_allow_pipe' }),
      toolUse('Bash', { command: 'echo $(id -u)' }, { id: 'toolu_allow_subst' }),
      text('Echoed.'),
    );
    const sessionId = await h.startSession({
      prompt: 'echo things',
      profile: { allowed_tools: ['Bash(echo:*)'], permission_mode: 'acceptEdits', one_shot: true },
    });
    const request = await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request', WAIT);
    expect(request.payload).toMatchObject({ request_id: 'toolu_allow_subst', input: { command: 'echo $(id -u)' } });
    expect(toolResultEvent(await h.events(sessionId), 'toolu_allow_pipe')).toMatchObject({ is_error: false, content: 'there\n' });

    await h.service.approve(sessionId, 'toolu_allow_subst', 'y');
    expect(await h.waitForEnd(sessionId)).toMatchObject({ endReason: 'completed' });
    const events = await h.events(sessionId);
    expect(ofType(events, 'tool_approval_request')).toHaveLength(1);
    expect(toolResultEvent(events, 'toolu_allow_subst')).toMatchObject({ is_error: false, content: '1000\n' });
  });

  it('acceptEdits writes files without asking but asks before Bash', async () => {
    h.fake.enqueue(
      toolUse('Write', { file_path: '/workspace/edit.txt', content: 'accepted edit\n' }, { id: 'toolu_ae_write' }),
      toolUse('Bash', { command: 'cat /workspace/edit.txt' }, { id: 'toolu_ae_bash' }),
      text('Wrote and read.'),
    );
    const sessionId = await h.startSession({ prompt: 'write', profile: { permission_mode: 'acceptEdits', one_shot: true } });
    const request = await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request', WAIT);
    expect(request.payload).toMatchObject({ request_id: 'toolu_ae_bash', tool_name: 'Bash' });
    expect(toolResultEvent(await h.events(sessionId), 'toolu_ae_write')).toMatchObject({ is_error: false });

    await h.service.approve(sessionId, 'toolu_ae_bash', 'y');
    expect(await h.waitForEnd(sessionId)).toMatchObject({ endReason: 'completed' });
    const events = await h.events(sessionId);
    expect(ofType(events, 'tool_approval_request')).toHaveLength(1);
    expect(toolResultEvent(events, 'toolu_ae_bash')).toMatchObject({ is_error: false, content: 'accepted edit\n' });
  });

  it('plan mode reads but refuses writes, without asking anyone', async () => {
    h.fake.enqueue(
      toolUse('Read', { file_path: '/etc/hostname' }, { id: 'toolu_plan_read' }),
      toolUse('Write', { file_path: '/workspace/plan.txt', content: 'nope' }, { id: 'toolu_plan_write' }),
      text('Planned.'),
    );
    const sessionId = await h.startSession({ prompt: 'plan', profile: { permission_mode: 'plan', one_shot: true } });
    expect(await h.waitForEnd(sessionId)).toMatchObject({ endReason: 'completed' });

    const events = await h.events(sessionId);
    expect(ofType(events, 'tool_approval_request')).toHaveLength(0);
    expect(toolResultEvent(events, 'toolu_plan_read')).toMatchObject({ is_error: false, content: expect.stringMatching(/^\s+1\t/) });
    expect(toolResultEvent(events, 'toolu_plan_write')).toMatchObject({
      is_error: true,
      content: expect.stringMatching(/^Permission denied.*plan/),
    });
    expect(resultText(toolResultIn(requestAnswering(h, 'toolu_plan_write')!, 'toolu_plan_write'))).toMatch(/Permission denied/);
    expect(ofType(events, 'result')[0]!.payload).toMatchObject({ success: true });
  });

  it('a D&R session whose profile sets no rules runs Bash without asking', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'echo dr-ran' }, { id: 'toolu_dr_free' }), text('D&R done.'));
    const sessionId = await h.startSession({ prompt: 'respond', trigger: 'dr', profile: {} });
    expect(await h.waitForEnd(sessionId)).toMatchObject({ endReason: 'completed' });
    const events = await h.events(sessionId);
    expect(ofType(events, 'tool_approval_request')).toHaveLength(0);
    expect(toolResultEvent(events, 'toolu_dr_free')).toMatchObject({ is_error: false, content: 'dr-ran\n' });
  });

  it('a D&R session with a permission_mode asks like any other', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'echo dr-asked' }, { id: 'toolu_dr_ask' }), text('D&R asked.'));
    const sessionId = await h.startSession({ prompt: 'respond', trigger: 'dr', profile: { permission_mode: 'acceptEdits' } });
    const request = await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request', WAIT);
    expect(request.payload).toMatchObject({ request_id: 'toolu_dr_ask', tool_name: 'Bash' });
    await h.service.approve(sessionId, 'toolu_dr_ask', 'y');
    expect(await h.waitForEnd(sessionId)).toMatchObject({ endReason: 'completed' });
    expect(toolResultEvent(await h.events(sessionId), 'toolu_dr_ask')).toMatchObject({ is_error: false, content: 'dr-asked\n' });
  });

  it('rejects an answer for another request id or with an unknown decision, and changes nothing', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'echo finally' }, { id: 'toolu_bad_answers' }), text('Finally ran.'));
    const sessionId = await h.startSession({ prompt: 'go', profile: { permission_mode: 'acceptEdits', one_shot: true } });
    await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request', WAIT);

    const wrongId = await updateError(h.service.approve(sessionId, 'toolu_not_this_one', 'y'));
    expect(wrongId).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(messageOf(wrongId)).toMatch(/no pending approval toolu_not_this_one/);

    const maybe = await updateError(h.service.approve(sessionId, 'toolu_bad_answers', 'maybe' as never));
    expect(maybe).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(messageOf(maybe)).toMatch(/decision must be y, n or session/);

    // An answer to a question that was never asked is refused too.
    const notAQuestion = await updateError(h.service.answer(sessionId, 'toolu_bad_answers', 'some text'));
    expect(messageOf(notAQuestion)).toMatch(/no pending question/);

    const status = await h.service.status(sessionId);
    expect(status.activity).toBe('waiting_approval');
    expect(status.pending).toMatchObject({ kind: 'approval', requestId: 'toolu_bad_answers' });
    expect(ofType(await h.events(sessionId), 'tool_result')).toHaveLength(0);

    await expect(h.service.approve(sessionId, 'toolu_bad_answers', 'y')).resolves.toEqual({ accepted: true });
    expect(await h.waitForEnd(sessionId)).toMatchObject({ endReason: 'completed' });
    expect(toolResultEvent(await h.events(sessionId), 'toolu_bad_answers')).toMatchObject({ is_error: false, content: 'finally\n' });
  });

  it('AskUserQuestion waits for the answer and hands it to the model as the tool result', async () => {
    const questions = [{ question: 'Which host?', options: [{ label: 'a' }, { label: 'b' }] }];
    h.fake.enqueue(toolUse('AskUserQuestion', { questions }, { id: 'toolu_question' }), text('Going with host a.'));
    const sessionId = await h.startSession({ prompt: 'pick a host', profile: { permission_mode: 'acceptEdits', one_shot: true } });

    const asked = await h.waitForEvent(sessionId, (e) => e.type === 'ask_user_question', WAIT);
    expect(asked.payload).toMatchObject({ request_id: 'toolu_question', questions, expires_at: expect.any(String) });
    const status = await h.service.status(sessionId);
    expect(status.activity).toBe('waiting_answer');
    expect(status.pending).toMatchObject({ kind: 'question', requestId: 'toolu_question', toolName: 'AskUserQuestion' });
    // A question is not an approval.
    expect(messageOf(await updateError(h.service.approve(sessionId, 'toolu_question', 'y')))).toMatch(/no pending approval/);
    expect(ofType(await h.events(sessionId), 'tool_approval_request')).toHaveLength(0);

    await expect(h.service.answer(sessionId, 'toolu_question', 'host a')).resolves.toEqual({ accepted: true });
    expect(await h.waitForEnd(sessionId)).toMatchObject({ endReason: 'completed' });

    const block = toolResultIn(h.fake.requests[1]!, 'toolu_question');
    expect(block).toBeDefined();
    expect(block.is_error).not.toBe(true);
    expect(resultText(block)).toContain('host a');
    expect(ofType(await h.events(sessionId), 'result')[0]!.payload).toMatchObject({ success: true, summary: 'Going with host a.' });
  });
});

describe('an approval nobody answers', () => {
  const h = useHarness({ env: { APPROVAL_TIMEOUT_SECONDS: '4' } });

  it('ends the session as failed after the approval timeout and removes the container', async () => {
    h.fake.enqueue(toolUse('Bash', { command: 'echo never-approved' }, { id: 'toolu_timeout' }));
    const sessionId = await h.startSession({ prompt: 'wait for me', profile: { permission_mode: 'acceptEdits' } });
    await h.waitForEvent(sessionId, (e) => e.type === 'tool_approval_request', WAIT);
    expect((await h.service.status(sessionId)).pending).toMatchObject({ requestId: 'toolu_timeout' });
    expect(await sessionContainers(h.docker, sessionId)).toHaveLength(1);

    const outcome = await h.waitForEnd(sessionId);
    expect(outcome.endReason).toBe('failed');
    expect(outcome.errorMessage).toMatch(/approval/i);
    expect(outcome.errorMessage).toMatch(/Bash/);

    const events = await h.events(sessionId);
    expect(toolResultEvent(events, 'toolu_timeout')).toBeUndefined();
    expect(ofType(events, 'result').map((e) => e.payload)).toEqual([expect.objectContaining({ success: false })]);
    expect(ofType(events, 'session_error')[0]!.payload.error).toMatch(/approval/i);
    expect(events.at(-1)!.payload).toMatchObject({ reason: 'failed', exit_code: 1 });
    expect(await sessionContainers(h.docker, sessionId)).toHaveLength(0);
    // Only the one model call: nothing ran after the request expired.
    expect(h.fake.requests).toHaveLength(1);
  });
});
