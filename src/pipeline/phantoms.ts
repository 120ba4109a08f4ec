/**
 * Write seeded phantom data sets to disk: 2D chest radiographs with image-level labels and exact
 * lesion masks, and 3D abdominal CT in the nnU-Net v2 layout with partial and full labels.
 * Layouts are documented in docs/phantoms.md. Same seed and options → identical bytes.
 * @module
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { chestPhantom, oodPhantom, OOD_KINDS, NEAR_OOD_KINDS, CHEST_LABELS, type ChestLabel, type OodKind } from '../core/phantom/chest.js';
import { abdomenPhantom, assignSources, ABDOMEN_LABELS, type SourceName } from '../core/phantom/abdomen.js';
import { Rng } from '../core/random.js';
import { MedmaskError } from '../core/errors.js';
import { createVolume } from '../core/volume.js';
import { atomicWrite } from '../io/atomic.js';
import { writeVolume } from '../io/index.js';

/** Called after each item is written. */
export type OnProgress = (done: number, total: number) => void;

/** Options for {@link writeChestDataset}. */
export interface ChestDatasetOptions {
  n: number;
  seed: number;
  /** Image size in pixels (default 256). */
  size?: number;
  /** Out-of-distribution images to add, as a fraction of n (default 0.1; 0 for none). */
  oodFraction?: number;
  /** Lesion difficulty 0…1 (default 0.3). */
  difficulty?: number;
  /** Probability that an image is abnormal (default 0.6). */
  abnormalRate?: number;
  /**
   * Near-OOD chest images to add under near-ood/, as a fraction of n (default 0: none, and the
   * rest of the set is byte-identical whatever this is).
   */
  nearOodFraction?: number;
}

/** Options for {@link writeAbdomenDataset}. */
export interface AbdomenDatasetOptions {
  n: number;
  seed: number;
  /** In-plane voxels (default 96). */
  size?: number;
  /** Restrict to these sources (default: all, by weight). */
  sources?: SourceName[];
  /**
   * Realistic cases (default false): each source's scanner profile and findings at its rates
   * (docs/phantoms.md); dataset.json records each case's phase, kernel, noise and findings.
   */
  realistic?: boolean;
}

/** What a writer produced. */
export interface WrittenDataset {
  dir: string;
  /** Files written, relative to dir. */
  files: string[];
  /** Count per label / source / kind. */
  counts: Record<string, number>;
}

function checkN(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new MedmaskError('USAGE', `--n ${n} must be a whole number from 1 to 1000000`, { hint: 'say how many images or volumes to make, e.g. --n 200' });
}

function caseSeed(seed: number, i: number): number {
  return new Rng(seed).fork(`case-${i}`).seed;
}

/** Deterministic split: ≈ 70 % train, 15 % val, 15 % test, by position in a seeded shuffle. */
function splits(n: number, seed: number): ('train' | 'val' | 'test')[] {
  const order = new Rng(seed).fork('split').shuffle(Array.from({ length: n }, (_, i) => i));
  const out = new Array<'train' | 'val' | 'test'>(n);
  const nTest = Math.round(n * 0.15), nVal = Math.round(n * 0.15);
  order.forEach((idx, pos) => (out[idx] = pos < nTest ? 'test' : pos < nTest + nVal ? 'val' : 'train'));
  return out;
}

function png(data: Uint8Array, size: number) {
  return createVolume([size, size, 1], 'uint8', { data, meta: { source: 'phantom', modality: 'DX' } });
}

const scale255 = (m: Uint8Array) => m.map((v) => (v ? 255 : 0));

/**
 * Write a 2D chest data set: images/, masks/, lungs/, labels.csv, truth.json and, unless
 * oodFraction is 0, ood/ with ood.csv; with a nearOodFraction above 0 also near-ood/ with
 * near-ood.csv.
 * @param dir - output folder (created; files inside are overwritten)
 * @param opts - n, seed, size, difficulty, OOD fraction
 * @param onProgress - progress callback
 * @returns the files written and the counts per label
 * @example
 * await writeChestDataset('data/chest', { n: 200, seed: 1 });
 */
export async function writeChestDataset(dir: string, opts: ChestDatasetOptions, onProgress?: OnProgress): Promise<WrittenDataset> {
  checkN(opts.n);
  const size = opts.size ?? 256;
  const nOod = Math.round(opts.n * (opts.oodFraction ?? 0.1));
  for (const sub of ['images', 'masks', 'lungs', ...(nOod ? ['ood'] : [])]) await mkdir(join(dir, sub), { recursive: true });
  const files: string[] = [];
  const counts: Record<string, number> = Object.fromEntries(CHEST_LABELS.map((l) => [l, 0]));
  const split = splits(opts.n, opts.seed);
  const rows = ['image,label,abnormal,mask,lungs,split,presence'];
  const truth: Record<string, unknown>[] = [];
  const nNear = Math.round(opts.n * (opts.nearOodFraction ?? 0));
  const total = opts.n + nOod + nNear;
  for (let i = 0; i < opts.n; i++) {
    const name = `img_${String(i).padStart(5, '0')}.png`;
    const p = chestPhantom({ seed: caseSeed(opts.seed, i), size, ...(opts.difficulty !== undefined ? { difficulty: opts.difficulty } : {}), ...(opts.abnormalRate !== undefined ? { abnormalRate: opts.abnormalRate } : {}) });
    await writeVolume(png(p.image, size), join(dir, 'images', name));
    await writeVolume(png(scale255(p.mask), size), join(dir, 'masks', name));
    await writeVolume(png(scale255(p.lungs), size), join(dir, 'lungs', name));
    files.push(`images/${name}`, `masks/${name}`, `lungs/${name}`);
    counts[p.label]!++;
    rows.push(`images/${name},${p.label},${p.label === 'healthy' ? 0 : 1},masks/${name},lungs/${name},${split[i]},${p.label === 'healthy' ? 'healthy' : 'abnormal'}`);
    truth.push({
      image: `images/${name}`,
      label: p.label,
      seed: p.seed,
      lesions: p.lesions.map((l) => ({ ...l, center: l.center.map((c) => +c.toFixed(2)), radius: +l.radius.toFixed(2), contrast: +l.contrast.toFixed(2) })),
      lesionPixels: p.mask.reduce((a, b) => a + b, 0),
      lungPixels: p.lungs.reduce((a, b) => a + b, 0),
    });
    onProgress?.(i + 1, total);
  }
  await atomicWrite(join(dir, 'labels.csv'), rows.join('\n') + '\n');
  await atomicWrite(join(dir, 'truth.json'), JSON.stringify({ generator: 'medmask phantoms 2d', seed: opts.seed, size, labels: CHEST_LABELS, images: truth }, null, 1) + '\n');
  files.push('labels.csv', 'truth.json');
  if (nOod) {
    const oodRows = ['image,kind'];
    const kinds = new Rng(opts.seed).fork('ood-kinds');
    for (let i = 0; i < nOod; i++) {
      const kind: OodKind = OOD_KINDS[i % OOD_KINDS.length]!;
      const name = `ood_${String(i).padStart(5, '0')}.png`;
      await writeVolume(png(oodPhantom(kind, kinds.int(0, 2 ** 31), size), size), join(dir, 'ood', name));
      files.push(`ood/${name}`);
      oodRows.push(`ood/${name},${kind}`);
      counts[`ood:${kind}`] = (counts[`ood:${kind}`] ?? 0) + 1;
      onProgress?.(opts.n + i + 1, total);
    }
    await atomicWrite(join(dir, 'ood.csv'), oodRows.join('\n') + '\n');
    files.push('ood.csv');
  }
  if (nNear) files.push(...(await writeNearOod(dir, opts, size, nNear, counts, (i) => onProgress?.(opts.n + nOod + i, total))));
  return { dir, files, counts };
}

/**
 * The near-OOD part of a chest set: near-ood/{images,masks,lungs}/ and near-ood.csv (columns image,
 * kind, label, finding, mask, lungs). Seeds come from their own stream, so nothing else changes.
 * Masks hold every lesion pixel and, for kind effusion, the effusion's pixels.
 */
async function writeNearOod(dir: string, opts: ChestDatasetOptions, size: number, count: number, counts: Record<string, number>, onItem: (i: number) => void): Promise<string[]> {
  const files: string[] = [];
  const sub = join(dir, 'near-ood');
  for (const s of ['images', 'masks', 'lungs']) await mkdir(join(sub, s), { recursive: true });
  const rows = ['image,kind,label,finding,mask,lungs'];
  const truth: Record<string, unknown>[] = [];
  const seeds = new Rng(opts.seed).fork('near-ood');
  for (let i = 0; i < count; i++) {
    const kind = NEAR_OOD_KINDS[i % NEAR_OOD_KINDS.length]!;
    const name = `near_${String(i).padStart(5, '0')}.png`;
    const p = chestPhantom({
      seed: seeds.fork(`case-${i}`).seed, size, nearOod: kind,
      ...(opts.difficulty !== undefined ? { difficulty: opts.difficulty } : {}),
      ...(opts.abnormalRate !== undefined ? { abnormalRate: opts.abnormalRate } : {}),
    });
    const rel = (s: string) => `near-ood/${s}/${name}`;
    await writeVolume(png(p.image, size), join(dir, rel('images')));
    await writeVolume(png(scale255(p.mask), size), join(dir, rel('masks')));
    await writeVolume(png(scale255(p.lungs), size), join(dir, rel('lungs')));
    files.push(rel('images'), rel('masks'), rel('lungs'));
    rows.push(`${rel('images')},${kind},${p.label},${p.effusion ? 'effusion' : ''},${rel('masks')},${rel('lungs')}`);
    truth.push({
      image: rel('images'), kind, label: p.label, seed: p.seed,
      lesions: p.lesions.length,
      ...(p.effusion ? { effusion: { side: p.effusion.side, level: +p.effusion.level.toFixed(2), pixels: p.effusion.pixels } } : {}),
      maskPixels: p.mask.reduce((a, b) => a + b, 0),
    });
    counts[`near-ood:${kind}`] = (counts[`near-ood:${kind}`] ?? 0) + 1;
    onItem(i + 1);
  }
  await atomicWrite(join(dir, 'near-ood.csv'), rows.join('\n') + '\n');
  await atomicWrite(join(dir, 'near-ood', 'truth.json'), JSON.stringify({ generator: 'medmask phantoms 2d --near-ood', seed: opts.seed, size, kinds: NEAR_OOD_KINDS, images: truth }, null, 1) + '\n');
  files.push('near-ood.csv', 'near-ood/truth.json');
  return files;
}

/**
 * Write a 3D abdominal CT data set in the nnU-Net v2 layout: imagesTr/ (HU, int16), labelsTr/
 * (partial labels: only the organs each case's source labels), truthTr/ (all 9 organs) and
 * dataset.json, whose "medmask" entry lists each case's source and labelled organs.
 * @param dir - output folder
 * @param opts - n, seed, size, sources
 * @param onProgress - progress callback
 * @returns the files written and the counts per source
 * @example
 * await writeAbdomenDataset('data/abdomen', { n: 10, seed: 1 });
 */
export async function writeAbdomenDataset(dir: string, opts: AbdomenDatasetOptions, onProgress?: OnProgress): Promise<WrittenDataset> {
  checkN(opts.n);
  for (const sub of ['imagesTr', 'labelsTr', 'truthTr']) await mkdir(join(dir, sub), { recursive: true });
  const sources = opts.sources?.length ? new Rng(opts.seed).fork('sources').shuffle(opts.sources) : undefined;
  const assigned = sources ? Array.from({ length: opts.n }, (_, i) => sources[i % sources.length]!) : assignSources(opts.n, opts.seed);
  const files: string[] = [];
  const counts: Record<string, number> = {};
  const cases: Record<string, unknown>[] = [];
  for (let i = 0; i < opts.n; i++) {
    const id = `case_${String(i).padStart(4, '0')}`;
    const p = abdomenPhantom({ seed: caseSeed(opts.seed, i), source: assigned[i]!, ...(opts.size ? { size: opts.size } : {}), ...(opts.realistic ? { realistic: true } : {}) });
    await writeVolume(p.image, join(dir, 'imagesTr', `${id}_0000.nii.gz`));
    await writeVolume(p.partial, join(dir, 'labelsTr', `${id}.nii.gz`), { labelMap: true });
    await writeVolume(p.truth, join(dir, 'truthTr', `${id}.nii.gz`), { labelMap: true });
    files.push(`imagesTr/${id}_0000.nii.gz`, `labelsTr/${id}.nii.gz`, `truthTr/${id}.nii.gz`);
    counts[p.source] = (counts[p.source] ?? 0) + 1;
    cases.push({
      case: id,
      source: p.source,
      labelled: p.labelled,
      seed: p.seed,
      shape: p.image.shape,
      spacing: p.image.spacing.map((s) => +s.toFixed(4)),
      organs_ml: Object.fromEntries(p.organs.map((o) => [o.name, +o.ml.toFixed(1)])),
      ...(p.profile ? { scanner: { phase: p.profile.phase, kernel: p.profile.kernel, noise_hu: +p.profile.noise.toFixed(1), fov_mm: +p.profile.fovMm.toFixed(1) }, findings: p.profile.findings } : {}),
    });
    onProgress?.(i + 1, opts.n);
  }
  const json = {
    name: 'medmask-abdomen-phantoms',
    description: 'Seeded abdominal CT phantoms (HU) with the 9 AbdomenAtlas organ labels; labelsTr holds each source\'s partial labels, truthTr the full truth.',
    channel_names: { 0: 'CT' },
    labels: { background: 0, ...Object.fromEntries(Object.entries(ABDOMEN_LABELS).map(([k, v]) => [v, Number(k)])) },
    numTraining: opts.n,
    file_ending: '.nii.gz',
    medmask: { generator: 'medmask phantoms 3d', seed: opts.seed, size: opts.size ?? 96, ...(opts.realistic ? { realistic: true } : {}), cases },
  };
  await atomicWrite(join(dir, 'dataset.json'), JSON.stringify(json, null, 1) + '\n');
  files.push('dataset.json');
  return { dir, files, counts };
}

/** Remove a folder written by the writers above (used by `medmask demo --fresh`). */
export async function removeDataset(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export type { ChestLabel };
