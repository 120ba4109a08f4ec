/**
 * Job handlers used only by tests: `test-rows` writes one prediction per image of a data set, with
 * a pause between them (so a test can kill a worker mid-job), through the store's idempotent
 * recordPrediction; `test-fail` fails a given number of times before succeeding.
 * `medmask worker --handlers test/helpers/test-handlers.ts` loads them into a worker process.
 */
import { MedmaskError } from '../../src/core/errors.js';
import type { JobHandler, JobHandlerRegistry } from '../../src/queue/handlers.js';
import { recordPrediction } from '../../src/store/masks.js';

interface RowsInput {
  datasetId: string;
  delayMs: number;
  /** Distinguishes otherwise identical jobs. */
  tag?: string;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((res, rej) => {
    const t = setTimeout(res, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), rej(new Error('aborted'))), { once: true });
  });

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

/** Plug-in entry for `medmask worker --handlers`. */
export default function register(reg: JobHandlerRegistry): void {
  for (const [name, h] of Object.entries(testHandlers)) reg.register(name, h);
}
