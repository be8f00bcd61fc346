import { z } from 'zod';
import { badRequest } from './errors';

/** Parses a request part with a schema; the 400 names every field at fault. */
export function parseOr400<T extends z.ZodTypeAny>(schema: T, value: unknown, what = 'body'): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw badRequest(describeIssues(r.error.issues, what));
}

export function describeIssues(issues: z.core.$ZodIssue[], what: string): string {
  return issues
    .map((i) => {
      const at = i.path.length ? i.path.join('.') : what;
      if (i.code === 'unrecognized_keys') return `${at}: unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}`;
      if (i.code === 'invalid_union' && 'errors' in i) {
        const inner = (i.errors as z.core.$ZodIssue[][]).flat().map((e) => e.message);
        return `${at}: ${[...new Set(inner)].join(' or ') || i.message}`;
      }
      return `${at}: ${i.message}`;
    })
    .join('; ');
}
