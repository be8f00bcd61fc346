import http from 'node:http';
import https from 'node:https';
import { checkTarget, pinnedLookup, type AddressPolicy } from './web-fetch';

export interface PostResult {
  status: number;
  /** The first bytes of the answer, for the delivery record. */
  bodySnippet: string;
}

/**
 * POSTs a JSON body and reads at most a few KB of the answer. The host is
 * resolved and checked under the address policy first, and the socket is
 * pinned to the checked address. Redirects are not followed (a receiver that
 * redirects is misconfigured, and following would skip the check). Errors
 * carry their reason, never the URL's path or query.
 */
export async function postJson(
  url: string,
  body: string,
  opts: { headers: Record<string, string>; timeoutMs: number; policy: AddressPolicy },
): Promise<PostResult> {
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error(`unsupported scheme ${target.protocol}`);
  const pin = await checkTarget(target, opts.policy, AbortSignal.timeout(opts.timeoutMs));
  const client = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(target, {
      method: 'POST',
      headers: { ...opts.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      timeout: opts.timeoutMs,
      lookup: pinnedLookup(pin),
    });
    const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(deadline);
      reject(new Error(err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < 4096) chunks.push(c);
        size += c.length;
      });
      res.on('end', () => {
        clearTimeout(deadline);
        resolve({ status: res.statusCode ?? 0, bodySnippet: Buffer.concat(chunks).toString('utf8').slice(0, 500) });
      });
      res.on('error', (err) => {
        clearTimeout(deadline);
        reject(err);
      });
    });
    req.end(body);
  });
}
