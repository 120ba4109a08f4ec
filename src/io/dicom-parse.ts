/**
 * Parsing DICOM bytes with dcmjs: Part 10 files (128-byte preamble + "DICM") and bare datasets
 * without preamble or file meta information (older exports, some `.dcm` files), the content probe
 * used by the DICOM readers, and names for the transfer syntaxes and SOP classes that errors cite.
 * @module
 */
import dcmjs, { type NaturalizedDataset } from 'dcmjs';
import { MedmaskError } from '../core/errors.js';
import { printable } from './limits.js';
import { hasExtension, hasMagic } from './registry.js';

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;
// dcmjs reports odd VRs ("xs", "ox") on its validation logger; a reader never logs (errors are thrown).
dcmjs.log.getLogger('validation.dcmjs').setLevel('silent');

/** Transfer syntaxes medmask decodes itself (uncompressed). */
export const UNCOMPRESSED_SYNTAXES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
};

const COMPRESSED_SYNTAXES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
  '1.2.840.10008.1.2.4.202': 'HTJ2K Lossless RPCL',
  '1.2.840.10008.1.2.4.203': 'HTJ2K',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/**
 * A readable name for a transfer syntax UID.
 * @param uid - transfer syntax UID
 * @returns e.g. "JPEG 2000 Lossless (1.2.840.10008.1.2.4.90)"
 * @example
 * transferSyntaxName('1.2.840.10008.1.2.5'); // 'RLE Lossless (1.2.840.10008.1.2.5)'
 */
export function transferSyntaxName(uid: string): string {
  const name = UNCOMPRESSED_SYNTAXES[uid] ?? COMPRESSED_SYNTAXES[uid];
  return name ? `${name} (${uid})` : uid;
}

const SOP_CLASSES: Readonly<Record<string, string>> = {
  '1.2.840.10008.5.1.4.1.1.481.3': 'RT Structure Set',
  '1.2.840.10008.5.1.4.1.1.481.5': 'RT Plan',
  '1.2.840.10008.5.1.4.1.1.481.8': 'RT Ion Plan',
  '1.2.840.10008.5.1.4.1.1.481.4': 'RT Beams Treatment Record',
  '1.2.840.10008.5.1.4.1.1.88.11': 'Basic Text SR',
  '1.2.840.10008.5.1.4.1.1.88.22': 'Enhanced SR',
  '1.2.840.10008.5.1.4.1.1.88.33': 'Comprehensive SR',
  '1.2.840.10008.5.1.4.1.1.88.34': 'Comprehensive 3D SR',
  '1.2.840.10008.5.1.4.1.1.88.59': 'Key Object Selection',
  '1.2.840.10008.5.1.4.1.1.11.1': 'Grayscale Softcopy Presentation State',
  '1.2.840.10008.5.1.4.1.1.66': 'Raw Data',
  '1.2.840.10008.5.1.4.1.1.66.1': 'Spatial Registration',
  '1.2.840.10008.5.1.4.1.1.104.1': 'Encapsulated PDF',
  '1.2.840.10008.5.1.4.1.1.9.1.1': '12-lead ECG Waveform',
  '1.2.840.10008.5.1.4.1.1.2': 'CT Image',
  '1.2.840.10008.5.1.4.1.1.4': 'MR Image',
  '1.2.840.10008.5.1.4.1.1.66.4': 'Segmentation',
};

/**
 * A readable name for a SOP class UID.
 * @param uid - SOP class UID
 * @returns e.g. "RT Structure Set (1.2.840.10008.5.1.4.1.1.481.3)"
 * @example
 * sopClassName('1.2.840.10008.5.1.4.1.1.481.3'); // 'RT Structure Set (1.2.840.10008.5.1.4.1.1.481.3)'
 */
export function sopClassName(uid: string | undefined): string {
  if (!uid) return 'unknown SOP class';
  return SOP_CLASSES[uid] ? `${SOP_CLASSES[uid]} (${uid})` : uid;
}

/** True when the bytes look like a DICOM dataset without preamble: group 0002 or 0008 first. */
function looksLikeBareDataset(head: Uint8Array): boolean {
  if (head.length < 12) return false;
  const group = head[0]! | (head[1]! << 8);
  const element = head[2]! | (head[3]! << 8);
  if (group !== 0x0002 && group !== 0x0008) return false;
  if (element > 0x0100) return false;
  const vr = String.fromCharCode(head[4]!, head[5]!);
  if (/^[A-Z]{2}$/.test(vr)) return true; // explicit VR
  const len = head[4]! | (head[5]! << 8) | (head[6]! << 16) | (head[7]! << 24);
  return len >= 0 && len < 1024; // implicit VR: a small length
}

/**
 * Content probe: "DICM" at byte 128, or a bare dataset starting with group 0002/0008.
 * @param head - first bytes of the file
 * @param name - file name (a `.dcm` file that does not parse is still claimed, so the error says why)
 * @returns true, or the reason it is not DICOM
 * @example
 * probeDicom(head, 'ct.dcm'); // true
 */
export function probeDicom(head: Uint8Array, name: string): true | string {
  if (hasMagic(head, [0x44, 0x49, 0x43, 0x4d], 128)) return true;
  if (looksLikeBareDataset(head)) return true;
  if (hasExtension(name, ['.dcm', '.dicom'])) return head.length === 0 ? 'file is empty' : true;
  return 'no "DICM" marker at byte 128 and no DICOM group 0002/0008 element at the start';
}

/** A parsed DICOM object. */
export interface ParsedDicom {
  /** Naturalized dataset; `_meta` holds the file meta information, denaturalized (as dcmjs keeps it). */
  dataset: NaturalizedDataset;
  /** Transfer syntax UID (implicit VR little endian for bare datasets without meta). */
  transferSyntax: string;
  /** True when the file had no preamble / meta and was parsed as a bare dataset. */
  bare: boolean;
  /** The dataset is implicit VR although the transfer syntax says explicit (read as implicit). */
  implicitUnderExplicit?: boolean;
  /** What the parser reported (recoverable problems), one line each. */
  warnings?: string[];
}

/** Prepend the 128-byte preamble and "DICM" to a file that starts with its meta group. */
function withPreamble(bytes: Uint8Array): ArrayBuffer {
  const out = new Uint8Array(132 + bytes.length);
  out.set([0x44, 0x49, 0x43, 0x4d], 128);
  out.set(bytes, 132);
  return out.buffer;
}

/** Build a Part 10 preamble + meta group around a bare dataset so dcmjs can read it. */
function wrapBare(bytes: Uint8Array, transferSyntax: string): ArrayBuffer {
  const ts = transferSyntax.length % 2 ? transferSyntax + '\0' : transferSyntax;
  // (0002,0010) UI, explicit VR little endian, 2-byte length
  const el = new Uint8Array(8 + ts.length);
  el.set([0x02, 0x00, 0x10, 0x00, 0x55, 0x49, ts.length & 0xff, ts.length >> 8]);
  for (let i = 0; i < ts.length; i++) el[8 + i] = ts.charCodeAt(i);
  const groupLength = new Uint8Array([0x02, 0x00, 0x00, 0x00, 0x55, 0x4c, 4, 0, el.length & 0xff, (el.length >> 8) & 0xff, 0, 0]);
  const out = new Uint8Array(132 + groupLength.length + el.length + bytes.length);
  out.set([0x44, 0x49, 0x43, 0x4d], 128);
  out.set(groupLength, 132);
  out.set(el, 132 + groupLength.length);
  out.set(bytes, 132 + groupLength.length + el.length);
  return out.buffer;
}

/**
 * Parse DICOM bytes into a naturalized dataset.
 * @param bytes - whole file contents
 * @param path - file path, for error messages
 * @param opts - `headerOnly` stops before the pixel data (fast scans of series folders)
 * @returns dataset, transfer syntax, whether it was a bare dataset
 * @throws MedmaskError CORRUPT_FILE when the bytes do not parse as DICOM
 * @example
 * const { dataset } = parseDicom(await readFile('ct.dcm'), 'ct.dcm');
 */
export function parseDicom(bytes: Uint8Array, path: string, opts: { headerOnly?: boolean } = {}): ParsedDicom {
  const first = parseOnce(bytes, path, opts);
  // Implicit-VR data under an explicit-VR transfer syntax (a known writer bug; pydicom detects it
  // too): dcmjs reads garbage VRs and stops. Read the dataset again as implicit VR; the transfer
  // syntax stays the file's (it says how the pixels are encoded).
  if (first.problems.length && first.part10 && EXPLICIT_LE.has(first.parsed.transferSyntax) && first.metaEnd > 0 && looksImplicit(bytes, first.metaEnd)) {
    const again = parseOnce(bytes.subarray(first.metaEnd), path, opts, '1.2.840.10008.1.2');
    if (again.problems.length < first.problems.length || Object.keys(again.parsed.dataset).length > Object.keys(first.parsed.dataset).length) {
      again.parsed.transferSyntax = first.parsed.transferSyntax;
      again.parsed.dataset._meta = first.parsed.dataset._meta;
      again.parsed.bare = false;
      again.parsed.implicitUnderExplicit = true;
      return checked(again, path, opts);
    }
  }
  const out = checked(first, path, opts);
  if (!opts.headerOnly) {
    const cut = pixelDataShortBy(bytes);
    if (cut > 0) {
      throw new MedmaskError('CORRUPT_FILE', `${path}: the pixel data element is cut short: its header promises ${cut} more bytes than the file holds`, {
        hint: 'the file is truncated; copy it again from the PACS or export it again',
      });
    }
  }
  return out;
}

/**
 * How many bytes the native (not encapsulated) PixelData element promises beyond the end of the
 * file (0 when it fits, is encapsulated or is not found). dcmjs pads a cut element with zeros, so
 * this is checked on the raw bytes: the first (7FE0,0010) tag followed by an explicit OB/OW header
 * or an implicit even length.
 */
export function pixelDataShortBy(bytes: Uint8Array): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i + 12 <= bytes.length; i++) {
    if (bytes[i] !== 0xe0 || bytes[i + 1] !== 0x7f || bytes[i + 2] !== 0x10 || bytes[i + 3] !== 0x00) continue;
    const vr = String.fromCharCode(bytes[i + 4]!, bytes[i + 5]!);
    let len: number;
    let start: number;
    if ((vr === 'OB' || vr === 'OW') && bytes[i + 6] === 0 && bytes[i + 7] === 0) {
      len = dv.getUint32(i + 8, true);
      start = i + 12;
    } else {
      len = dv.getUint32(i + 4, true);
      start = i + 8;
      if (len % 2 !== 0 && len !== 0xffffffff) continue;
    }
    if (len === 0xffffffff) return 0;
    return Math.max(0, start + len - bytes.length);
  }
  return 0;
}

/** Transfer syntaxes whose datasets are explicit VR little endian (all the compressed ones too). */
const EXPLICIT_LE = new Set(['1.2.840.10008.1.2.1', ...Object.keys(COMPRESSED_SYNTAXES)]);

/** The element at `at` has no two-letter VR where an explicit-VR element would have one. */
function looksImplicit(bytes: Uint8Array, at: number): boolean {
  if (bytes.length < at + 8) return false;
  return !/^[A-Z]{2}$/.test(String.fromCharCode(bytes[at + 4]!, bytes[at + 5]!));
}

interface Attempt {
  parsed: ParsedDicom;
  /** What dcmjs reported while reading (it stops at the first error and returns what it has). */
  problems: string[];
  part10: boolean;
  /** Offset of the dataset after the meta group in a Part 10 file (0 when unknown). */
  metaEnd: number;
}

/**
 * A parse that went wrong part-way is refused: dcmjs stops at a damaged element and returns the
 * elements before it, which would otherwise read as "no pixel data" (or as a shorter image).
 * The pixel data element is also checked against the file's length (dcmjs pads a cut element).
 */
function checked(a: Attempt, path: string, opts: { headerOnly?: boolean }): ParsedDicom {
  const ds = a.parsed.dataset;
  const hasPixels = ds.PixelData !== undefined || ds.FloatPixelData !== undefined || ds.DoubleFloatPixelData !== undefined;
  if (a.problems.length && !opts.headerOnly && !hasPixels) {
    throw new MedmaskError('CORRUPT_FILE', `${path}: the DICOM data stop being readable part-way (${printable(a.problems[0]!, 160)}), before any pixel data`, {
      hint: 'the file is truncated or damaged; copy it again from the PACS or export it again',
      details: { parser: a.problems.map((p) => printable(p, 400)) },
    });
  }
  if (a.parsed.bare && !hasPixels && ds.SOPClassUID === undefined && ds.Rows === undefined && ds.Modality === undefined) {
    throw new MedmaskError('CORRUPT_FILE', `${path}: no preamble or meta header, and read as a bare dataset it holds no SOPClassUID, Modality or Rows — not a readable DICOM dataset`, {
      hint: 'the file is damaged or not DICOM (pydicom cannot read it either); export it again',
    });
  }
  a.parsed.warnings = a.problems.map((p) => printable(p, 400));
  return a.parsed;
}

/** Read with dcmjs, collecting what it logs instead of letting it reach stderr. */
function parseOnce(bytes: Uint8Array, path: string, opts: { headerOnly?: boolean }, bareSyntax?: string): Attempt {
  const problems: string[] = [];
  type Log = { warn: (...a: unknown[]) => void; error: (...a: unknown[]) => void };
  const log = dcmjs.log as unknown as Log;
  const vlog = dcmjs.log.getLogger('validation.dcmjs') as unknown as Log;
  const { warn, error } = log;
  const vError = vlog.error;
  const collect = (...args: unknown[]) => {
    problems.push(args.map((x) => (x instanceof Error ? x.message : typeof x === 'string' ? x : '')).filter(Boolean).join(' '));
  };
  log.warn = collect;
  log.error = collect;
  // "Invalid vr type": dcmjs met bytes where a VR should be (wrong VR mode, or damage).
  vlog.error = (...args: unknown[]) => {
    if (/Invalid vr type/.test(String(args[0]))) collect(...args);
  };
  try {
    const parsed = parseRaw(bytes, path, opts, bareSyntax);
    const part10 = hasMagic(bytes, [0x44, 0x49, 0x43, 0x4d], 128);
    let metaEnd = 0;
    // (0002,0000) UL group length right after "DICM": the meta group ends 12 bytes + its value later.
    if (part10 && bytes.length >= 144 && bytes[132] === 0x02 && bytes[133] === 0 && bytes[134] === 0 && bytes[135] === 0) {
      metaEnd = 144 + new DataView(bytes.buffer, bytes.byteOffset + 140, 4).getUint32(0, true);
    }
    return { parsed, problems: problems.filter((p) => !/^Unsupported character set|^Using multiple character sets/.test(p)), part10, metaEnd };
  } finally {
    log.warn = warn;
    log.error = error;
    vlog.error = vError;
  }
}

function parseRaw(bytes: Uint8Array, path: string, opts: { headerOnly?: boolean }, bareSyntax?: string): ParsedDicom {
  const options = { ignoreErrors: true, untilTag: opts.headerOnly ? '7FE00010' : null, includeUntilTagValue: false, noCopy: false };
  const part10 = hasMagic(bytes, [0x44, 0x49, 0x43, 0x4d], 128);
  const attempts: Array<{ buffer: ArrayBuffer; bare: boolean }> = [];
  if (part10) {
    attempts.push({ buffer: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, bare: false });
  } else {
    const explicit = bytes.length > 6 && /^[A-Z]{2}$/.test(String.fromCharCode(bytes[4]!, bytes[5]!));
    const metaFirst = bytes.length > 2 && bytes[0] === 0x02 && bytes[1] === 0x00;
    attempts.push({ buffer: metaFirst && !bareSyntax ? withPreamble(bytes) : wrapBare(bytes, bareSyntax ?? (explicit ? '1.2.840.10008.1.2.1' : '1.2.840.10008.1.2')), bare: true });
  }
  let lastError: unknown;
  for (const a of attempts) {
    try {
      const dd = DicomMessage.readFile(a.buffer, options);
      const dataset = DicomMetaDictionary.naturalizeDataset(dd.dict);
      const tsEl = dd.meta['00020010'];
      const transferSyntax = String(tsEl?.Value?.[0] ?? '1.2.840.10008.1.2.1').replace(/\0/g, '').trim();
      dataset._meta = dd.meta as unknown as Record<string, unknown>;
      if (!Object.keys(dataset).some((k) => !k.startsWith('_'))) throw new Error('no data elements found');
      return { dataset, transferSyntax, bare: a.bare };
    } catch (e) {
      lastError = e;
    }
  }
  throw new MedmaskError('CORRUPT_FILE', `${path}: not a readable DICOM file (${printable((lastError as Error)?.message ?? 'unknown error', 160)})`, {
    cause: lastError,
    hint: 'the file is truncated or not DICOM; copy it again from the PACS or export it again',
  });
}
