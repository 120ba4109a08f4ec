/**
 * Worker thread of {@link DecodePool}: reads one upload at a time with medmask's reader registry
 * (or a DICOM series with `loadDicom`) and posts the volume back, its voxels transferred, not copied.
 * @module
 */
import { parentPort } from 'node:worker_threads';
import { isMedmaskError } from '../core/errors.js';
import { loadDicom, readVolume } from '../io/index.js';
import type { DecodeRequest, DecodeReply } from './decode-pool.js';

parentPort!.on('message', (m: DecodeRequest) => {
  void (async () => {
    let reply: DecodeReply;
    const transfer: ArrayBuffer[] = [];
    try {
      if (m.kind === 'dicom') {
        const { volume, headers } = await loadDicom(m.path, m.opts);
        reply = { id: m.id, volume, headers };
        transfer.push(volume.data.buffer as ArrayBuffer);
      } else {
        const volume = await readVolume(m.path, m.opts);
        reply = { id: m.id, volume };
        transfer.push(volume.data.buffer as ArrayBuffer);
      }
    } catch (e) {
      reply = isMedmaskError(e)
        ? { id: m.id, error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}), ...(e.details ? { details: e.details } : {}) } }
        : { id: m.id, error: { message: e instanceof Error ? e.message : String(e) } };
    }
    parentPort!.postMessage(reply, transfer);
  })();
});
