/**
 * MCP tools as the model sees them: their mangled names, and their results as
 * tool_result content. Pure: the MCP activities and the profile checks use it.
 */

/** The Messages API's rule for tool names. */
export const MODEL_TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
/** Room left for "<server>" in mcp__<server>__<tool> when the tool name has one character. */
export const MAX_MCP_SERVER_NAME = 64 - 'mcp__'.length - '__'.length - 1;

/** A tool of an MCP server, offered to the model under its mangled name. */
export interface McpToolSpec {
  name: string;
  server: string;
  /** The name the server knows it by. */
  tool: string;
  description?: string;
  input_schema: Record<string, unknown>;
}

/** mcp__<server>__<tool>, or why the tool cannot be offered (never a name cut to fit). */
export function mcpToolName(server: string, tool: string): { name: string } | { problem: string } {
  const name = `mcp__${server}__${tool}`;
  if (!/^[a-zA-Z0-9_-]+$/.test(tool)) {
    return { problem: `tool ${JSON.stringify(tool)} of MCP server ${server} is not offered: tool names may use only letters, digits, _ and -` };
  }
  if (!MODEL_TOOL_NAME.test(name)) {
    return { problem: `tool ${JSON.stringify(tool)} of MCP server ${server} is not offered: ${name} has ${name.length} characters, more than the 64 a tool name may have` };
  }
  return { name };
}

/** A block of a tool_result in the Messages API shape. */
export type ResultBlock =
  | { type: 'text'; text: string }
  | { type: 'image'; source: { type: 'base64'; media_type: string; data: string } };

/** The MCP content kinds a server may answer with (spec 2025-06-18), loosely typed. */
export interface McpContent {
  type: string;
  text?: string;
  data?: string;
  mimeType?: string;
  uri?: string;
  name?: string;
  resource?: { uri?: string; mimeType?: string; text?: string; blob?: string };
}

const MODEL_IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];

/**
 * An MCP tool result as tool_result content, at most maxBytes of text and
 * image data together: text is cut with a marker, an image that does not fit
 * is replaced by a note. Secret values are masked wherever they appear.
 */
export function mcpResultContent(
  result: { content?: McpContent[]; structuredContent?: unknown },
  maxBytes: number,
  redact: (s: string) => string = (s) => s,
): ResultBlock[] {
  const items = result.content ?? [];
  const blocks: ResultBlock[] = items.map(toBlock);
  if (blocks.length === 0 && result.structuredContent !== undefined) {
    blocks.push({ type: 'text', text: JSON.stringify(result.structuredContent) });
  }
  let room = maxBytes;
  let total = 0;
  let cut = false;
  const out: ResultBlock[] = [];
  for (const b of blocks) {
    if (b.type === 'image') {
      const size = b.source.data.length;
      total += size;
      if (size <= room) {
        out.push(b);
        room -= size;
      } else {
        out.push({ type: 'text', text: `[image omitted: ${size} bytes of ${b.source.media_type} is over the ${maxBytes}-byte result limit]` });
      }
      continue;
    }
    const text = redact(b.text);
    const size = Buffer.byteLength(text);
    total += size;
    if (text === '') continue;
    if (size <= room) {
      out.push({ type: 'text', text });
      room -= size;
    } else {
      cut = true;
      // Cut on a UTF-8 boundary: a partial character decodes to U+FFFD, which is dropped.
      const part = Buffer.from(text).subarray(0, room).toString('utf8').replace(/\uFFFD$/, '');
      if (part) out.push({ type: 'text', text: part });
      room = 0;
    }
  }
  if (cut) out.push({ type: 'text', text: `[output truncated: ${total} bytes in all, at most ${maxBytes} shown]` });
  return out.length > 0 ? out : [{ type: 'text', text: '(no output)' }];
}

function toBlock(c: McpContent): ResultBlock {
  switch (c.type) {
    case 'text':
      return { type: 'text', text: c.text ?? '' };
    case 'image':
      return c.mimeType && MODEL_IMAGE_TYPES.includes(c.mimeType) && typeof c.data === 'string'
        ? { type: 'image', source: { type: 'base64', media_type: c.mimeType, data: c.data } }
        : { type: 'text', text: `[image of type ${c.mimeType ?? 'unknown'} not shown: the model takes PNG, JPEG, GIF and WebP]` };
    case 'resource_link':
      return { type: 'text', text: `[resource ${c.name ?? ''} ${c.uri ?? ''}]`.replace(/\s+/g, ' ') };
    case 'resource':
      if (typeof c.resource?.text === 'string') return { type: 'text', text: c.resource.text };
      return { type: 'text', text: `[binary resource ${c.resource?.uri ?? ''} (${c.resource?.mimeType ?? 'unknown type'}) not shown]` };
    default:
      return { type: 'text', text: `[${c.type} content not shown]` };
  }
}

/**
 * Masks each secret value wherever it appears, and the long words of it ("Bearer <token>"
 * echoed as just the token); values under 4 characters would mask ordinary text.
 */
export function redactor(secrets: string[]): (s: string) => string {
  const words = secrets.flatMap((v) => v.split(/\s+/).filter((w) => w.length >= 8));
  const values = [...new Set([...secrets, ...words].filter((v) => v.length >= 4))].sort((a, b) => b.length - a.length);
  if (values.length === 0) return (s) => s;
  return (s) => values.reduce((text, v) => text.split(v).join('[redacted]'), s);
}
