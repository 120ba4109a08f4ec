/**
 * The job types of one deployment: the built-in handlers, the `--handlers` plug-in modules and the
 * DICOMweb types (with the deployment's UID salt and secret box). The server, `medmask worker` and the server's
 * job process (job-process.ts) all build their registry here, so that they know the same types.
 * @module
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MedmaskError } from '../core/errors.js';
import { createDefaultHandlers } from './default-handlers.js';
import type { JobHandlerRegistry } from './handlers.js';
import { registerDicomwebHandlers } from './handlers/dicomweb.js';
import type { SecretBox } from '../store/secret-box.js';

/** Load handler plug-ins: each module default-exports `(registry) => void`. */
export async function loadHandlerModules(reg: JobHandlerRegistry, modules: readonly string[]): Promise<void> {
  for (const m of modules) {
    let mod: { default?: unknown };
    try {
      mod = (await import(pathToFileURL(resolve(m)).href)) as { default?: unknown };
    } catch (e) {
      throw new MedmaskError('USAGE', `job handler module ${m} cannot be loaded: ${(e as Error).message}`, { cause: e });
    }
    if (typeof mod.default !== 'function') throw new MedmaskError('USAGE', `job handler module ${m} must default-export a function (registry) => void`);
    (mod.default as (r: JobHandlerRegistry) => void)(reg);
  }
}

/**
 * The registry of a deployment's process.
 * @example
 * const handlers = await deploymentHandlers(cfg.handlers, { uidSalt, secrets });
 */
export async function deploymentHandlers(modules: readonly string[], o: { uidSalt: string; secrets: SecretBox }): Promise<JobHandlerRegistry> {
  const reg = createDefaultHandlers();
  await loadHandlerModules(reg, modules);
  return registerDicomwebHandlers(reg, o);
}
