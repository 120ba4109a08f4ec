/**
 * Pull one series from a DICOMweb archive and read it as medmask reads uploads: QIDO-RS lists the
 * instances the archive holds, WADO-RS retrieves the series (resuming: instances already on disk
 * are kept, those still missing are fetched one by one), every expected instance is checked for,
 * then the series is assembled and de-identified by the DICOM reader (`loadDicom`: PS3.15 basic
 * profile, UIDs remapped with the installation's salt). What links medmask's de-identified UIDs to
 * the archive's — and the patient / study attributes a DICOM SEG for the archive must carry — is
 * returned separately, for the server to keep in its mapping table and nowhere else.
 * @module
 */
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NaturalizedDataset } from 'dcmjs';
import { MedmaskError, isMedmaskError } from '../core/errors.js';
import type { Volume } from '../core/volume.js';
import { remapUid } from '../io/deidentify.js';
import { parseDicom } from '../io/dicom-parse.js';
import { readDicomFiles } from '../io/dicom-series.js';
import type { DicomwebClient } from './client.js';

/** Patient and study attributes kept (server-side only) so that a SEG goes back under the right patient and study. */
export const PHI_KEYS = ['PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex', 'StudyDate', 'StudyTime', 'StudyID', 'AccessionNumber', 'ReferringPhysicianName', 'StudyDescription'] as const;

/** One UID pair. */
export interface UidPair {
  deid: string;
  original: string;
  kind: 'study' | 'series' | 'instance' | 'frame-of-reference';
}

/** Result of {@link importSeries}. */
export interface ImportedSeries {
  volume: Volume;
  /** De-identified headers in slice order (for `putDicomHeaders`). */
  headers: NaturalizedDataset[];
  /** De-identified UID → original, for study, series, frame of reference and every instance. */
  uidMap: UidPair[];
  /** Original patient / study attributes ({@link PHI_KEYS}); PHI, keep server-side only. */
  phi: Record<string, string>;
  instances: number;
  bytes: number;
  /** Instances fetched one by one after the series retrieval (resume or gaps). */
  refetched: number;
}

/** Options for {@link importSeries}. */
export interface ImportSeriesOptions {
  /** UID remapping salt (the installation's). */
  uidSalt: string;
  /** Folder for the retrieved files (kept between tries for resuming; the caller removes it). */
  dir: string;
  /** Progress 0…1 of the transfer. */
  onProgress?: (fraction: number, message: string) => void;
  signal?: AbortSignal;
}

interface OnDisk {
  path: string;
  sop: string;
  instanceNumber: number | null;
  /** The header (no pixel data), with the archive's identifiers. */
  header: NaturalizedDataset;
}

/** Headers of the .dcm files in `dir` not in `already` (a file cut off by a broken transfer is removed). */
async function scan(dir: string, already: readonly OnDisk[] = []): Promise<OnDisk[]> {
  const out: OnDisk[] = [];
  const done = new Set(already.map((a) => a.path));
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.dcm')).sort()) {
    const path = join(dir, f);
    if (done.has(path)) continue;
    try {
      const { dataset } = parseDicom(new Uint8Array(await readFile(path)), path, { headerOnly: true });
      const n = Number(dataset.InstanceNumber);
      out.push({ path, sop: String(dataset.SOPInstanceUID ?? ''), instanceNumber: Number.isFinite(n) && dataset.InstanceNumber !== undefined ? n : null, header: dataset });
    } catch {
      await rm(path, { force: true }); // a part cut off by a broken transfer: fetch it again
    }
  }
  return out;
}

/**
 * Retrieve and read one series.
 * @param client - the archive
 * @param study - original StudyInstanceUID
 * @param series - original SeriesInstanceUID
 * @returns the de-identified volume and headers, the UID mapping and the PHI to keep aside
 * @throws MedmaskError NOT_FOUND (series unknown to the archive), CORRUPT_FILE naming missing
 *   instances, REMOTE_UNAVAILABLE (retry), REMOTE_REFUSED
 * @example
 * const r = await importSeries(client, studyUid, seriesUid, { uidSalt, dir: 'tmp/pull' });
 */
export async function importSeries(client: DicomwebClient, study: string, series: string, o: ImportSeriesOptions): Promise<ImportedSeries> {
  const where = `series ${series} of ${client.name}`;
  const expected = await client.searchInstances(study, series, o.signal);
  if (!expected.length) throw new MedmaskError('NOT_FOUND', `${where}: the archive lists no instances`, { hint: 'search again: the series may have been deleted or moved' });
  const total = expected.length;
  let have = await scan(o.dir);
  let bytes = 0;
  const known = new Set(have.map((h) => h.sop));
  let missing = expected.filter((e) => !known.has(e.sopInstanceUid));
  let n = (await readdir(o.dir)).length;
  const name = () => `instance-${String(++n).padStart(6, '0')}.dcm`;
  if (missing.length > total / 2) {
    // Most of it is missing: one WADO-RS series retrieval (duplicates of instances already here are removed below).
    o.onProgress?.(0, `retrieving ${total} instance(s)`);
    const r = await client.retrieveSeries(study, series, o.dir, { ...(o.signal ? { signal: o.signal } : {}), fileName: name, onInstance: (p) => o.onProgress?.(Math.min(1, (have.length + p.instances) / total), `retrieved ${Math.min(total, have.length + p.instances)}/${total} instance(s)`) });
    bytes += r.bytes;
    have = [...have, ...(await scan(o.dir, have))];
  }
  const seen = new Map<string, OnDisk>();
  for (const h of have) {
    if (seen.has(h.sop)) await rm(h.path, { force: true }); // duplicate from an earlier try
    else seen.set(h.sop, h);
  }
  missing = expected.filter((e) => !seen.has(e.sopInstanceUid));
  let refetched = 0;
  const stillMissing: typeof missing = [];
  for (const m of missing) {
    try {
      const r = await client.retrieveInstance(study, series, m.sopInstanceUid, o.dir, { ...(o.signal ? { signal: o.signal } : {}), fileName: name });
      bytes += r.bytes;
      refetched++;
      o.onProgress?.((total - missing.length + refetched) / total, `retrieved ${total - missing.length + refetched}/${total} instance(s)`);
    } catch (e) {
      if (isMedmaskError(e) && e.code === 'NOT_FOUND') stillMissing.push(m);
      else throw e;
    }
  }
  if (stillMissing.length) {
    const names = stillMissing.map((m) => (m.instanceNumber !== null ? `InstanceNumber ${m.instanceNumber}` : 'an instance without InstanceNumber'));
    throw new MedmaskError('CORRUPT_FILE', `${where}: ${stillMissing.length} of ${total} instance(s) listed by the archive cannot be retrieved: ${names.join(', ')}`, { hint: 'the archive lists instances it cannot deliver; ask its administrator to check the series, then import again', details: { missingInstanceNumbers: stillMissing.map((m) => m.instanceNumber) } });
  }
  // Headers are parsed once per file: those fetched one by one are added to what is known.
  const wanted = new Set(expected.map((e) => e.sopInstanceUid));
  const files = [...seen.values(), ...(refetched ? await scan(o.dir, have) : [])].filter((h) => wanted.has(h.sop));
  let loaded;
  try {
    // The files are known (and all of this series): read them directly, no second folder scan.
    loaded = await readDicomFiles(files.map((f) => f.path), where, { uidSalt: o.uidSalt });
  } catch (e) {
    throw explainGap(e, where, files);
  }
  const { volume, headers } = loaded;
  // The mapping, from the originals (read again, header only: loadDicom returns de-identified headers).
  const uidMap = new Map<string, UidPair>();
  const add = (original: unknown, kind: UidPair['kind']) => {
    if (typeof original !== 'string' || !original) return;
    const deid = remapUid(original, o.uidSalt);
    if (!uidMap.has(deid)) uidMap.set(deid, { deid, original, kind });
  };
  const phi: Record<string, string> = {};
  for (const f of files) {
    const dataset = f.header;
    add(dataset.StudyInstanceUID, 'study');
    add(dataset.SeriesInstanceUID, 'series');
    add(dataset.FrameOfReferenceUID, 'frame-of-reference');
    add(dataset.SOPInstanceUID, 'instance');
    if (!Object.keys(phi).length) {
      for (const k of PHI_KEYS) {
        const v = dataset[k];
        if (v === undefined || v === null) continue;
        phi[k] = typeof v === 'object' ? String((v as { Alphabetic?: string }[])[0]?.Alphabetic ?? (v as { Alphabetic?: string }).Alphabetic ?? '') : String(v);
      }
    }
  }
  return { volume, headers, uidMap: [...uidMap.values()], phi, instances: files.length, bytes, refetched };
}

/** A slice-spacing gap from the reader, restated with the InstanceNumbers on either side of it. */
function explainGap(e: unknown, where: string, files: readonly OnDisk[]): unknown {
  if (!isMedmaskError(e) || !/not evenly spaced/.test(e.message)) return e;
  const named = files.filter((f) => e.message.includes(f.path));
  const label = (f: OnDisk) => (f.instanceNumber !== null ? `InstanceNumber ${f.instanceNumber}` : 'an instance without InstanceNumber');
  let detail = e.message.replace(/^[^:]*: /, '');
  for (const f of named) detail = detail.split(f.path).join(label(f));
  const between = named.length === 2 ? ` between ${label(named[0]!)} and ${label(named[1]!)}` : '';
  return new MedmaskError('CORRUPT_FILE', `${where}: instance(s) missing${between}: ${detail}`, {
    cause: e,
    hint: 'the archive holds an incomplete series: send the missing instance(s) to it again, then import again',
    details: { neighbours: named.map((f) => f.instanceNumber) },
  });
}
