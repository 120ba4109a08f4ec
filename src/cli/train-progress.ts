/**
 * Progress bars and Ctrl-C handling shared by the training commands (`train-head`,
 * `train-mask-head`): one bar for the backbone passes, one for the epochs; an interrupt aborts
 * between images / epochs and says that the cache keeps what was extracted.
 * @module
 */
import { MedmaskError } from '../core/errors.js';
import type { EpochRecord } from '../core/train/fit.js';
import { startProgress, type Progress } from './output.js';

/** Progress events of a training command. */
export type TrainProgressEvent =
  | { phase: 'extract'; done: number; total: number; cached: number }
  | { phase: 'train'; epoch: number; epochs: number; record: EpochRecord }
  | { phase: 'write'; file: string };

/**
 * Run a training command with progress bars and Ctrl-C handling.
 * @param what - the command name (for the interrupt message)
 * @param extractLabel - the first bar's label (e.g. "features")
 * @param quiet - no bars (JSON output)
 * @param body - the training, given the abort signal and the progress callback
 * @returns what `body` returns; on Ctrl-C the process exits with 130
 * @example
 * const r = await withTrainingProgress('train-head', 'features', false, (signal, onProgress) => trainHead({ …, signal, onProgress }));
 */
export async function withTrainingProgress<T>(what: string, extractLabel: string, quiet: boolean, body: (signal: AbortSignal, onProgress: (e: TrainProgressEvent) => void) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = (): void => controller.abort(new MedmaskError('USAGE', 'interrupted'));
  process.once('SIGINT', onSigint);
  let bar: Progress | undefined;
  let phase = '';
  let lastDone = 0;
  const onProgress = (e: TrainProgressEvent): void => {
    if (e.phase === 'extract') {
      if (phase !== 'extract') {
        phase = 'extract';
        bar = startProgress(extractLabel, e.total, { quiet });
      }
      if (e.done > lastDone) {
        bar?.tick(e.done - lastDone, e.cached ? `${e.cached} from the cache` : '');
        lastDone = e.done;
      }
    } else if (e.phase === 'train') {
      if (phase !== 'train') {
        bar?.stop();
        phase = 'train';
        bar = startProgress('training', e.epochs, { quiet });
      }
      const r = e.record;
      bar?.tick(1, `loss ${r.trainLoss.toFixed(3)}${Number.isFinite(r.valLoss) ? ` val ${r.valLoss.toFixed(3)} acc ${(100 * r.valAccuracy).toFixed(0)}%` : ''}`);
    } else if (phase !== 'write') {
      bar?.stop();
      phase = 'write';
    }
  };
  try {
    const r = await body(controller.signal, onProgress);
    bar?.stop();
    return r;
  } catch (e) {
    bar?.stop();
    if (controller.signal.aborted) {
      process.stderr.write(`medmask: ${what} interrupted; what was extracted so far is cached: run the same command again to resume\n`);
      process.exit(130);
    }
    throw e;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
