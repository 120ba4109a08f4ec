/**
 * Capability routing: some job types need something that not every machine has (today `torch`:
 * Debian's python3-torch for the `finetune` trainer). A handler names it (`requires`), each process
 * that runs jobs detects its capabilities once at start and records them in the `workers` table
 * with a heartbeat, BullMQ carries such jobs on a queue of their own that only capable workers
 * consume (bullmq.ts), and a submission with no live capable process is refused at once with an
 * ENVIRONMENT error naming the package — a job never waits for a worker that does not exist.
 *
 * `MEDMASK_CAPABILITIES` overrides the detection (comma-separated, e.g. `torch`, or `none`): for
 * tests, and for machines where the probe would be slow.
 * @module
 */
import { execFile } from 'node:child_process';
import { availableParallelism, hostname } from 'node:os';
import { MedmaskError } from '../core/errors.js';
import type { Store } from '../store/db.js';
import { liveWorkers, liveWorkersOnHost, registerWorker, removeWorker, touchWorker } from '../store/workers.js';
import type { JobHandler, JobHandlerRegistry } from './handlers.js';
import type { JobQueue, LaneRoute } from './queue.js';

/** What a process may be able to do beyond the built-in job types. */
export type Capability = 'torch';

/** How each capability is detected and which package brings it. */
export const CAPABILITIES: Readonly<Record<Capability, { package: string; probe: [string, string[]]; what: string }>> = {
  torch: { package: 'python3-torch', probe: ['/usr/bin/python3', ['-c', 'import torch']], what: 'PyTorch (/usr/bin/python3 can import torch)' },
};

const isCapability = (s: string): s is Capability => Object.hasOwn(CAPABILITIES, s);

/**
 * This machine's capabilities: `MEDMASK_CAPABILITIES` when set, else each probe run once (a
 * process calls this at start and keeps the answer).
 * @throws MedmaskError USAGE when the override names an unknown capability
 */
export async function detectCapabilities(env: NodeJS.ProcessEnv = process.env): Promise<Capability[]> {
  const override = env.MEDMASK_CAPABILITIES;
  if (override !== undefined) {
    const names = override.split(',').map((s) => s.trim()).filter((s) => s && s !== 'none');
    const bad = names.filter((n) => !isCapability(n));
    if (bad.length) throw new MedmaskError('USAGE', `MEDMASK_CAPABILITIES names unknown capabilities: ${bad.join(', ')}`, { hint: `known: ${Object.keys(CAPABILITIES).join(', ')}, or "none"` });
    return names as Capability[];
  }
  const found: Capability[] = [];
  for (const [name, c] of Object.entries(CAPABILITIES) as [Capability, (typeof CAPABILITIES)[Capability]][]) {
    const ok = await new Promise<boolean>((res) => execFile(c.probe[0], c.probe[1], { timeout: 120_000 }, (err) => res(!err)));
    if (ok) found.push(name);
  }
  return found;
}

/** The capabilities a handler needs (none for most). */
export function requirementsOf(handler: JobHandler): readonly Capability[] {
  return handler.requires ?? [];
}

/** The queue lane of a job type: '' for the common queue, else e.g. 'torch'. */
export function laneOf(handlers: JobHandlerRegistry, type: string): string {
  return handlers.has(type) ? [...requirementsOf(handlers.get(type))].sort().join('+') : '';
}

/**
 * At submission: is there a live process that can run this job type? None → ENVIRONMENT naming
 * the package to install. Some → a line for the job's message while it waits for one of them.
 * @returns null when the type needs nothing special
 */
export async function checkCapableWorker(store: Store, type: string, handler: JobHandler, o: { staleMs?: number; inProcess?: () => Promise<readonly Capability[]> } = {}): Promise<string | null> {
  const needs = requirementsOf(handler);
  if (!needs.length) return null;
  if (o.inProcess) {
    // The in-process queue: this server is the only process that runs jobs.
    const own = await o.inProcess();
    const missing = needs.filter((c) => !own.includes(c));
    if (missing.length) {
      throw new MedmaskError('ENVIRONMENT', `"${type}" jobs need ${missing.map((c) => `${c} (Debian package ${CAPABILITIES[c].package})`).join(' and ')}, and this server, which runs the jobs itself (in-process queue), does not have it`, {
        hint: `install it here (apt-get install -y ${missing.map((c) => CAPABILITIES[c].package).join(' ')}) and restart medmask serve, or run medmask worker processes on machines that have it (--queue redis://…; docs/deploy.md)`,
      });
    }
    return `queued: waiting for this server's job process (it has ${needs.join(' and ')})`;
  }
  const live = await liveWorkers(store.db, o.staleMs ?? WORKER_STALE_MS);
  const capable = live.filter((w) => w.jobTypes.includes(type) && needs.every((c) => w.capabilities.includes(c)));
  const names = needs.map((c) => `${c} (Debian package ${CAPABILITIES[c].package})`).join(' and ');
  if (!capable.length) {
    const seen = live.length ? `none of the ${live.length} live worker(s) has it (${live.map((w) => `${w.id}: ${w.capabilities.join(', ') || 'no capabilities'}`).join('; ')})` : 'no worker is running';
    throw new MedmaskError('ENVIRONMENT', `"${type}" jobs need ${names}, and ${seen}`, {
      hint: `install it on a worker machine (apt-get install -y ${needs.map((c) => CAPABILITIES[c].package).join(' ')}) and restart medmask worker there (or medmask serve, with the in-process queue); processes detect it at start`,
    });
  }
  return `queued: waiting for a worker with ${needs.join(' and ')} (${capable.map((w) => w.id).join(', ')})`;
}

/** A process's row in `workers`, kept fresh while it runs. */
export interface WorkerPresence {
  id: string;
  capabilities: readonly Capability[];
  stop(): Promise<void>;
}

/**
 * Record this process as one that runs jobs, with its capabilities and job types, and refresh the
 * row every `heartbeatMs` (a failed refresh is only skipped: the database may be away for a while).
 * @example
 * const presence = await announceWorker(store, { kind: 'worker', handlers, heartbeatMs: 5000 });
 * // … on shutdown: await presence.stop();
 */
export async function announceWorker(store: Store, o: { kind: 'worker' | 'server'; handlers: JobHandlerRegistry; heartbeatMs: number; id?: string; capabilities?: readonly Capability[] }): Promise<WorkerPresence> {
  const id = o.id ?? `${hostname()}:${process.pid}`;
  const capabilities = o.capabilities ?? (await detectCapabilities());
  await registerWorker(store.db, { id, kind: o.kind, capabilities, jobTypes: o.handlers.names() });
  const t = setInterval(() => void touchWorker(store.db, id).catch(() => {}), o.heartbeatMs);
  t.unref();
  return {
    id,
    capabilities,
    async stop() {
      clearInterval(t);
      await removeWorker(store.db, id).catch(() => {});
    },
  };
}

/** How old a worker's heartbeat may be before it counts as gone (workers refresh it every ≤ 5 s). */
export const WORKER_STALE_MS = 60_000;

/** The lanes of a registry's job types, for {@link JobQueue.routeBy}. */
export function laneRoute(handlers: JobHandlerRegistry): LaneRoute {
  const lanes = [...new Set(handlers.names().map((t) => laneOf(handlers, t)).filter(Boolean))].sort();
  return { laneOf: (type) => laneOf(handlers, type), lanes };
}

/**
 * This process's share of the machine's cores for one task's model inference: the cores divided
 * by the tasks that may run on this host at once (live processes here × `concurrency`), at least 1.
 * onnxruntime sizes its thread pool to the whole machine by default; two workers on one machine
 * would then run four compute threads on two cores, each waiting at the other's barriers.
 * @example
 * await hostThreadShare(store, { concurrency: 1 }); // 2 cores, 2 workers on this host → 1
 */
export async function hostThreadShare(store: Store, o: { concurrency?: number; cores?: number; host?: string; staleMs?: number } = {}): Promise<number> {
  const procs = Math.max(1, await liveWorkersOnHost(store.db, o.host ?? hostname(), o.staleMs ?? WORKER_STALE_MS));
  return Math.max(1, Math.floor((o.cores ?? availableParallelism()) / (procs * Math.max(1, o.concurrency ?? 1))));
}
