import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { makePrivateDir } from '../lib/private-dir';

/**
 * Envelope encryption for secrets at rest (credentials, profile environment
 * values, MCP headers): each record gets its own random data key, which is
 * wrapped by the master key named in the record. Rotating the master key
 * re-wraps data keys; the records' ciphertext stays as it is.
 *
 * Sealed form: v1.<masterKeyId>.<wrapped data key>.<iv>.<ciphertext+tag>, base64url parts.
 */
export interface Keyring {
  currentId: string;
  keys: Map<string, Buffer>;
}

export class EncryptionError extends Error {
  override name = 'EncryptionError';
}

const ALG = 'aes-256-gcm';
const b64 = (b: Buffer) => b.toString('base64url');
const unb64 = (s: string) => Buffer.from(s, 'base64url');

function gcmEncrypt(key: Buffer, plain: Buffer, aad: string): { iv: Buffer; sealed: Buffer } {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv(ALG, key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  return { iv, sealed: body };
}

function gcmDecrypt(key: Buffer, iv: Buffer, sealed: Buffer, aad: string): Buffer {
  const decipher = crypto.createDecipheriv(ALG, key, iv);
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
}

/** The wrapped data key carries its own IV: wrap = iv(12) || aes-gcm(dataKey). */
function wrapKey(master: Buffer, masterId: string, dataKey: Buffer): string {
  const { iv, sealed } = gcmEncrypt(master, dataKey, `wrap:${masterId}`);
  return b64(Buffer.concat([iv, sealed]));
}

function unwrapKey(master: Buffer, masterId: string, wrapped: string): Buffer {
  const raw = unb64(wrapped);
  return gcmDecrypt(master, raw.subarray(0, 12), raw.subarray(12), `wrap:${masterId}`);
}

export function seal(keyring: Keyring, plaintext: string): string {
  const master = keyring.keys.get(keyring.currentId)!;
  const dataKey = crypto.randomBytes(32);
  const { iv, sealed } = gcmEncrypt(dataKey, Buffer.from(plaintext, 'utf8'), 'data');
  return ['v1', keyring.currentId, wrapKey(master, keyring.currentId, dataKey), b64(iv), b64(sealed)].join('.');
}

function parse(sealed: string) {
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== 'v1') throw new EncryptionError('not a sealed value');
  const [, keyId, wrapped, iv, body] = parts;
  return { keyId, wrapped, iv, body };
}

function dataKeyOf(keyring: Keyring, sealed: string) {
  const p = parse(sealed);
  const master = keyring.keys.get(p.keyId);
  if (!master) throw new EncryptionError(`master key ${p.keyId} is not configured (set it in MASTER_KEYS_RETIRED)`);
  try {
    return { ...p, dataKey: unwrapKey(master, p.keyId, p.wrapped) };
  } catch {
    throw new EncryptionError(`master key ${p.keyId} does not open this record`);
  }
}

export function open(keyring: Keyring, sealed: string): string {
  const p = dataKeyOf(keyring, sealed);
  try {
    return gcmDecrypt(p.dataKey, unb64(p.iv), unb64(p.body), 'data').toString('utf8');
  } catch {
    throw new EncryptionError('a sealed record failed its integrity check');
  }
}

export function needsRewrap(keyring: Keyring, sealed: string): boolean {
  return parse(sealed).keyId !== keyring.currentId;
}

/** Wraps the record's data key under the current master key; the ciphertext is untouched. */
export function rewrap(keyring: Keyring, sealed: string): string {
  const p = dataKeyOf(keyring, sealed);
  const master = keyring.keys.get(keyring.currentId)!;
  return ['v1', keyring.currentId, wrapKey(master, keyring.currentId, p.dataKey), p.iv, p.body].join('.');
}

function decodeKey(id: string, value: string): Buffer {
  const key = /^[0-9a-f]{64}$/i.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
  if (key.length !== 32) throw new EncryptionError(`master key ${id} must be 32 bytes, as 64 hex digits or base64`);
  return key;
}

const KEY_FILE = 'master.key';

/** The data directory's key file: one "id:hexkey" per line, the first is current. */
function readKeyFile(dataDir: string): Array<[string, Buffer]> | undefined {
  const file = path.join(dataDir, KEY_FILE);
  if (!fs.existsSync(file)) return undefined;
  return fs.readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean).map((line) => {
    const at = line.indexOf(':');
    if (at < 1) throw new EncryptionError(`${file}: lines are id:key`);
    return [line.slice(0, at), decodeKey(line.slice(0, at), line.slice(at + 1))];
  });
}

/**
 * Rotates the data directory's key (the embedded default): a new current key
 * goes first, the old ones stay so their records open until re-wrapped (at
 * the next start). Returns the new key id.
 */
export function rotateKeyFile(dataDir: string): string {
  const existing = readKeyFile(dataDir) ?? [];
  const taken = new Set(existing.map(([id]) => id));
  let n = existing.length + 1;
  while (taken.has(`k${n}`)) n += 1;
  const id = `k${n}`;
  const lines = [[id, crypto.randomBytes(32)] as const, ...existing].map(([i, k]) => `${i}:${k.toString('hex')}`);
  makePrivateDir(dataDir);
  const file = path.join(dataDir, KEY_FILE);
  fs.writeFileSync(`${file}.tmp`, `${lines.join('\n')}\n`, { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
  return id;
}

/**
 * The keyring from configuration. With no MASTER_KEY, the key file in the
 * data directory is used, generated when missing (the embedded default; the
 * caller warns). Keys in that file also open old records when MASTER_KEY is set.
 */
export function loadKeyring(
  enc: { masterKey?: string; masterKeyId: string; retiredKeys?: string },
  dataDir: string,
): { keyring: Keyring; generated: boolean } {
  const keys = new Map<string, Buffer>();
  for (const entry of (enc.retiredKeys ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
    const at = entry.indexOf(':');
    if (at < 1) throw new EncryptionError('MASTER_KEYS_RETIRED entries are id:key');
    keys.set(entry.slice(0, at), decodeKey(entry.slice(0, at), entry.slice(at + 1)));
  }
  let generated = false;
  if (!enc.masterKey && !readKeyFile(dataDir)) {
    makePrivateDir(dataDir);
    fs.writeFileSync(path.join(dataDir, KEY_FILE), `${enc.masterKeyId}:${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    generated = true;
  }
  const fileKeys = readKeyFile(dataDir) ?? [];
  for (const [id, key] of fileKeys) if (!keys.has(id)) keys.set(id, key);
  if (!enc.masterKey) return { keyring: { currentId: fileKeys[0][0], keys }, generated };
  keys.set(enc.masterKeyId, decodeKey(enc.masterKeyId, enc.masterKey));
  return { keyring: { currentId: enc.masterKeyId, keys }, generated };
}
