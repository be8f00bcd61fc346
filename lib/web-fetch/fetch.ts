import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { pipeline, type Readable } from 'node:stream';
import zlib from 'node:zlib';
import { checkAddress, checkHostname, validateCidrs, type AddressPolicy } from './address-policy';
import { contentKind, decodeBody, htmlToText, mediaType, sniffKind } from './content';
import { displayUrl, WebFetchError } from './errors';

/**
 * The guarded fetch behind WebFetch. The worker fetches, not the sandbox, so
 * it must not become a way into the worker's own network: every hop's name is
 * resolved here, every address checked, and the connection is pinned to the
 * address that was checked so a second DNS answer cannot swap it.
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}
/** Turns a hostname into addresses; injectable so tests control DNS. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) =>
  (await dns.promises.lookup(hostname, { all: true, verbatim: true })).map((a) => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
  }));

export interface FetchPageOptions extends AddressPolicy {
  lookup?: Resolver;
  /** For the whole fetch: DNS, every redirect hop and the body. */
  timeoutMs?: number;
  /** Body bytes kept (after decompression); the rest is not read and the page is marked truncated. */
  maxBytes?: number;
  maxRedirects?: number;
  signal?: AbortSignal;
  userAgent?: string;
}

export interface FetchedPage {
  /** The URL asked for, and the one the content came from after redirects. */
  url: string;
  finalUrl: string;
  status: number;
  contentType: string;
  text: string;
  truncated: boolean;
  /** Body bytes read (decompressed), at most maxBytes. */
  bytes: number;
}

export const DEFAULTS = { timeoutMs: 30_000, maxBytes: 5 * 1024 * 1024, maxRedirects: 5 } as const;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export async function fetchPage(url: string, opts: FetchPageOptions = {}): Promise<FetchedPage> {
  validateCidrs(opts.allowCidrs ?? []);
  const timeoutMs = opts.timeoutMs ?? DEFAULTS.timeoutMs;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;
  const maxRedirects = opts.maxRedirects ?? DEFAULTS.maxRedirects;
  let current = parseTarget(url);
  try {
    for (let redirects = 0; ; redirects++) {
      const pin = await checkTarget(current, opts, signal);
      const res = await request(current, pin, opts.userAgent, signal);
      const location = res.headers.location;
      if (!REDIRECTS.has(res.statusCode ?? 0) || !location) {
        return await readPage(url, current, res, opts.maxBytes ?? DEFAULTS.maxBytes);
      }
      res.destroy();
      if (redirects >= maxRedirects) {
        throw new WebFetchError('too_many_redirects', `too many redirects (more than ${maxRedirects}) from ${displayUrl(parseTarget(url))}`);
      }
      current = parseTarget(location, current);
    }
  } catch (err) {
    if (err instanceof WebFetchError) throw err;
    if (deadline.aborted) throw new WebFetchError('timeout', `timed out after ${timeoutMs / 1000}s fetching ${displayUrl(current)}`);
    if (signal.aborted) throw new WebFetchError('aborted', `fetch of ${displayUrl(current)} was cancelled`);
    throw new WebFetchError('network', `could not fetch ${displayUrl(current)}: ${(err as Error).message}`);
  }
}

/** Parses and vets a URL (or a Location header against the page it came from). */
export function parseTarget(raw: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    throw new WebFetchError('invalid_url', base ? 'the redirect target is not a valid URL' : 'not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new WebFetchError('scheme', `refused: only http and https URLs are fetched, not ${url.protocol}`);
  }
  if (url.username || url.password) throw new WebFetchError('invalid_url', 'refused: URLs with credentials are not fetched');
  return url;
}

/** Resolves the URL's host and returns the one address to connect to, or throws naming the refused address. */
/** Resolves a URL's host and checks every address under the policy; the first one is the address to pin. */
export async function checkTarget(url: URL, policy: FetchPageOptions, signal: AbortSignal): Promise<ResolvedAddress> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const literal = net.isIP(host);
  if (literal !== 0) {
    const verdict = checkAddress(host, policy);
    if (!verdict.allowed) throw new WebFetchError('refused', `refused: ${host} is ${verdict.reason}`);
    return { address: host, family: literal === 6 ? 6 : 4 };
  }
  const named = checkHostname(host, policy);
  if (named && !named.allowed) throw new WebFetchError('refused', `refused: ${host} is ${named.reason}`);
  let addresses: ResolvedAddress[];
  try {
    addresses = await abortable((policy.lookup ?? systemResolver)(host), signal);
  } catch (err) {
    if (signal.aborted) throw err;
    throw new WebFetchError('dns', `could not resolve ${host} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (addresses.length === 0) throw new WebFetchError('dns', `could not resolve ${host} (no addresses)`);
  // Any bad answer refuses the name: which address a connection picks is not ours to predict.
  for (const { address } of addresses) {
    const verdict = checkAddress(address, policy);
    if (!verdict.allowed) throw new WebFetchError('refused', `refused: ${host} resolves to ${address}, ${verdict.reason}`);
  }
  return addresses[0]!;
}

/**
 * The `lookup` handed to the socket: whatever it is asked, it answers with
 * the address already checked, so the connection cannot go anywhere else.
 * The hostname still goes in the Host header and TLS SNI/certificate check.
 */
export function pinnedLookup(pin: ResolvedAddress): net.LookupFunction {
  return (_hostname, options, callback) => {
    // Node asks for a list when it races address families (autoSelectFamily).
    if (options.all) callback(null, [{ address: pin.address, family: pin.family }]);
    else callback(null, pin.address, pin.family);
  };
}

function request(url: URL, pin: ResolvedAddress, userAgent: string | undefined, signal: AbortSignal): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(
      url,
      {
        method: 'GET',
        // A fresh connection per hop: a pooled socket would skip the lookup and so the pin.
        agent: false,
        lookup: pinnedLookup(pin),
        signal,
        headers: {
          'user-agent': userAgent ?? 'ai-sessions-WebFetch/1.0',
          accept: 'text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.5',
          'accept-encoding': 'gzip, deflate, br',
        },
      },
      (res) => {
        // Errors after this point surface through reading the body; keep them from being "unhandled".
        res.on('error', () => {});
        resolve(res);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function readPage(requested: string, url: URL, res: http.IncomingMessage, maxBytes: number): Promise<FetchedPage> {
  const contentType = res.headers['content-type'] ?? '';
  let kind = contentKind(contentType);
  if (kind === 'binary') {
    res.destroy();
    throw new WebFetchError('unsupported_content', `unsupported content type ${mediaType(contentType)}: WebFetch reads HTML, text and JSON`);
  }
  let body: { bytes: Buffer; truncated: boolean };
  try {
    body = await readCapped(decompressed(res), maxBytes);
  } finally {
    res.destroy();
  }
  const { bytes, truncated } = body;
  if (kind === 'unknown') kind = sniffKind(bytes);
  if (kind === 'binary') throw new WebFetchError('unsupported_content', 'unsupported content: the response looks binary and has no content type');
  const decoded = decodeBody(bytes, contentType, kind);
  return {
    url: requested,
    finalUrl: url.href,
    status: res.statusCode ?? 0,
    contentType,
    text: kind === 'html' ? htmlToText(decoded, url.href) : decoded,
    truncated,
    bytes: bytes.length,
  };
}

function decompressed(res: http.IncomingMessage): Readable {
  const encoding = (res.headers['content-encoding'] ?? '').trim().toLowerCase();
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? zlib.createGunzip()
      : encoding === 'deflate'
        ? zlib.createInflate()
        : encoding === 'br'
          ? zlib.createBrotliDecompress()
          : undefined;
  if (encoding !== '' && encoding !== 'identity' && !decoder) {
    throw new WebFetchError('unsupported_content', `unsupported content encoding ${encoding}`);
  }
  // pipeline passes an error on either side to the stream being read.
  return decoder ? pipeline(res, decoder, () => {}) : res;
}

/** Reads at most maxBytes, then stops: the server does not get to decide how much memory a fetch takes. */
async function readCapped(stream: Readable, maxBytes: number): Promise<{ bytes: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const room = maxBytes - size;
    if (chunk.length > room) {
      chunks.push(chunk.subarray(0, room));
      size += room;
      truncated = true;
      break;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  stream.destroy();
  return { bytes: Buffer.concat(chunks, size), truncated };
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
