import type http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** A listener that could not start, worded for the operator: one line naming the setting to change. */
export class ListenError extends Error {
  override name = 'ListenError';
}

const WILDCARDS = new Set(['0.0.0.0', '::']);
const LOOPBACKS = new Set(['127.0.0.1', '::1', 'localhost']);

const hostPart = (host: string) => (net.isIPv6(host) ? `[${host}]` : host);

/**
 * Listens on host:port and resolves with the bound port. A port in use or an
 * address this machine does not have becomes a ListenError instead of a stack trace.
 */
export async function listen(server: http.Server, port: number, host: string, settings: { port: string; host: string }): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        reject(new ListenError(`port ${port} on ${host} is already in use (${settings.port}); stop what holds it or set ${settings.port} to a free port`));
      } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
        reject(new ListenError(`cannot listen on ${host} (${settings.host}): not an address of this machine`));
      } else if (err.code === 'EACCES') {
        reject(new ListenError(`not allowed to listen on port ${port} (${settings.port}); ports below 1024 need privileges`));
      } else reject(err);
    });
    server.listen(port, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

/** A URL for a listener: localhost stands for the wildcard addresses, which are not addresses to connect to. */
export function listenerUrl(host: string, port: number): string {
  return `http://${WILDCARDS.has(host) ? 'localhost' : hostPart(host)}:${port}`;
}

/** For banners: where a browser goes. localhost for loopback too, the host name the codec sign-in cookie is set for (README). */
export function browserUrl(host: string, port: number): string {
  return WILDCARDS.has(host) || LOOPBACKS.has(host) ? `http://localhost:${port}` : listenerUrl(host, port);
}

/** What a listener is bound to, e.g. "127.0.0.1:8080" or "0.0.0.0:8080 (all interfaces)". */
export function describeBind(host: string, port: number): string {
  return `${hostPart(host)}:${port}${WILDCARDS.has(host) ? ' (all interfaces)' : ''}`;
}
