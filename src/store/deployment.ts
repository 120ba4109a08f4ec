/**
 * One deployment, one configuration: settings that every process sharing a database must agree on
 * live in that database (`deployment_settings`), written once by whichever process starts first.
 *
 * - **Blob-store identity.** The first process records an id in the database and writes the same id
 *   as a marker object into its blob store (`medmask-blob-store.json` beside the blobs). Every later
 *   process — server or worker — reads the marker of the store it was given and refuses to start
 *   (ENVIRONMENT, exit 6) unless it matches: a worker started without `--blobs`, with another
 *   folder, bucket, prefix or endpoint, cannot write blobs the server never sees. Identity is the
 *   marker, not the address, so one NFS share mounted at different paths, or one bucket reached
 *   through different endpoints, is the same store.
 * - **DICOM UID salt.** Made once and kept in the database (or the configured one recorded there),
 *   so the same DICOM uploaded through any server of the deployment gets the same remapped UIDs. A
 *   salt from an older version's `<dataDir>/uid-salt` file is taken over on first start.
 * @module
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { MedmaskError } from '../core/errors.js';
import type { BlobStore } from './blob-store.js';
import type { Database } from './schema.js';
import { nowIso } from './util.js';

/** Keys of `deployment_settings`. */
export const SETTING_BLOB_STORE = 'blob_store';
export const SETTING_UID_SALT = 'uid_salt';

/** A deployment setting, or undefined when none was recorded yet. */
export async function getDeploymentSetting(db: Kysely<Database>, key: string): Promise<string | undefined> {
  const r = await db.selectFrom('deployment_settings').select('value').where('key', '=', key).executeTakeFirst();
  return r?.value;
}

/**
 * Record `value` under `key` unless a value is there already; returns the value that holds (ours,
 * or the one another process recorded first) and whether ours was recorded.
 */
export async function recordDeploymentSetting(db: Kysely<Database>, key: string, value: string): Promise<{ value: string; created: boolean }> {
  const r = await db.insertInto('deployment_settings').values({ key, value, created_at: nowIso() }).onConflict((oc) => oc.column('key').doNothing()).executeTakeFirst();
  const created = Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  const held = await getDeploymentSetting(db, key);
  if (held === undefined) throw new MedmaskError('INTERNAL', `deployment setting ${key} was not recorded`);
  return { value: held, created: created && held === value };
}

/** What the database records about the deployment's blob store. */
export interface BlobStoreIdentity {
  /** Random id, also in the store's marker. */
  id: string;
  /** The address the first process used (for messages). */
  description: string;
  createdAt: string;
}

function parseIdentity(text: string, where: string): BlobStoreIdentity {
  try {
    const o = JSON.parse(text) as Partial<BlobStoreIdentity>;
    if (typeof o.id === 'string' && o.id) return { id: o.id, description: String(o.description ?? '?'), createdAt: String(o.createdAt ?? '') };
  } catch {
    // fall through to the error below
  }
  throw new MedmaskError('ENVIRONMENT', `the blob-store identity in ${where} is not readable: ${JSON.stringify(text.slice(0, 80))}`, { hint: 'it is written by medmask; restore it from a backup, or ask for help before deleting it' });
}

/** Options for {@link checkBlobStoreIdentity}. */
export interface BlobStoreCheckOptions {
  /** The database, for the message (e.g. the store's masked URL). */
  database?: string;
  /** How long to wait for the marker when another process is recording it right now (default 5 s). */
  waitMs?: number;
}

/**
 * Refuse to run against a blob store that is not this deployment's (call once at start-up, before
 * any job or request). The first process of a deployment records its store.
 * @returns the identity recorded in the database
 * @throws MedmaskError ENVIRONMENT (exit 6) naming both stores
 * @example
 * await checkBlobStoreIdentity(store.db, blobs, { database: store.description });
 */
export async function checkBlobStoreIdentity(db: Kysely<Database>, blobs: BlobStore, opts: BlobStoreCheckOptions = {}): Promise<BlobStoreIdentity> {
  const markerText = await blobs.readMarker();
  let marker = markerText === null ? null : parseIdentity(markerText, `${blobs.description}`);
  let recordedText = await getDeploymentSetting(db, SETTING_BLOB_STORE);
  if (recordedText === undefined) {
    // First process of this deployment (or of this version on an older deployment): record the
    // store's existing marker, or a new id that is then written as the marker.
    const mine: BlobStoreIdentity = marker ?? { id: randomUUID(), description: blobs.description, createdAt: nowIso() };
    const r = await recordDeploymentSetting(db, SETTING_BLOB_STORE, JSON.stringify(mine));
    recordedText = r.value;
    if (r.created && !marker) {
      await blobs.writeMarker(JSON.stringify(mine));
      marker = mine;
    }
  }
  const recorded = parseIdentity(recordedText, 'the database');
  // The process that recorded the identity writes the marker right after; give it a moment.
  const deadline = Date.now() + (opts.waitMs ?? 5000);
  while (!marker && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const t = await blobs.readMarker();
    if (t !== null) marker = parseIdentity(t, blobs.description);
  }
  if (marker?.id === recorded.id) return recorded;
  const db_ = opts.database ? `the database ${opts.database}` : 'the database';
  const why = marker ? `it belongs to another deployment (id ${marker.id.slice(0, 8)}, first used as ${marker.description})` : 'it holds no medmask identity marker';
  throw new MedmaskError('ENVIRONMENT', `blob store ${blobs.description} is not this deployment's: ${db_} records blob store ${recorded.description} (id ${recorded.id.slice(0, 8)}), and ${why}`, {
    hint: 'start every server and worker with the same --blobs (MEDMASK_BLOBS) — and for s3:// the same AWS_ENDPOINT_URL — as the first server; docs/blob-store.md',
  });
}

/** Options for {@link deploymentUidSalt}. */
export interface UidSaltOptions {
  /** A configured salt (MEDMASK_UID_SALT / uidSalt); empty or absent = use the database's. */
  configured?: string;
  /** Data folder of an older version, whose `uid-salt` file is taken over on first start. */
  dataDir?: string;
}

/**
 * The deployment's DICOM UID salt: the database's; on first start the configured one, an older
 * version's `<dataDir>/uid-salt`, or a new random one — recorded for every other process.
 * @throws MedmaskError ENVIRONMENT when a configured salt differs from the recorded one (the same
 *   DICOM would get other UIDs through this process)
 * @example
 * const salt = await deploymentUidSalt(store.db, { configured: cfg.uidSalt, dataDir: cfg.dataDir });
 */
export async function deploymentUidSalt(db: Kysely<Database>, opts: UidSaltOptions = {}): Promise<string> {
  const held = await getDeploymentSetting(db, SETTING_UID_SALT);
  const configured = opts.configured?.trim() || undefined;
  if (held !== undefined) {
    if (configured && configured !== held) {
      throw new MedmaskError('ENVIRONMENT', 'the configured uidSalt (MEDMASK_UID_SALT) differs from the UID salt this deployment\'s database records', {
        hint: 'remove the setting (the database\'s salt is used by every process), or give every process the recorded salt',
      });
    }
    return held;
  }
  let candidate = configured;
  const file = opts.dataDir ? join(opts.dataDir, 'uid-salt') : undefined;
  if (!candidate && file && existsSync(file)) candidate = readFileSync(file, 'utf8').trim() || undefined;
  candidate ??= randomBytes(24).toString('hex');
  return (await recordDeploymentSetting(db, SETTING_UID_SALT, candidate)).value;
}
