/**
 * A DICOM SEG for the archive a series came from: medmask writes SEGs against its de-identified
 * headers (`src/io/dicom-seg.ts`); this puts the archive's original UIDs back in every reference
 * (study, series, frame of reference, each referenced instance) and the original patient / study
 * attributes in place of the emptied ones, so that the archive files the SEG with its study and a
 * viewer (OHIF, 3D Slicer) finds its source series. The SEG's own series and instance UIDs stay
 * the new ones medmask made. Runs only on the server, with the mapping table's contents.
 * @module
 */
import dcmjs, { type NaturalizedDataset } from 'dcmjs';
import { MedmaskError } from '../core/errors.js';

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

/** Options for {@link reidentifySeg}. */
export interface ReidentifyOptions {
  /** De-identified UID → original. */
  uidMap: ReadonlyMap<string, string>;
  /** Original patient / study attributes (PatientName, PatientID, StudyDate, …). */
  phi: Readonly<Record<string, string>>;
}

/** Replace mapped UIDs everywhere in a naturalized dataset (sequences included). */
function mapUids(ds: NaturalizedDataset, map: ReadonlyMap<string, string>, own: ReadonlySet<string>): number {
  let n = 0;
  for (const [k, v] of Object.entries(ds)) {
    if (k === 'PixelData' || k.startsWith('_')) continue;
    if (typeof v === 'string') {
      const o = map.get(v);
      if (o !== undefined && !own.has(v)) {
        ds[k] = o;
        n++;
      }
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x = v[i] as unknown;
        if (typeof x === 'string' && map.has(x) && !own.has(x)) {
          v[i] = map.get(x)!;
          n++;
        } else if (x && typeof x === 'object' && !ArrayBuffer.isView(x) && !(x instanceof ArrayBuffer)) {
          n += mapUids(x as NaturalizedDataset, map, own);
        }
      }
    } else if (v && typeof v === 'object' && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer) && !('Alphabetic' in (v as object))) {
      n += mapUids(v as NaturalizedDataset, map, own);
    }
  }
  return n;
}

/**
 * Turn a SEG written against de-identified headers into one that references the archive's originals.
 * @param segBytes - the Part 10 SEG (from `encodeDicomSeg`)
 * @returns the new Part 10 bytes, and how many UID references were replaced
 * @throws MedmaskError USAGE when the SEG references no UID of the mapping (wrong series)
 * @example
 * const seg = encodeDicomSeg(labels, { sourceHeaders });
 * const { bytes } = reidentifySeg(seg.bytes, { uidMap, phi });
 */
export function reidentifySeg(segBytes: Uint8Array, o: ReidentifyOptions): { bytes: Uint8Array; replaced: number } {
  const buf = segBytes.buffer.slice(segBytes.byteOffset, segBytes.byteOffset + segBytes.byteLength) as ArrayBuffer;
  const dict = DicomMessage.readFile(buf);
  const ds = DicomMetaDictionary.naturalizeDataset(dict.dict);
  const own = new Set([String(ds.SOPInstanceUID), String(ds.SeriesInstanceUID)]);
  const replaced = mapUids(ds, o.uidMap, own);
  if (!replaced) throw new MedmaskError('USAGE', 'the DICOM SEG references none of the series\' UIDs', { hint: 'the mask was not made on the imported series; export it de-identified instead' });
  for (const [k, v] of Object.entries(o.phi)) {
    if (k === 'PatientName' || k === 'ReferringPhysicianName') ds[k] = [{ Alphabetic: v }];
    else ds[k] = v;
  }
  delete ds.PatientIdentityRemoved;
  delete ds.DeidentificationMethod;
  delete ds.DeidentificationMethodCodeSequence;
  dict.dict = DicomMetaDictionary.denaturalizeDataset(ds);
  return { bytes: new Uint8Array(dict.write()), replaced };
}
