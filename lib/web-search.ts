import { z } from 'zod';

/**
 * WebSearch over a SearXNG-compatible JSON endpoint (`GET <url>?q=…&format=json`),
 * the common self-hosted meta-search. The endpoint is the operator's, so it
 * is trusted like the model API: no address policy applies to it.
 */
const SearchAnswer = z.object({
  results: z.array(z.object({
    title: z.string().optional().default(''),
    url: z.string(),
    content: z.string().optional().default(''),
  }).passthrough()).default([]),
}).passthrough();

export interface SearchHit {
  title: string;
  url: string;
  snippet: string;
}

export interface SearchInput {
  query: string;
  allowed_domains?: string[];
  blocked_domains?: string[];
}

/** A tool input problem, in words for the model; undefined when the input is good. */
export function searchInputProblem(input: Record<string, unknown>): string | undefined {
  if (typeof input.query !== 'string' || input.query.trim().length < 2) return 'WebSearch: "query" must be a string of at least 2 characters';
  for (const field of ['allowed_domains', 'blocked_domains'] as const) {
    const v = input[field];
    if (v !== undefined && (!Array.isArray(v) || v.some((d) => typeof d !== 'string'))) return `WebSearch: "${field}" must be a list of domain names`;
  }
  return undefined;
}

/** True when host is domain or one of its subdomains. */
const within = (host: string, domain: string) => {
  const d = domain.toLowerCase().replace(/^\*?\./, '');
  return host === d || host.endsWith(`.${d}`);
};

export function filterHits(hits: SearchHit[], input: SearchInput, max: number): SearchHit[] {
  return hits
    .filter((h) => {
      let host: string;
      try {
        host = new URL(h.url).hostname.toLowerCase();
      } catch {
        return false;
      }
      if (input.allowed_domains?.length && !input.allowed_domains.some((d) => within(host, d))) return false;
      return !input.blocked_domains?.some((d) => within(host, d));
    })
    .slice(0, max);
}

export function formatHits(query: string, hits: SearchHit[]): string {
  if (hits.length === 0) return `No results for "${query}".`;
  return [`Results for "${query}":`, ...hits.map((h, i) => `${i + 1}. ${h.title || h.url}\n   ${h.url}${h.snippet ? `\n   ${h.snippet.replace(/\s+/g, ' ').slice(0, 400)}` : ''}`)].join('\n');
}

export async function search(endpoint: string, input: SearchInput, opts: { timeoutMs: number; maxResults: number; signal?: AbortSignal }): Promise<SearchHit[]> {
  const url = new URL(endpoint);
  url.searchParams.set('q', input.query);
  url.searchParams.set('format', 'json');
  const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]) : AbortSignal.timeout(opts.timeoutMs);
  const res = await fetch(url, { signal, headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`the search endpoint answered HTTP ${res.status}`);
  const parsed = SearchAnswer.safeParse(await res.json().catch(() => undefined));
  if (!parsed.success) throw new Error('the search endpoint answered something other than SearXNG-style JSON results');
  const hits = parsed.data.results.map((r) => ({ title: r.title, url: r.url, snippet: r.content }));
  return filterHits(hits, input, opts.maxResults);
}
