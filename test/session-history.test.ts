import { TEST_KEY, useHarness } from './support/harness';
import { decodedHistoryText } from './support/history';
import { text } from './support/fake-anthropic';
import { sessionWorkflowId } from '../workflows/messages';

/**
 * Workflow history holds references, not text, and a long conversation
 * continues as new (the test server suggests it after 400 events) without
 * losing a prompt or a word of the conversation.
 */
describe('session history', () => {
  const h = useHarness();

  it('keeps prompts and keys out of history and is findable by search attributes', async () => {
    const secretPrompt = 'investigate host alpha-7 with passphrase correct-horse-battery';
    h.fake.enqueue(text('On it.'));
    const sessionId = await h.startSession({ prompt: secretPrompt, profile: { permission_mode: 'bypassPermissions', one_shot: true } });
    await h.waitForEnd(sessionId);
    const history = await decodedHistoryText(h, sessionWorkflowId(sessionId));
    expect(history).not.toContain('correct-horse-battery');
    expect(history).not.toContain(TEST_KEY);
    // The model did get both.
    expect(JSON.stringify(h.fake.requests.at(-1)!.body)).toContain('correct-horse-battery');
    expect(h.fake.requests.at(-1)!.headers.authorization).toBe(`Bearer ${TEST_KEY}`);

    const found = await poll(async () => {
      const ids: string[] = [];
      for await (const wf of h.client.workflow.list({ query: `AiSessionId = '${sessionId}' AND AiStatus = 'ended' AND AiTrigger = 'user'` })) {
        ids.push(wf.workflowId);
      }
      return ids.length > 0 ? ids : undefined;
    });
    expect(found).toEqual([sessionWorkflowId(sessionId)]);
  });

  it('continues as new in a long conversation without losing a prompt', async () => {
    h.fake.setResponder((req) => {
      const last = req.body.messages.at(-1);
      const said = last.content.find((b: { type: string }) => b.type === 'text')?.text ?? '';
      return text(`echo: ${said} (${req.body.messages.length} messages)`);
    });
    const sessionId = await h.startSession({ profile: { permission_mode: 'bypassPermissions' } });
    const handle = h.client.workflow.getHandle(sessionWorkflowId(sessionId));
    const firstRun = (await handle.describe()).runId;
    let sent = 0;
    // Prompts go in pairs without waiting for answers, so some arrive while a run is about to continue as new.
    while (sent < 60) {
      await h.service.prompt(sessionId, `prompt ${sent + 1}`);
      await h.service.prompt(sessionId, `prompt ${sent + 2}`);
      sent += 2;
      await h.waitForEvent(sessionId, (e) => e.type === 'result' && String(e.payload.summary).startsWith(`echo: prompt ${sent} `), 60_000);
      if ((await handle.describe()).runId !== firstRun && sent >= 10) break;
    }
    expect((await handle.describe()).runId).not.toBe(firstRun);

    const events = await h.events(sessionId);
    const results = events.filter((e) => e.type === 'result').map((e) => String(e.payload.summary));
    expect(results).toHaveLength(sent);
    results.forEach((summary, i) => expect(summary).toBe(`echo: prompt ${i + 1} (${2 * i + 1} messages)`));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  });
});

async function poll<T>(fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('poll timed out');
    await new Promise((r) => setTimeout(r, 300));
  }
}
