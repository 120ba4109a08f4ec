/**
 * DICOM Segmentation export: a label map → one binary DICOM SEG object (PS3.3 A.51), one segment
 * per label value present, frames only where a segment has voxels, written as Explicit VR Little
 * Endian through dcmjs's `DicomDict` writer.
 *
 * Why not dcmjs's `derivations.Segmentation`: it needs the source images with their pixel data
 * (medmask keeps de-identified headers only), at least two slices, re-sorts the frames, copies
 * Patient / Study attributes from the source as they are (identifiers included when the source was
 * not de-identified), and draws random UIDs. Building the dataset here keeps every attribute under
 * control and makes the output deterministic: the same label map and source give the same UIDs.
 *
 * What is written:
 * - **Segment Sequence**: one item per label value present, SegmentNumber 1…n in label order,
 *   SegmentLabel and SNOMED CT category / type codes for the 9 AbdomenAtlas organs
 *   ({@link ORGAN_TERMS}), a recommended CIELab display colour, SegmentAlgorithmType from the
 *   label's provenance (original → MANUAL, revised → SEMIAUTOMATIC, pseudo → AUTOMATIC).
 * - **Shared Functional Groups**: PixelMeasures (PixelSpacing, SliceThickness,
 *   SpacingBetweenSlices), PlaneOrientation (ImageOrientationPatient).
 * - **Per-frame Functional Groups**: PlanePosition (ImagePositionPatient), FrameContent
 *   (DimensionIndexValues = [segment number, slice index]), SegmentIdentification, and — when the
 *   source was DICOM — DerivationImage with the source slice's SOP instance (and frame).
 * - **Dimensions**: ReferencedSegmentNumber, then ImagePositionPatient (the usual SEG pair).
 * - **Common Instance Reference**: ReferencedSeriesSequence listing every source instance.
 * - **Identifiers**: none but the de-identified UIDs medmask keeps (study, frame of reference,
 *   series, instances, all remapped on import by `deidentify.ts`); Patient and Study attributes of
 *   Type 2 are written empty; PatientIdentityRemoved = YES with the de-identification method.
 *   Source headers that were not de-identified are refused.
 *
 * Geometry (LPS, ITK convention, see `core/volume.ts`): Columns = shape[0] (i, along a row),
 * Rows = shape[1]; ImageOrientationPatient = direction columns 0 and 1; PixelSpacing =
 * [spacing[1], spacing[0]] (row spacing first); frame of slice k at origin + k·spacing[2]·column 2.
 * @module
 */
import { createHash } from 'node:crypto';
import { MEDMASK_VERSION } from '../version.js';
import dcmjs, { type NaturalizedDataset } from 'dcmjs';
import { MedmaskError } from '../core/errors.js';
import { voxelCount, type Vec3, type Volume } from '../core/volume.js';
import { atomicWrite } from './atomic.js';
import { DEIDENTIFICATION_METHOD, remapUid } from './deidentify.js';
import { loadDicom } from './dicom-series.js';

const { DicomDict, DicomMetaDictionary } = dcmjs.data;

/** SOP Class UID of the Segmentation Storage IOD. */
export const SEGMENTATION_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
/** medmask's implementation class UID (PS3.7 D.3.3.2): a fixed 2.25 UID derived from its name. */
const IMPLEMENTATION_CLASS_UID = remapUid('medmask', 'implementation-class');

const VERSION = MEDMASK_VERSION;

/** A coded concept (PS3.3 Code Sequence Macro). */
export interface Code {
  value: string;
  /** Coding scheme designator, e.g. "SCT" (SNOMED CT), "DCM". */
  scheme: string;
  meaning: string;
}

/** How a segment is described in the SEG. */
export interface SegmentTerm {
  /** SegmentLabel (LO, ≤ 64 characters), e.g. "Right kidney". */
  label: string;
  /** SegmentedPropertyCategoryCodeSequence (default: SCT 123037004 Anatomical Structure). */
  category: Code;
  /** SegmentedPropertyTypeCodeSequence. */
  type: Code;
  /** Recommended display colour, sRGB 0…255 (written as CIELab). */
  rgb?: [number, number, number];
}

const ANATOMICAL_STRUCTURE: Code = { value: '123037004', scheme: 'SCT', meaning: 'Anatomical Structure' };
const sct = (value: string, meaning: string): Code => ({ value, scheme: 'SCT', meaning });

/**
 * SNOMED CT terms of the 9 AbdomenAtlas organs, by medmask's organ names (`core/phantom/abdomen.ts`).
 * Category: SCT 123037004 "Anatomical Structure" (CID 7150); types as in CID 7151 / Slicer's general
 * anatomy list. Colours follow the usual organ palette of segmentation viewers.
 * @example
 * ORGAN_TERMS.postcava.type.value; // '64131007' (Inferior vena cava)
 */
export const ORGAN_TERMS: Readonly<Record<string, SegmentTerm>> = {
  spleen: { label: 'Spleen', category: ANATOMICAL_STRUCTURE, type: sct('78961009', 'Spleen'), rgb: [157, 108, 162] },
  kidney_right: { label: 'Right kidney', category: ANATOMICAL_STRUCTURE, type: sct('9846003', 'Right kidney'), rgb: [185, 102, 83] },
  kidney_left: { label: 'Left kidney', category: ANATOMICAL_STRUCTURE, type: sct('18639004', 'Left kidney'), rgb: [185, 102, 83] },
  gallbladder: { label: 'Gallbladder', category: ANATOMICAL_STRUCTURE, type: sct('28231008', 'Gallbladder'), rgb: [139, 150, 98] },
  liver: { label: 'Liver', category: ANATOMICAL_STRUCTURE, type: sct('10200004', 'Liver'), rgb: [221, 130, 101] },
  stomach: { label: 'Stomach', category: ANATOMICAL_STRUCTURE, type: sct('69695003', 'Stomach'), rgb: [216, 132, 105] },
  aorta: { label: 'Aorta', category: ANATOMICAL_STRUCTURE, type: sct('15825003', 'Aorta'), rgb: [224, 97, 76] },
  postcava: { label: 'Inferior vena cava', category: ANATOMICAL_STRUCTURE, type: sct('64131007', 'Inferior vena cava'), rgb: [0, 151, 206] },
  pancreas: { label: 'Pancreas', category: ANATOMICAL_STRUCTURE, type: sct('15776009', 'Pancreas'), rgb: [249, 180, 111] },
};

/** Other spellings of the organ names (TotalSegmentator, MSD, nnU-Net data sets). */
const ALIASES: Readonly<Record<string, string>> = {
  right_kidney: 'kidney_right', kidney_r: 'kidney_right', rkidney: 'kidney_right',
  left_kidney: 'kidney_left', kidney_l: 'kidney_left', lkidney: 'kidney_left',
  gall_bladder: 'gallbladder', ivc: 'postcava', inferior_vena_cava: 'postcava', vena_cava_inferior: 'postcava',
};

/**
 * The SEG term of an organ name (case-insensitive; spaces and hyphens read as underscores; a few
 * common aliases such as "ivc", "right_kidney", "gall_bladder").
 * @param name - organ name
 * @returns the term, or undefined for names medmask has no code for
 * @example
 * organTerm('Inferior vena cava')?.type.value; // '64131007'
 */
export function organTerm(name: string): SegmentTerm | undefined {
  const key = name.trim().toLowerCase().replace(/[\s-]+/g, '_');
  const direct = ORGAN_TERMS[key] ?? ORGAN_TERMS[ALIASES[key] ?? ''];
  if (direct) return direct;
  for (const t of Object.values(ORGAN_TERMS)) if (t.label.toLowerCase().replace(/\s+/g, '_') === key) return t;
  return undefined;
}

/** Where a segment's label came from (as `core/atlas/merge.ts` records it). */
export type SegmentProvenance = 'original' | 'revised' | 'pseudo' | 'none';

/** Options for {@link encodeDicomSeg}. */
export interface DicomSegOptions {
  /**
   * De-identified headers of the source series, as {@link loadDicom} returns them (one per file, in
   * slice order). With them the SEG references the source (study, frame of reference, series,
   * every instance per frame); the label map must lie on the source grid.
   */
  sourceHeaders?: readonly NaturalizedDataset[];
  /** Label value → organ name (default `labels.meta.labels`; else "label N"). */
  labels?: Record<number, string>;
  /** Per label value: a term that replaces the built-in one (or describes a name medmask has no code for). */
  terms?: Record<number, SegmentTerm>;
  /** Per label value: where the label came from; sets SegmentAlgorithmType (default AUTOMATIC). */
  provenance?: Record<number, SegmentProvenance>;
  /** SegmentAlgorithmName for AUTOMATIC / SEMIAUTOMATIC segments (default "medmask"). */
  algorithmName?: string;
  /** SeriesDescription (default "medmask segmentation"). */
  seriesDescription?: string;
  /** SeriesNumber (default 100). */
  seriesNumber?: number;
  /** ContentLabel, a DICOM CS: A–Z, 0–9, space, underscore, ≤ 16 (default "MEDMASK"). */
  contentLabel?: string;
  /** ContentDescription (default empty). */
  contentDescription?: string;
  /** Content / series date and time (default now). Fix it for byte-identical output. */
  date?: Date;
  /** Explicit UIDs (default: derived from the label map and source, so the same input gives the same UIDs). */
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
  /** Write frames for every slice of every segment, empty ones included (default false). */
  includeEmptyFrames?: boolean;
  /** Position tolerance, mm, when matching slices to source instances (default 1 % of the slice spacing, at least 0.01). */
  positionTolerance?: number;
}

/** One segment written. */
export interface SegmentInfo {
  /** SegmentNumber in the SEG (1…n). */
  number: number;
  /** Label value in the label map. */
  value: number;
  /** Organ name as given. */
  name: string;
  term: SegmentTerm;
  algorithmType: 'AUTOMATIC' | 'SEMIAUTOMATIC' | 'MANUAL';
  /** Frames written for this segment. */
  frames: number;
  /** Voxels of this label. */
  voxels: number;
}

/** Result of {@link encodeDicomSeg}. */
export interface DicomSegResult {
  /** The Part 10 file. */
  bytes: Uint8Array;
  /** The naturalized dataset (PixelData included), for callers that post-process it. */
  dataset: NaturalizedDataset;
  segments: SegmentInfo[];
  frames: number;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  /** Source instances referenced (0 without source headers). */
  referencedInstances: number;
}

/** sRGB 0…255 → DICOM CIELab (PS3.3 C.10.7.1.1: L* 0…100 → 0…65535, a*, b* −128…127 → 0…65535), D65. */
export function rgbToDicomLab(rgb: readonly [number, number, number]): [number, number, number] {
  const lin = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  const x = (0.4124564 * lin[0] + 0.3575761 * lin[1] + 0.1804375 * lin[2]) / 0.95047;
  const y = 0.2126729 * lin[0] + 0.7151522 * lin[1] + 0.072175 * lin[2];
  const z = (0.0193339 * lin[0] + 0.119192 * lin[1] + 0.9503041 * lin[2]) / 1.08883;
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116);
  const L = 116 * f(y) - 16, a = 500 * (f(x) - f(y)), b = 200 * (f(y) - f(z));
  const clamp = (v: number) => Math.max(0, Math.min(65535, Math.round(v)));
  return [clamp((L * 65535) / 100), clamp(((a + 128) * 65535) / 255), clamp(((b + 128) * 65535) / 255)];
}

function codeItem(c: Code): NaturalizedDataset {
  return { CodeValue: c.value, CodingSchemeDesignator: c.scheme, CodeMeaning: c.meaning };
}

function str(v: unknown): string | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  if (x === undefined || x === null) return undefined;
  const s = String(x).trim();
  return s === '' ? undefined : s;
}

function nums(v: unknown): number[] | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const arr = Array.isArray(v) ? v : String(v).split('\\');
  const out = arr.map((x) => Number(x));
  return out.every(Number.isFinite) ? out : undefined;
}

function item(v: unknown): NaturalizedDataset | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  return x && typeof x === 'object' ? (x as NaturalizedDataset) : undefined;
}

/** DS values: at most 16 characters (PS3.5 6.2). */
function ds(v: number): number {
  if (Object.is(v, -0) || Math.abs(v) < 1e-12) return 0;
  for (let p = 10; p >= 1; p--) {
    const n = Number(v.toPrecision(p));
    if (String(n).length <= 16) return n;
  }
  return Number(v.toExponential(6));
}

function da(d: Date): string {
  return `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
}

function tm(d: Date): string {
  return `${String(d.getUTCHours()).padStart(2, '0')}${String(d.getUTCMinutes()).padStart(2, '0')}${String(d.getUTCSeconds()).padStart(2, '0')}`;
}

/** One plane of the source series: instance, frame number (1-based, multi-frame only), position. */
interface SourcePlane {
  sopClassUid: string;
  sopInstanceUid: string;
  frame: number | undefined;
  position: Vec3;
}

interface SourceInfo {
  studyUid: string;
  seriesUid: string;
  frameOfReferenceUid: string | undefined;
  planes: SourcePlane[];
  instances: { sopClassUid: string; sopInstanceUid: string }[];
  sliceThickness: number | undefined;
  deidentificationMethod: string;
  modality: string | undefined;
}

function readSource(headers: readonly NaturalizedDataset[], labels: Volume): SourceInfo {
  if (!headers.length) throw new MedmaskError('USAGE', 'sourceHeaders is an empty list', { hint: 'pass the headers loadDicom returned for the series, or leave sourceHeaders out' });
  const h0 = headers[0]!;
  const planes: SourcePlane[] = [];
  const instances: SourceInfo['instances'] = [];
  const one = (key: string, i: number): string => {
    const v = str(headers[i]![key]);
    if (!v) throw new MedmaskError('USAGE', `source header ${i} has no ${key}`, { hint: 'pass the headers loadDicom returned for a DICOM image series' });
    return v;
  };
  const studyUid = one('StudyInstanceUID', 0);
  const seriesUid = one('SeriesInstanceUID', 0);
  const frameOfReferenceUid = str(h0.FrameOfReferenceUID);
  headers.forEach((h, i) => {
    if (String(h.PatientIdentityRemoved ?? '').toUpperCase() !== 'YES') {
      throw new MedmaskError('USAGE', `source header ${i} (SOP instance ${str(h.SOPInstanceUID) ?? '?'}) is not de-identified (PatientIdentityRemoved is not YES)`, {
        hint: 'load the series with loadDicom / readVolume with de-identification on (the default); a SEG only carries de-identified identifiers',
      });
    }
    for (const [key, want] of [['StudyInstanceUID', studyUid], ['SeriesInstanceUID', seriesUid]] as const) {
      const got = one(key, i);
      if (got !== want) throw new MedmaskError('USAGE', `source header ${i} has ${key} ${got}, header 0 has ${want}`, { hint: 'pass the headers of one series' });
    }
    const sopClassUid = one('SOPClassUID', i);
    const sopInstanceUid = one('SOPInstanceUID', i);
    instances.push({ sopClassUid, sopInstanceUid });
    const frames = Math.max(1, Number(str(h.NumberOfFrames) ?? 1) || 1);
    const perFrame = Array.isArray(h.PerFrameFunctionalGroupsSequence) ? (h.PerFrameFunctionalGroupsSequence as NaturalizedDataset[]) : [];
    for (let f = 0; f < frames; f++) {
      const pos = nums(item(perFrame[f]?.PlanePositionSequence)?.ImagePositionPatient) ?? (frames === 1 ? nums(h.ImagePositionPatient) : undefined);
      if (!pos || pos.length !== 3) {
        throw new MedmaskError('USAGE', `source instance ${sopInstanceUid}${frames > 1 ? ` frame ${f + 1}` : ''} has no ImagePositionPatient`, { hint: 'the source series lacks geometry, so frames cannot be matched to it; export without sourceHeaders' });
      }
      planes.push({ sopClassUid, sopInstanceUid, frame: frames > 1 ? f + 1 : undefined, position: pos as Vec3 });
    }
  });
  // The in-plane grid must be the label map's.
  const rows = Number(str(h0.Rows)), cols = Number(str(h0.Columns));
  if (rows !== labels.shape[1] || cols !== labels.shape[0]) {
    throw new MedmaskError('GEOMETRY_MISMATCH', `the label map is ${labels.shape[0]}×${labels.shape[1]} (columns × rows) but the source series is ${cols}×${rows}`, { hint: 'export the label map on the grid of the series it was made from (no resampling)' });
  }
  const shared = item(h0.SharedFunctionalGroupsSequence);
  const iop = nums(h0.ImageOrientationPatient) ?? nums(item(shared?.PlaneOrientationSequence)?.ImageOrientationPatient);
  if (iop && iop.length === 6) {
    const d = labels.direction;
    const want = [d[0], d[3], d[6], d[1], d[4], d[7]];
    const norm = (a: number[]) => {
      const r = Math.hypot(a[0]!, a[1]!, a[2]!), c = Math.hypot(a[3]!, a[4]!, a[5]!);
      return [a[0]! / r, a[1]! / r, a[2]! / r, a[3]! / c, a[4]! / c, a[5]! / c];
    };
    const got = norm(iop);
    if (got.some((v, i) => Math.abs(v - want[i]!) > 1e-4)) {
      throw new MedmaskError('GEOMETRY_MISMATCH', `the label map's orientation ${want.map((v) => v.toFixed(4)).join('\\')} differs from the source series' ImageOrientationPatient ${iop.join('\\')}`, { hint: 'export the label map on the grid of the series it was made from' });
    }
  }
  const thickness = Number(str(h0.SliceThickness) ?? str(item(shared?.PixelMeasuresSequence)?.SliceThickness));
  return {
    studyUid,
    seriesUid,
    frameOfReferenceUid,
    planes,
    instances,
    sliceThickness: Number.isFinite(thickness) && thickness > 0 ? thickness : undefined,
    deidentificationMethod: str(h0.DeidentificationMethod) ?? DEIDENTIFICATION_METHOD,
    modality: str(h0.Modality),
  };
}

/** Position of slice k's first voxel (LPS, mm). */
function slicePosition(v: Volume, k: number): Vec3 {
  const d = v.direction, s = v.spacing[2] * k;
  return [v.origin[0] + d[2] * s, v.origin[1] + d[5] * s, v.origin[2] + d[8] * s];
}

function uidFrom(...parts: string[]): string {
  return remapUid(parts.join('\u0001'), 'medmask-dicom-seg');
}

/**
 * Encode a label map as a binary DICOM Segmentation (see the module documentation).
 * @param labels - integer label map (uint8 / uint16, or any type holding integers 0…65535), one component
 * @param opts - source headers, organ names and terms, provenance, series description, date, UIDs
 * @returns the Part 10 bytes, the dataset, the segments and frame count
 * @throws MedmaskError USAGE for a label map without labels, non-integer or negative values, a value
 *   missing from the label table, or source headers that are not de-identified; GEOMETRY_MISMATCH when
 *   the label map is not on the source series' grid
 * @example
 * const { volume, headers } = await loadDicom('ct/');
 * const seg = encodeDicomSeg(labels, { sourceHeaders: headers, labels: { 5: 'liver' } });
 * await writeFile('liver.seg.dcm', seg.bytes);
 */
export function encodeDicomSeg(labels: Volume, opts: DicomSegOptions = {}): DicomSegResult {
  if (labels.components !== 1) throw new MedmaskError('USAGE', `the label map has ${labels.components} components per voxel`, { hint: 'pass a scalar label map (one value per voxel)' });
  const [nx, ny, nz] = labels.shape;
  const plane = nx * ny;
  const n = voxelCount(labels);
  const data = labels.data;
  const counts = new Map<number, number>();
  for (let v = 0; v < n; v++) {
    const x = data[v]!;
    if (x === 0) continue;
    if (!Number.isInteger(x) || x < 0 || x > 65535) {
      throw new MedmaskError('USAGE', `voxel ${v} of the label map holds ${x}, not a label value`, { hint: 'label maps hold whole numbers 0…65535 (0 = background)' });
    }
    counts.set(x, (counts.get(x) ?? 0) + 1);
  }
  const values = [...counts.keys()].sort((a, b) => a - b);
  if (!values.length) throw new MedmaskError('USAGE', 'the label map holds no labelled voxel (all 0)', { hint: 'a DICOM SEG needs at least one segment; check that the right label map was passed' });
  const table = opts.labels ?? (labels.meta.labels as Record<number, string> | undefined);
  const contentLabel = opts.contentLabel ?? 'MEDMASK';
  if (!/^[A-Z0-9 _]{1,16}$/.test(contentLabel)) throw new MedmaskError('USAGE', `contentLabel "${contentLabel}" is not a DICOM code string`, { hint: 'use 1–16 characters from A–Z, 0–9, space and underscore, e.g. MEDMASK' });
  const algorithmName = opts.algorithmName ?? 'medmask';
  const source = opts.sourceHeaders ? readSource(opts.sourceHeaders, labels) : undefined;

  // Match each slice to a source plane by position.
  const tol = opts.positionTolerance ?? Math.max(0.01, 0.01 * labels.spacing[2]);
  const sliceRef: (SourcePlane | undefined)[] = [];
  for (let k = 0; k < nz; k++) {
    const p = slicePosition(labels, k);
    if (!source) {
      sliceRef.push(undefined);
      continue;
    }
    let best: SourcePlane | undefined, bestD = Infinity;
    for (const s of source.planes) {
      const d = Math.hypot(s.position[0] - p[0], s.position[1] - p[1], s.position[2] - p[2]);
      if (d < bestD) {
        bestD = d;
        best = s;
      }
    }
    if (!best || bestD > tol) {
      throw new MedmaskError('GEOMETRY_MISMATCH', `slice ${k} of the label map lies at (${p.map((x) => x.toFixed(2)).join(', ')}) mm, ${bestD.toFixed(2)} mm from the nearest source slice`, {
        hint: 'the label map must share the source series\' grid (same origin, spacing and slice positions); export the labels made from this series, without resampling',
      });
    }
    sliceRef.push(best);
  }

  // Segments.
  const segments: SegmentInfo[] = values.map((value, i) => {
    const name = table?.[value];
    if (table && name === undefined) {
      throw new MedmaskError('USAGE', `label value ${value} occurs in the label map but has no name in the label table (${Object.entries(table).map(([k, v]) => `${k}: ${v}`).join(', ')})`, {
        hint: 'pass labels: { value: name } for every value in the map, or clear the stray voxels',
      });
    }
    const nm = name ?? `label ${value}`;
    const term = opts.terms?.[value] ?? organTerm(nm) ?? { label: nm.slice(0, 64), category: ANATOMICAL_STRUCTURE, type: sct('91723000', 'Anatomical structure') };
    const prov = opts.provenance?.[value] ?? 'pseudo';
    const algorithmType = prov === 'original' ? 'MANUAL' : prov === 'revised' ? 'SEMIAUTOMATIC' : 'AUTOMATIC';
    return { number: i + 1, value, name: nm, term, algorithmType, frames: 0, voxels: counts.get(value)! };
  });
  const segOf = new Map(segments.map((s) => [s.value, s]));

  // Which (segment, slice) pairs get a frame.
  const present = segments.map(() => new Uint8Array(nz));
  for (let k = 0; k < nz; k++) {
    const off = k * plane;
    for (let v = 0; v < plane; v++) {
      const x = data[off + v]!;
      if (x) present[segOf.get(x)!.number - 1]![k] = 1;
    }
  }
  const frames: { seg: SegmentInfo; k: number }[] = [];
  for (const s of segments) for (let k = 0; k < nz; k++) if (opts.includeEmptyFrames || present[s.number - 1]![k]) frames.push({ seg: s, k });
  for (const f of frames) f.seg.frames++;

  // Pixel data: 1 bit per pixel, frames packed back to back, first pixel in the lowest bit (PS3.5 8.1.1).
  const totalBits = frames.length * plane;
  const bytes = new Uint8Array(Math.ceil(totalBits / 8) + (Math.ceil(totalBits / 8) % 2));
  let bit = 0;
  for (const { seg, k } of frames) {
    const off = k * plane;
    for (let v = 0; v < plane; v++, bit++) if (data[off + v] === seg.value) bytes[bit >> 3]! |= 1 << (bit & 7);
  }

  // UIDs: given, from the source, or derived from the content so that the same input gives the same object.
  const digest = createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).update(JSON.stringify([labels.shape, labels.spacing, labels.origin, labels.direction, segments.map((s) => [s.value, s.name])])).digest('hex');
  const anchor = source?.seriesUid ?? str(labels.meta.seriesInstanceUid) ?? digest;
  const studyUid = source?.studyUid ?? str(labels.meta.studyInstanceUid) ?? uidFrom('study', digest);
  const frameOfReferenceUid = source?.frameOfReferenceUid ?? str(labels.meta.frameOfReferenceUid) ?? uidFrom('frame-of-reference', anchor);
  const seriesDescription = opts.seriesDescription ?? 'medmask segmentation';
  const seriesInstanceUid = opts.seriesInstanceUid ?? uidFrom('series', anchor, seriesDescription, String(opts.seriesNumber ?? 100));
  const sopInstanceUid = opts.sopInstanceUid ?? uidFrom('instance', seriesInstanceUid, digest);
  const dimensionOrganizationUid = uidFrom('dimensions', sopInstanceUid);
  const date = opts.date ?? new Date();

  const d = labels.direction;
  const iop = [d[0], d[3], d[6], d[1], d[4], d[7]].map(ds);
  const sourceImagePurpose = { CodeValue: '121322', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Source image for image processing operation' };
  const perFrame: NaturalizedDataset[] = frames.map(({ seg, k }) => {
    const fg: NaturalizedDataset = {
      FrameContentSequence: [{ DimensionIndexValues: [seg.number, k + 1] }],
      PlanePositionSequence: [{ ImagePositionPatient: slicePosition(labels, k).map(ds) }],
      SegmentIdentificationSequence: [{ ReferencedSegmentNumber: seg.number }],
    };
    const ref = sliceRef[k];
    if (ref) {
      fg.DerivationImageSequence = [{
        DerivationCodeSequence: [{ CodeValue: '113076', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Segmentation' }],
        SourceImageSequence: [{
          ReferencedSOPClassUID: ref.sopClassUid,
          ReferencedSOPInstanceUID: ref.sopInstanceUid,
          ...(ref.frame !== undefined ? { ReferencedFrameNumber: ref.frame } : {}),
          PurposeOfReferenceCodeSequence: [sourceImagePurpose],
        }],
      }];
    }
    return fg;
  });

  const dataset: NaturalizedDataset = {
    SpecificCharacterSet: 'ISO_IR 192',
    ImageType: ['DERIVED', 'PRIMARY'],
    SOPClassUID: SEGMENTATION_SOP_CLASS,
    SOPInstanceUID: sopInstanceUid,
    StudyDate: '',
    SeriesDate: da(date),
    ContentDate: da(date),
    StudyTime: '',
    SeriesTime: tm(date),
    ContentTime: tm(date),
    AccessionNumber: '',
    Modality: 'SEG',
    Manufacturer: 'medmask',
    ReferringPhysicianName: '',
    SeriesDescription: seriesDescription.slice(0, 64),
    ManufacturerModelName: 'medmask',
    ...(source ? { ReferencedSeriesSequence: [{ SeriesInstanceUID: source.seriesUid, ReferencedInstanceSequence: source.instances.map((r) => ({ ReferencedSOPClassUID: r.sopClassUid, ReferencedSOPInstanceUID: r.sopInstanceUid })) }] } : {}),
    PatientName: '',
    PatientID: '',
    PatientBirthDate: '',
    PatientSex: '',
    PatientIdentityRemoved: 'YES',
    DeidentificationMethod: source?.deidentificationMethod ?? DEIDENTIFICATION_METHOD,
    DeidentificationMethodCodeSequence: [{ CodeValue: '113100', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Basic Application Confidentiality Profile' }],
    DeviceSerialNumber: '1',
    SoftwareVersions: VERSION,
    StudyInstanceUID: studyUid,
    SeriesInstanceUID: seriesInstanceUid,
    StudyID: '',
    SeriesNumber: opts.seriesNumber ?? 100,
    InstanceNumber: 1,
    FrameOfReferenceUID: frameOfReferenceUid,
    PositionReferenceIndicator: '',
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUid }],
    DimensionOrganizationType: '3D',
    DimensionIndexSequence: [
      { DimensionOrganizationUID: dimensionOrganizationUid, DimensionIndexPointer: 0x0062000b, FunctionalGroupPointer: 0x0062000a, DimensionDescriptionLabel: 'Segment Number' },
      { DimensionOrganizationUID: dimensionOrganizationUid, DimensionIndexPointer: 0x00200032, FunctionalGroupPointer: 0x00209113, DimensionDescriptionLabel: 'Image Position Patient' },
    ],
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    NumberOfFrames: frames.length,
    Rows: ny,
    Columns: nx,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    ContentLabel: contentLabel,
    ContentDescription: opts.contentDescription ?? '',
    ContentCreatorName: '',
    SegmentationType: 'BINARY',
    SegmentsOverlap: 'NO',
    SegmentSequence: segments.map((s) => ({
      SegmentNumber: s.number,
      SegmentLabel: s.term.label.slice(0, 64),
      SegmentDescription: s.name.slice(0, 64),
      SegmentAlgorithmType: s.algorithmType,
      ...(s.algorithmType !== 'MANUAL' ? { SegmentAlgorithmName: algorithmName.slice(0, 64) } : {}),
      SegmentedPropertyCategoryCodeSequence: [codeItem(s.term.category)],
      SegmentedPropertyTypeCodeSequence: [codeItem(s.term.type)],
      ...(s.term.rgb ? { RecommendedDisplayCIELabValue: rgbToDicomLab(s.term.rgb) } : {}),
    })),
    SharedFunctionalGroupsSequence: [{
      PixelMeasuresSequence: [{
        PixelSpacing: [ds(labels.spacing[1]), ds(labels.spacing[0])],
        SliceThickness: ds(source?.sliceThickness ?? labels.spacing[2]),
        SpacingBetweenSlices: ds(labels.spacing[2]),
      }],
      PlaneOrientationSequence: [{ ImageOrientationPatient: iop }],
    }],
    PerFrameFunctionalGroupsSequence: perFrame,
    PixelData: bytes.buffer,
    _vrMap: { PixelData: 'OB' },
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: SEGMENTATION_SOP_CLASS,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: EXPLICIT_VR_LE,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: `MEDMASK_${VERSION}`.slice(0, 16),
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  const out = new Uint8Array(dict.write());
  return {
    bytes: out,
    dataset,
    segments,
    frames: frames.length,
    sopInstanceUid,
    seriesInstanceUid,
    referencedInstances: source?.instances.length ?? 0,
  };
}

/** Options for {@link writeDicomSeg}: those of {@link encodeDicomSeg}, plus a source folder. */
export interface WriteDicomSegOptions extends DicomSegOptions {
  /**
   * The DICOM series (folder or file) the labels were made from: read here (de-identified, with
   * `uidSalt` and `seriesUid`) to reference it. Ignored when `sourceHeaders` is given.
   */
  sourceDicom?: string;
  /** UID salt used when the source was imported (must be the same for the references to match). */
  uidSalt?: string;
  /** Series to pick in a folder holding several. */
  seriesUid?: string;
}

/**
 * Write a label map as a DICOM SEG file (atomically), referencing its source series when given.
 * @param labels - label map on the source grid
 * @param path - output file, e.g. `case_0001.seg.dcm`
 * @param opts - see {@link WriteDicomSegOptions}
 * @returns what {@link encodeDicomSeg} returns (without re-reading the file)
 * @throws MedmaskError as {@link encodeDicomSeg}, and from the DICOM reader for the source
 * @example
 * await writeDicomSeg(merged, 'out/case_0001.seg.dcm', { sourceDicom: 'ct/case_0001/', provenance });
 */
export async function writeDicomSeg(labels: Volume, path: string, opts: WriteDicomSegOptions = {}): Promise<DicomSegResult> {
  const { sourceDicom, uidSalt, seriesUid, ...rest } = opts;
  let sourceHeaders = rest.sourceHeaders;
  if (!sourceHeaders && sourceDicom) {
    sourceHeaders = (await loadDicom(sourceDicom, { ...(uidSalt !== undefined ? { uidSalt } : {}), ...(seriesUid ? { seriesUid } : {}) })).headers;
  }
  const result = encodeDicomSeg(labels, { ...rest, ...(sourceHeaders ? { sourceHeaders } : {}) });
  await atomicWrite(path, result.bytes);
  return result;
}
