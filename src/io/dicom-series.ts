/**
 * DICOM objects → one volume: a single file (one frame or multi-frame) or a series folder.
 *
 * Slices are ordered by ImagePositionPatient projected on the slice normal (the cross product of
 * the ImageOrientationPatient row and column cosines) — never by file name or InstanceNumber.
 * Geometry (LPS, ITK convention): i runs along a row (direction = row cosines, spacing =
 * PixelSpacing[1]), j down the columns (column cosines, PixelSpacing[0]), k along the sorted slice
 * positions; origin = position of the first slice. Modality rescale (RescaleSlope/Intercept) turns
 * stored values into HU for CT: int16 when every result is integral and fits, else float32.
 * Metadata are taken from the de-identified header only (see `deidentify.ts`).
 * @module
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { NaturalizedDataset } from 'dcmjs';
import { MedmaskError } from '../core/errors.js';
import { createVolume, voxelTypeOf, type Mat3, type Vec3, type Volume, type VolumeMeta, type VoxelArray, type VoxelType } from '../core/volume.js';
import { deidentifyDataset, remapUid, DEIDENTIFICATION_METHOD } from './deidentify.js';
import { parseDicom, probeDicom, transferSyntaxName } from './dicom-parse.js';
import { checkDeclaredSize, maxVoxelsOf, printable } from './limits.js';
import { decodePixels, first, hasPixelData, noPixelDataError, num, type DecodedPixels } from './dicom-pixels.js';
import type { ReadOptions } from './registry.js';

/** One series found in a folder. */
export interface DicomSeriesInfo {
  /** SeriesInstanceUID as in the files (pass it as `seriesUid` / `--series`). */
  seriesInstanceUid: string;
  /** SeriesDescription, or "" when absent or when it contains patient identifiers. */
  description: string;
  /** Modality, e.g. "CT". */
  modality: string;
  /** Number of image files (a multi-frame file counts once). */
  files: number;
  /** Number of frames over all files (= slices for classic single-frame series). */
  frames: number;
  /** Paths of the files, in no particular order. */
  paths: string[];
}

/** A folder scan: the image series, and what was skipped. */
export interface DicomScan {
  series: DicomSeriesInfo[];
  /** Files that are not DICOM (skipped quietly). */
  skippedNonDicom: number;
  /** DICOM files without pixel data (RTSTRUCT, SR, DICOMDIR, …). */
  nonImage: Array<{ path: string; dataset: NaturalizedDataset }>;
}

/** Result of {@link loadDicom}: the volume and the de-identified headers it came from. */
export interface DicomLoadResult {
  volume: Volume;
  /**
   * De-identified headers (PixelData removed), one per file, in the volume's slice order —
   * what a DICOM SEG or any DICOM written later may reference. Empty when `deidentify` is false.
   */
  headers: NaturalizedDataset[];
}

const MAX_PROBE_FILES = 64;

/**
 * Synchronous check used by the folder reader's probe: does the folder (searched recursively,
 * up to a few dozen files) contain a DICOM file?
 * @param dir - folder
 * @returns true or the reason it declines
 * @example
 * folderHasDicom('ct/'); // true
 */
export function folderHasDicom(dir: string): true | string {
  let checked = 0;
  const stack = [dir];
  const head = new Uint8Array(132);
  while (stack.length && checked < MAX_PROBE_FILES) {
    const d = stack.pop()!;
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const p = join(d, name);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        stack.push(p);
        continue;
      }
      if (++checked > MAX_PROBE_FILES) break;
      let fd: number | undefined;
      try {
        fd = openSync(p, 'r');
        const n = readSync(fd, head, 0, 132, 0);
        if (n > 0 && probeDicom(head.subarray(0, n), name.toLowerCase()) === true && (n === 132 || name.toLowerCase().endsWith('.dcm'))) return true;
      } catch {
        // unreadable entries are not DICOM for the probe
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
  }
  return checked ? `no DICOM file among the ${Math.min(checked, MAX_PROBE_FILES)} file(s) checked` : 'folder holds no files';
}

async function walk(dir: string, out: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new MedmaskError('NOT_FOUND', `${dir}: cannot list the folder (${(e as Error).message})`, { cause: e, hint: 'check the path and its permissions' });
  }
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (e.isFile()) out.push(p);
  }
}

/**
 * Scan a folder recursively: group DICOM images by SeriesInstanceUID; count what is skipped.
 * @param dir - folder
 * @returns the series found and the skipped files
 * @example
 * const { series } = await scanDicomFolder('study/');
 */
export async function scanDicomFolder(dir: string): Promise<DicomScan> {
  const files: string[] = [];
  await walk(dir, files);
  const bySeries = new Map<string, DicomSeriesInfo & { header: NaturalizedDataset }>();
  const nonImage: DicomScan['nonImage'] = [];
  let skippedNonDicom = 0;
  for (const path of files) {
    const bytes = await readFile(path);
    if (probeDicom(bytes.subarray(0, 132), path.toLowerCase()) !== true) {
      skippedNonDicom++;
      continue;
    }
    let dataset: NaturalizedDataset;
    try {
      ({ dataset } = parseDicom(bytes, path, { headerOnly: true }));
    } catch {
      skippedNonDicom++;
      continue;
    }
    // headerOnly stops before PixelData: an image has Rows/Columns, the others do not.
    if (dataset.Rows === undefined || dataset.Columns === undefined) {
      nonImage.push({ path, dataset });
      continue;
    }
    const uid = String(first(dataset.SeriesInstanceUID) ?? '').trim() || '(no SeriesInstanceUID)';
    let s = bySeries.get(uid);
    if (!s) {
      s = { seriesInstanceUid: uid, description: '', modality: String(first(dataset.Modality) ?? ''), files: 0, frames: 0, paths: [], header: dataset };
      bySeries.set(uid, s);
    }
    s.files++;
    s.frames += Math.max(1, num(dataset.NumberOfFrames, 1));
    s.paths.push(path);
  }
  const series = [...bySeries.values()].map(({ header, ...info }) => {
    // Only a description free of the identifiers in its own header is shown.
    const clean = deidentifyDataset(header, { keepSeriesDescription: true }).dataset;
    return { ...info, description: String(first(clean.SeriesDescription) ?? '') };
  });
  series.sort((a, b) => (a.seriesInstanceUid < b.seriesInstanceUid ? -1 : 1));
  return { series, skippedNonDicom, nonImage };
}

/**
 * The image series in a folder (searched recursively), for choosing one with `seriesUid`.
 * @param dir - folder
 * @returns one entry per SeriesInstanceUID: UID, description, modality, files, frames
 * @example
 * for (const s of await listDicomSeries('study/')) console.log(s.seriesInstanceUid, s.description);
 */
export async function listDicomSeries(dir: string): Promise<DicomSeriesInfo[]> {
  return (await scanDicomFolder(dir)).series;
}

/** One 2D plane to stack: a frame of a file. */
interface Plane {
  path: string;
  frame: number;
  header: NaturalizedDataset;
  pixels: DecodedPixels;
  position: Vec3 | undefined;
  iop: number[] | undefined;
  pixelSpacing: [number, number] | undefined;
  slope: number;
  intercept: number;
  thickness: number | undefined;
}

function numbers(v: unknown): number[] | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const arr = Array.isArray(v) ? v : String(v).split('\\');
  const out = arr.map((x) => (typeof x === 'number' ? x : Number(String(x).trim())));
  return out.every((x) => Number.isFinite(x)) ? out : undefined;
}

/**
 * A geometry or rescale attribute: undefined when absent, else its numbers, which must all be
 * finite (a NaN ImagePositionPatient must not become an origin of 0).
 */
function strictNumbers(path: string, name: string, v: unknown, check?: (xs: number[]) => string | undefined): number[] | undefined {
  if (v === undefined || v === '') return undefined;
  // dcmjs turns a DS it cannot parse ("NaN", "abc") into null: present, but not a number.
  const arr = v === null ? ['(unparsable)'] : Array.isArray(v) ? v : String(v).split('\\');
  const out = arr.map((x) => (typeof x === 'number' ? x : x === null || String(x).trim() === '' ? NaN : Number(String(x).trim())));
  const why = out.some((x) => !Number.isFinite(x)) ? 'holds a value that is not a finite number' : check?.(out);
  if (why) {
    throw new MedmaskError('CORRUPT_FILE', `${path}: ${name} ${JSON.stringify(printable(arr.map(String).join('\\'), 120))} ${why}`, { hint: 'the header holds impossible geometry or scaling; export the image again', details: { attribute: name } });
  }
  return out;
}

const positiveSpacing = (xs: number[]) => (xs.some((x) => !(x > 0)) ? 'must hold positive spacings' : undefined);

/** Row and column cosines: two non-zero, non-parallel vectors. */
const orientation = (xs: number[]) => {
  if (xs.length !== 6) return `must hold 6 numbers, it holds ${xs.length}`;
  const r = xs.slice(0, 3);
  const c = xs.slice(3, 6);
  if (Math.hypot(...r) < 1e-6 || Math.hypot(...c) < 1e-6) return 'has a zero row or column direction';
  const n = cross(r, c);
  if (Math.hypot(...n) < 1e-3 * Math.hypot(...r) * Math.hypot(...c)) return 'has parallel row and column directions';
  return undefined;
};

function item(v: unknown): NaturalizedDataset | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  return x && typeof x === 'object' ? (x as NaturalizedDataset) : undefined;
}

function cross(a: number[], b: number[]): Vec3 {
  return [a[1]! * b[2]! - a[2]! * b[1]!, a[2]! * b[0]! - a[0]! * b[2]!, a[0]! * b[1]! - a[1]! * b[0]!];
}

function dot(a: readonly number[], b: readonly number[]): number {
  return a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
}

function normalize(v: number[]): Vec3 {
  const n = Math.hypot(v[0]!, v[1]!, v[2]!);
  return [v[0]! / n, v[1]! / n, v[2]! / n];
}

/** Planes of one decoded file: per-frame positions (enhanced multi-frame, GridFrameOffsetVector) when present. */
function planesOf(path: string, header: NaturalizedDataset, pixels: DecodedPixels): Plane[] {
  const shared = item(header.SharedFunctionalGroupsSequence);
  const perFrame = Array.isArray(header.PerFrameFunctionalGroupsSequence) ? (header.PerFrameFunctionalGroupsSequence as NaturalizedDataset[]) : [];
  const topIop = strictNumbers(path, 'ImageOrientationPatient', header.ImageOrientationPatient, orientation) ?? strictNumbers(path, 'ImageOrientationPatient (shared functional groups)', item(shared?.PlaneOrientationSequence)?.ImageOrientationPatient, orientation);
  const topPos = strictNumbers(path, 'ImagePositionPatient', header.ImagePositionPatient);
  const topSpacing = strictNumbers(path, 'PixelSpacing', header.PixelSpacing, positiveSpacing) ?? strictNumbers(path, 'PixelSpacing (shared functional groups)', item(shared?.PixelMeasuresSequence)?.PixelSpacing, positiveSpacing) ?? strictNumbers(path, 'ImagerPixelSpacing', header.ImagerPixelSpacing, positiveSpacing);
  const sharedTx = item(shared?.PixelValueTransformationSequence);
  const thickness = num(header.SliceThickness) ?? num(item(shared?.PixelMeasuresSequence)?.SliceThickness);
  const offsets = numbers(header.GridFrameOffsetVector);
  const out: Plane[] = [];
  for (let f = 0; f < pixels.frames; f++) {
    const pf = perFrame[f];
    const iop = strictNumbers(path, `ImageOrientationPatient of frame ${f + 1}`, item(pf?.PlaneOrientationSequence)?.ImageOrientationPatient, orientation) ?? topIop;
    let position = strictNumbers(path, `ImagePositionPatient of frame ${f + 1}`, item(pf?.PlanePositionSequence)?.ImagePositionPatient) as Vec3 | undefined;
    if (!position && topPos) {
      if (pixels.frames === 1) position = topPos as Vec3;
      else if (iop && offsets && offsets.length === pixels.frames) {
        // PS3.3 C.8.8.3.2: offsets along the normal, relative to ImagePositionPatient.
        const n = normalize(cross(iop.slice(0, 3), iop.slice(3, 6)));
        const o = offsets[0] === 0 ? offsets[f]! : offsets[f]! - offsets[0]!;
        position = [topPos[0]! + n[0] * o, topPos[1]! + n[1] * o, topPos[2]! + n[2] * o];
      }
    }
    const tx = item(pf?.PixelValueTransformationSequence) ?? sharedTx;
    const spacing = strictNumbers(path, `PixelSpacing of frame ${f + 1}`, item(pf?.PixelMeasuresSequence)?.PixelSpacing, positiveSpacing) ?? topSpacing;
    out.push({
      path,
      frame: f,
      header,
      pixels,
      position,
      iop: iop && iop.length === 6 ? iop : undefined,
      pixelSpacing: spacing && spacing.length >= 2 ? [spacing[0]!, spacing[1]!] : undefined,
      slope: pixels.rescaled ? 1 : (strictNumbers(path, 'RescaleSlope', tx?.RescaleSlope ?? header.RescaleSlope, (xs) => (xs[0] === 0 ? 'is 0, which would make every pixel the intercept' : undefined))?.[0] ?? 1),
      intercept: pixels.rescaled ? 0 : (strictNumbers(path, 'RescaleIntercept', tx?.RescaleIntercept ?? header.RescaleIntercept)?.[0] ?? 0),
      thickness,
    });
  }
  return out;
}

function where(p: Plane): string {
  return p.pixels.frames > 1 ? `${p.path} (frame ${p.frame + 1})` : p.path;
}

interface Geometry {
  spacing: Vec3;
  origin: Vec3;
  direction: Mat3;
  warnings: string[];
}

/** Sort planes in place along the normal and derive the geometry. */
function sortAndMeasure(planes: Plane[], label: string): Geometry {
  const warnings: string[] = [];
  const p0 = planes[0]!;
  for (const p of planes) {
    if (p.pixels.rows !== p0.pixels.rows || p.pixels.columns !== p0.pixels.columns || p.pixels.samples !== p0.pixels.samples) {
      throw new MedmaskError('CORRUPT_FILE', `${label}: slices differ in size: ${where(p0)} is ${p0.pixels.columns}×${p0.pixels.rows}, ${where(p)} is ${p.pixels.columns}×${p.pixels.rows}`, {
        hint: 'the folder mixes images of different series or a localizer; pass --series, or move the odd files out',
      });
    }
    if (p0.iop && p.iop && p0.iop.some((v, i) => Math.abs(v - p.iop![i]!) > 1e-4)) {
      throw new MedmaskError('CORRUPT_FILE', `${label}: slices have different orientations: ${where(p0)} has ImageOrientationPatient ${p0.iop.join('\\')}, ${where(p)} has ${p.iop.join('\\')}`, {
        hint: 'a localizer or a reformat shares the series; move those files out of the folder',
      });
    }
  }
  const ps = p0.pixelSpacing ?? [1, 1];
  if (!p0.pixelSpacing) warnings.push('no PixelSpacing: 1 mm assumed in-plane');
  const iop = p0.iop;
  if (!iop) {
    if (planes.length > 1) warnings.push('no ImageOrientationPatient: slices kept in file / frame order, identity direction');
    return {
      spacing: [ps[1], ps[0], num(p0.header.SpacingBetweenSlices) ?? p0.thickness ?? 1],
      origin: (p0.position ?? [0, 0, 0]) as Vec3,
      direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
      warnings,
    };
  }
  const r = normalize(iop.slice(0, 3));
  const c = normalize(iop.slice(3, 6));
  const n = normalize(cross(r, c));
  let kdir: Vec3 = n;
  let dz = num(p0.header.SpacingBetweenSlices) ?? p0.thickness ?? 1;
  if (planes.length > 1) {
    const missing = planes.find((p) => !p.position);
    if (missing) {
      throw new MedmaskError('CORRUPT_FILE', `${label}: ${where(missing)} has no ImagePositionPatient, so the slices cannot be ordered`, {
        hint: 'the files lack geometry; export the series again from the scanner or PACS',
      });
    }
    const d = new Map<Plane, number>(planes.map((p) => [p, dot(p.position!, n)]));
    planes.sort((a, b) => d.get(a)! - d.get(b)!);
    const steps = planes.slice(1).map((p, i) => d.get(p)! - d.get(planes[i]!)!);
    const sorted = [...steps].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const dupe = steps.findIndex((s) => s < 1e-3);
    if (dupe >= 0) {
      throw new MedmaskError('CORRUPT_FILE', `${label}: two slices share the position ${d.get(planes[dupe]!)!.toFixed(3)} mm along the normal: ${where(planes[dupe]!)} and ${where(planes[dupe + 1]!)}`, {
        hint: 'the folder holds the same slice twice, or several acquisitions (echoes, phases) in one series; remove duplicates or split the series',
      });
    }
    const gap = steps.findIndex((s) => Math.abs(s - median) > 0.1 * median + 1e-3);
    if (gap >= 0) {
      throw new MedmaskError('CORRUPT_FILE', `${label}: slices are not evenly spaced: ${steps[gap]!.toFixed(3)} mm between ${where(planes[gap]!)} and ${where(planes[gap + 1]!)}, ${median.toFixed(3)} mm elsewhere`, {
        hint: 'a slice is probably missing (copy the series again), or the series mixes slice spacings; medmask keeps volumes on a regular grid',
        details: { steps },
      });
    }
    if (steps.some((s) => Math.abs(s - median) > 1e-3 * median + 1e-4)) warnings.push(`slice spacing varies slightly (${sorted[0]!.toFixed(4)}…${sorted[sorted.length - 1]!.toFixed(4)} mm): the mean is used`);
    const a = planes[0]!.position!;
    const b = planes[planes.length - 1]!.position!;
    const step = [0, 1, 2].map((i) => (b[i]! - a[i]!) / (planes.length - 1));
    dz = Math.hypot(step[0]!, step[1]!, step[2]!);
    const stepDir = normalize(step);
    if (dot(stepDir, n) < 1 - 1e-6) {
      kdir = stepDir;
      warnings.push(`slices are sheared (gantry tilt?): the k axis is ${(Math.acos(Math.min(1, dot(stepDir, n))) * 180 / Math.PI).toFixed(2)}° off the slice normal`);
    }
  }
  return {
    spacing: [ps[1], ps[0], dz],
    origin: (planes[0]!.position ?? [0, 0, 0]) as Vec3,
    direction: [r[0], c[0], kdir[0], r[1], c[1], kdir[1], r[2], c[2], kdir[2]],
    warnings,
  };
}

/** Stack planes into one voxel array, applying the modality rescale. */
function stack(planes: Plane[], label: string): { data: VoxelArray; type: VoxelType; rescaled: boolean } {
  const p0 = planes[0]!;
  const plane = p0.pixels.rows * p0.pixels.columns * p0.pixels.samples;
  const total = plane * planes.length;
  const needsRescale = planes.some((p) => p.slope !== 1 || p.intercept !== 0);
  const types = new Set(planes.map((p) => voxelTypeOf(p.pixels.data)));
  const anyDecoderRescaled = planes.some((p) => p.pixels.rescaled && (num(p.header.RescaleSlope, 1) !== 1 || num(p.header.RescaleIntercept, 0) !== 0));
  if (!needsRescale && types.size === 1 && !anyDecoderRescaled) {
    const type = [...types][0]!;
    const C = p0.pixels.data.constructor as new (n: number) => VoxelArray;
    const data = new C(total);
    planes.forEach((p, k) => data.set(p.pixels.data.subarray(p.frame * plane, (p.frame + 1) * plane), k * plane));
    return { data, type, rescaled: false };
  }
  const fast = rescaleIntegers(planes, plane, total);
  if (fast) return fast;
  const values = new Float64Array(total);
  let integral = true;
  let lo = Infinity;
  let hi = -Infinity;
  planes.forEach((p, k) => {
    const src = p.pixels.data;
    const off = p.frame * plane;
    for (let i = 0; i < plane; i++) {
      const v = src[off + i]! * p.slope + p.intercept;
      values[k * plane + i] = v;
      if (integral && !Number.isInteger(v)) integral = false;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  });
  if (!Number.isFinite(lo) && total > 0) throw new MedmaskError('CORRUPT_FILE', `${label}: rescaled values are not finite`, { hint: 'check RescaleSlope / RescaleIntercept in the files' });
  if (integral && lo >= -32768 && hi <= 32767) return { data: Int16Array.from(values), type: 'int16', rescaled: true };
  return { data: Float32Array.from(values), type: 'float32', rescaled: true };
}

type IntegerArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;
const isIntegerArray = (a: VoxelArray): a is IntegerArray => a instanceof Int8Array || a instanceof Uint8Array || a instanceof Int16Array || a instanceof Uint16Array || a instanceof Int32Array || a instanceof Uint32Array;

/** Smallest and largest stored value of one plane. */
function planeRange(src: IntegerArray, off: number, n: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = off; i < off + n; i++) {
    const x = src[i]!;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

/** True when x·slope + intercept is a whole number for every stored value of the plane. */
function planeIntegral(src: IntegerArray, off: number, n: number, slope: number, intercept: number): boolean {
  for (let i = off; i < off + n; i++) if (!Number.isInteger(src[i]! * slope + intercept)) return false;
  return true;
}

function fillRescaled(out: Int16Array | Float32Array, at: number, src: IntegerArray, off: number, n: number, slope: number, intercept: number): void {
  for (let i = 0; i < n; i++) out[at + i] = src[off + i]! * slope + intercept;
}

/**
 * The rescale of integer pixel data (every CT) without a float64 copy of the volume: the range
 * comes from each plane's stored range (x·slope + intercept is monotone in x, in floating point
 * too), whole-number results are certain when slope and intercept are whole, and the output is
 * written once in its final type — the same values, type and errors as the general path below,
 * at a fraction of its time and memory (it was most of a 512×512×200 import).
 * @returns undefined for pixel data that is not integer (the general path handles it)
 */
function rescaleIntegers(planes: Plane[], plane: number, total: number): { data: VoxelArray; type: VoxelType; rescaled: boolean } | undefined {
  if (!planes.every((p) => isIntegerArray(p.pixels.data) && Number.isFinite(p.slope) && Number.isFinite(p.intercept))) return undefined;
  let integral = true;
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of planes) {
    const src = p.pixels.data as IntegerArray;
    const off = p.frame * plane;
    const [a, b] = planeRange(src, off, plane);
    const ends = [a * p.slope + p.intercept, b * p.slope + p.intercept];
    lo = Math.min(lo, ...ends);
    hi = Math.max(hi, ...ends);
    if (integral && !(Number.isInteger(p.slope) && Number.isInteger(p.intercept) && Number.isSafeInteger(ends[0]!) && Number.isSafeInteger(ends[1]!))) integral = planeIntegral(src, off, plane, p.slope, p.intercept);
  }
  const asInt16 = integral && lo >= -32768 && hi <= 32767;
  const out = asInt16 ? new Int16Array(total) : new Float32Array(total);
  planes.forEach((p, k) => fillRescaled(out, k * plane, p.pixels.data as IntegerArray, p.frame * plane, plane, p.slope, p.intercept));
  return { data: out, type: asInt16 ? 'int16' : 'float32', rescaled: true };
}

function readMeta(header: NaturalizedDataset, raw: NaturalizedDataset, planes: Plane[], info: { rescaled: boolean; transferSyntax: string; deidentified: boolean; removed: string[]; warnings: string[] }): VolumeMeta {
  const str = (v: unknown): string | undefined => {
    const x = first(v);
    if (x === undefined || x === null) return undefined;
    const s = String(x).trim();
    return s === '' ? undefined : s;
  };
  const modality = str(header.Modality);
  const photometric = str(raw.PhotometricInterpretation);
  const meta: VolumeMeta = {
    modality,
    seriesDescription: str(header.SeriesDescription),
    manufacturer: str(header.Manufacturer),
    sliceThickness: num(header.SliceThickness),
    windowCenter: num(header.WindowCenter),
    windowWidth: num(header.WindowWidth),
    photometricInterpretation: photometric,
    bitsStored: num(raw.BitsStored),
    pixelRepresentation: num(raw.PixelRepresentation, 0) === 1 ? 'signed' : 'unsigned',
    transferSyntax: transferSyntaxName(info.transferSyntax),
    sopClassUid: str(raw.SOPClassUID),
    seriesInstanceUid: str(header.SeriesInstanceUID),
    studyInstanceUid: str(header.StudyInstanceUID),
    frameOfReferenceUid: str(header.FrameOfReferenceUID),
    slices: planes.length,
    files: new Set(planes.map((p) => p.path)).size,
    rescaleSlope: planes[0]!.slope,
    rescaleIntercept: planes[0]!.intercept,
    deidentified: info.deidentified,
  };
  if (info.deidentified) {
    meta.deidentificationMethod = DEIDENTIFICATION_METHOD;
    meta.removedTags = info.removed;
  }
  if (modality === 'CT' && (info.rescaled || raw.RescaleIntercept !== undefined)) meta.unit = 'HU';
  else if (str(raw.RescaleType)) meta.unit = str(raw.RescaleType);
  const doseScaling = num(raw.DoseGridScaling);
  if (doseScaling !== undefined) meta.doseGridScaling = doseScaling; // RTDOSE: Gy = value × scaling (not applied)
  if (photometric === 'MONOCHROME1') {
    meta.monochrome1 = true;
    info.warnings.push('MONOCHROME1: low values display white; values are kept as stored (not inverted)');
  }
  if (info.warnings.length) meta.warnings = [...info.warnings];
  for (const k of Object.keys(meta)) if (meta[k] === undefined) delete meta[k];
  return meta;
}

/**
 * Read DICOM files that form one volume (a single file, or the files of one series).
 * @param files - the files (any order)
 * @param label - what to name in errors (the folder or file)
 * @param opts - de-identification options
 * @returns the volume and the de-identified headers, in slice order
 * @example
 * const { volume } = await readDicomFiles(['a.dcm', 'b.dcm'], 'series/', {});
 */
export async function readDicomFiles(files: readonly string[], label: string, opts: ReadOptions = {}): Promise<DicomLoadResult> {
  const planes: Plane[] = [];
  let transferSyntax = '';
  for (const path of files) {
    const bytes = await readFile(path);
    const { dataset, transferSyntax: ts, implicitUnderExplicit } = parseDicom(bytes, path);
    if (!hasPixelData(dataset)) throw noPixelDataError(path, dataset, bytes.length);
    transferSyntax ||= ts;
    const pixels = await decodePixels(dataset, ts, path, { ...opts, ...(implicitUnderExplicit ? { implicitUnderExplicit } : {}) });
    planes.push(...planesOf(path, dataset, pixels));
    const total = planes.length * pixels.rows * pixels.columns * pixels.samples;
    if (total > maxVoxelsOf(opts)) checkDeclaredSize(label, { dims: [pixels.columns, pixels.rows, planes.length], components: pixels.samples, bytesPerElement: pixels.data.BYTES_PER_ELEMENT, type: 'DICOM series so far' }, maxVoxelsOf(opts));
  }
  if (!planes.length) throw new MedmaskError('NOT_FOUND', `${label}: no DICOM images to read`, { hint: 'check the path' });
  const geometry = sortAndMeasure(planes, label);
  const { data, type, rescaled } = stack(planes, label);
  const p0 = planes[0]!;
  const deidentify = opts.deidentify !== false;
  const salt = opts.uidSalt ?? '';
  const orderedFiles = [...new Set(planes.map((p) => p.path))];
  const headerOf = new Map(planes.map((p) => [p.path, p.header]));
  let headers: NaturalizedDataset[] = [];
  let clean = p0.header;
  let removed: string[] = [];
  const warnings = [...geometry.warnings];
  if (deidentify) {
    const results = orderedFiles.map((f) => {
      const h = { ...headerOf.get(f)! };
      delete h.PixelData;
      delete h.FloatPixelData;
      delete h.DoubleFloatPixelData;
      return deidentifyDataset(h, { uidSalt: salt, keepSeriesDescription: true });
    });
    headers = results.map((r) => r.dataset);
    clean = headers[0]!;
    removed = [...new Set(results.flatMap((r) => r.removed))].sort();
    for (const w of new Set(results.flatMap((r) => r.warnings))) warnings.push(w);
  }
  const meta = readMeta(clean, p0.header, planes, { rescaled, transferSyntax, deidentified: deidentify, removed, warnings });
  meta.format = files.length > 1 ? 'dicom-series' : 'dicom';
  // A path often carries the patient's name (folder names): name the source by its (remapped) UID.
  meta.source = deidentify ? `dicom:${String(meta.seriesInstanceUid ?? meta.sopClassUid ?? 'unknown')}` : label;
  const volume = createVolume([p0.pixels.columns, p0.pixels.rows, planes.length], type, {
    data,
    components: p0.pixels.samples,
    spacing: geometry.spacing,
    origin: geometry.origin,
    direction: geometry.direction,
    meta,
  });
  return { volume, headers };
}

/**
 * Read a DICOM file or a series folder into a volume, with the de-identified headers.
 * @param path - a DICOM file, or a folder holding one series (or several, with `opts.seriesUid`)
 * @param opts - `seriesUid` (original or de-identified UID), `deidentify` (default true), `uidSalt`
 * @returns the volume and the headers in slice order
 * @throws MedmaskError AMBIGUOUS_SERIES (several series, none chosen), NO_PIXEL_DATA, NOT_FOUND, CORRUPT_FILE, UNSUPPORTED_FORMAT
 * @example
 * const { volume, headers } = await loadDicom('ct/', { uidSalt: 'project-secret' });
 */
export async function loadDicom(path: string, opts: ReadOptions = {}): Promise<DicomLoadResult> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw new MedmaskError('NOT_FOUND', `${path}: no such file or folder`, { cause: e, hint: 'check the path' });
  }
  if (!st.isDirectory()) return readDicomFiles([path], path, opts);
  const scan = await scanDicomFolder(path);
  let chosen: DicomSeriesInfo | undefined;
  if (opts.seriesUid) {
    const want = opts.seriesUid.trim();
    chosen = scan.series.find((s) => s.seriesInstanceUid === want || remapUid(s.seriesInstanceUid, opts.uidSalt ?? '') === want);
    if (!chosen) {
      throw new MedmaskError('NOT_FOUND', `${path}: no series with SeriesInstanceUID ${want}; the folder holds: ${scan.series.map((s) => s.seriesInstanceUid).join(', ') || 'no image series'}`, {
        hint: 'list the series with `medmask info FOLDER` and pass one of them with --series UID',
      });
    }
  } else if (scan.series.length > 1) {
    const lines = scan.series.map((s) => `  - ${s.seriesInstanceUid}  ${s.modality || '?'}  "${s.description}"  ${s.frames} slice(s)`);
    throw new MedmaskError('AMBIGUOUS_SERIES', `${path}: the folder holds ${scan.series.length} DICOM series:\n${lines.join('\n')}`, {
      hint: 'choose one with --series UID (seriesUid in the API)',
      details: { series: scan.series.map(({ paths: _paths, ...s }) => s) },
    });
  } else {
    chosen = scan.series[0];
  }
  if (!chosen) {
    if (scan.nonImage.length) throw noPixelDataError(scan.nonImage[0]!.path, scan.nonImage[0]!.dataset);
    throw new MedmaskError('NOT_FOUND', `${path}: no DICOM image files in this folder (${scan.skippedNonDicom} other file(s) skipped)`, {
      hint: 'point at the folder that holds the .dcm files of one series',
    });
  }
  const result = await readDicomFiles(chosen.paths, path, opts);
  result.volume.meta.skippedFiles = scan.skippedNonDicom;
  result.volume.meta.skippedNonImage = scan.nonImage.length;
  if (scan.series.length > 1) result.volume.meta.otherSeries = scan.series.length - 1;
  return result;
}
