// Reading a DICOM SEG back with dicom-parser — independent of dcmjs, which writes them — for the
// tests that check SEG output (CLI exports and the server's export).
import { readFileSync } from 'node:fs';
import dicomParser from 'dicom-parser';

/** The items of a sequence element as data sets (none when the element is absent). */
export function seqOf(ds: dicomParser.DataSet, tag: string): dicomParser.DataSet[] {
  return (ds.elements[tag]?.items ?? []).map((i) => i.dataSet!);
}

/** Parse a SEG and unpack its 1-bit frames (bits little-endian within each byte, frames contiguous). */
export function segFrames(bytes: Uint8Array): { d: dicomParser.DataSet; rows: number; cols: number; frames: Uint8Array[] } {
  const d = dicomParser.parseDicom(bytes);
  const rows = d.uint16('x00280010')!, cols = d.uint16('x00280011')!;
  const nFrames = Number(d.string('x00280008'));
  const px = d.elements.x7fe00010!;
  const plane = rows * cols;
  const frames: Uint8Array[] = [];
  for (let f = 0; f < nFrames; f++) {
    const out = new Uint8Array(plane);
    for (let p = 0; p < plane; p++) {
      const bit = f * plane + p;
      out[p] = (bytes[px.dataOffset + (bit >> 3)]! >> (bit & 7)) & 1;
    }
    frames.push(out);
  }
  return { d, rows, cols, frames };
}

/** What tools/fixtures recorded for the DICOM SEG fixture (pydicom, dciodvfy): test/fixtures/dicom-seg/expected.json. */
export interface SegExpected {
  salt: string;
  secrets: Record<string, string>;
  original_uids: string[];
  shape: [number, number, number];
  image_orientation_patient: number[];
  pixel_spacing: number[];
  slice_positions: number[][];
  source_sop_instance_uids_remapped: string[];
  study_instance_uid_remapped: string;
  series_instance_uid_remapped: string;
  frame_of_reference_uid_remapped: string;
  number_of_frames: number;
  segments: { number: number; value: number; name: string; label: string; algorithm_type: string; algorithm_name: string | null; category: string[]; type: string[] }[];
  snomed: Record<string, [string, string, string]>;
  frames: { segment: number; slice: number; position: number[]; referenced_sop_instance_uid: string; dimension_index_values: number[]; pixels: number }[];
  dciodvfy: Record<string, string[]>;
}

/** The SEG fixture's expected.json. */
export function loadSegExpected(): SegExpected {
  return JSON.parse(readFileSync(new URL('../fixtures/dicom-seg/expected.json', import.meta.url), 'utf8')) as SegExpected;
}
