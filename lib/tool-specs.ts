/**
 * The built-in tools offered to the model, under Claude Code's names and
 * input shapes. Execution lives in activities/tools.ts.
 */
export interface ToolSpec {
  name: string;
  description: string;
  input_schema: { type: 'object'; properties: Record<string, unknown>; required?: string[] };
}

const str = (description: string) => ({ type: 'string', description });
const int = (description: string) => ({ type: 'integer', description });
const bool = (description: string) => ({ type: 'boolean', description });

export const BUILTIN_TOOLS: ToolSpec[] = [
  {
    name: 'Bash',
    description:
      'Run a bash command in the session sandbox (working directory /workspace). Output is capped; long-running commands time out.',
    input_schema: {
      type: 'object',
      properties: {
        command: str('The command to run'),
        timeout: int('Timeout in milliseconds (max 600000)'),
        description: str('Five to ten words saying what the command does'),
      },
      required: ['command'],
    },
  },
  {
    name: 'Read',
    description: 'Read a text file from the sandbox, with numbered lines. Use offset and limit for long files.',
    input_schema: {
      type: 'object',
      properties: {
        file_path: str('Path of the file (relative paths are under /workspace)'),
        offset: int('Line number to start reading from (1-based)'),
        limit: int('Number of lines to read'),
      },
      required: ['file_path'],
    },
  },
  {
    name: 'Write',
    description: 'Create or overwrite a file in the sandbox.',
    input_schema: {
      type: 'object',
      properties: { file_path: str('Path of the file'), content: str('The full content to write') },
      required: ['file_path', 'content'],
    },
  },
  {
    name: 'Edit',
    description: 'Replace an exact string in a file. old_string must be unique unless replace_all is true.',
    input_schema: {
      type: 'object',
      properties: {
        file_path: str('Path of the file'),
        old_string: str('The exact text to replace'),
        new_string: str('The replacement text'),
        replace_all: bool('Replace every occurrence'),
      },
      required: ['file_path', 'old_string', 'new_string'],
    },
  },
  {
    name: 'Glob',
    description: 'Find files by glob pattern (supports **), newest first.',
    input_schema: {
      type: 'object',
      properties: { pattern: str('Glob pattern, e.g. **/*.log'), path: str('Directory to search in') },
      required: ['pattern'],
    },
  },
  {
    name: 'Grep',
    description: 'Search file contents with a regular expression.',
    input_schema: {
      type: 'object',
      properties: {
        pattern: str('Regular expression'),
        path: str('File or directory to search'),
        glob: str('Only files matching this glob'),
        output_mode: { type: 'string', enum: ['content', 'files_with_matches', 'count'] },
        '-i': bool('Case insensitive'),
        '-n': bool('Show line numbers (content mode)'),
        '-A': int('Lines of context after each match'),
        '-B': int('Lines of context before each match'),
        '-C': int('Lines of context around each match'),
        head_limit: int('Return at most this many lines or files'),
        multiline: bool('Let patterns span lines'),
      },
      required: ['pattern'],
    },
  },
  {
    name: 'AskUserQuestion',
    description: 'Ask the person attached to this session one or more questions and wait for the answers.',
    input_schema: {
      type: 'object',
      properties: {
        questions: {
          type: 'array',
          minItems: 1,
          maxItems: 4,
          items: {
            type: 'object',
            properties: {
              question: str('The question'),
              header: str('A short label'),
              multiSelect: bool('Several options may be chosen'),
              options: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { label: str('Option'), description: str('What it means') },
                  required: ['label'],
                },
              },
            },
            required: ['question'],
          },
        },
      },
      required: ['questions'],
    },
  },
];

export const BUILTIN_TOOL_NAMES = BUILTIN_TOOLS.map((t) => t.name);
export const SANDBOX_FILE_TOOLS = ['Read', 'Write', 'Edit', 'Glob', 'Grep'] as const;

/** Tools the worker runs itself (the sandbox can stay offline). WebSearch is offered only when configured. */
export const WEB_FETCH_TOOL: ToolSpec = {
  name: 'WebFetch',
  description:
    'Fetch an http(s) URL and answer a question about its content. The page is turned into text and read by a model; ' +
    'you get its answer, not the raw page. Private and internal addresses are refused.',
  input_schema: {
    type: 'object',
    properties: { url: str('The URL to fetch'), prompt: str('What to find out from the page') },
    required: ['url', 'prompt'],
  },
};

export const WEB_SEARCH_TOOL: ToolSpec = {
  name: 'WebSearch',
  description: 'Search the web. Returns titles, URLs and snippets; use WebFetch to read a result.',
  input_schema: {
    type: 'object',
    properties: {
      query: str('The search query'),
      allowed_domains: { type: 'array', items: { type: 'string' }, description: 'Only results from these domains' },
      blocked_domains: { type: 'array', items: { type: 'string' }, description: 'Never results from these domains' },
    },
    required: ['query'],
  },
};

export const WORKER_TOOLS = ['WebFetch', 'WebSearch'] as const;
