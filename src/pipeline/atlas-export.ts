/**
 * Exports of an AbdomenAtlas-8K round (Qu et al., NeurIPS 2023): the merged label maps of
 * `atlas merge` (OUT/labelsTr/<case>.nii.gz + OUT/provenance.json) written as
 *
 * ```
 * EXPORT/nifti/<case>.nii.gz                                 label maps on each image's own grid (its affine)
 * EXPORT/nnunet/Dataset<ID>_<name>/imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz, dataset.json   nnU-Net v2
 * EXPORT/msd/Task<ID>_<name>/imagesTr/<case>.nii.gz, labelsTr/<case>.nii.gz, dataset.json            Medical Segmentation Decathlon
 * EXPORT/dicom-seg/<case>.seg.dcm                            DICOM SEG, referencing the source series when the input was DICOM
 * EXPORT/export.json                                         what was written, per format and case
 * ```
 *
 * Every label map is checked against its image (same grid, only the data set's label values)
 * before anything is written; the DICOM SEG carries each organ's provenance (original → MANUAL,
 * revised → SEMIAUTOMATIC, pseudo → AUTOMATIC).
 * @module
 */
import { existsSync, statSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { MedmaskError } from '../core/errors.js';
import type { Provenance } from '../core/atlas/merge.js';
import { atomicWrite } from '../io/atomic.js';
import { checkLabelMap } from '../io/dataset.js';
import { writeDicomSeg, type SegmentProvenance } from '../io/dicom-seg.js';
import { readVolume, writeVolume } from '../io/index.js';
import { readAtlasDataset, type AtlasDataset, type AtlasProgress } from './atlas.js';

/** Export formats. */
export const ATLAS_EXPORT_FORMATS = ['nifti', 'nnunet', 'msd', 'dicom-seg'] as const;
/** One export format. */
export type AtlasExportFormat = (typeof ATLAS_EXPORT_FORMATS)[number];

/** Options for {@link atlasExport}. */
export interface AtlasExportOptions {
  /** Formats to write (default nifti, nnunet, msd; dicom-seg also by default when a DICOM source is known). */
  formats?: AtlasExportFormat[];
  /**
   * Folder of the source DICOM series, one per case: `<dir>/<case>/` (a series folder) or
   * `<dir>/<case>.dcm`. Cases may instead name theirs in dataset.json
   * (`medmask.cases[].dicom`, relative to the data set). The SEG then references that series.
   */
  dicom?: string;
  /** UID salt the series was imported with (default MEDMASK_UID_SALT, else ""), so the references match. */
  uidSalt?: string;
  /** nnU-Net / MSD data set number (default 501) and name (default AbdomenAtlas). */
  datasetId?: number;
  datasetName?: string;
  /** SegmentAlgorithmName of automatic / semi-automatic segments (default "medmask atlas"). */
  algorithmName?: string;
  /** Case ids (default all cases of the data set). */
  cases?: string[];
  onProgress?: AtlasProgress;
}

/** What {@link atlasExport} wrote. */
export interface AtlasExportResult {
  out: string;
  formats: AtlasExportFormat[];
  cases: number;
  /** Per format: the folder (or file list root) written. */
  written: Partial<Record<AtlasExportFormat, string>>;
  /** DICOM SEG per case: file, segments, frames, source instances referenced (0 without a DICOM source). */
  dicomSeg?: { case: string; file: string; segments: number; frames: number; referencedInstances: number }[];
  /** nnU-Net label values when the data set's were not consecutive (old → new). */
  labelRemap?: Record<number, number>;
}

/** The merged folder's provenance.json as atlasMerge writes it. */
interface ProvenanceFile {
  cases: { case: string; provenance: Record<string, Provenance> }[];
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

/** The DICOM source of a case, if any: `<dir>/<case>/`, `<dir>/<case>.dcm`, or dataset.json's `dicom`. */
function dicomSourceOf(id: string, dataRoot: string, dir: string | undefined, fromJson: string | undefined): string | undefined {
  if (dir) {
    for (const p of [join(dir, id), join(dir, `${id}.dcm`)]) if (existsSync(p)) return p;
    throw new MedmaskError('NOT_FOUND', `${dir}: no DICOM source for case ${id} (neither ${id}/ nor ${id}.dcm)`, {
      hint: 'put each case\'s series in a folder named after the case, or leave out --dicom for SEGs without source references',
    });
  }
  if (fromJson) {
    const p = resolve(dataRoot, fromJson);
    if (!existsSync(p)) throw new MedmaskError('NOT_FOUND', `${p}: the DICOM source dataset.json names for case ${id} does not exist`, { hint: 'fix medmask.cases[].dicom or pass --dicom DIR' });
    return p;
  }
  return undefined;
}

/**
 * The formats an export writes: the ones asked for, else nifti, nnunet, msd — and dicom-seg when
 * the cases have a DICOM source (`opts.dicom`, or `medmask.cases[].dicom` in dataset.json).
 * @param atlas - the data set
 * @param opts - `formats`, `dicom`
 * @returns distinct formats
 * @throws MedmaskError USAGE for an unknown format or an empty list
 */
export function exportFormatsFor(atlas: AtlasDataset, opts: Pick<AtlasExportOptions, 'formats' | 'dicom'>): AtlasExportFormat[] {
  const jsonCases = (atlas.ds.json.medmask as { cases?: { dicom?: unknown }[] } | undefined)?.cases ?? [];
  const hasDicom = !!opts.dicom || jsonCases.some((c) => typeof c.dicom === 'string');
  const formats = [...new Set(opts.formats ?? (['nifti', 'nnunet', 'msd', ...(hasDicom ? ['dicom-seg' as const] : [])] as AtlasExportFormat[]))];
  const bad = formats.filter((f) => !ATLAS_EXPORT_FORMATS.includes(f));
  if (bad.length || !formats.length) throw new MedmaskError('USAGE', `export format(s) ${bad.join(', ') || '(none)'} unknown`, { hint: `choose from ${ATLAS_EXPORT_FORMATS.join(', ')}` });
  return formats;
}

/**
 * Export merged atlas labels as NIfTI label maps, an nnU-Net v2 data set, an MSD data set and
 * DICOM SEG objects.
 * @param data - the data set the labels were made for (images, dataset.json)
 * @param merged - the output folder of `atlasMerge` (labelsTr/, provenance.json)
 * @param out - export folder (each format's subfolder is replaced)
 * @param opts - formats, DICOM sources, data set id and name, cases, progress
 * @returns what was written
 * @throws MedmaskError NOT_FOUND when the merged folder lacks a case (all missing cases named) or a
 *   DICOM source is missing; GEOMETRY_MISMATCH / DATASET_INVALID when a label map does not fit its
 *   image or holds values the data set does not name; USAGE for bad names or formats
 * @example
 * await atlasExport('data/abdomen', 'final', 'export', { formats: ['nnunet', 'dicom-seg'], dicom: 'dicom/' });
 */
export async function atlasExport(data: string, merged: string, out: string, opts: AtlasExportOptions = {}): Promise<AtlasExportResult> {
  const atlas = await readAtlasDataset(data, opts.cases);
  const id = opts.datasetId ?? 501;
  const name = opts.datasetName ?? 'AbdomenAtlas';
  if (!Number.isInteger(id) || id < 1 || id > 999) throw new MedmaskError('USAGE', `data set id ${id} must be a whole number from 1 to 999`, { hint: 'nnU-Net names data sets Dataset001…Dataset999' });
  if (!NAME_RE.test(name)) throw new MedmaskError('USAGE', `data set name "${name}" is not a folder-safe name`, { hint: 'letters, digits, _ and -, e.g. AbdomenAtlas' });
  const jsonCases = (atlas.ds.json.medmask as { cases?: { case: string; dicom?: string }[] } | undefined)?.cases ?? [];
  const dicomFromJson = new Map(jsonCases.filter((c) => typeof c.dicom === 'string').map((c) => [c.case, c.dicom!]));
  const formats = exportFormatsFor(atlas, opts);
  if (opts.dicom && !(existsSync(opts.dicom) && statSync(opts.dicom).isDirectory())) throw new MedmaskError('NOT_FOUND', `${opts.dicom}: no such folder of DICOM series`, { hint: 'pass the folder holding one series per case, <case>/ or <case>.dcm' });

  // Everything is checked before anything is written.
  const labelsDir = join(merged, 'labelsTr');
  const missing = atlas.cases.filter((c) => !existsSync(join(labelsDir, `${c.id}.nii.gz`))).map((c) => c.id);
  if (missing.length) {
    throw new MedmaskError('NOT_FOUND', `${labelsDir}: no merged labels for ${missing.length} case(s): ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`, {
      hint: 'run medmask atlas merge for these cases (or export only the merged ones with --cases)',
      details: { missing },
    });
  }
  const provPath = join(merged, 'provenance.json');
  let provenance = new Map<string, Record<string, Provenance>>();
  if (existsSync(provPath)) {
    try {
      provenance = new Map((JSON.parse(await readFile(provPath, 'utf8')) as ProvenanceFile).cases.map((c) => [c.case, c.provenance]));
    } catch (e) {
      throw new MedmaskError('DATASET_INVALID', `${provPath}: not the provenance atlas merge writes (${(e as Error).message})`, { cause: e, hint: 'merge again, or remove the file (segments are then AUTOMATIC)' });
    }
  }
  const dicomSources = new Map<string, string>();
  if (formats.includes('dicom-seg')) {
    for (const c of atlas.cases) {
      const src = dicomSourceOf(c.id, atlas.ds.root, opts.dicom, dicomFromJson.get(c.id));
      if (src) dicomSources.set(c.id, src);
    }
  }

  const organs = atlas.organs;
  const values = organs.map((o) => o.value);
  const known = [0, ...values];
  const consecutive = values.every((v, i) => v === i + 1);
  const remap = consecutive ? undefined : Object.fromEntries(values.map((v, i) => [v, i + 1])) as Record<number, number>;
  const dirs: Partial<Record<AtlasExportFormat, string>> = {
    nifti: join(out, 'nifti'),
    nnunet: join(out, 'nnunet', `Dataset${String(id).padStart(3, '0')}_${name}`),
    msd: join(out, 'msd', `Task${String(id).padStart(2, '0')}_${name}`),
    'dicom-seg': join(out, 'dicom-seg'),
  };
  for (const f of formats) {
    await rm(dirs[f]!, { recursive: true, force: true });
    if (f === 'nnunet' || f === 'msd') for (const sub of ['imagesTr', 'labelsTr']) await mkdir(join(dirs[f]!, sub), { recursive: true });
    else await mkdir(dirs[f]!, { recursive: true });
  }
  const result: AtlasExportResult = { out, formats, cases: atlas.cases.length, written: Object.fromEntries(formats.map((f) => [f, dirs[f]!])), ...(remap && formats.includes('nnunet') ? { labelRemap: remap } : {}) };
  if (formats.includes('dicom-seg')) result.dicomSeg = [];
  const salt = opts.uidSalt ?? process.env.MEDMASK_UID_SALT ?? '';
  const total = atlas.cases.length * formats.length;
  let done = 0;
  const tick = (note: string) => opts.onProgress?.(++done, total, note);
  for (const c of atlas.cases) {
    const labelFile = join(labelsDir, `${c.id}.nii.gz`);
    const image = await readVolume(c.image);
    const labels = await readVolume(labelFile);
    checkLabelMap(image, labels, known, { image: c.image, label: labelFile });
    // The label map on the image's own grid: geometry from the image, voxels from the merge.
    const onImage = { ...labels, spacing: image.spacing, origin: image.origin, direction: image.direction, meta: { ...labels.meta, labels: Object.fromEntries(organs.map((o) => [o.value, o.name])) } };
    const copyImage = async (dest: string) => {
      if (c.image.endsWith('.nii.gz')) await copyFile(c.image, dest);
      else await writeVolume(image, dest);
    };
    for (const f of formats) {
      if (f === 'nifti') {
        await writeVolume(onImage, join(dirs.nifti!, `${c.id}.nii.gz`), { labelMap: true });
      } else if (f === 'nnunet') {
        await copyImage(join(dirs.nnunet!, 'imagesTr', `${c.id}_0000.nii.gz`));
        let vol = onImage;
        if (remap) {
          const d = new Uint8Array(labels.data.length);
          for (let v = 0; v < d.length; v++) d[v] = remap[labels.data[v]!] ?? 0;
          vol = { ...onImage, data: d };
        }
        await writeVolume(vol, join(dirs.nnunet!, 'labelsTr', `${c.id}.nii.gz`), { labelMap: true });
      } else if (f === 'msd') {
        await copyImage(join(dirs.msd!, 'imagesTr', `${c.id}.nii.gz`));
        await writeVolume(onImage, join(dirs.msd!, 'labelsTr', `${c.id}.nii.gz`), { labelMap: true });
      } else {
        const prov = provenance.get(c.id) ?? {};
        const file = join(dirs['dicom-seg']!, `${c.id}.seg.dcm`);
        const src = dicomSources.get(c.id);
        const r = await writeDicomSeg(onImage, file, {
          labels: Object.fromEntries(organs.map((o) => [o.value, o.name])),
          provenance: Object.fromEntries(organs.filter((o) => prov[o.name]).map((o) => [o.value, prov[o.name] as SegmentProvenance])),
          algorithmName: opts.algorithmName ?? 'medmask atlas',
          seriesDescription: 'medmask atlas labels',
          ...(src ? { sourceDicom: src, uidSalt: salt } : {}),
        });
        result.dicomSeg!.push({ case: c.id, file, segments: r.segments.length, frames: r.frames, referencedInstances: r.referencedInstances });
      }
      tick(`${f} ${c.id}`);
    }
  }
  const description = `Labels of ${atlas.cases.length} CT volumes from medmask atlas (AbdomenAtlas-8K workflow: original > revised > pseudo-label per organ).`;
  if (formats.includes('nnunet')) {
    const json = {
      name,
      description,
      channel_names: { 0: String(atlas.ds.channels[0] ?? 'CT') },
      labels: { background: 0, ...Object.fromEntries(organs.map((o) => [o.name, remap?.[o.value] ?? o.value])) },
      numTraining: atlas.cases.length,
      file_ending: '.nii.gz',
      medmask: { cases: atlas.cases.map((c) => ({ case: c.id, source: c.source, provenance: provenance.get(c.id) ?? {} })), ...(remap ? { labelRemap: remap } : {}) },
    };
    await atomicWrite(join(dirs.nnunet!, 'dataset.json'), JSON.stringify(json, null, 1) + '\n');
  }
  if (formats.includes('msd')) {
    const json = {
      name,
      description,
      tensorImageSize: '3D',
      modality: { 0: String(atlas.ds.channels[0] ?? 'CT') },
      labels: { 0: 'background', ...Object.fromEntries(organs.map((o) => [String(o.value), o.name])) },
      numTraining: atlas.cases.length,
      numTest: 0,
      training: atlas.cases.map((c) => ({ image: `./imagesTr/${c.id}.nii.gz`, label: `./labelsTr/${c.id}.nii.gz` })),
      test: [],
    };
    await atomicWrite(join(dirs.msd!, 'dataset.json'), JSON.stringify(json, null, 1) + '\n');
  }
  await atomicWrite(join(out, 'export.json'), JSON.stringify(result, null, 1) + '\n');
  return result;
}
