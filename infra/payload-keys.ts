import crypto from 'node:crypto';
import type { DataConverter } from '@temporalio/common';
import { DERIVED_PAYLOAD_KEY_PREFIX as DERIVED, type Config } from '../lib/config';
import { AesGcmPayloadCodec, type PayloadKeys } from '../lib/payload-codec';
import type { Keyring } from '../store/encryption';

function decodeKey(value: string): Buffer {
  return /^[0-9a-f]{64}$/i.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
}

/**
 * The payload keyring: PAYLOAD_KEY when configured, otherwise a key derived
 * (HKDF-SHA256) from the current master key, as the file-link key is. Keys
 * derived from every master key still held, and PAYLOAD_KEYS_RETIRED, stay
 * for decoding, so rotating either key (or moving from a derived key to a
 * configured one) leaves older history readable.
 */
export function payloadKeys(payloads: Config['payloads'], master: Keyring): PayloadKeys {
  const keys = new Map<string, Buffer>();
  // loadConfig refuses colliding ids; this guards callers that build the config some other way.
  const add = (id: string, key: Buffer) => {
    if (keys.has(id)) throw new Error(`payload key id ${id} is given twice (PAYLOAD_KEY_ID, PAYLOAD_KEYS_RETIRED)`);
    keys.set(id, key);
  };
  for (const [id, key] of master.keys) {
    add(`${DERIVED}${id}`, Buffer.from(crypto.hkdfSync('sha256', key, Buffer.alloc(0), 'ai-sessions temporal payloads v1', 32)));
  }
  for (const entry of (payloads.retiredKeys ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
    const at = entry.indexOf(':');
    add(entry.slice(0, at), decodeKey(entry.slice(at + 1)));
  }
  if (!payloads.key) return { currentId: `${DERIVED}${master.currentId}`, keys };
  add(payloads.keyId, decodeKey(payloads.key));
  return { currentId: payloads.keyId, keys };
}

export function createPayloadCodec(config: Pick<Config, 'payloads'>, master: Keyring): AesGcmPayloadCodec {
  return new AesGcmPayloadCodec(payloadKeys(config.payloads, master));
}

/** Bundles of workflow code are built with this failure converter (see lib/failure-converter.ts). */
export const FAILURE_CONVERTER_PATH = require.resolve('../lib/failure-converter');

/**
 * The data converter every Temporal client and worker of the system uses.
 * Codecs run outside the workflow sandbox, so they need nothing in the
 * bundle. Search attributes are not passed through codecs: they stay
 * readable in the Web UI and hold only ids and statuses.
 */
export function temporalDataConverter(config: Pick<Config, 'payloads'>, master: Keyring): DataConverter {
  return { payloadCodecs: [createPayloadCodec(config, master)], failureConverterPath: FAILURE_CONVERTER_PATH };
}
