import pino, { type Logger } from 'pino';

/** Field names whose values are never written to a log line, wherever they appear. */
const SECRET_FIELDS = ['apiKey', 'api_key', 'secret', 'authToken', 'authorization', 'token', 'password', 'x-api-key', 'secretAccessKey'];

export function createLogger(level: string, name = 'ai-sessions'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: [...SECRET_FIELDS, ...SECRET_FIELDS.map((f) => `*.${f}`), ...SECRET_FIELDS.map((f) => `*.*.${f}`)],
      censor: '[redacted]',
    },
    hooks: {
      // Messages are free text: scrub anything shaped like an Anthropic key.
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? a.replace(/sk-ant-[A-Za-z0-9_-]+/g, 'sk-ant-[redacted]') : a)) as Parameters<typeof method>);
      },
    },
  });
}

export type { Logger };
