/**
 * The DICOMweb job types (import a series, push a DICOM SEG), registered with the installation's
 * UID salt — the one file uploads use, so that imported series and uploaded ones map alike.
 * @module
 */
import type { JobHandlerRegistry } from '../handlers.js';
import { dicomwebImportHandler } from './dicomweb-import.js';
import { dicomwebPushHandler } from './dicomweb-push.js';

/**
 * Add `dicomweb-import` and `dicomweb-push` to a registry (kept when already there).
 * @example
 * registerDicomwebHandlers(createDefaultHandlers(), { uidSalt });
 */
export function registerDicomwebHandlers(reg: JobHandlerRegistry, o: { uidSalt: string }): JobHandlerRegistry {
  if (!reg.has('dicomweb-import')) reg.register('dicomweb-import', dicomwebImportHandler(o));
  if (!reg.has('dicomweb-push')) reg.register('dicomweb-push', dicomwebPushHandler(o));
  return reg;
}
