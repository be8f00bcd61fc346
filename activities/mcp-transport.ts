import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { AttachedProcess } from './docker-sandbox';

const TAIL_BYTES = 2048;

/**
 * The MCP stdio transport over a process started inside the sandbox: one
 * JSON-RPC message a line on its stdin and stdout. The tails of stderr and of
 * stray stdout are kept only to explain a server that fails to start.
 */
export class SandboxStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private process?: AttachedProcess;
  private readonly buffer: ReadBuffer;
  private stderrTail = '';
  /** The last line of stdout that was not JSON-RPC (an exec error, a banner). */
  private strayLine = '';
  private stdoutTail = '';
  private closed = false;

  constructor(
    private readonly start_: () => Promise<AttachedProcess>,
    /** A line longer than this ends the connection: a server cannot fill the worker's memory. */
    maxMessageBytes: number,
  ) {
    this.buffer = new ReadBuffer({ maxBufferSize: maxMessageBytes });
  }

  async start(): Promise<void> {
    if (this.process) throw new Error('SandboxStdioTransport already started');
    const p = await this.start_();
    this.process = p;
    p.stdout.on('data', (chunk: Buffer) => {
      this.stdoutTail = (this.stdoutTail + chunk.subarray(-TAIL_BYTES).toString('utf8')).slice(-TAIL_BYTES);
      this.receive(chunk);
    });
    p.stderr.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-TAIL_BYTES);
    });
    void p.ended.then(() => this.finish());
  }

  async send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.process?.stdin;
    if (!stdin || this.closed) throw new Error('the MCP server process is not running');
    await new Promise<void>((resolve, reject) => {
      stdin.write(serializeMessage(message), (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(): Promise<void> {
    this.process?.close();
    this.finish();
  }

  /** What the process wrote to stderr last, and its exit code once it has one. */
  async diagnostics(): Promise<string> {
    const code = this.closed ? await this.process?.exitCode().catch(() => null) : null;
    const tail = this.stderrTail.trim().split('\n').slice(-5).join(' | ');
    return [
      code === 127 ? 'command not found (exit code 127)' : code !== null && code !== undefined ? `exit code ${code}` : '',
      this.strayLine && `stdout, not JSON-RPC: ${this.strayLine.trim()}`,
      tail && `stderr: ${tail}`,
    ].filter(Boolean).join('; ');
  }

  private receive(chunk: Buffer): void {
    try {
      this.buffer.append(chunk);
    } catch (err) {
      // A line over the limit: nothing after it can be read reliably.
      this.onerror?.(err as Error);
      void this.close();
      return;
    }
    for (;;) {
      let message: JSONRPCMessage | null;
      try {
        message = this.buffer.readMessage();
      } catch (err) {
        // A line that is not JSON-RPC (a banner, a stray print) is skipped, as the SDK's own stdio client does.
        this.strayLine = this.stdoutTail.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{')).at(-1)?.slice(0, 300) ?? '?';
        this.onerror?.(err as Error);
        continue;
      }
      if (!message) return;
      this.onmessage?.(message);
    }
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffer.clear();
    this.onclose?.();
  }
}
