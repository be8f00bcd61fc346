/** Why a fetch did not produce a page; the message is meant for the model and the operator alike. */
export type WebFetchErrorCode =
  | 'invalid_url'
  | 'scheme'
  | 'refused'
  | 'dns'
  | 'timeout'
  | 'aborted'
  | 'too_many_redirects'
  | 'unsupported_content'
  | 'network';

export class WebFetchError extends Error {
  override name = 'WebFetchError';
  constructor(
    readonly code: WebFetchErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A URL fit for messages and logs: no user info and no query or fragment,
 * where tokens tend to live.
 */
export function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}
