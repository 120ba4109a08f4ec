/**
 * Worker thread for flagged regions: labelling the components of a CT-sized attention map takes
 * seconds, which must not stall the server's other requests (the viewer's slices). Messages:
 * `{ id, map, grid, opts }` → `{ id, regions }` or `{ id, error }`.
 * @module
 */
import { parentPort } from 'node:worker_threads';
import { flaggedRegions, type FlaggedRegionOptions } from '../core/viewer/regions.js';

parentPort?.on('message', (m: { id: number; map: Uint8Array; grid: [number, number, number]; opts: FlaggedRegionOptions }) => {
  try {
    parentPort!.postMessage({ id: m.id, regions: flaggedRegions(m.map, m.grid, m.opts) });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: (e as Error).message });
  }
});
