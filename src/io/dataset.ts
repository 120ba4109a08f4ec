/**
 * Data sets in: a folder of images with a CSV of image-level labels, and the Medical Segmentation
 * Decathlon / nnU-Net folder layout (imagesTr, labelsTr, dataset.json). Everything is checked up
 * front, so a run never fails half-way on a missing file: errors name the file, the row and what
 * to do.
 * @module
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve, relative, isAbsolute } from 'node:path';
import { parse } from 'csv-parse/sync';
import { MedmaskError } from '../core/errors.js';
import { printable } from './limits.js';
import { sameGeometry, type Volume } from '../core/volume.js';

/** One row of a labels CSV. */
export interface LabelledImage {
  /** Case id: the image file name without its extension(s). */
  id: string;
  /** Absolute path of the image. */
  image: string;
  /** Image-level label ('' when the row has none). */
  label: string;
  /** Other columns of the row, as written. */
  extra: Record<string, string>;
  /** 1-based line number in the CSV (for messages). */
  line: number;
}

/** Options for {@link readLabelsCsv}. */
export interface ReadLabelsCsvOptions {
  /** Folder the image paths are relative to (default: the CSV's folder). */
  imagesDir?: string;
  /** Allowed labels; any other label is an error that lists these. */
  classes?: readonly string[];
  /** Column holding the image path (default: the first of image, file, filename, path, id). */
  imageColumn?: string;
  /** Column holding the label (default: the first of label, class, diagnosis, target). */
  labelColumn?: string;
  /** Require every row to have a label (default true). */
  requireLabel?: boolean;
}

const IMAGE_COLUMNS = ['image', 'file', 'filename', 'path', 'id'];
const LABEL_COLUMNS = ['label', 'class', 'diagnosis', 'target'];

/** Strip medical-image double extensions: "a.nii.gz" → "a". */
export function stemOf(file: string): string {
  const b = basename(file);
  const m = /^(.*?)(\.nii\.gz|\.nii|\.nrrd|\.nhdr|\.mha|\.mhd|\.dcm|\.png|\.jpe?g|\.tiff?)$/i.exec(b);
  return m ? m[1]! : b.replace(/\.[^.]*$/, '');
}

/**
 * Read a CSV of image-level labels and check every referenced image exists.
 * @param csvPath - CSV with a header row, e.g. `image,label`
 * @param opts - folder, allowed classes, column names
 * @returns one entry per row, in file order
 * @example
 * const rows = await readLabelsCsv('data/labels.csv', { classes: ['healthy', 'tuberculosis'] });
 */
export async function readLabelsCsv(csvPath: string, opts: ReadLabelsCsvOptions = {}): Promise<LabelledImage[]> {
  let text: string;
  try {
    text = await readFile(csvPath, 'utf8');
  } catch (e) {
    throw new MedmaskError('NOT_FOUND', `${csvPath}: cannot read the labels CSV (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      cause: e,
      hint: 'check the path given with --labels',
    });
  }
  const raw = text;
  if (/^\ufeff?[^\n]*\u0000/.test(raw) || raw.startsWith('\ufffd\ufffd')) {
    throw new MedmaskError('DATASET_INVALID', `${csvPath}: the CSV is UTF-16 encoded (NUL bytes between the characters); medmask reads UTF-8`, { hint: 'save it as "CSV UTF-8" (Excel) or convert it: iconv -f UTF-16 -t UTF-8 in.csv > out.csv' });
  }
  const bad = raw.indexOf('\ufffd');
  if (bad >= 0) {
    const line = raw.slice(0, bad).split('\n').length;
    throw new MedmaskError('DATASET_INVALID', `${csvPath} line ${line}: bytes that are not UTF-8 (the file is probably Latin-1 / Windows-1252: "${printable(raw.slice(Math.max(0, bad - 20), bad + 1).split('\n').pop() ?? '', 60)}")`, {
      hint: 'save it as "CSV UTF-8" or convert it: iconv -f WINDOWS-1252 -t UTF-8 in.csv > out.csv',
    });
  }
  let records: Record<string, string>[];
  try {
    records = parse(text, { columns: (h: string[]) => h.map((c) => c.trim()), skip_empty_lines: true, trim: true, bom: true });
  } catch (e) {
    throw new MedmaskError('DATASET_INVALID', `${csvPath}: not a valid CSV (${(e as Error).message})`, { cause: e, hint: 'save it as comma-separated values with a header row' });
  }
  if (!records.length) {
    throw new MedmaskError('DATASET_INVALID', `${csvPath}: no rows below the header`, { hint: 'add one row per image: image,label' });
  }
  const header = Object.keys(records[0]!);
  const pick = (given: string | undefined, candidates: string[], what: string): string => {
    if (given) {
      if (!header.includes(given)) {
        throw new MedmaskError('DATASET_INVALID', `${csvPath}: no column "${given}" (columns: ${header.join(', ')})`, { hint: `name the ${what} column correctly` });
      }
      return given;
    }
    const found = candidates.find((c) => header.map((h) => h.toLowerCase()).includes(c));
    if (!found) {
      throw new MedmaskError('DATASET_INVALID', `${csvPath}: no ${what} column; expected one of ${candidates.join(', ')} (columns: ${header.join(', ')})`, {
        hint: `rename the column or pass --${what}-column`,
      });
    }
    return header.find((h) => h.toLowerCase() === found)!;
  };
  const imageCol = pick(opts.imageColumn, IMAGE_COLUMNS, 'image');
  const requireLabel = opts.requireLabel ?? true;
  const labelCol = header.some((h) => LABEL_COLUMNS.includes(h.toLowerCase())) || opts.labelColumn || requireLabel
    ? pick(opts.labelColumn, LABEL_COLUMNS, 'label')
    : undefined;
  const base = resolve(opts.imagesDir ?? dirname(csvPath));
  const out: LabelledImage[] = [];
  const missing: string[] = [];
  const seen = new Map<string, number>();
  records.forEach((rec, idx) => {
    const line = idx + 2;
    const rel = rec[imageCol] ?? '';
    if (!rel) throw new MedmaskError('DATASET_INVALID', `${csvPath} line ${line}: empty ${imageCol}`, { hint: 'every row needs an image path' });
    const image = resolve(base, rel);
    // Image paths stay inside the images folder: "../../etc/passwd" or an absolute path elsewhere is refused.
    const inside = relative(base, image);
    if (inside.startsWith('..') || isAbsolute(inside)) {
      throw new MedmaskError('DATASET_INVALID', `${csvPath} line ${line}: image path ${JSON.stringify(printable(rel, 200))} points outside the images folder ${base}`, { hint: 'list image paths relative to the images folder (--images), without ".."' });
    }
    const label = labelCol ? (rec[labelCol] ?? '') : '';
    if (requireLabel && !label) throw new MedmaskError('DATASET_INVALID', `${csvPath} line ${line}: ${rel} has no ${labelCol}`, { hint: 'fill in the label or remove the row' });
    if (opts.classes && label && !opts.classes.includes(label)) {
      throw new MedmaskError('DATASET_INVALID', `${csvPath} line ${line}: unknown label "${label}" for ${rel}; known: ${opts.classes.join(', ')}`, {
        hint: 'fix the spelling, or use models whose manifest lists this class',
      });
    }
    if (seen.has(image)) {
      throw new MedmaskError('DATASET_INVALID', `${csvPath} line ${line}: ${rel} is listed twice (first on line ${seen.get(image)})`, { hint: 'keep one row per image' });
    }
    seen.set(image, line);
    if (!existsSync(image)) missing.push(`line ${line}: ${rel}`);
    const extra: Record<string, string> = {};
    for (const [k, v] of Object.entries(rec)) if (k !== imageCol && k !== labelCol) extra[k] = v;
    out.push({ id: stemOf(rel), image, label, extra, line });
  });
  if (missing.length) {
    throw new MedmaskError('NOT_FOUND', `${csvPath}: ${missing.length} image(s) listed in the CSV do not exist under ${base}:\n  ${missing.slice(0, 10).join('\n  ')}${missing.length > 10 ? `\n  … and ${missing.length - 10} more` : ''}`, {
      hint: 'fix the paths, or pass --images DIR if the images live elsewhere',
      details: { missing },
    });
  }
  return out;
}

/** One case of a Decathlon / nnU-Net data set. */
export interface SegmentationCase {
  id: string;
  /** Image files, one per channel (nnU-Net `_0000`, `_0001`, …); one for MSD 4D files. */
  images: string[];
  /** Label map, when the case has one. */
  label?: string;
  /** Training or test. */
  split: 'train' | 'test';
}

/** A Decathlon / nnU-Net data set. */
export interface SegmentationDataset {
  root: string;
  name: string;
  /** Label id → name (background included). */
  labels: Record<number, string>;
  /** Channel index → name (e.g. `{ 0: 'CT' }`). */
  channels: Record<number, string>;
  fileEnding: string;
  cases: SegmentationCase[];
  /** The parsed dataset.json, for extensions such as medmask's per-case sources. */
  json: Record<string, unknown>;
}

/**
 * Read a Medical Segmentation Decathlon or nnU-Net (v1/v2) data set folder and check its files.
 * MSD lists cases in dataset.json (`training: [{ image, label }]`, labels as id → name);
 * nnU-Net v2 names files `CASE_XXXX.nii.gz` in imagesTr (labels as name → id).
 * @param root - folder holding dataset.json, imagesTr/, labelsTr/ (imagesTs/ optional)
 * @returns the cases, label names and channels
 * @example
 * const ds = await readSegmentationDataset('Dataset001_Abdomen');
 * ds.cases[0].images; // ['…/imagesTr/case_0001_0000.nii.gz']
 */
export async function readSegmentationDataset(root: string): Promise<SegmentationDataset> {
  const jsonPath = join(root, 'dataset.json');
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new MedmaskError('NOT_FOUND', `${root}: no such folder`, { hint: 'pass the folder that holds dataset.json, imagesTr/ and labelsTr/' });
  }
  if (!existsSync(jsonPath)) {
    throw new MedmaskError('DATASET_INVALID', `${root}: no dataset.json`, {
      hint: 'a Decathlon / nnU-Net data set needs dataset.json beside imagesTr/ and labelsTr/',
    });
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await readFile(jsonPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new MedmaskError('DATASET_INVALID', `${jsonPath}: not valid JSON (${(e as Error).message})`, { cause: e, hint: 'fix the syntax' });
  }
  // Labels: MSD {"0": "background"} or nnU-Net v2 {"background": 0} (values may be lists for regions).
  const labels: Record<number, string> = {};
  const rawLabels = (json.labels ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(rawLabels)) {
    if (/^\d+$/.test(k) && typeof v === 'string') labels[Number(k)] = v;
    else if (typeof v === 'number') labels[v] = k;
    else if (Array.isArray(v)) continue; // nnU-Net region-based training labels: not a label map entry
    else throw new MedmaskError('DATASET_INVALID', `${jsonPath}: label entry ${JSON.stringify(k)}: ${JSON.stringify(v)} is neither id→name nor name→id`, { hint: 'use {"0": "background", "1": "liver"} or {"background": 0, "liver": 1}' });
  }
  const channelsRaw = (json.channel_names ?? json.modality ?? { 0: 'image' }) as Record<string, string>;
  const channels: Record<number, string> = {};
  for (const [k, v] of Object.entries(channelsRaw)) channels[Number(k)] = String(v);
  const fileEnding = typeof json.file_ending === 'string' ? json.file_ending : '.nii.gz';
  const nChannels = Object.keys(channels).length || 1;
  const cases: SegmentationCase[] = [];
  const missing: string[] = [];
  const check = (p: string): string => {
    if (!existsSync(p)) missing.push(p.slice(resolve(root).length + 1));
    return p;
  };
  const absRoot = resolve(root);
  if (Array.isArray(json.training) && json.training.length && typeof json.training[0] === 'object') {
    // MSD style: explicit list. Paths are relative to root ("./imagesTr/x.nii.gz").
    for (const t of json.training as { image: string; label?: string }[]) {
      const image = check(resolve(absRoot, t.image));
      const c: SegmentationCase = { id: stemOf(t.image), images: [image], split: 'train' };
      if (t.label) c.label = check(resolve(absRoot, t.label));
      cases.push(c);
    }
    for (const t of (Array.isArray(json.test) ? json.test : []) as (string | { image: string })[]) {
      const rel = typeof t === 'string' ? t : t.image;
      cases.push({ id: stemOf(rel), images: [check(resolve(absRoot, rel))], split: 'test' });
    }
  } else {
    // nnU-Net v2: discover by file name, CASE_XXXX.ending.
    for (const [sub, split] of [['imagesTr', 'train'], ['imagesTs', 'test']] as const) {
      const dir = join(absRoot, sub);
      if (!existsSync(dir)) {
        if (split === 'train') throw new MedmaskError('DATASET_INVALID', `${root}: no imagesTr/ folder`, { hint: 'put the training images in imagesTr/ named CASE_0000' + fileEnding });
        continue;
      }
      const byCase = new Map<string, string[]>();
      for (const f of readdirSync(dir).sort()) {
        if (!f.endsWith(fileEnding)) continue;
        const m = /^(.*)_(\d{4})$/.exec(f.slice(0, -fileEnding.length));
        if (!m) throw new MedmaskError('DATASET_INVALID', `${join(sub, f)}: name lacks the channel suffix _0000`, { hint: `rename to ${f.slice(0, -fileEnding.length)}_0000${fileEnding}` });
        const list = byCase.get(m[1]!) ?? [];
        list[Number(m[2])] = join(dir, f);
        byCase.set(m[1]!, list);
      }
      for (const [id, imgs] of byCase) {
        for (let ch = 0; ch < nChannels; ch++) if (!imgs[ch]) missing.push(join(sub, `${id}_${String(ch).padStart(4, '0')}${fileEnding}`));
        const c: SegmentationCase = { id, images: imgs.filter(Boolean), split };
        if (split === 'train') c.label = check(join(absRoot, 'labelsTr', id + fileEnding));
        cases.push(c);
      }
    }
    const declared = json.numTraining;
    const nTrain = cases.filter((c) => c.split === 'train').length;
    if (typeof declared === 'number' && declared !== nTrain) {
      throw new MedmaskError('DATASET_INVALID', `${jsonPath}: numTraining is ${declared} but imagesTr/ holds ${nTrain} case(s)`, { hint: 'fix numTraining or add the missing cases' });
    }
  }
  if (missing.length) {
    throw new MedmaskError('NOT_FOUND', `${root}: ${missing.length} file(s) named by the data set are missing:\n  ${missing.slice(0, 10).join('\n  ')}${missing.length > 10 ? `\n  … and ${missing.length - 10} more` : ''}`, {
      hint: 'copy the missing files or remove them from dataset.json',
      details: { missing },
    });
  }
  if (!cases.length) throw new MedmaskError('DATASET_INVALID', `${root}: the data set holds no cases`, { hint: 'add images to imagesTr/' });
  return { root: absRoot, name: typeof json.name === 'string' ? json.name : basename(absRoot), labels, channels, fileEnding, cases, json };
}

/**
 * Check that a label map fits its image: same grid, integer labels, only known label ids.
 * @param image - the image volume
 * @param label - the label map volume
 * @param known - allowed label ids (background 0 included); omit to skip that check
 * @param names - file names for messages
 * @throws MedmaskError GEOMETRY_MISMATCH or DATASET_INVALID
 * @example
 * checkLabelMap(ct, seg, [0, 1, 2], { image: 'ct.nii.gz', label: 'seg.nii.gz' });
 */
export function checkLabelMap(image: Volume, label: Volume, known?: readonly number[], names = { image: 'image', label: 'label' }): void {
  if (image.shape.some((n, i) => n !== label.shape[i])) {
    throw new MedmaskError('GEOMETRY_MISMATCH', `${names.label}: shape ${label.shape.join('×')} differs from ${names.image} ${image.shape.join('×')}`, {
      hint: 'resample the label map onto the image grid (nearest neighbour) or pair the right files',
    });
  }
  if (!sameGeometry(image, label, 1e-2 * Math.min(...image.spacing))) {
    throw new MedmaskError('GEOMETRY_MISMATCH', `${names.label}: same shape but a different position/orientation in space than ${names.image}`, {
      hint: 'the label map was saved with another affine; re-save it with the image geometry (e.g. copy the header)',
      details: { imageOrigin: image.origin, labelOrigin: label.origin, imageDirection: image.direction, labelDirection: label.direction },
    });
  }
  if (label.components !== 1) throw new MedmaskError('DATASET_INVALID', `${names.label}: a label map needs 1 component, found ${label.components}`);
  if (known) {
    const allowed = new Set(known);
    const bad = new Set<number>();
    for (let i = 0; i < label.data.length; i++) {
      const v = label.data[i]!;
      if (!allowed.has(v)) {
        bad.add(v);
        if (bad.size > 5) break;
      }
    }
    if (bad.size) {
      throw new MedmaskError('DATASET_INVALID', `${names.label}: label value(s) ${[...bad].join(', ')} are not in the data set's labels (${known.join(', ')})`, {
        hint: 'add them to dataset.json "labels" or fix the label map',
      });
    }
  }
}
