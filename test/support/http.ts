/** A JSON (or raw text) request to a test gateway: status, parsed body and the raw text for leak checks. */
export async function callApi(
  baseUrl: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; contentType?: string } = {},
): Promise<{ status: number; body: any; raw: string }> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      'content-type': opts.contentType ?? 'application/json',
    },
    body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
  });
  const raw = await res.text();
  return { status: res.status, body: raw ? JSON.parse(raw) : undefined, raw };
}
