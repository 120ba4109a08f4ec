// Fuzzing tier: seeded mutations (truncation, byte flips, header fields at extreme values, gzip
// corruption) of NIfTI, NRRD, MetaImage, DICOM, PNG, TIFF, ONNX, model manifests and label CSVs,
// through the readers and through the upload API. Every case must end in a volume (or model, or
// rows) or in a MedmaskError with a code — never another exception, a hang past its budget, or RSS
// past the cap. Inputs that once failed live in test/fixtures/fuzz/regressions and are replayed
// first. FUZZ_SAVE=1 writes new failures there; FUZZ_SCALE=4 runs four times as many cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { isMedmaskError } from '../../src/core/errors.js';
import { mulberry32 } from '../../src/core/random.js';
import { readVolume } from '../../src/io/index.js';
import { readLabelsCsv } from '../../src/io/dataset.js';
import { readManifest, resolveModel } from '../../src/runtime/manifest.js';
import { mha, nrrd, smallNifti } from '../helpers/hostile.js';
import { multipartBody, startTestServer } from '../helpers/server.js';
import { makeDataset } from '../helpers/api-suite.js';

const FIX = new URL('../fixtures/', import.meta.url).pathname;
const REGRESSIONS = join(FIX, 'fuzz', 'regressions');
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
/** Budget of one case; past it the case counts as a hang. */
const CASE_BUDGET_MS = 20_000;
/** RSS above this after a case counts as a failure (the inputs are all < 2 MB). */
const RSS_CAP = 1.5 * 2 ** 30;

const dir = mkdtempSync(join(tmpdir(), 'medmask-fuzz-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

type Rng = () => number;
const int = (rng: Rng, n: number) => Math.floor(rng() * n);

interface Outcome {
  kind: string;
  label: string;
  ext: string;
  bytes: Buffer;
  problem?: string;
}

const stats = { cases: 0, ok: 0, refused: 0, byCode: new Map<string, number>() };

async function check(kind: string, label: string, ext: string, bytes: Buffer, run: (path: string) => Promise<unknown>): Promise<Outcome> {
  const path = join(dir, `case-${stats.cases}${ext}`);
  writeFileSync(path, bytes);
  stats.cases++;
  let timer: NodeJS.Timeout | undefined;
  const out: Outcome = { kind, label, ext, bytes };
  try {
    await Promise.race([run(path), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`HANG: no answer within ${CASE_BUDGET_MS} ms`)), CASE_BUDGET_MS)))]);
    stats.ok++;
  } catch (e) {
    if (isMedmaskError(e) && e.code !== 'INTERNAL') {
      stats.refused++;
      stats.byCode.set(e.code, (stats.byCode.get(e.code) ?? 0) + 1);
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u0008\u000e-\u001f]/.test(e.message)) out.problem = `raw bytes in the message: ${JSON.stringify(e.message.slice(0, 200))}`;
    } else {
      out.problem = `${isMedmaskError(e) ? `INTERNAL ${e.message}` : `${(e as Error)?.name}: ${(e as Error)?.message}`}`.slice(0, 300);
    }
  } finally {
    clearTimeout(timer);
    rmSync(path, { force: true });
  }
  const rss = process.memoryUsage().rss;
  if (rss > RSS_CAP) out.problem = `${out.problem ?? ''} RSS ${(rss / 2 ** 20).toFixed(0)} MiB over the cap`.trim();
  return out;
}

function save(o: Outcome): string {
  const name = `${o.kind}-${createHash('sha256').update(o.bytes).digest('hex').slice(0, 12)}${o.ext}`;
  if (process.env.FUZZ_SAVE === '1') {
    mkdirSync(REGRESSIONS, { recursive: true });
    writeFileSync(join(REGRESSIONS, name), o.bytes);
  }
  return name;
}

// ── mutations ──

function truncate(rng: Rng, b: Buffer): Buffer {
  return b.subarray(0, int(rng, b.length));
}

function flip(rng: Rng, b: Buffer, headerBytes = 512): Buffer {
  const out = Buffer.from(b);
  const k = 1 + int(rng, 8);
  for (let i = 0; i < k; i++) {
    const at = rng() < 0.7 ? int(rng, Math.min(headerBytes, out.length)) : int(rng, out.length);
    out[at] = int(rng, 256);
  }
  return out;
}

const EXTREME_NUMBERS = [0, -1, 1, 32767, -32768, 65535, 2 ** 31 - 1, -(2 ** 31), NaN, Infinity, -Infinity, 1e38, -1e38, 1e-38];

/** NIfTI-1 header fields (nifti1.h offsets) set to extreme values. */
function niftiField(rng: Rng, b: Buffer): Buffer {
  const out = Buffer.from(b);
  const fields: Array<[number, 'i16' | 'f32' | 'i32']> = [
    [0, 'i32'], [40, 'i16'], [42, 'i16'], [44, 'i16'], [46, 'i16'], [48, 'i16'], [70, 'i16'], [72, 'i16'],
    [76, 'f32'], [80, 'f32'], [84, 'f32'], [88, 'f32'], [108, 'f32'], [112, 'f32'], [116, 'f32'], [252, 'i16'], [254, 'i16'],
    [256, 'f32'], [260, 'f32'], [264, 'f32'], [268, 'f32'], [280, 'f32'], [284, 'f32'], [296, 'f32'], [316, 'f32'], [68, 'i16'],
  ];
  const n = 1 + int(rng, 3);
  for (let i = 0; i < n; i++) {
    const [off, t] = fields[int(rng, fields.length)]!;
    const v = EXTREME_NUMBERS[int(rng, EXTREME_NUMBERS.length)]!;
    if (t === 'f32') out.writeFloatLE(v, off);
    else if (t === 'i16') out.writeInt16LE(Number.isFinite(v) ? Math.max(-32768, Math.min(32767, Math.trunc(v))) : 0, off);
    else out.writeInt32LE(Number.isFinite(v) ? Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.trunc(v))) : 0, off);
  }
  return out;
}

const EXTREME_TOKENS = ['0', '-1', '-2', 'nan', 'NaN', 'inf', '-inf', '1e308', '2147483648', '99999999999', '1A', '', '0.0', '1e-320', '3.5'];

/** A number in a text header (or JSON / CSV) replaced by an extreme token. */
function textField(rng: Rng, b: Buffer, headerEnd = b.length): Buffer {
  const head = b.subarray(0, headerEnd).toString('latin1');
  const nums = [...head.matchAll(/-?\d+(\.\d+)?(e-?\d+)?/gi)];
  if (!nums.length) return flip(rng, b);
  const m = nums[int(rng, nums.length)]!;
  const tok = EXTREME_TOKENS[int(rng, EXTREME_TOKENS.length)]!;
  const text = head.slice(0, m.index) + tok + head.slice(m.index! + m[0].length);
  return Buffer.concat([Buffer.from(text, 'latin1'), b.subarray(headerEnd)]);
}

/** Damage inside a gzip stream: flipped body bytes, a cut, or garbage after the end. */
function gzipDamage(rng: Rng, gz: Buffer): Buffer {
  const r = rng();
  if (r < 0.4) {
    const out = Buffer.from(gz);
    for (let i = 0; i < 1 + int(rng, 4); i++) out[10 + int(rng, Math.max(1, out.length - 18))] = int(rng, 256);
    return out;
  }
  if (r < 0.7) return gz.subarray(0, 10 + int(rng, Math.max(1, gz.length - 10)));
  if (r < 0.85) return Buffer.concat([gz, Buffer.from(Array.from({ length: 1 + int(rng, 64) }, () => int(rng, 256)))]);
  const out = Buffer.from(gz);
  out.writeUInt32LE(int(rng, 2 ** 32), out.length - 4); // ISIZE lies
  return out;
}

interface Seed {
  kind: string;
  ext: string;
  bytes: Buffer;
  headerBytes?: number;
  mutations: Array<(rng: Rng, b: Buffer) => Buffer>;
  run: (path: string) => Promise<unknown>;
  cases: number;
}

function seeds(): Seed[] {
  const read = (p: string) => readVolume(p);
  const nii = smallNifti({ dims: [5, 4, 3], srow: [-1, 0, 0, 2, 0, -1, 0, 3, 0, 0, 2, 4], pixdim: [1, 1, 1, 2] });
  const nrrdBytes = nrrd();
  const mhaRaw = mha();
  const mhaZ = mha({ CompressedData: 'True' });
  const nrrdGz = nrrd({ encoding: 'gzip' }, gzipSync(nrrd().subarray(nrrd().length - 48)));
  const modelDir = join(dir, 'model');
  mkdirSync(modelDir, { recursive: true });
  copyFileSync(join(FIX, '..', '..', 'models', 'demo', 'demo-resnet', 'model.onnx'), join(modelDir, 'model.onnx'));
  const manifest = readFileSync(join(FIX, '..', '..', 'models', 'demo', 'demo-resnet', 'model.json'));
  const onnx = readFileSync(join(FIX, 'cam', 'densenet.onnx'));
  const imagesDir = join(dir, 'images');
  mkdirSync(imagesDir, { recursive: true });
  for (const n of ['a.png', 'b.png', 'c.png']) copyFileSync(join(FIX, 'images', 'grey8.png'), join(imagesDir, n));
  const csv = Buffer.from('image,label,site\na.png,healthy,1\nb.png,nodule,2\nc.png,healthy,3\n');
  const scale = (n: number) => Math.max(1, Math.round(n * SCALE));
  return [
    { kind: 'nifti', ext: '.nii', bytes: nii, mutations: [truncate, flip, niftiField, niftiField], run: read, cases: scale(50) },
    { kind: 'nifti-gz', ext: '.nii.gz', bytes: gzipSync(nii), mutations: [gzipDamage, (r, b) => gzipSync(niftiField(r, nii)), (r, b) => gzipSync(truncate(r, nii)), truncate], run: read, cases: scale(40) },
    { kind: 'nrrd', ext: '.nrrd', bytes: nrrdBytes, mutations: [truncate, flip, (r, b) => textField(r, b, b.length - 48), (r, b) => textField(r, b, b.length - 48)], run: read, cases: scale(35) },
    { kind: 'nrrd-gz', ext: '.nrrd', bytes: nrrdGz, mutations: [(r, b) => Buffer.concat([b.subarray(0, b.indexOf('\n\n') + 2), gzipDamage(r, b.subarray(b.indexOf('\n\n') + 2))]), (r, b) => textField(r, b, b.indexOf('\n\n'))], run: read, cases: scale(15) },
    { kind: 'mha', ext: '.mha', bytes: mhaRaw, mutations: [truncate, flip, (r, b) => textField(r, b, b.length - 48), (r, b) => textField(r, b, b.length - 48)], run: read, cases: scale(30) },
    { kind: 'mha-z', ext: '.mha', bytes: mhaZ, mutations: [truncate, (r, b) => textField(r, b, b.indexOf('ElementDataFile')), (r, b) => flip(r, b, b.length)], run: read, cases: scale(20) },
    { kind: 'dicom', ext: '.dcm', bytes: readFileSync(join(FIX, 'dicom', 'single', 'ct_small.dcm')), mutations: [truncate, (r, b) => flip(r, b, 1400), (r, b) => flip(r, b, b.length)], run: read, cases: scale(40) },
    { kind: 'dicom-rle', ext: '.dcm', bytes: readFileSync(join(FIX, 'dicom', 'single', 'mr_small_rle.dcm')), mutations: [truncate, (r, b) => flip(r, b, b.length), (r, b) => flip(r, b, 1200)], run: read, cases: scale(20) },
    { kind: 'png', ext: '.png', bytes: readFileSync(join(FIX, 'images', 'grey16.png')), mutations: [truncate, (r, b) => flip(r, b, 40), (r, b) => flip(r, b, b.length)], run: read, cases: scale(20) },
    { kind: 'tiff', ext: '.tif', bytes: readFileSync(join(FIX, 'images', 'grey16.tif')), mutations: [truncate, (r, b) => flip(r, b, 200), (r, b) => flip(r, b, b.length)], run: read, cases: scale(15) },
    { kind: 'onnx', ext: '.onnx', bytes: onnx, mutations: [truncate, (r, b) => flip(r, b, 2000), (r, b) => flip(r, b, b.length)], run: (p) => resolveModel(p), cases: scale(15) },
    {
      kind: 'manifest', ext: '.json', bytes: manifest, mutations: [truncate, flip, textField, textField, (r, b) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), textField(r, b)])],
      run: (p) => { const m = join(modelDir, 'model.json'); copyFileSync(p, m); return readManifest(m); }, cases: scale(25),
    },
    {
      kind: 'csv', ext: '.csv', bytes: csv, mutations: [truncate, flip, textField, (r, b) => Buffer.from(b.toString('utf8').replace('a.png', ['../../../../etc/passwd', '/etc/passwd', 'caf\u00e9.png', ''][int(r, 4)]!), r() < 0.5 ? 'latin1' : 'utf16le')],
      run: (p) => { const c = join(imagesDir, 'labels.csv'); copyFileSync(p, c); return readLabelsCsv(c, { imagesDir }); }, cases: scale(25),
    },
  ];
}

test('fuzz: regression inputs (every input that once failed) end in a result or a coded error', async () => {
  const failures: string[] = [];
  const files = existsSync(REGRESSIONS) ? readdirSync(REGRESSIONS) : [];
  for (const f of files) {
    const ext = /\.nii\.gz$/.test(f) ? '.nii.gz' : f.slice(f.lastIndexOf('.'));
    const o = await check('regression', f, ext, readFileSync(join(REGRESSIONS, f)), (p) => readVolume(p));
    if (o.problem) failures.push(`${f}: ${o.problem}`);
  }
  assert.deepEqual(failures, []);
  console.log(`regressions: ${files.length} inputs replayed`);
});

test('fuzz: seeded mutations through the readers end in a result or a coded MedmaskError', async () => {
  const failures: string[] = [];
  for (const [si, s] of seeds().entries()) {
    const rng = mulberry32(1000 + si);
    for (let i = 0; i < s.cases; i++) {
      const m = s.mutations[i % s.mutations.length]!;
      const bytes = m(rng, s.bytes);
      const o = await check(s.kind, `${s.kind} #${i} (${m.name || 'mutation'})`, s.ext, bytes, s.run);
      if (o.problem) failures.push(`${o.label} → ${save(o)}: ${o.problem}`);
    }
  }
  console.log(`fuzz: ${stats.cases} cases, ${stats.ok} read, ${stats.refused} refused (${[...stats.byCode].map(([c, n]) => `${c} ${n}`).join(', ')}), ${failures.length} failures`);
  assert.deepEqual(failures, []);
});

test('fuzz: mutated uploads answer 201 or a 4xx with an error code, never 500', async () => {
  const s = await startTestServer({ maxUploadBytes: 16 * 2 ** 20 });
  try {
    const ds = await makeDataset(s, 'fuzz');
    const rng = mulberry32(77);
    const nii = smallNifti();
    const png = readFileSync(join(FIX, 'images', 'grey8.png'));
    const dcm = readFileSync(join(FIX, 'dicom', 'single', 'ct_small.dcm'));
    const bad: string[] = [];
    const n = Math.max(3, Math.round(8 * SCALE));
    for (let i = 0; i < n; i++) {
      for (const [name, bytes] of [
        [`n${i}.nii.gz`, gzipDamage(rng, gzipSync(niftiField(rng, nii)))],
        [`p${i}.png`, flip(rng, png, png.length)],
        [`d${i}.dcm`, rng() < 0.5 ? truncate(rng, dcm) : flip(rng, dcm, 1400)],
      ] as Array<[string, Buffer]>) {
        const r = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody([{ name, data: bytes }]) });
        stats.cases++;
        if (r.statusCode >= 500 || (r.statusCode >= 400 && !r.json().error)) bad.push(`${name}: ${r.statusCode} ${r.body.slice(0, 200)}`);
      }
    }
    const health = await s.app.inject({ url: '/health' });
    assert.equal(health.statusCode, 200);
    assert.deepEqual(bad, []);
  } finally {
    await s.close();
  }
});
