import { parseArgs } from 'node:util';
import { FakeAnthropic, text, toolUse, type RecordedRequest, type ScriptedReply } from '../test/support/fake-anthropic';

/**
 * `npm run model:stand-in [-- --port 8787]`: the tests' Anthropic Messages
 * stand-in with a fixed demo script, so the system can be tried with no
 * network or API key:
 * - a prompt with a line `run: <command>` gets a Bash tool call for it;
 * - a tool result gets a one-line summary of what the command printed;
 * - anything else gets a short reply echoing the prompt.
 */

const MAX_ECHO = 500;

type Block = { type?: string; text?: string; content?: unknown; is_error?: boolean };

/** The demo's answer to one Messages request; pure, so tests call it directly too. */
export function demoReply(req: Pick<RecordedRequest, 'body'>): ScriptedReply {
  const messages: Array<{ role: string; content: string | Block[] }> = req.body?.messages ?? [];
  const last = [...messages].reverse().find((m) => m.role === 'user');
  const blocks: Block[] = typeof last?.content === 'string' ? [{ type: 'text', text: last.content }] : (last?.content ?? []);

  const result = blocks.find((b) => b.type === 'tool_result');
  if (result) {
    const output = resultText(result.content).trim().slice(0, MAX_ECHO);
    if (result.is_error) return text(`The command did not run or failed: ${output || '(no message)'}`);
    return text(output ? `The command printed: ${output}` : 'The command printed nothing.');
  }

  const prompt = blocks.filter((b) => b.type === 'text').map((b) => b.text ?? '').join('\n');
  const command = /^run:[ \t]*(.+)$/m.exec(prompt)?.[1].trim();
  if (command) {
    // Only ask for a tool the request offers, as the real model would.
    const offered = ((req.body?.tools ?? []) as Array<{ name?: string }>).some((t) => t.name === 'Bash');
    if (!offered) return text(`I would run \`${command}\`, but this session offers no Bash tool.`);
    return toolUse('Bash', { command }, { text: `Running \`${command}\`.` });
  }
  return text(
    `I am the local model stand-in, not Claude. You said: ${prompt.trim().slice(0, MAX_ECHO) || '(nothing)'}\n` +
      'Put a line starting with "run:" in a prompt (e.g. "run: uname -a") and I will ask to run it with Bash.',
  );
}

function resultText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((b: Block) => (b?.type === 'text' ? (b.text ?? '') : '')).join('');
  return '';
}

/** Starts the stand-in answering with `demoReply` (the script and its test use this). */
export async function startModelStandIn(opts: { port?: number; host?: string } = {}): Promise<FakeAnthropic> {
  const fake = await FakeAnthropic.start({ port: opts.port, host: opts.host ?? '127.0.0.1' });
  fake.setResponder((req) => {
    fake.requests.length = 0; // a long demo should not keep every conversation in memory
    return demoReply(req);
  });
  return fake;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', short: 'p', default: process.env.MODEL_STAND_IN_PORT ?? '8787' },
      host: { type: 'string', default: '127.0.0.1' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`--port: not a port number: ${values.port}`);
  const fake = await startModelStandIn({ port, host: values.host });
  console.log(`Model stand-in (Anthropic Messages API, demo replies) listening on ${fake.url}`);
  console.log('Start the system against it in another terminal:');
  console.log(`  ANTHROPIC_BASE_URL=${fake.url} npm start`);
  console.log('Any API key is accepted (store e.g. "sk-ant-offline"). Ctrl-C stops it.');
  const stop = () => void fake.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof TypeError ? err.message : err);
    process.exit(1);
  });
}
