/**
 * Existing DICOM SEGs (drawn in 3D Slicer, OHIF, any dcmqi / highdicom tool) as partial labels of a
 * data set's cases: each SEG is matched to a case by the series its ReferencedSeriesSequence names
 * (the archive's original series UID for an imported case, or medmask's de-identified one for a SEG
 * drawn on an export), read onto the case's grid (`readDicomSeg`), its segments mapped to label
 * values by name (SegmentLabel, a rename table, synonyms); the SEGs of one case are merged into one
 * label map. Nothing here stores anything: the server's job and route do, and report the per-case
 * status this module returns. Unknown segments are named in that status, never dropped silently.
 * @module
 */
import type { NaturalizedDataset } from 'dcmjs';
import { MedmaskError, isMedmaskError } from '../core/errors.js';
import { ABDOMEN_LABELS } from '../core/phantom/abdomen.js';
import type { Volume } from '../core/volume.js';
import { parseDicom } from '../io/dicom-parse.js';
import { SEGMENTATION_SOP_CLASS } from '../io/dicom-seg.js';
import { readDicomSeg, type SegmentRead } from '../io/dicom-seg-read.js';

/** A SEG file to read. */
export interface SegSource {
  /** What to call it in statuses (a file name, or "SEG 2 of study 1"): never an archive UID. */
  name: string;
  bytes: Uint8Array;
}

/** What a SEG's header says (no pixels read). */
export interface SegHeader {
  /** Series the SEG was drawn on (ReferencedSeriesSequence). */
  referencedSeries: string[];
  segments: { number: number; label: string }[];
}

/** The default label names: the AbdomenAtlas organs (spleen 1 … pancreas 9). */
export const ORGAN_LABELS: Readonly<Record<string, number>> = Object.fromEntries(Object.entries(ABDOMEN_LABELS).map(([v, n]) => [n, Number(v)]));

const list = (v: unknown): NaturalizedDataset[] => (Array.isArray(v) ? v : v ? [v] : []) as NaturalizedDataset[];

/**
 * Read a SEG's header: the series it references and its segments.
 * @throws MedmaskError UNSUPPORTED_FORMAT (not a SEG), CORRUPT_FILE
 * @example
 * const { referencedSeries } = segHeader({ name: 'a.dcm', bytes });
 */
export function segHeader(s: SegSource): SegHeader {
  const { dataset } = parseDicom(s.bytes, s.name, { headerOnly: true });
  if (dataset.SOPClassUID !== SEGMENTATION_SOP_CLASS) throw new MedmaskError('UNSUPPORTED_FORMAT', `${s.name}: SOP class ${String(dataset.SOPClassUID ?? 'none')} is not Segmentation Storage`, { hint: 'give DICOM SEG files (Modality SEG) only' });
  return {
    referencedSeries: list(dataset.ReferencedSeriesSequence).map((r) => String(r.SeriesInstanceUID ?? '')).filter(Boolean),
    segments: list(dataset.SegmentSequence).map((x) => ({ number: Number(x.SegmentNumber), label: String(x.SegmentLabel ?? '') })),
  };
}

/** One segment as a case's status reports it. */
export interface SegmentStatus {
  /** The SEG it is in. */
  seg: string;
  number: number;
  segmentLabel: string;
  /** The organ it was mapped to; absent for an unknown segment. */
  organ?: string;
  value?: number;
  voxels: number;
}

/** Per-case result of {@link mergeCaseSegs}. */
export interface CaseSegStatus {
  /** matched: a label map was made (unknown segments, if any, are named); no-seg: no SEG names
   * the case; refused: SEGs name it but none could be used (`reason`). */
  status: 'matched' | 'no-seg' | 'refused';
  segments: SegmentStatus[];
  /** Segments that match no label name, as `SEG: number "label"`. */
  unknown: string[];
  /** SEGs that name the case but could not be read onto it, with why. */
  refusedSegs: { seg: string; reason: string }[];
  /** Voxels claimed by segments of different organs (the later one kept). */
  overlapVoxels: number;
  reason?: string;
}

/** Options for {@link mergeCaseSegs}. */
export interface MergeCaseSegsOptions {
  /** Organ name → label value (the data set's label names). */
  labels: Readonly<Record<string, number>>;
  /** SegmentLabel (or segment number as text) → organ name. */
  rename?: Readonly<Record<string, string>>;
}

/**
 * Read the SEGs that name one case onto its grid and merge them into one label map (uint8; a SEG
 * read later wins where two claim a voxel).
 * @param segs - the SEGs matched to the case (may be empty: status no-seg)
 * @param grid - the case's image
 * @returns the label map (undefined unless matched) and the case's status
 * @example
 * const { labels, status } = mergeCaseSegs(segs, image, { labels: { liver: 5 } });
 */
export function mergeCaseSegs(segs: readonly SegSource[], grid: Pick<Volume, 'shape' | 'spacing' | 'origin' | 'direction'>, o: MergeCaseSegsOptions): { labels?: Uint8Array; status: CaseSegStatus } {
  const st: CaseSegStatus = { status: 'no-seg', segments: [], unknown: [], refusedSegs: [], overlapVoxels: 0 };
  if (!segs.length) return { status: st };
  const [nx, ny, nz] = grid.shape;
  const out = new Uint8Array(nx * ny * nz);
  let used = 0;
  for (const s of segs) {
    let segments: SegmentRead[];
    let data: ArrayLike<number>;
    try {
      const r = readDicomSeg(s.bytes, { reference: grid, labels: o.labels, ...(o.rename ? { rename: o.rename } : {}), unknown: 'skip', label: s.name });
      segments = r.segments;
      data = r.labels.data;
    } catch (e) {
      if (!isMedmaskError(e)) throw e;
      st.refusedSegs.push({ seg: s.name, reason: `[${e.code}] ${e.message}` });
      continue;
    }
    for (const x of segments) {
      st.segments.push({ seg: s.name, number: x.number, segmentLabel: x.segmentLabel, ...(x.value !== undefined ? { organ: x.name, value: x.value } : {}), voxels: x.voxels });
      if (x.value === undefined) st.unknown.push(`${s.name}: ${x.number} "${x.segmentLabel}"${x.name !== x.segmentLabel ? ` (renamed "${x.name}")` : ''}`);
    }
    if (!segments.some((x) => x.value !== undefined)) {
      st.refusedSegs.push({ seg: s.name, reason: `no segment matches a label name (${segments.map((x) => `"${x.segmentLabel}"`).join(', ')})` });
      continue;
    }
    for (let i = 0; i < out.length; i++) {
      const v = data[i]!;
      if (!v) continue;
      if (v > 255) throw new MedmaskError('DATASET_INVALID', `${s.name}: label value ${v} does not fit a uint8 label map`);
      if (out[i] && out[i] !== v) st.overlapVoxels++;
      out[i] = v;
    }
    used++;
  }
  if (!used) {
    st.status = 'refused';
    st.reason = st.refusedSegs.map((r) => `${r.seg}: ${r.reason}`).join('; ');
    return { status: st };
  }
  st.status = 'matched';
  return { labels: out, status: st };
}

/**
 * A rename table read from JSON text (`{ "SegmentLabel or number": "organ" }`), checked against the
 * label names.
 * @throws MedmaskError USAGE naming the bad entry
 * @example
 * const rename = parseSegMap(readFileSync('seg-map.json', 'utf8'), 'seg-map.json', Object.keys(labels));
 */
export function parseSegMap(text: string, what: string, labelNames: readonly string[]): Record<string, string> {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw new MedmaskError('USAGE', `${what} is not JSON: ${(e as Error).message}`, { cause: e, hint: '{ "SegmentLabel": "organ name", "2": "liver" }' });
  }
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw new MedmaskError('USAGE', `${what} must be a JSON object mapping segment labels (or numbers) to organ names`, { hint: '{ "Milz": "spleen" }' });
  const known = new Map(labelNames.map((n) => [n.toLowerCase(), n]));
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== 'string' || !known.has(v.toLowerCase())) throw new MedmaskError('USAGE', `${what}: "${k}" maps to ${JSON.stringify(v)}, which is not a label name`, { hint: `label names: ${labelNames.join(', ')}` });
    out[k] = known.get(v.toLowerCase())!;
  }
  return out;
}

/**
 * Label names read from JSON text (`{ "name": value }`, values 1…255).
 * @throws MedmaskError USAGE naming the bad entry
 * @example
 * const labels = parseLabelNames('{ "liver": 1 }', 'labels.json');
 */
export function parseLabelNames(text: string, what: string): Record<string, number> {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw new MedmaskError('USAGE', `${what} is not JSON: ${(e as Error).message}`, { cause: e, hint: '{ "liver": 1, "spleen": 2 }' });
  }
  if (!m || typeof m !== 'object' || Array.isArray(m) || !Object.keys(m).length) throw new MedmaskError('USAGE', `${what} must be a JSON object mapping label names to values`, { hint: '{ "liver": 1, "spleen": 2 }' });
  for (const [k, v] of Object.entries(m)) if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 255) throw new MedmaskError('USAGE', `${what}: "${k}" has value ${JSON.stringify(v)}; label values are whole numbers 1…255`);
  return m as Record<string, number>;
}
