/**
 * What every command shares: error printing (one line, a hint, an exit code from the error
 * registry; never a stack trace for bad input) and a progress bar on stderr.
 * @module
 */
import cliProgress from 'cli-progress';
import { ERRORS, isMedmaskError, MedmaskError } from '../core/errors.js';

/**
 * Whether errors are printed in full: `--verbose` (a global option of every command) or the older
 * `MEDMASK_DEBUG=1`, kept as an alias.
 */
export function verboseWanted(flag?: boolean): boolean {
  return !!flag || !!process.env.MEDMASK_DEBUG;
}

/**
 * Print an error the way users should see it and return the exit code: one line with the code, and
 * the hint. With `verbose`, also what third-party libraries (ITK, GDCM, libvips, dcmjs) printed while
 * failing — captured by the readers into `details.stderr` / `details.parser`, never let through to
 * stderr — and the stack traces.
 */
export function reportError(e: unknown, io: { err: (s: string) => void } = { err: (s) => process.stderr.write(s + '\n') }, opts: { verbose?: boolean } = {}): number {
  const verbose = verboseWanted(opts.verbose);
  const indent = (s: string) => `    ${s.split('\n').join('\n    ')}`;
  if (isMedmaskError(e)) {
    io.err(`medmask: error [${e.code}]: ${e.describe()}`);
    if (verbose) {
      const d = e.details ?? {};
      if (typeof d.stderr === 'string' && d.stderr) io.err(`  third-party output:\n${indent(d.stderr)}`);
      if (Array.isArray(d.parser) && d.parser.length) io.err(`  DICOM parser (dcmjs) reported:\n${indent(d.parser.map(String).join('\n'))}`);
      io.err(`  stack:\n${indent(String(e.stack))}`);
      if (e.cause) io.err(`  caused by:\n${indent(String((e.cause as Error).stack ?? e.cause))}`);
    }
    return ERRORS[e.code].exit;
  }
  const err = e as Error;
  io.err(`medmask: internal error: ${err?.message ?? String(e)}`);
  io.err(verbose ? String(err?.stack) : '  (run again with --verbose for the stack trace, and please report it)');
  return ERRORS.INTERNAL.exit;
}

/** A progress reporter: a bar on a terminal, a line every 10 % otherwise (CI logs). */
export interface Progress {
  tick(n?: number, note?: string): void;
  stop(): void;
}

/**
 * Start a progress bar for `total` steps on stderr.
 * @param label - what is being done
 * @param total - number of steps
 * @example
 * const p = startProgress('phantoms', 100); for (…) p.tick(); p.stop();
 */
export function startProgress(label: string, total: number, opts: { quiet?: boolean } = {}): Progress {
  if (opts.quiet || total <= 0) return { tick() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {value}/{total} {percentage}% eta {eta_formatted} {note}`, stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { note: '' });
    return { tick: (n = 1, note = '') => bar.increment(n, { note }), stop: () => bar.stop() };
  }
  let done = 0;
  let lastDecile = -1;
  const t0 = Date.now();
  return {
    tick(n = 1, note = '') {
      done += n;
      const decile = Math.floor((done / total) * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        process.stderr.write(`${label}: ${done}/${total} (${Math.round((done / total) * 100)}%, ${((Date.now() - t0) / 1000).toFixed(1)} s${note ? `, ${note}` : ''})\n`);
      }
    },
    stop() {},
  };
}

/** Format a number list for humans: "0.7 × 0.7 × 2.5". */
export function fmtVec(v: readonly number[], digits = 4): string {
  return v.map((x) => String(Number(x.toFixed(digits)))).join(' × ');
}

/** Parse a numeric option, naming it in the error. */
export function numberOption(name: string, value: string | undefined, fallback: number, check: (v: number) => boolean, expect: string): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  if (!Number.isFinite(v) || !check(v)) throw new MedmaskError('USAGE', `${name} ${JSON.stringify(value)} is not ${expect}`, { hint: `pass ${name} <${expect}>` });
  return v;
}
