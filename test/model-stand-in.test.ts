/**
 * The offline demo model (`npm run model:stand-in`), started as the script
 * starts it and called with the real SDK: a `run:` line becomes a Bash tool
 * call, its result a summary, anything else an echo.
 */
import Anthropic from '@anthropic-ai/sdk';
import type { FakeAnthropic } from './support/fake-anthropic';
import { startModelStandIn } from '../scripts/model-stand-in';

const MODEL = 'claude-test-model';
const bash = { name: 'Bash', description: 'Run a shell command', input_schema: { type: 'object' as const, properties: { command: { type: 'string' } }, required: ['command'] } };

let standIn: FakeAnthropic;
let client: Anthropic;

beforeAll(async () => {
  standIn = await startModelStandIn({ port: 0 });
  client = new Anthropic({ apiKey: 'sk-ant-offline', baseURL: standIn.url, maxRetries: 0 });
});
afterAll(() => standIn.close());

const prompt = 'Check the host.\nrun: uname -a\nthanks';

describe('the model stand-in', () => {
  it('asks for a Bash tool call for a run: line, then summarises its result (non-streaming)', async () => {
    const first = await client.messages.create({ model: MODEL, max_tokens: 1024, tools: [bash], messages: [{ role: 'user', content: prompt }] });
    expect(first.stop_reason).toBe('tool_use');
    const call = first.content.find((b) => b.type === 'tool_use');
    expect(call).toMatchObject({ type: 'tool_use', name: 'Bash', input: { command: 'uname -a' } });

    const output = `Linux sandbox 6.1.0 x86_64 GNU/Linux\n${'x'.repeat(1000)}`;
    const second = await client.messages.create({
      model: MODEL,
      max_tokens: 1024,
      tools: [bash],
      messages: [
        { role: 'user', content: prompt },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call!.type === 'tool_use' ? call!.id : '', content: [{ type: 'text', text: output }] }] },
      ],
    });
    expect(second.stop_reason).toBe('end_turn');
    const summary = second.content[0].type === 'text' ? second.content[0].text : '';
    expect(summary).toBe(`The command printed: ${output.slice(0, 500)}`);
  });

  it('streams the same replies', async () => {
    const stream = client.messages.stream({ model: MODEL, max_tokens: 1024, tools: [bash], messages: [{ role: 'user', content: prompt }] });
    const first = await stream.finalMessage();
    expect(first.stop_reason).toBe('tool_use');
    const call = first.content.find((b) => b.type === 'tool_use');
    expect(call).toMatchObject({ name: 'Bash', input: { command: 'uname -a' } });

    const pieces: string[] = [];
    const second = client.messages.stream({
      model: MODEL,
      max_tokens: 1024,
      tools: [bash],
      messages: [
        { role: 'user', content: prompt },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call!.type === 'tool_use' ? call!.id : '', content: 'hello from the sandbox\n' }] },
      ],
    });
    second.on('text', (t) => pieces.push(t));
    const final = await second.finalMessage();
    expect(pieces.join('')).toBe('The command printed: hello from the sandbox');
    expect(final.content).toEqual([{ type: 'text', text: 'The command printed: hello from the sandbox' }]);
  });

  it('says what it is and echoes a prompt without a run: line', async () => {
    const reply = await client.messages.create({ model: MODEL, max_tokens: 1024, tools: [bash], messages: [{ role: 'user', content: 'What happened on web-01?' }] });
    expect(reply.stop_reason).toBe('end_turn');
    expect(reply.content).toEqual([{ type: 'text', text: expect.stringMatching(/local model stand-in[\s\S]*What happened on web-01\?/) }]);
  });
});
