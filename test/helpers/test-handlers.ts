/**
 * Job handlers used only by tests: `test-rows` writes one prediction per image of a data set, with
 * a pause between them (so a test can kill a worker mid-job), through the store's idempotent
 * recordPrediction; `test-fail` fails a given number of times before succeeding; `test-fan` fans
 * out, one task per image (each records a prediction, then pauses), and its reduce step counts the
 * cases per worker process; tasks of the images named in `failNames` fail while the file
 * `failWhile` exists; `test-torch` needs the torch capability (capability routing).
 * `medmask worker --handlers test/helpers/test-handlers.ts` loads them into a worker process.
 */
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { MedmaskError } from '../../src/core/errors.js';
import type { JobHandler, JobHandlerRegistry } from '../../src/queue/handlers.js';
import { recordPrediction } from '../../src/store/masks.js';

interface RowsInput {
  datasetId: string;
  delayMs: number;
  /** Distinguishes otherwise identical jobs. */
  tag?: string;
}

/** A pause the job's signal cuts short (node's timer removes its abort listener when it fires). */
const sleep = (ms: number, signal: AbortSignal) => delay(ms, undefined, { signal });

interface FanInput {
  datasetId: string;
  delayMs: number;
  tag?: string;
  failNames?: string[];
  failWhile?: string;
}

/** Times (ms) of the attempts per job id, for the retry tests (in the process that runs the job). */
export const attemptTimes = new Map<string, number[]>();

export const testHandlers: Record<string, JobHandler> = {
  'test-rows': {
    description: 'test only: one prediction per image of a data set, slowly',
    validate(input) {
      const o = input as RowsInput;
      if (typeof o?.datasetId !== 'string' || !Number.isInteger(o.delayMs)) throw new MedmaskError('USAGE', 'test-rows needs { datasetId, delayMs }');
      return o;
    },
    async run(ctx) {
      const input = ctx.input as RowsInput;
      const images = await ctx.store.db.selectFrom('images').select('id').where('dataset_id', '=', input.datasetId).orderBy('name').execute();
      for (const [i, img] of images.entries()) {
        await recordPrediction(ctx.store.db, { jobId: ctx.jobId, imageId: img.id, target: 'test', probabilities: { a: i / images.length }, decision: 'review', priority: i, maskBlob: null });
        await ctx.progress((i + 1) / images.length, `row ${i + 1}/${images.length}`);
        await sleep(input.delayMs, ctx.signal);
      }
      return { rows: images.length, pid: process.pid, attempt: ctx.attempt };
    },
  },
  'test-fail': {
    description: 'test only: fails `times` times, then succeeds',
    validate(input) {
      return input;
    },
    async run(ctx) {
      const o = ctx.input as { times: number; tag?: string };
      const times = [...(attemptTimes.get(ctx.jobId) ?? []), Date.now()];
      attemptTimes.set(ctx.jobId, times);
      if (times.length <= o.times) throw new Error(`planned failure ${times.length}`);
      return { attempts: times.length, gapsMs: times.slice(1).map((t, i) => t - times[i]!) };
    },
  },
};

testHandlers['test-fan'] = {
  description: 'test only: one task per image of a data set (a prediction each, slowly), then a count per worker',
  validate(input) {
    const o = input as FanInput;
    if (typeof o?.datasetId !== 'string' || !Number.isInteger(o.delayMs)) throw new MedmaskError('USAGE', 'test-fan needs { datasetId, delayMs }');
    return o;
  },
  async check(input, ctx) {
    const n = await ctx.store.db.selectFrom('images').select('id').where('dataset_id', '=', (input as FanInput).datasetId).executeTakeFirst();
    if (!n) throw new MedmaskError('NOT_FOUND', `test-fan: data set ${(input as FanInput).datasetId} has no images`);
  },
  fanOut: {
    async plan(ctx) {
      const input = ctx.input as FanInput;
      const images = await ctx.store.db.selectFrom('images').select(['id', 'name']).where('dataset_id', '=', input.datasetId).orderBy('name').execute();
      return images.map((img, index) => ({ key: img.id, input: { name: img.name, index } }));
    },
    async runTask(ctx) {
      const input = ctx.input as FanInput;
      const t = ctx.task.input as { name: string; index: number };
      if (input.failNames?.includes(t.name) && input.failWhile && existsSync(input.failWhile)) throw new Error(`planned failure of ${t.name}`);
      await recordPrediction(ctx.store.db, { jobId: ctx.jobId, imageId: ctx.task.key, target: 'fan', probabilities: { a: t.index }, decision: 'review', priority: t.index, maskBlob: null });
      await sleep(input.delayMs, ctx.signal);
      return { pid: process.pid, index: t.index };
    },
    async reduce(_ctx, tasks) {
      const perPid: Record<string, number> = {};
      for (const t of tasks) if (t.status === 'done') perPid[(t.result as { pid: number }).pid] = (perPid[(t.result as { pid: number }).pid] ?? 0) + 1;
      return { done: tasks.filter((t) => t.status === 'done').length, failed: tasks.filter((t) => t.status === 'failed').map((t) => ({ key: t.key, error: t.error })), perPid };
    },
  },
};

testHandlers['test-torch'] = {
  description: 'test only: a job that needs the torch capability (it only pauses and says which process ran it)',
  requires: ['torch'],
  validate(input) {
    const o = input as { delayMs: number; tag?: string };
    if (!Number.isInteger(o?.delayMs)) throw new MedmaskError('USAGE', 'test-torch needs { delayMs }');
    return o;
  },
  async run(ctx) {
    await sleep((ctx.input as { delayMs: number }).delayMs, ctx.signal);
    return { pid: process.pid };
  },
};

/** Plug-in entry for `medmask worker --handlers`. */
export default function register(reg: JobHandlerRegistry): void {
  for (const [name, h] of Object.entries(testHandlers)) reg.register(name, h);
}
