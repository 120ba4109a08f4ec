/**
 * The DICOMweb job types (import a series, push a DICOM SEG, read a data set's SEGs as labels), registered with the installation's
 * UID salt — the one file uploads use, so that imported series and uploaded ones map alike.
 * @module
 */
import type { SecretBox } from '../../store/secret-box.js';
import type { JobHandlerRegistry } from '../handlers.js';
import { dicomwebImportHandler } from './dicomweb-import.js';
import { dicomwebPushHandler } from './dicomweb-push.js';
import { dicomwebSegImportHandler } from './dicomweb-seg-import.js';

/**
 * Add `dicomweb-import`, `dicomweb-push` and `dicomweb-seg-import` to a registry (kept when already there).
 * @example
 * registerDicomwebHandlers(createDefaultHandlers(), { uidSalt, secrets });
 */
export function registerDicomwebHandlers(reg: JobHandlerRegistry, o: { uidSalt: string; secrets: SecretBox }): JobHandlerRegistry {
  if (!reg.has('dicomweb-import')) reg.register('dicomweb-import', dicomwebImportHandler(o));
  if (!reg.has('dicomweb-push')) reg.register('dicomweb-push', dicomwebPushHandler(o));
  if (!reg.has('dicomweb-seg-import')) reg.register('dicomweb-seg-import', dicomwebSegImportHandler(o));
  return reg;
}
