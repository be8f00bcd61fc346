import { createApp } from '../api/app';
import type { GatewayDeps } from '../api/deps';
import { openApiDocument, OPERATIONS } from '../api/openapi';
import { loadConfig } from '../lib/config';
import { createLogger } from '../lib/log';

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** Every route the app serves, as "METHOD /path/{param}". */
function servedRoutes(): string[] {
  const app = createApp({ config: loadConfig({}), log: createLogger('silent') } as unknown as GatewayDeps);
  const found: string[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const m of Object.keys(layer.route.methods)) found.push(`${m.toUpperCase()} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return found.sort();
}

describe('the OpenAPI document', () => {
  const documented = Object.entries(OPERATIONS).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort();

  it('lists exactly the routes the gateway serves', () => {
    const served = servedRoutes();
    expect(served.length).toBeGreaterThan(15);
    expect(served).toEqual(documented);
  });

  it('is an OpenAPI 3.1 document with request schemas from the validators', () => {
    const doc = openApiDocument('test') as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> } }>> };
    expect(doc.openapi).toBe('3.1.0');
    const profileSchema = doc.paths['/v1/profiles'].post.requestBody!.content['application/json'].schema;
    expect(Object.keys(profileSchema.properties!)).toEqual(expect.arrayContaining(['name', 'allowed_tools', 'denied_tools', 'permission_mode', 'mcp_servers']));
  });
});
