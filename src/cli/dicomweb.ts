/**
 * `medmask dicomweb search|pull|pull-seg|push`: a DICOMweb archive from the command line, without the
 * server; `medmask dicomweb seg-files`: SEG files to a server's data set as labels (API token in
 * MEDMASK_TOKEN). Credentials come from the environment (MEDMASK_DICOMWEB_PASSWORD with --user, or
 * MEDMASK_DICOMWEB_TOKEN), never from flags that other users can read in the process list.
 * @module
 */
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import type { Command } from 'commander';
import { MedmaskError } from '../core/errors.js';
import { DicomwebClient, type DicomwebEndpoint, type DicomwebQuery } from '../dicomweb/client.js';
import { importSeries } from '../dicomweb/import-series.js';
import { pullStudySegs } from '../dicomweb/pull-segs.js';
import { ORGAN_LABELS, mergeCaseSegs, parseLabelNames, parseSegMap } from '../dicomweb/seg-labels.js';
import { createVolume } from '../core/volume.js';
import { createDefaultRegistry } from '../io/index.js';
import { fmtVec, numberOption } from './output.js';
import { ApiClient } from './upload.js';

interface ConnFlags {
  url: string;
  user?: string;
  ca?: string;
  insecure?: boolean;
  timeout?: string;
}

function endpointOf(o: ConnFlags): DicomwebEndpoint {
  const password = process.env.MEDMASK_DICOMWEB_PASSWORD;
  const token = process.env.MEDMASK_DICOMWEB_TOKEN;
  if (o.user && password === undefined) throw new MedmaskError('USAGE', `--user ${o.user} needs the password in MEDMASK_DICOMWEB_PASSWORD`, { hint: 'export MEDMASK_DICOMWEB_PASSWORD=… (kept out of the process list)' });
  let ca: string | undefined;
  if (o.ca) {
    try {
      ca = readFileSync(o.ca, 'utf8');
    } catch (e) {
      throw new MedmaskError('NOT_FOUND', `--ca ${o.ca}: cannot read the CA certificate file`, { cause: e, hint: 'give a PEM file' });
    }
  }
  return {
    url: o.url,
    auth: o.user ? { type: 'basic', username: o.user, password: password! } : token ? { type: 'bearer', token } : { type: 'none' },
    tls: { ...(ca ? { ca } : {}), ...(o.insecure ? { insecure: true } : {}) },
    timeoutMs: numberOption('--timeout', o.timeout, 30, (v) => v >= 1 && v <= 3600, 'seconds from 1 to 3600') * 1000,
  };
}

function connOptions(c: Command): Command {
  return c
    .requiredOption('--url <url>', 'DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web')
    .option('--user <name>', 'HTTP basic user (password in MEDMASK_DICOMWEB_PASSWORD); without it, MEDMASK_DICOMWEB_TOKEN is sent as a bearer token when set')
    .option('--ca <file>', 'PEM CA certificate(s) to trust for https')
    .option('--insecure', 'https without certificate checks (testing only)')
    .option('--timeout <s>', 'seconds without data before a request fails (default 30)');
}

/** Register `medmask dicomweb`. */
export function registerDicomweb(program: Command): void {
  const dw = program.command('dicomweb').description('search, pull from and push to a DICOMweb archive (QIDO-RS, WADO-RS, STOW-RS); see docs/pacs.md');

  connOptions(dw.command('search'))
    .description('search studies or series (QIDO-RS); the answer holds patient identifiers')
    .option('--level <level>', 'studies or series', 'series')
    .option('--patient-id <id>', 'PatientID')
    .option('--patient-name <name>', 'PatientName (wildcards * ?)')
    .option('--study-date <range>', 'YYYYMMDD or YYYYMMDD-YYYYMMDD')
    .option('--modality <m>', 'e.g. CT')
    .option('--accession <n>', 'AccessionNumber')
    .option('--study-description <text>', 'StudyDescription (wildcards * ?)')
    .option('--series-description <text>', 'SeriesDescription (wildcards * ?)')
    .option('--study <uid>', 'only series of this study')
    .option('--limit <n>', 'most results (default 100)')
    .option('--json', 'print JSON')
    .action(async (o: ConnFlags & { level: string; patientId?: string; patientName?: string; studyDate?: string; modality?: string; accession?: string; studyDescription?: string; seriesDescription?: string; study?: string; limit?: string; json?: boolean }) => {
      if (o.level !== 'studies' && o.level !== 'series') throw new MedmaskError('USAGE', `--level ${o.level} must be studies or series`);
      const q: DicomwebQuery = { limit: numberOption('--limit', o.limit, 100, (v) => Number.isInteger(v) && v >= 1 && v <= 1000, 'a whole number from 1 to 1000') };
      const set = <K extends keyof DicomwebQuery>(k: K, v: DicomwebQuery[K] | undefined) => {
        if (v !== undefined) q[k] = v;
      };
      set('patientId', o.patientId);
      set('patientName', o.patientName);
      set('studyDate', o.studyDate);
      set('modality', o.modality);
      set('accessionNumber', o.accession);
      set('studyDescription', o.studyDescription);
      set('seriesDescription', o.seriesDescription);
      set('studyInstanceUid', o.study);
      const c = new DicomwebClient(endpointOf(o));
      try {
        const rows = o.level === 'studies' ? await c.searchStudies(q) : await c.searchSeries(q);
        if (o.json) {
          process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
          return;
        }
        for (const r of rows) {
          if ('seriesInstanceUid' in r) process.stdout.write(`${r.studyInstanceUid}  ${r.seriesInstanceUid}  ${r.modality}  ${r.instances ?? '?'} instance(s)  ${r.studyDate}  ${r.patientId}  "${r.seriesDescription}"\n`);
          else process.stdout.write(`${r.studyInstanceUid}  ${r.modalities.join('/')}  ${r.series ?? '?'} series  ${r.studyDate}  ${r.patientId}  ${r.accessionNumber}  "${r.studyDescription}"\n`);
        }
        process.stderr.write(`${rows.length} ${o.level} found\n`);
      } finally {
        c.close();
      }
    });

  connOptions(dw.command('pull'))
    .description('retrieve a series (WADO-RS): as the archive\'s DICOM files into a folder, or as one de-identified volume (.nii.gz, .nrrd, .mha)')
    .requiredOption('--study <uid>', 'StudyInstanceUID')
    .requiredOption('--series <uid>', 'SeriesInstanceUID')
    .requiredOption('--out <path>', 'a folder (DICOM files as stored, identifiers included) or a volume file')
    .option('--uid-salt <salt>', 'salt for UID remapping when writing a volume (default MEDMASK_UID_SALT)')
    .action(async (o: ConnFlags & { study: string; series: string; out: string; uidSalt?: string }) => {
      const c = new DicomwebClient(endpointOf(o));
      const reg = createDefaultRegistry();
      const asVolume = /\.(nii(\.gz)?|nrrd|mha)$/i.test(o.out);
      try {
        const t0 = Date.now();
        if (!asVolume) {
          await mkdir(o.out, { recursive: true });
          const r = await c.retrieveSeries(o.study, o.series, o.out, { onInstance: (p) => process.stderr.write(`\rretrieved ${p.instances} instance(s), ${(p.bytes / 2 ** 20).toFixed(1)} MiB`) });
          process.stderr.write('\n');
          process.stdout.write(`wrote ${r.files.length} DICOM file(s) to ${o.out} (${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s); they hold the archive's identifiers\n`);
          return;
        }
        const writer = reg.writerFor(o.out);
        const dir = await mkdtemp(join(tmpdir(), 'medmask-pull-'));
        try {
          const r = await importSeries(c, o.study, o.series, { uidSalt: o.uidSalt ?? process.env.MEDMASK_UID_SALT ?? '', dir, onProgress: (_f, m) => process.stderr.write(`\r${m}`) });
          process.stderr.write('\n');
          await writer.write(r.volume, o.out, {});
          process.stdout.write(`wrote ${o.out} (${r.volume.shape.join('×')}, spacing ${fmtVec(r.volume.spacing)} mm, ${r.instances} instance(s), ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s), de-identified\n`);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      } finally {
        c.close();
      }
    });

  connOptions(dw.command('pull-seg'))
    .description("read the archive's DICOM SEGs drawn on a series (3D Slicer, OHIF, …) as one label map on the series' grid; segments map to organs by SegmentLabel, common synonyms or --map")
    .requiredOption('--study <uid>', 'StudyInstanceUID')
    .requiredOption('--series <uid>', 'SeriesInstanceUID of the image series the SEGs were drawn on')
    .requiredOption('--out <file>', 'label map to write (.nii.gz, .nrrd, .mha)')
    .option('--map <file>', 'rename file: JSON { "SegmentLabel or number": "organ" }')
    .option('--labels <file>', 'label names: JSON { "name": value } (default: the AbdomenAtlas organs, spleen 1 … pancreas 9)')
    .option('--json', 'print the status as JSON')
    .action(async (o: ConnFlags & { study: string; series: string; out: string; map?: string; labels?: string; json?: boolean }) => {
      const readJson = (f: string) => {
        try {
          return readFileSync(f, 'utf8');
        } catch (e) {
          throw new MedmaskError('NOT_FOUND', `${f}: cannot be read`, { cause: e });
        }
      };
      const labels = o.labels ? parseLabelNames(readJson(o.labels), o.labels) : ORGAN_LABELS;
      const rename = o.map ? parseSegMap(readJson(o.map), o.map, Object.keys(labels)) : undefined;
      const writer = createDefaultRegistry().writerFor(o.out);
      const c = new DicomwebClient(endpointOf(o));
      const dir = await mkdtemp(join(tmpdir(), 'medmask-pull-seg-'));
      try {
        // The series itself gives the grid (read as `pull` reads it).
        const img = await importSeries(c, o.study, o.series, { uidSalt: process.env.MEDMASK_UID_SALT ?? '', dir: await mkdir(join(dir, 'image'), { recursive: true }).then(() => join(dir, 'image')), onProgress: (_f, m) => process.stderr.write(`\r${m}`) });
        process.stderr.write('\n');
        const { segs, unreadable } = await pullStudySegs(c, [o.study], { dir });
        const mine = segs.filter((s) => s.referencedSeries.includes(o.series));
        const { labels: map, status } = mergeCaseSegs(mine, img.volume, { labels, ...(rename ? { rename } : {}) });
        if (o.json) process.stdout.write(JSON.stringify({ ...status, segsInStudy: segs.length, unreadableSegs: unreadable }, null, 2) + '\n');
        else {
          for (const x of status.segments) process.stdout.write(`${x.seg}: segment ${x.number} "${x.segmentLabel}" → ${x.organ ? `${x.organ} (${x.value}), ${x.voxels} voxel(s)` : 'unknown, left out'}\n`);
          for (const r of status.refusedSegs) process.stdout.write(`refused ${r.seg}: ${r.reason}\n`);
        }
        if (!map) throw new MedmaskError(status.status === 'no-seg' ? 'NOT_FOUND' : 'DATASET_INVALID', status.status === 'no-seg' ? `no DICOM SEG in the study references series ${o.series} (${segs.length} SEG(s) in the study)` : `no SEG could be read onto series ${o.series}: ${status.reason}`, { hint: status.status === 'no-seg' ? 'check the series: SEGs name the series they were drawn on' : 'map unknown segments with --map, or check that the SEG was drawn on this series' });
        await writer.write(createVolume(img.volume.shape, 'uint8', { data: map, spacing: img.volume.spacing, origin: img.volume.origin, direction: img.volume.direction, meta: { labels: Object.fromEntries(Object.entries(labels).map(([k, v]) => [v, k])) } }), o.out, {});
        process.stderr.write(`wrote ${o.out}: ${mine.length} SEG(s), ${status.segments.filter((x) => x.organ).length} segment(s) as labels${status.unknown.length ? `, ${status.unknown.length} unknown segment(s) left out: ${status.unknown.join('; ')}` : ''}\n`);
      } finally {
        c.close();
        await rm(dir, { recursive: true, force: true });
      }
    });

  dw.command('seg-files')
    .description("send DICOM SEG files (files, folders, .tar / .tar.gz) to a medmask server as partial labels of a data set's cases, each matched by the series it references; prints each case's status (token in MEDMASK_TOKEN)")
    .argument('<paths...>', 'SEG files, folders (read recursively) or tar archives')
    .requiredOption('--server <url>', 'the medmask server (env MEDMASK_SERVER)', process.env.MEDMASK_SERVER)
    .requiredOption('--dataset <id>', 'data set id')
    .option('--map <file>', 'rename file: JSON { "SegmentLabel or number": "organ" }')
    .option('--labels <file>', 'label names: JSON { "name": value } (default: the AbdomenAtlas organs)')
    .option('--json', 'print the answer as JSON')
    .action(async (paths: string[], o: { server: string; dataset: string; map?: string; labels?: string; json?: boolean }) => {
      const token = process.env.MEDMASK_TOKEN;
      if (!token) throw new MedmaskError('USAGE', 'MEDMASK_TOKEN is not set', { hint: 'create an API token (POST /api/tokens or the web UI) and export MEDMASK_TOKEN=…' });
      const files = await collectSegFiles(paths);
      if (!files.length) throw new MedmaskError('NOT_FOUND', `no files in ${paths.join(', ')}`, { hint: 'give SEG files, folders holding them, or a .tar / .tar.gz of them' });
      const form = new FormData();
      if (o.map) form.append('rename', readTextFile(o.map));
      if (o.labels) form.append('labels', readTextFile(o.labels));
      for (const f of files) form.append('seg', new Blob([f.bytes]), f.name);
      const r = await new ApiClient(o.server, token).call<SegFilesAnswer>('POST', `/api/datasets/${encodeURIComponent(o.dataset)}/segs`, undefined, { form });
      if (o.json) {
        process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        return;
      }
      for (const c of r.cases) process.stdout.write(`${c.image}: ${c.status}${c.status === 'matched' ? ` (${c.segments.filter((x) => x.organ).map((x) => x.organ).join(', ')})` : ''}${c.unknown.length ? `; unknown segments left out: ${c.unknown.join('; ')}` : ''}${c.reason ? `: ${c.reason}` : ''}\n`);
      for (const u of r.unreadableSegs) process.stdout.write(`unreadable ${u.seg}: ${u.reason}\n`);
      for (const u of r.unmatchedSegs) process.stdout.write(`${u}: references no case of the data set\n`);
      process.stderr.write(`${r.segs} SEG file(s): ${r.matched} case(s) matched, ${r.noSeg} without SEG, ${r.refused} refused, ${r.unknownSegments} unknown segment(s)\n`);
    });

  connOptions(dw.command('push'))
    .description('store DICOM files, e.g. a DICOM SEG, in the archive (STOW-RS)')
    .argument('<files...>', 'Part 10 files')
    .action(async (files: string[], o: ConnFlags) => {
      const c = new DicomwebClient(endpointOf(o));
      try {
        const objects = await Promise.all(files.map((f) => readFile(f).catch((e: unknown) => { throw new MedmaskError('NOT_FOUND', `${f}: cannot be read`, { cause: e }); })));
        const t0 = Date.now();
        const r = await c.store(objects.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)));
        for (const s of r.stored) process.stdout.write(`stored ${s.sopInstanceUid}\n`);
        for (const f of r.failed) process.stdout.write(`refused ${f.sopInstanceUid}: ${f.reason}\n`);
        if (r.stored.length < files.length) throw new MedmaskError('REMOTE_REFUSED', `POST ${c.name}/studies: the archive stored ${r.stored.length} of ${files.length} object(s)`, { hint: 'see the reasons above; check what the archive accepts (SOP classes, filters)' });
        process.stderr.write(`stored ${r.stored.length} object(s) in ${((Date.now() - t0) / 1000).toFixed(2)} s\n`);
      } finally {
        c.close();
      }
    });
}

interface SegFilesAnswer {
  segs: number;
  matched: number;
  noSeg: number;
  refused: number;
  unknownSegments: number;
  unmatchedSegs: string[];
  unreadableSegs: { seg: string; reason: string }[];
  cases: { image: string; status: string; reason?: string; unknown: string[]; segments: { organ?: string }[] }[];
}

function readTextFile(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch (e) {
    throw new MedmaskError('NOT_FOUND', `${f}: cannot be read`, { cause: e });
  }
}

/** The files under the given paths: files as they are, folders recursively, tar archives unpacked (in memory: SEGs are small). */
async function collectSegFiles(paths: readonly string[]): Promise<{ name: string; bytes: Uint8Array }[]> {
  const out: { name: string; bytes: Uint8Array }[] = [];
  const walk = async (p: string): Promise<void> => {
    const st = await stat(p).catch((e: unknown) => {
      throw new MedmaskError('NOT_FOUND', `${p}: no such file or folder`, { cause: e });
    });
    if (st.isDirectory()) {
      for (const f of (await readdir(p)).sort()) await walk(join(p, f));
      return;
    }
    const bytes = await readFile(p);
    if (!/\.(tar|tar\.gz|tgz)$/i.test(p)) {
      out.push({ name: basename(p), bytes });
      return;
    }
    const extract = tar.extract();
    const done = new Promise<void>((res, rej) => {
      extract.on('entry', (h, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => chunks.push(c as Buffer));
        stream.on('end', () => {
          if (h.type === 'file') out.push({ name: basename(h.name), bytes: Buffer.concat(chunks) });
          next();
        });
        stream.on('error', rej);
      });
      extract.on('finish', res);
      extract.on('error', (e) => rej(new MedmaskError('CORRUPT_FILE', `${p}: not a readable tar archive (${e.message})`, { cause: e })));
    });
    extract.end(bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes);
    await done;
  };
  for (const p of paths) await walk(p);
  return out;
}
