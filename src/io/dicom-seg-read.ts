/**
 * DICOM Segmentation (PS3.3 A.51) → a label map, so that labels drawn in 3D Slicer, OHIF or any
 * dcmqi / highdicom tool come back in as (partial) labels.
 *
 * Frames are placed by their ImagePositionPatient (Plane Position functional group, per frame or
 * shared) on a reference grid — the image the labels belong to — never by frame order; a frame whose
 * orientation or position does not fall on the grid is an error naming it. Without a reference the
 * grid is built from the SEG itself (orientation and pixel spacing from its functional groups, the
 * slices at the distinct frame positions along the normal). BINARY segments are unpacked (1 bit per
 * pixel, least significant bit first, frames contiguous, PS3.5 8.1.1); FRACTIONAL ones are
 * thresholded at half of MaximumFractionalValue.
 *
 * Segment → label value: by name. The name is what a rename table gives for the SegmentLabel (or
 * the segment number); else the first of SegmentLabel, the organ whose SNOMED CT type code the
 * segment carries ({@link ORGAN_TERMS}), SegmentDescription that the name → value table (e.g. the
 * AbdomenAtlas organs) knows, matched without case, spaces or underscores, directly or through a
 * common synonym ({@link ORGAN_SYNONYMS}: "Left Kidney" → kidney_left, "IVC" → postcava); without a
 * table, the segment number. Overlapping segments: the later segment wins and the overlap is counted.
 * @module
 */
import dcmjs, { type NaturalizedDataset } from 'dcmjs';
import { MedmaskError } from '../core/errors.js';
import { createVolume, type Mat3, type Vec3, type Volume } from '../core/volume.js';
import { ORGAN_TERMS, SEGMENTATION_SOP_CLASS } from './dicom-seg.js';

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

/** Options for {@link readDicomSeg}. */
export interface ReadDicomSegOptions {
  /** The image the labels belong to (its grid); default: the grid the SEG describes. */
  reference?: Pick<Volume, 'shape' | 'spacing' | 'origin' | 'direction'>;
  /** Organ name → label value (e.g. AbdomenAtlas); default: the segment number. */
  labels?: Readonly<Record<string, number>>;
  /** SegmentLabel (or segment number as text) → organ name. */
  rename?: Readonly<Record<string, string>>;
  /** Segments whose name is not in `labels`: an error (default) or left out. */
  unknown?: 'error' | 'skip';
  /** Position tolerance, mm (default 1 % of the slice spacing, at least 0.01). */
  tolerance?: number;
  /** What to name in errors (default "DICOM SEG"). */
  label?: string;
}

/** One segment read. */
export interface SegmentRead {
  number: number;
  /** SegmentLabel as stored. */
  segmentLabel: string;
  /** Name after renaming. */
  name: string;
  /** Label value written (undefined when skipped). */
  value?: number;
  frames: number;
  voxels: number;
}

/** Result of {@link readDicomSeg}. */
export interface ReadDicomSegResult {
  labels: Volume;
  segments: SegmentRead[];
  /** Voxels claimed by more than one segment. */
  overlapVoxels: number;
  /** The SEG's ReferencedSeriesSequence series UIDs. */
  referencedSeries: string[];
}

const norm = (s: string) => s.toLowerCase().replace(/[\s_-]+/g, '');

/**
 * Common names of the AbdomenAtlas organs in segment labels (3D Slicer, OHIF, TotalSegmentator,
 * BTCV), normalised (lower case, no spaces, underscores or hyphens) → medmask's organ name. Used
 * when a SegmentLabel is not itself a label name of the table.
 */
export const ORGAN_SYNONYMS: Readonly<Record<string, string>> = {
  leftkidney: 'kidney_left',
  kidneyl: 'kidney_left',
  lkidney: 'kidney_left',
  kidneysinister: 'kidney_left',
  rightkidney: 'kidney_right',
  kidneyr: 'kidney_right',
  rkidney: 'kidney_right',
  kidneydexter: 'kidney_right',
  inferiorvenacava: 'postcava',
  venacavainferior: 'postcava',
  ivc: 'postcava',
  abdominalaorta: 'aorta',
  gall: 'gallbladder',
  hepar: 'liver',
  lien: 'spleen',
  gaster: 'stomach',
};
const first = <T>(v: unknown): T | undefined => (Array.isArray(v) ? (v[0] as T) : (v as T | undefined));
const nums = (v: unknown): number[] | undefined => (v === undefined || v === null ? undefined : (Array.isArray(v) ? v : [v]).map(Number));

/**
 * Read a DICOM SEG into a label map.
 * @param bytes - the Part 10 file
 * @returns the label map (uint8, or uint16 when a value exceeds 255), the segments and overlaps
 * @throws MedmaskError UNSUPPORTED_FORMAT (not a SEG, compressed), CORRUPT_FILE (pixel data too
 *   short), GEOMETRY_MISMATCH (a frame off the reference grid), DATASET_INVALID (a segment name
 *   without a label value)
 * @example
 * const { labels } = readDicomSeg(readFileSync('liver.seg.dcm'), { reference: ct, labels: { liver: 5 } });
 */
export function readDicomSeg(bytes: Uint8Array, o: ReadDicomSegOptions = {}): ReadDicomSegResult {
  const what = o.label ?? 'DICOM SEG';
  let ds: NaturalizedDataset;
  let meta: Record<string, unknown>;
  try {
    const dict = DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    ds = DicomMetaDictionary.naturalizeDataset(dict.dict);
    meta = DicomMetaDictionary.naturalizeDataset(dict.meta) as Record<string, unknown>;
  } catch (e) {
    throw new MedmaskError('CORRUPT_FILE', `${what}: not a readable DICOM file (${(e as Error).message})`, { cause: e });
  }
  if (ds.SOPClassUID !== SEGMENTATION_SOP_CLASS) throw new MedmaskError('UNSUPPORTED_FORMAT', `${what}: SOP class ${String(ds.SOPClassUID)} is not Segmentation Storage (${SEGMENTATION_SOP_CLASS})`, { hint: 'give a DICOM SEG file (Modality SEG)' });
  const ts = String(meta.TransferSyntaxUID ?? '');
  if (!['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2'].includes(ts)) throw new MedmaskError('UNSUPPORTED_FORMAT', `${what}: transfer syntax ${ts} (compressed) is not supported`, { hint: 'decompress it first, e.g. dcmdjpeg / gdcmconv --raw' });
  const rows = Number(ds.Rows);
  const cols = Number(ds.Columns);
  const nFrames = Number(ds.NumberOfFrames ?? 1);
  const type = String(ds.SegmentationType ?? 'BINARY');
  const bits = Number(ds.BitsAllocated);
  const shared = first<NaturalizedDataset>(ds.SharedFunctionalGroupsSequence) ?? {};
  const perFrame = (Array.isArray(ds.PerFrameFunctionalGroupsSequence) ? ds.PerFrameFunctionalGroupsSequence : ds.PerFrameFunctionalGroupsSequence ? [ds.PerFrameFunctionalGroupsSequence] : []) as NaturalizedDataset[];
  const group = (f: number, key: string) => first<NaturalizedDataset>(perFrame[f]?.[key]) ?? first<NaturalizedDataset>(shared[key]);
  const iop = nums(group(0, 'PlaneOrientationSequence')?.ImageOrientationPatient);
  const ps = nums(group(0, 'PixelMeasuresSequence')?.PixelSpacing);
  if (!iop || iop.length !== 6 || !ps || ps.length !== 2) throw new MedmaskError('CORRUPT_FILE', `${what}: no plane orientation or pixel spacing in the functional groups`, { hint: 'the SEG lacks geometry; it cannot be placed on an image' });
  const rowDir = iop.slice(0, 3) as Vec3;
  const colDir = iop.slice(3, 6) as Vec3;
  const normal: Vec3 = [rowDir[1] * colDir[2] - rowDir[2] * colDir[1], rowDir[2] * colDir[0] - rowDir[0] * colDir[2], rowDir[0] * colDir[1] - rowDir[1] * colDir[0]];
  const positions: Vec3[] = [];
  const segOf: number[] = [];
  for (let f = 0; f < nFrames; f++) {
    const p = nums(group(f, 'PlanePositionSequence')?.ImagePositionPatient);
    if (!p || p.length !== 3) throw new MedmaskError('CORRUPT_FILE', `${what}: frame ${f + 1} has no ImagePositionPatient`);
    positions.push(p as Vec3);
    const s = Number(group(f, 'SegmentIdentificationSequence')?.ReferencedSegmentNumber ?? NaN);
    if (!Number.isInteger(s)) throw new MedmaskError('CORRUPT_FILE', `${what}: frame ${f + 1} names no ReferencedSegmentNumber`);
    segOf.push(s);
  }
  // The grid.
  const dot = (a: readonly number[], b: readonly number[]) => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
  let grid: Pick<Volume, 'shape' | 'spacing' | 'origin' | 'direction'>;
  if (o.reference) {
    grid = o.reference;
  } else {
    const along = [...new Set(positions.map((p) => Math.round(dot(p, normal) * 1e3) / 1e3))].sort((a, b) => a - b);
    const thick = Number(group(0, 'PixelMeasuresSequence')?.SpacingBetweenSlices ?? NaN);
    const step = along.length > 1 ? Math.min(...along.slice(1).map((v, i) => v - along[i]!)) : Number.isFinite(thick) ? thick : 1;
    const nz = along.length > 1 ? Math.round((along[along.length - 1]! - along[0]!) / step) + 1 : 1;
    const p0 = positions.find((p) => Math.abs(dot(p, normal) - along[0]!) < 1e-3)!;
    grid = { shape: [cols, rows, nz], spacing: [ps[1]!, ps[0]!, step], origin: p0, direction: [rowDir[0], colDir[0], normal[0], rowDir[1], colDir[1], normal[1], rowDir[2], colDir[2], normal[2]] as Mat3 };
  }
  const [nx, ny, nz] = grid.shape;
  const d = grid.direction;
  const gcol = (c: number): Vec3 => [d[c]!, d[3 + c]!, d[6 + c]!];
  if (nx !== cols || ny !== rows) throw new MedmaskError('GEOMETRY_MISMATCH', `${what}: frames are ${cols}×${rows}, the image is ${nx}×${ny}`, { hint: 'give the image the SEG was drawn on' });
  if (Math.abs(dot(gcol(0), rowDir) - 1) > 1e-3 || Math.abs(dot(gcol(1), colDir) - 1) > 1e-3) throw new MedmaskError('GEOMETRY_MISMATCH', `${what}: the frames' orientation ${iop.join('\\')} differs from the image's`, { hint: 'give the image the SEG was drawn on' });
  const tol = o.tolerance ?? Math.max(0.01, 0.01 * grid.spacing[2]);
  const sliceOf = (f: number): number => {
    const rel = [0, 1, 2].map((a) => positions[f]![a]! - grid.origin[a]!);
    const i = dot(rel, gcol(0)) / grid.spacing[0];
    const j = dot(rel, gcol(1)) / grid.spacing[1];
    const kf = dot(rel, gcol(2)) / grid.spacing[2];
    const k = Math.round(kf);
    if (Math.abs(i) * grid.spacing[0] > tol || Math.abs(j) * grid.spacing[1] > tol || Math.abs(kf - k) * grid.spacing[2] > tol || k < 0 || k >= nz) {
      throw new MedmaskError('GEOMETRY_MISMATCH', `${what}: frame ${f + 1} at ${positions[f]!.map((v) => v.toFixed(3)).join('\\')} is not on a slice of the image (slice ${kf.toFixed(3)}, in-plane offset ${i.toFixed(3)}, ${j.toFixed(3)} voxels)`, { hint: 'give the image the SEG was drawn on' });
    }
    return k;
  };
  // Segments → values.
  const segItems = (Array.isArray(ds.SegmentSequence) ? ds.SegmentSequence : [ds.SegmentSequence]).filter(Boolean) as NaturalizedDataset[];
  const table = o.labels ? new Map(Object.entries(o.labels).map(([k, v]) => [norm(k), v])) : undefined;
  const canonical = new Map(Object.keys(o.labels ?? {}).map((k) => [norm(k), k]));
  const segments = new Map<number, SegmentRead>();
  const unknown: string[] = [];
  for (const s of segItems) {
    const number = Number(s.SegmentNumber);
    const segmentLabel = String(s.SegmentLabel ?? '');
    const renamed = o.rename?.[segmentLabel] ?? o.rename?.[String(number)];
    // Without a rename: the SegmentLabel, else the organ whose SNOMED type code the segment carries
    // (Slicer and OHIF label freely but code the anatomy), else the SegmentDescription.
    const typeCode = String(first<NaturalizedDataset>(s.SegmentedPropertyTypeCodeSequence)?.CodeValue ?? '');
    const byCode = Object.entries(ORGAN_TERMS).find(([, t]) => t.type.value === typeCode)?.[0];
    const candidates = renamed !== undefined ? [renamed] : [segmentLabel, ...(byCode ? [byCode] : []), String(s.SegmentDescription ?? '')].filter(Boolean);
    // A candidate names a label directly (without case, spaces, underscores) or through a synonym.
    const known = (c: string): string | undefined => (table?.has(norm(c)) ? norm(c) : ORGAN_SYNONYMS[norm(c)] !== undefined && table?.has(norm(ORGAN_SYNONYMS[norm(c)]!)) ? norm(ORGAN_SYNONYMS[norm(c)]!) : undefined);
    const hit = table && candidates.map(known).find((c) => c !== undefined);
    const name = hit ? canonical.get(hit)! : candidates[0] || segmentLabel;
    const value = table ? table.get(norm(name)) : number;
    if (value === undefined && o.unknown !== 'skip') unknown.push(`${number} "${segmentLabel}"${name !== segmentLabel ? ` (renamed "${name}")` : ''}`);
    segments.set(number, { number, segmentLabel, name, ...(value !== undefined ? { value } : {}), frames: 0, voxels: 0 });
  }
  if (unknown.length) throw new MedmaskError('DATASET_INVALID', `${what}: segment(s) ${unknown.join(', ')} match no label name (known: ${Object.keys(o.labels ?? {}).join(', ')})`, { hint: 'map them with a rename file { "SegmentLabel": "organ" }, or skip unknown segments' });
  // Pixels.
  const px = ds.PixelData;
  const buf = Array.isArray(px) ? (px[0] as ArrayBuffer) : (px as ArrayBuffer | undefined);
  if (!buf) throw new MedmaskError('CORRUPT_FILE', `${what}: no pixel data`);
  const pixel = new Uint8Array(buf);
  const plane = rows * cols;
  const fractional = type === 'FRACTIONAL';
  const need = fractional ? plane * nFrames * (bits / 8) : Math.ceil((plane * nFrames) / 8);
  if (pixel.length < need) throw new MedmaskError('CORRUPT_FILE', `${what}: pixel data holds ${pixel.length} bytes, ${nFrames} frame(s) of ${cols}×${rows} need ${need}`);
  const cut = fractional ? Number(ds.MaximumFractionalValue ?? 255) / 2 : 0;
  const maxValue = Math.max(0, ...[...segments.values()].map((s) => s.value ?? 0));
  const out = maxValue > 255 ? new Uint16Array(nx * ny * nz) : new Uint8Array(nx * ny * nz);
  let overlapVoxels = 0;
  for (let f = 0; f < nFrames; f++) {
    const seg = segments.get(segOf[f]!);
    if (!seg) throw new MedmaskError('CORRUPT_FILE', `${what}: frame ${f + 1} names segment ${segOf[f]}, which the Segment Sequence lacks`);
    seg.frames++;
    if (seg.value === undefined) continue;
    const base = sliceOf(f) * plane;
    for (let p = 0; p < plane; p++) {
      const on = fractional ? pixel[f * plane + p]! > cut : (pixel[(f * plane + p) >> 3]! >> ((f * plane + p) & 7)) & 1;
      if (!on) continue;
      if (out[base + p] && out[base + p] !== seg.value) overlapVoxels++;
      out[base + p] = seg.value;
      seg.voxels++;
    }
  }
  const refSeries = (Array.isArray(ds.ReferencedSeriesSequence) ? ds.ReferencedSeriesSequence : ds.ReferencedSeriesSequence ? [ds.ReferencedSeriesSequence] : []) as NaturalizedDataset[];
  const names: Record<number, string> = {};
  for (const s of segments.values()) if (s.value !== undefined) names[s.value] = s.name;
  const labels = createVolume(grid.shape, out instanceof Uint16Array ? 'uint16' : 'uint8', { data: out, spacing: grid.spacing, origin: grid.origin, direction: grid.direction, meta: { format: 'dicom-seg', labels: names } });
  return { labels, segments: [...segments.values()], overlapVoxels, referencedSeries: refSeries.map((r) => String(r.SeriesInstanceUID ?? '')).filter(Boolean) };
}
