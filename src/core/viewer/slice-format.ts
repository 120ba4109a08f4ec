/**
 * Reader of the server's binary slice responses (`application/x-medmask-slice`, written by
 * `src/server/routes/viewer.ts`): bytes 0–3 `MMS1`, 4–7 the JSON header's length (uint32 LE), the
 * header, then each layer 8-byte aligned. Layers become typed-array views on the response buffer:
 * no copy.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** A layer as described in the header. */
export interface SliceLayerInfo {
  name: string;
  type: string;
  /** Byte offset from the start of the payload. */
  offset: number;
  /** Number of values. */
  length: number;
}

/** The header of a slice response. */
export interface SliceHeader {
  axis: 'x' | 'y' | 'z';
  index: number;
  depth: number;
  width: number;
  height: number;
  tile: { x: number; y: number; w: number; h: number };
  version: number;
  window?: [number, number];
  layers: SliceLayerInfo[];
}

/** Typed arrays a layer can be. */
export type LayerArray = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

const CTORS: Record<string, new (b: ArrayBuffer, o: number, n: number) => LayerArray> = {
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
};

/**
 * Parse a slice response.
 * @param buf - the whole response body
 * @returns the header and each layer by name
 * @example
 * const { header, layers } = parseSlice(await res.arrayBuffer());
 * layers.image; // Int16Array of header.tile.w × header.tile.h
 */
export function parseSlice(buf: ArrayBuffer): { header: SliceHeader; layers: Record<string, LayerArray> } {
  const u8 = new Uint8Array(buf);
  if (u8.length < 8 || u8[0] !== 0x4d || u8[1] !== 0x4d || u8[2] !== 0x53 || u8[3] !== 0x31) throw new MedmaskError('CORRUPT_FILE', 'not a medmask slice response (no MMS1 signature)');
  const n = new DataView(buf).getUint32(4, true);
  if (8 + n > u8.length) throw new MedmaskError('CORRUPT_FILE', `slice response: header of ${n} bytes exceeds the ${u8.length}-byte body`);
  let text = '';
  for (let i = 8; i < 8 + n; i += 4096) text += String.fromCharCode(...u8.subarray(i, Math.min(8 + n, i + 4096)));
  const header = JSON.parse(text) as SliceHeader;
  const start = (8 + n + 7) & ~7;
  const layers: Record<string, LayerArray> = {};
  for (const l of header.layers) {
    const C = CTORS[l.type];
    if (!C) throw new MedmaskError('CORRUPT_FILE', `slice response: layer ${l.name} has unknown type ${l.type}`);
    const bytes = l.length * (C as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    if (start + l.offset + bytes > u8.length) throw new MedmaskError('CORRUPT_FILE', `slice response: layer ${l.name} runs past the end of the body`);
    layers[l.name] = new C(buf, start + l.offset, l.length);
  }
  return { header, layers };
}
