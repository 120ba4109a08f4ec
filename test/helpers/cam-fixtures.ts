/**
 * Loader for the torch-autograd reference fixtures written by tools/fixtures/make_cam_fixtures.py
 * (test/fixtures/cam: ONNX models, tensors.bin float32 little-endian, index.json) and by
 * tools/fixtures/make_densenet121_cam_fixture.py (test/fixtures/cam/densenet121, gzipped).
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

const DIR = new URL('../fixtures/cam/', import.meta.url);

export interface CamCase {
  input: number;
  class: number;
  key: string;
  methods: string[];
}
export interface CamTarget {
  module: string;
  cases: CamCase[];
}
export interface CamIndex {
  inputShape: number[];
  numClasses: number;
  models: Record<string, { file: string; targets?: Record<string, CamTarget>; sameWeightsAs?: string; dropout?: number }>;
  tensors: Record<string, { offset: number; shape: number[] }>;
}

let cache: { index: CamIndex; all: Float32Array } | undefined;

function load(): { index: CamIndex; all: Float32Array } {
  if (!cache) {
    const index = JSON.parse(readFileSync(new URL('index.json', DIR), 'utf8')) as CamIndex;
    const buf = readFileSync(new URL('tensors.bin', DIR));
    const all = new Float32Array(buf.byteLength / 4);
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (let i = 0; i < all.length; i++) all[i] = dv.getFloat32(i * 4, true);
    cache = { index, all };
  }
  return cache;
}

/** The fixture index. */
export function camIndex(): CamIndex {
  return load().index;
}

/** One reference tensor by name, with its shape. */
export function camTensor(name: string): { shape: number[]; data: Float32Array } {
  const { index, all } = load();
  const t = index.tensors[name];
  if (!t) throw new Error(`no fixture tensor "${name}"`);
  const n = t.shape.reduce((a, b) => a * b, 1);
  return { shape: t.shape, data: all.subarray(t.offset, t.offset + n) };
}

/** Path of a fixture model file. */
export function camModelPath(name: string): string {
  return new URL(camIndex().models[name]!.file, DIR).pathname;
}

/** max |a − b| / max |b|: the relative error used against the references. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}

/** Pearson correlation. */
export function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = b.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]! - ma;
    const y = b[i]! - mb;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** The DenseNet-121 reference (tools/fixtures/make_densenet121_cam_fixture.py, pytorch-grad-cam's hooks). */
export interface Densenet121Fixture {
  index: { inputShape: number[]; numClasses: number; cases: { class: number; key: string }[] };
  /** One reference tensor by name. */
  tensor(name: string): { shape: number[]; data: Float32Array };
  /** The fixture folder (model.json, input.png). */
  dir: string;
  /** The gunzipped ONNX model. */
  onnx(): Uint8Array;
}

/** Load test/fixtures/cam/densenet121 (gzipped tensors and model). */
export function densenet121Fixture(): Densenet121Fixture {
  const dir = new URL('densenet121/', DIR);
  const raw = JSON.parse(readFileSync(new URL('index.json', dir), 'utf8')) as Densenet121Fixture['index'] & { tensors: CamIndex['tensors'] };
  const buf = gunzipSync(readFileSync(new URL('tensors.bin.gz', dir)));
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const all = Float32Array.from({ length: buf.byteLength / 4 }, (_, i) => dv.getFloat32(i * 4, true));
  return {
    index: raw,
    dir: dir.pathname,
    tensor(name) {
      const t = raw.tensors[name];
      if (!t) throw new Error(`no fixture tensor "${name}"`);
      return { shape: t.shape, data: all.subarray(t.offset, t.offset + t.shape.reduce((a, b) => a * b, 1)) };
    },
    onnx: () => gunzipSync(readFileSync(new URL('model.onnx.gz', dir))),
  };
}
