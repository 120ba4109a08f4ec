/**
 * PACS import and push against a real Orthanc on loopback (Debian orthanc + orthanc-dicomweb):
 * a 512×512×200 CT series (int16, about 100 MiB; written here with dcmjs, seeded once through
 * Orthanc's REST API into a storage folder kept in the bench cache).
 * - `curl` (baseline): `curl` of the WADO-RS series request (multipart/related, to /dev/null) — the
 *   floor: what the archive and the loopback deliver.
 * - `retrieve`: medmask's DICOMweb client, the same request, each instance streamed to a file.
 * - `import`: QIDO-RS instance list + WADO-RS + series assembly + de-identification + UID mapping
 *   (`importSeries`, what an import job does before storing the volume).
 * - `seg-push`: a 200-slice liver-like mask as DICOM SEG referencing the series, re-identified for
 *   the archive, sent with STOW-RS.
 * Each case runs in its own process with its own Orthanc on the same storage. MB/s in the summary
 * are of the series' DICOM bytes (MiB = 2^20).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dcmjs from 'dcmjs';
import { createVolume } from '../src/core/volume.js';
import { DicomwebClient } from '../src/dicomweb/client.js';
import { importSeries } from '../src/dicomweb/import-series.js';
import { reidentifySeg } from '../src/dicomweb/seg-for-archive.js';
import { remapUid } from '../src/io/deidentify.js';
import { encodeDicomSeg } from '../src/io/dicom-seg.js';
import { loadDicom } from '../src/io/dicom-series.js';
import { startOrthanc, type OrthancService } from '../test/helpers/orthanc.js';
import { defineBenchmark } from './run.js';

const { DicomDict, DicomMetaDictionary } = dcmjs.data;
const N = 512;
const SALT = 'bench-salt';

interface State {
  series: string;
  storage: string;
  study: string;
  seriesUid: string;
  bytes: number;
  slices: number;
}

function writeSeries(dir: string, slices: number): { study: string; series: string; bytes: number } {
  mkdirSync(dir, { recursive: true });
  const study = remapUid('bench-study', 'x');
  const series = remapUid('bench-series', 'x');
  const frame = remapUid('bench-for', 'x');
  let bytes = 0;
  const px = new Int16Array(N * N);
  for (let k = 0; k < slices; k++) {
    for (let j = 0; j < N; j++) for (let i = 0; i < N; i++) px[i + N * j] = ((i - 256) ** 2 + (j - 256) ** 2 < 200 ** 2 ? 40 + ((i * 7 + j * 13 + k * 3) % 50) : -1000) + 1024;
    const sop = remapUid(`bench-sop-${k}`, 'x');
    const ds = {
      SOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
      SOPInstanceUID: sop,
      StudyInstanceUID: study,
      SeriesInstanceUID: series,
      FrameOfReferenceUID: frame,
      Modality: 'CT',
      PatientName: [{ Alphabetic: 'Bench^Patient' }],
      PatientID: 'BENCH-1',
      StudyDate: '20240101',
      SeriesDescription: 'bench CT',
      InstanceNumber: k + 1,
      ImagePositionPatient: [-200, -200, k * 1.25],
      ImageOrientationPatient: [1, 0, 0, 0, 1, 0],
      PixelSpacing: [0.78125, 0.78125],
      SliceThickness: 1.25,
      Rows: N,
      Columns: N,
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: 1,
      RescaleIntercept: -1024,
      RescaleSlope: 1,
      PixelData: px.buffer.slice(0),
      _vrMap: { PixelData: 'OW' },
    };
    const meta = { FileMetaInformationVersion: new Uint8Array([0, 1]).buffer, MediaStorageSOPClassUID: ds.SOPClassUID, MediaStorageSOPInstanceUID: sop, TransferSyntaxUID: '1.2.840.10008.1.2.1', ImplementationClassUID: remapUid('bench', 'x') };
    const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
    dict.dict = DicomMetaDictionary.denaturalizeDataset(ds);
    const buf = Buffer.from(dict.write());
    writeFileSync(join(dir, `ct${String(k).padStart(4, '0')}.dcm`), buf);
    bytes += buf.length;
  }
  return { study, series, bytes };
}

let orthanc: OrthancService | undefined;
async function archive(state: State): Promise<OrthancService> {
  orthanc ??= await startOrthanc({ storageDir: state.storage, unref: true });
  return orthanc;
}

export default defineBenchmark<State>({
  description: 'PACS: import a 512×512×200 CT series from Orthanc (DICOMweb, loopback) vs curl; DICOM SEG push',
  repetitions: 3,
  async setup(dir, quick) {
    const slices = quick ? 50 : 200;
    const series = join(dir, `series-${slices}`);
    const storage = join(dir, `orthanc-${slices}`);
    const marker = join(dir, `seeded-${slices}.json`);
    if (!existsSync(marker)) {
      rmSync(storage, { recursive: true, force: true });
      const w = writeSeries(series, slices);
      const o = await startOrthanc({ storageDir: storage });
      await o.seed(readdirSync(series).map((f) => join(series, f)));
      await o.stop();
      writeFileSync(marker, JSON.stringify(w));
    }
    const w = JSON.parse(readFileSync(marker, 'utf8')) as { study: string; series: string; bytes: number };
    return { series, storage, study: w.study, seriesUid: w.series, bytes: w.bytes, slices };
  },
  cases: [
    {
      name: 'curl',
      baseline: true,
      async run({ state }) {
        const o = await archive(state);
        const t0 = performance.now();
        const r = spawnSync('curl', ['-sS', '-f', '-o', '/dev/null', '-H', 'Accept: multipart/related; type="application/dicom"; transfer-syntax=*', `${o.dicomweb}/studies/${state.study}/series/${state.seriesUid}`]);
        if (r.status !== 0) throw new Error(`curl failed: ${r.stderr}`);
        return { elapsedMs: performance.now() - t0 };
      },
    },
    {
      name: 'retrieve',
      async run({ state }) {
        const o = await archive(state);
        const dir = mkdtempSync(join(tmpdir(), 'medmask-bench-pull-'));
        const c = new DicomwebClient({ url: o.dicomweb });
        const t0 = performance.now();
        const r = await c.retrieveSeries(state.study, state.seriesUid, dir);
        const elapsedMs = performance.now() - t0;
        c.close();
        rmSync(dir, { recursive: true, force: true });
        if (r.files.length !== state.slices) throw new Error(`retrieved ${r.files.length} of ${state.slices}`);
        return { elapsedMs };
      },
    },
    {
      name: 'import',
      async run({ state }) {
        const o = await archive(state);
        const dir = mkdtempSync(join(tmpdir(), 'medmask-bench-import-'));
        const c = new DicomwebClient({ url: o.dicomweb });
        const t0 = performance.now();
        const r = await importSeries(c, state.study, state.seriesUid, { uidSalt: SALT, dir });
        const elapsedMs = performance.now() - t0;
        c.close();
        rmSync(dir, { recursive: true, force: true });
        if (r.volume.shape[2] !== state.slices) throw new Error('wrong slice count');
        return { elapsedMs };
      },
    },
    {
      name: 'seg-push',
      async run({ state }) {
        const o = await archive(state);
        const { volume, headers } = await loadDicom(state.series, { uidSalt: SALT });
        const [nx, ny, nz] = volume.shape;
        const data = new Uint8Array(nx * ny * nz);
        for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) if ((i - 300) ** 2 + (j - 220) ** 2 + ((k - nz / 2) * 1.6) ** 2 < 90 ** 2) data[i + nx * (j + ny * k)] = 1;
        const labels = createVolume(volume.shape, 'uint8', { data, spacing: volume.spacing, origin: volume.origin, direction: volume.direction });
        const originals = readdirSync(state.series).length;
        const uidMap = new Map<string, string>([[remapUid(state.study, SALT), state.study], [remapUid(state.seriesUid, SALT), state.seriesUid]]);
        for (let k = 0; k < originals; k++) uidMap.set(remapUid(remapUid(`bench-sop-${k}`, 'x'), SALT), remapUid(`bench-sop-${k}`, 'x'));
        const c = new DicomwebClient({ url: o.dicomweb });
        const t0 = performance.now();
        const seg = encodeDicomSeg(labels, { sourceHeaders: headers, labels: { 1: 'liver' }, date: new Date(performance.now()) });
        const { bytes } = reidentifySeg(seg.bytes, { uidMap, phi: { PatientID: 'BENCH-1' } });
        const r = await c.store([bytes]);
        const elapsedMs = performance.now() - t0;
        c.close();
        if (!r.stored.length) throw new Error('SEG not stored');
        return { elapsedMs };
      },
    },
  ],
  summarize(results, state) {
    const mib = state.bytes / 2 ** 20;
    const out: Record<string, number | string | null> = { seriesMiB: Number(mib.toFixed(1)), slices: state.slices };
    for (const r of results) if (r.name !== 'seg-push') out[`${r.name}MiBps`] = Number((mib / (r.medianMs / 1000)).toFixed(1));
    return out;
  },
});
