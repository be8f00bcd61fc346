import { convert, type HtmlToTextOptions } from 'html-to-text';

/** How a response body is turned into text for the model. */
export type ContentKind = 'html' | 'text' | 'binary' | 'unknown';

const TEXTUAL_APPLICATION = new Set([
  'application/json',
  'application/ld+json',
  'application/xml',
  'application/javascript',
  'application/ecmascript',
  'application/x-javascript',
  'application/x-sh',
  'application/x-yaml',
  'application/yaml',
  'application/toml',
  'application/graphql',
  'application/sql',
  'application/x-ndjson',
  'application/csv',
]);

/** The media type alone ("text/html"), lower-cased, without parameters. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

export function contentKind(contentType: string | undefined): ContentKind {
  const type = mediaType(contentType);
  if (type === '') return 'unknown';
  if (type === 'text/html' || type === 'application/xhtml+xml') return 'html';
  if (type.startsWith('text/') || TEXTUAL_APPLICATION.has(type) || type.endsWith('+json') || type.endsWith('+xml')) return 'text';
  return 'binary';
}

/** A body that came without a content type: text unless it has NUL bytes, HTML when it opens like a page. */
export function sniffKind(bytes: Uint8Array): Exclude<ContentKind, 'unknown'> {
  const head = bytes.subarray(0, 1024);
  if (head.includes(0)) return 'binary';
  const start = Buffer.from(head).toString('latin1').trimStart().slice(0, 64).toLowerCase();
  return /^<(!doctype html|html|head|body)[\s>]/.test(start) ? 'html' : 'text';
}

/**
 * Bytes to a string: the charset the server named, else for HTML a <meta>
 * charset in the first kilobyte, else UTF-8. An unknown label falls back to
 * UTF-8 and bad sequences become U+FFFD rather than an error.
 */
export function decodeBody(bytes: Uint8Array, contentType: string | undefined, kind: ContentKind): string {
  const label = charsetParam(contentType) ?? (kind === 'html' ? metaCharset(bytes) : undefined) ?? 'utf-8';
  try {
    return new TextDecoder(label).decode(bytes);
  } catch {
    return new TextDecoder('utf-8').decode(bytes);
  }
}

function charsetParam(contentType: string | undefined): string | undefined {
  const match = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType ?? '');
  return match?.[1];
}

function metaCharset(bytes: Uint8Array): string | undefined {
  const head = Buffer.from(bytes.subarray(0, 1024)).toString('latin1');
  return /<meta[^>]+charset\s*=\s*["']?([\w.:-]+)/i.exec(head)?.[1];
}

const HTML_OPTIONS: HtmlToTextOptions = {
  wordwrap: false,
  baseElements: { selectors: ['title', 'body'] },
  selectors: [
    { selector: 'title', format: 'block', options: { trailingLineBreaks: 2 } },
    // Markup that is not reading matter.
    ...['script', 'style', 'noscript', 'template', 'svg', 'iframe', 'img'].map((selector) => ({ selector, format: 'skip' })),
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, options: { uppercase: false } })),
    // Every table as rows and columns, not only those marked up as data tables.
    { selector: 'table', format: 'dataTable' },
  ],
};

function absolute(href: string, baseUrl: string | undefined): string {
  if (!baseUrl) return href;
  try {
    return new URL(href, baseUrl).href;
  } catch {
    return href;
  }
}

/** Readable text from a page; links keep their targets, made absolute against the page's address. */
export function htmlToText(html: string, baseUrl?: string): string {
  const options: HtmlToTextOptions = {
    ...HTML_OPTIONS,
    selectors: [
      ...HTML_OPTIONS.selectors!,
      { selector: 'a', options: { hideLinkHrefIfSameAsText: true, pathRewrite: (href: string) => absolute(href, baseUrl) } },
    ],
  };
  return convert(html, options).trim();
}
