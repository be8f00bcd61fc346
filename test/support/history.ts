import type { Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { createPayloadCodec } from '../../infra/payload-keys';
import type { Harness } from './harness';

/** Every payload in a history message (or any part of one), with the path it sits at. */
export function payloadsIn(node: unknown, path: string[] = [], out: Array<{ path: string[]; payload: Payload }> = []) {
  if (!node || typeof node !== 'object' || node instanceof Uint8Array) return out;
  if ('metadata' in node && 'data' in node) {
    out.push({ path, payload: node as Payload });
    return out;
  }
  for (const [k, v] of Object.entries(node)) payloadsIn(v, [...path, k], out);
  return out;
}

/**
 * A workflow's history with every payload decrypted by the harness's codec,
 * as an operator sees it through the codec endpoint: what tests search for
 * secrets that must never reach history, encrypted or not.
 */
export async function decodedHistory(h: Pick<Harness, 'client' | 'config' | 'keyring'>, workflowId: string): Promise<temporal.api.history.v1.IHistory> {
  const history = await h.client.workflow.getHandle(workflowId).fetchHistory();
  const codec = createPayloadCodec(h.config, h.keyring);
  for (const { payload } of payloadsIn(history)) {
    const [plain] = await codec.decode([payload]);
    payload.metadata = plain.metadata;
    payload.data = plain.data;
  }
  return history;
}

/** The decoded history as JSON text, payload bytes read as UTF-8, so a search of it sees inside every payload. */
export async function decodedHistoryText(h: Pick<Harness, 'client' | 'config' | 'keyring'>, workflowId: string): Promise<string> {
  const plain = temporal.api.history.v1.History.toObject(temporal.api.history.v1.History.fromObject(await decodedHistory(h, workflowId)), { longs: String, enums: String });
  return JSON.stringify(plain, (_key, value) => {
    if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
    if (value && value.type === 'Buffer' && Array.isArray(value.data)) return Buffer.from(value.data).toString('utf8');
    return value;
  });
}
