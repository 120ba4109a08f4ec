/**
 * Secrets at rest (the password or token of a DICOMweb archive): AES-256-GCM (node:crypto) with the
 * deployment's key, each value with a fresh 96-bit IV, as `enc:v1:<iv>:<tag>:<ciphertext>` (base64).
 * A value that does not authenticate under the key is an error, never plaintext of a wrong key.
 *
 * The key: `MEDMASK_SECRET_KEY` (64 hex digits or base64 of 32 bytes; required when several
 * processes share a database, each with its own data folder), else `<dataDir>/secret-key` (0600,
 * made on first start of a single server). The database keeps a key check value (an HMAC of a fixed
 * text, not the key) in `deployment_settings`, like the blob-store identity: a process with another
 * key refuses to start instead of failing on the first archive request.
 * @module
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import { getDeploymentSetting, recordDeploymentSetting } from './deployment.js';
import type { Database } from './schema.js';

/** Key of the key check value in `deployment_settings`. */
export const SETTING_SECRET_KEY_CHECK = 'secret_key_check';
const PREFIX = 'enc:v1:';

/** Seals and opens secrets with one 32-byte key. */
export class SecretBox {
  private readonly key: Buffer | undefined;

  /**
   * @param key - 32 bytes; null for a process without the deployment's key (every seal or open is
   *   then an error saying why: `missing`)
   */
  constructor(key: Uint8Array | null, private readonly missing = 'this process has no secret key') {
    if (key && key.length !== 32) throw new MedmaskError('ENVIRONMENT', `the secret key has ${key.length} bytes; AES-256 needs 32`);
    this.key = key ? Buffer.from(key) : undefined;
  }

  /** False for a box without a key. */
  get usable(): boolean {
    return !!this.key;
  }

  private need(what: string): Buffer {
    if (!this.key) throw new MedmaskError('ENVIRONMENT', `the credentials of ${what} cannot be used: ${this.missing}`, { hint: 'give every process that talks to archives the deployment\'s MEDMASK_SECRET_KEY (a single server keeps it in <dataDir>/secret-key)' });
    return this.key;
  }

  /**
   * The key as hex, or null without one — only for handing to this process's own job process over
   * its private IPC channel (queue/job-process.ts), which must open the same credentials.
   */
  keyForOwnChild(): string | null {
    return this.key ? this.key.toString('hex') : null;
  }

  /** The key check value recorded in the database (HMAC-SHA256 of a fixed text, hex). */
  checkValue(): string {
    return createHmac('sha256', this.need('the deployment')).update('medmask secret key check v1').digest('hex').slice(0, 32);
  }

  /** Encrypt a text. */
  seal(plain: string, what = 'a DICOMweb source'): string {
    const key = this.need(what);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return `${PREFIX}${iv.toString('base64')}:${c.getAuthTag().toString('base64')}:${ct.toString('base64')}`;
  }

  /**
   * Decrypt what {@link seal} made.
   * @param what - names the value in errors (e.g. `DICOMweb source "pacs"`)
   * @throws MedmaskError ENVIRONMENT when the value does not authenticate (another key, or altered)
   */
  open(sealed: string, what: string): string {
    const key = this.need(what);
    const parts = sealed.startsWith(PREFIX) ? sealed.slice(PREFIX.length).split(':') : [];
    try {
      if (parts.length !== 3) throw new Error('not a sealed value');
      const d = createDecipheriv('aes-256-gcm', key, Buffer.from(parts[0]!, 'base64'));
      d.setAuthTag(Buffer.from(parts[1]!, 'base64'));
      return Buffer.concat([d.update(Buffer.from(parts[2]!, 'base64')), d.final()]).toString('utf8');
    } catch (e) {
      throw new MedmaskError('ENVIRONMENT', `the credentials of ${what} cannot be decrypted with this deployment's secret key`, { cause: e, hint: 'start every process with the MEDMASK_SECRET_KEY that encrypted them, or register the archive\'s credentials again' });
    }
  }
}

/** True for a value {@link SecretBox.seal} made. */
export function isSealed(v: unknown): boolean {
  return typeof v === 'string' && v.startsWith(PREFIX);
}

/** Parse MEDMASK_SECRET_KEY: 64 hex digits or base64 of 32 bytes. */
export function parseSecretKey(text: string, where: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : /^[A-Za-z0-9+/]{43}=?$/.test(t) ? Buffer.from(t, 'base64') : undefined;
  if (!key || key.length !== 32) throw new MedmaskError('ENVIRONMENT', `${where} is not a 256-bit key (64 hex digits or 44 base64 characters)`, { hint: 'make one with: openssl rand -hex 32' });
  return key;
}

/** Options for {@link deploymentSecretBox}. */
export interface SecretKeyOptions {
  /** MEDMASK_SECRET_KEY, when set. */
  configured?: string;
  /** Data folder for `secret-key` (single server); absent: a key for this process only, not recorded (tests, embedding). */
  dataDir?: string;
  /**
   * Make `<dataDir>/secret-key` when there is no key and the database records none (the server;
   * default false: a worker never makes the deployment's key).
   */
  create?: boolean;
}

/**
 * The deployment's secret box: the configured key or the data folder's (made on first start of a
 * server), checked against the key check value the database records (recorded by the first
 * process with a key). A process without any key gets a box that refuses every use with the
 * reason (it can run everything but archive requests).
 * @throws MedmaskError ENVIRONMENT when the key is not the deployment's
 * @example
 * const box = await deploymentSecretBox(store.db, { configured: cfg.secretKey, dataDir: cfg.dataDir });
 */
export async function deploymentSecretBox(db: Kysely<Database>, o: SecretKeyOptions = {}): Promise<SecretBox> {
  const recorded = await getDeploymentSetting(db, SETTING_SECRET_KEY_CHECK);
  let key: Buffer;
  let from: string;
  if (o.configured?.trim()) {
    key = parseSecretKey(o.configured, 'MEDMASK_SECRET_KEY');
    from = 'MEDMASK_SECRET_KEY';
  } else if (o.dataDir) {
    const file = join(o.dataDir, 'secret-key');
    from = file;
    if (existsSync(file)) key = parseSecretKey(readFileSync(file, 'utf8'), file);
    else if (recorded !== undefined || !o.create) {
      return new SecretBox(null, `this process has no secret key (no MEDMASK_SECRET_KEY, no ${file})${recorded !== undefined ? ' and the database\'s credentials were encrypted with one' : ''}`);
    } else {
      key = randomBytes(32);
      writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    }
  } else {
    return new SecretBox(randomBytes(32)); // this process only (tests, embedding): nothing recorded
  }
  const box = new SecretBox(key);
  const held = recorded ?? (await recordDeploymentSetting(db, SETTING_SECRET_KEY_CHECK, box.checkValue())).value;
  if (held !== box.checkValue()) {
    throw new MedmaskError('ENVIRONMENT', `the secret key from ${from} is not the one this deployment's database was set up with (key check values differ)`, { hint: 'give every server and worker the same MEDMASK_SECRET_KEY; credentials encrypted with another key cannot be read' });
  }
  return box;
}
