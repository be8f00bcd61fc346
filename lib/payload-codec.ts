import crypto from 'node:crypto';
import { METADATA_ENCODING_KEY, ValueError, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

/**
 * Encrypts every Temporal payload (workflow and activity inputs and results,
 * updates, queries, memos) with AES-256-GCM, so history at rest is unreadable
 * without the key. The conventions are Temporal's encryption samples': the
 * whole serialized payload is encrypted, the result says `binary/encrypted`,
 * and the id of the key that sealed it travels in the metadata, so keys can
 * rotate: the current key encrypts, current and retired keys decrypt.
 *
 * Wire form of `data`: iv (12 bytes) || ciphertext || GCM tag (16 bytes).
 */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';

export interface PayloadKeys {
  currentId: string;
  keys: ReadonlyMap<string, Buffer>;
}

export class PayloadDecryptionError extends ValueError {
  override name = 'PayloadDecryptionError';
}

const ALG = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);
// Binding the key id in means a payload cannot be passed off as sealed by another key.
const aad = (keyId: string) => Buffer.from(`ai-sessions payload v1:${keyId}`);

export class AesGcmPayloadCodec implements PayloadCodec {
  constructor(private readonly keyring: PayloadKeys) {
    if (!keyring.keys.get(keyring.currentId)) throw new Error(`payload key ${keyring.currentId} is not in the keyring`);
    for (const [id, key] of keyring.keys) if (key.length !== 32) throw new Error(`payload key ${id} is not 32 bytes`);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.encrypt(p));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.decrypt(p));
  }

  encrypt(payload: Payload): Payload {
    const keyId = this.keyring.currentId;
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv(ALG, this.keyring.keys.get(keyId)!, iv);
    cipher.setAAD(aad(keyId));
    const plain = temporal.api.common.v1.Payload.encode(payload).finish();
    return {
      metadata: { [METADATA_ENCODING_KEY]: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(keyId) },
      data: new Uint8Array(Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()])),
    };
  }

  /** Payloads this codec did not encrypt (older history, search attributes) pass through unchanged. */
  decrypt(payload: Payload): Payload {
    if (text(payload.metadata?.[METADATA_ENCODING_KEY]) !== ENCRYPTED_ENCODING) return payload;
    const keyId = text(payload.metadata?.[KEY_ID_METADATA]);
    if (!keyId) throw new PayloadDecryptionError('an encrypted payload names no key');
    const key = this.keyring.keys.get(keyId);
    if (!key) throw new PayloadDecryptionError(`payload key ${keyId} is not configured (keep retired keys in PAYLOAD_KEYS_RETIRED, or the master key it was derived from)`);
    const data = Buffer.from(payload.data ?? []);
    if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptionError('an encrypted payload is truncated');
    let plain: Buffer;
    try {
      const decipher = crypto.createDecipheriv(ALG, key, data.subarray(0, IV_BYTES));
      decipher.setAAD(aad(keyId));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(`a payload sealed with key ${keyId} failed its integrity check (wrong key or altered data)`);
    }
    const inner = temporal.api.common.v1.Payload.decode(plain);
    return { metadata: inner.metadata, data: inner.data };
  }
}
