/**
 * Put review cases straight into a store (image, candidate mask version, overlays), for the viewer's
 * integration and end-to-end tests and the UI benchmark: no pipeline needed, every voxel known.
 */
import type { Volume } from '../../src/core/volume.js';
import { createVolume } from '../../src/core/volume.js';
import type { BlobStore } from '../../src/store/blob-store.js';
import type { Store } from '../../src/store/db.js';
import { createJob } from '../../src/store/jobs.js';
import { recordPrediction } from '../../src/store/masks.js';
import { ensureDataset, ensureProject, insertImage, labelVolume, putVolume } from '../../src/store/volumes.js';

/** One case to seed. */
export interface SeedCase {
  name: string;
  volume: Volume;
  /** Candidate mask (uint8 on the image grid); becomes version 1. */
  labels: Uint8Array;
  target: string;
  priority: number;
  decision?: string;
  /** Overlays on the image grid (uint8 kept as 8-bit, 0…255 ≙ 0…1; other types as float32, 0…max shown as 0…1). */
  attention?: ArrayLike<number>;
  heatmap?: ArrayLike<number>;
}

/**
 * Insert cases into a data set (created when missing) under a finished "seed" job.
 * @returns mask and image ids in input order
 */
export async function seedCases(store: Store, blobs: BlobStore, cases: SeedCase[], where: { project?: string; dataset?: string } = {}): Promise<{ maskId: string; imageId: string }[]> {
  const db = store.db;
  const project = await ensureProject(db, where.project ?? 'viewer-test', null);
  const ds = await ensureDataset(db, project, where.dataset ?? 'cases', null);
  const { job } = await createJob(db, { type: 'seed', input: { dataset: ds, names: cases.map((c) => c.name) } });
  await db.updateTable('jobs').set({ status: 'done', progress: 1 }).where('id', '=', job.id).execute();
  const out: { maskId: string; imageId: string }[] = [];
  for (const c of cases) {
    const { image } = await insertImage(db, blobs, { datasetId: ds, name: c.name, volume: c.volume, format: 'nifti', createdBy: null });
    const maskBlob = (await putVolume(blobs, labelVolume(image, c.labels), true)).hash;
    const geo = { spacing: c.volume.spacing, origin: c.volume.origin, direction: c.volume.direction };
    // 8-bit maps stay 8-bit (as the atlas pipeline writes attention); others as float32
    const put = async (m?: ArrayLike<number>) => (m ? (await putVolume(blobs, m instanceof Uint8Array ? createVolume(c.volume.shape, 'uint8', { data: m, ...geo }) : createVolume(c.volume.shape, 'float32', { data: Float32Array.from(m), ...geo }))).hash : null);
    const r = await recordPrediction(db, {
      jobId: job.id,
      imageId: image.id,
      target: c.target,
      probabilities: {},
      decision: c.decision ?? 'review',
      priority: c.priority,
      maskBlob,
      attentionBlob: await put(c.attention),
      heatmapBlob: await put(c.heatmap),
    });
    out.push({ maskId: r.maskId, imageId: image.id });
  }
  return out;
}
