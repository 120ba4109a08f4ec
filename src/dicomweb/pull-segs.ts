/**
 * Find and retrieve the DICOM SEGs an archive holds for some studies: QIDO-RS for the series of
 * each study with Modality SEG, WADO-RS of each such series into a folder, each SEG's header read
 * for the series it references. What the caller gets names SEGs by position and series number,
 * never by the archive's UIDs (those are kept in `referencedSeries` for matching only).
 * @module
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMedmaskError } from '../core/errors.js';
import type { DicomwebClient } from './client.js';
import { segHeader, type SegHeader, type SegSource } from './seg-labels.js';

/** A SEG found in the archive. */
export interface ArchiveSeg extends SegSource, SegHeader {
  /** The study it was found in (original UID: keep server-side). */
  study: string;
}

/** Options for {@link pullStudySegs}. */
export interface PullStudySegsOptions {
  /** Folder for the retrieved files (the caller removes it). */
  dir: string;
  signal?: AbortSignal;
  /** Called after each study. */
  onStudy?: (done: number, total: number, segs: number) => void;
}

/**
 * Retrieve every SEG of the given studies.
 * @param studies - original StudyInstanceUIDs
 * @returns the SEGs (bytes and header) and those that could not be read, with why
 * @throws MedmaskError REMOTE_UNAVAILABLE / REMOTE_REFUSED from the archive (retry the job)
 * @example
 * const { segs } = await pullStudySegs(client, [studyUid], { dir });
 */
export async function pullStudySegs(client: DicomwebClient, studies: readonly string[], o: PullStudySegsOptions): Promise<{ segs: ArchiveSeg[]; unreadable: { seg: string; reason: string }[] }> {
  const segs: ArchiveSeg[] = [];
  const unreadable: { seg: string; reason: string }[] = [];
  let n = 0;
  for (const [si, study] of studies.entries()) {
    const series = await client.searchSeries({ studyInstanceUid: study, modality: 'SEG', limit: 1000 }, o.signal);
    for (const s of series) {
      if (s.modality && s.modality.toUpperCase() !== 'SEG') continue; // an archive that ignores the Modality filter
      const dir = join(o.dir, `study-${si + 1}-seg-${segs.length + unreadable.length + 1}`);
      await mkdir(dir, { recursive: true });
      const { files } = await client.retrieveSeries(study, s.seriesInstanceUid, dir, o.signal ? { signal: o.signal } : {});
      for (const f of files) {
        const name = `SEG ${++n} (study ${si + 1}, series number ${s.seriesNumber ?? '?'})`;
        const bytes = new Uint8Array(await readFile(f));
        try {
          segs.push({ name, bytes, study, ...segHeader({ name, bytes }) });
        } catch (e) {
          if (!isMedmaskError(e)) throw e;
          unreadable.push({ seg: name, reason: `[${e.code}] ${e.message}` });
        }
      }
    }
    o.onStudy?.(si + 1, studies.length, segs.length);
  }
  return { segs, unreadable };
}
