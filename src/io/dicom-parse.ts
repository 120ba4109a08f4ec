/**
 * Parsing DICOM bytes with dcmjs: Part 10 files (128-byte preamble + "DICM") and bare datasets
 * without preamble or file meta information (older exports, some `.dcm` files), the content probe
 * used by the DICOM readers, and names for the transfer syntaxes and SOP classes that errors cite.
 * @module
 */
import dcmjs, { type NaturalizedDataset } from 'dcmjs';
import { MedmaskError } from '../core/errors.js';
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
  const options = { ignoreErrors: true, untilTag: opts.headerOnly ? '7FE00010' : null, includeUntilTagValue: false, noCopy: false };
  const part10 = hasMagic(bytes, [0x44, 0x49, 0x43, 0x4d], 128);
  const attempts: Array<{ buffer: ArrayBuffer; bare: boolean }> = [];
  if (part10) {
    attempts.push({ buffer: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, bare: false });
  } else {
    const explicit = bytes.length > 6 && /^[A-Z]{2}$/.test(String.fromCharCode(bytes[4]!, bytes[5]!));
    const metaFirst = bytes.length > 2 && bytes[0] === 0x02 && bytes[1] === 0x00;
    attempts.push({ buffer: metaFirst ? withPreamble(bytes) : wrapBare(bytes, explicit ? '1.2.840.10008.1.2.1' : '1.2.840.10008.1.2'), bare: true });
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
  throw new MedmaskError('CORRUPT_FILE', `${path}: not a readable DICOM file (${(lastError as Error)?.message ?? 'unknown error'})`, {
    cause: lastError,
    hint: 'the file is truncated or not DICOM; copy it again from the PACS or export it again',
  });
}
