/**
 * What every reader checks before it inflates or allocates: the voxel count a header declares
 * against a cap (`maxVoxels`), gzip inflated with a hard output cap, and geometry that is finite and
 * non-degenerate. Also a way to fold what third-party libraries print on stderr into medmask's own
 * one-line error.
 *
 * Node's zlib has a `maxOutputLength` that aborts an inflation as soon as it passes the cap (the
 * output is streamed internally, so memory stays bounded by the cap): a 1 MB file that inflates to
 * 1.5 GiB is refused after a few MiB.
 * @module
 */
import { constants as bufferConstants } from 'node:buffer';
import { promisify } from 'node:util';
import { gunzip as gunzipCb, gunzipSync, constants as zc } from 'node:zlib';
import { MedmaskError } from '../core/errors.js';

const gunzip = promisify(gunzipCb);

/**
 * Default cap on the voxels (× components) an input may declare: a 1024×1024×2048 CT.
 * Override with the `maxVoxels` read option, `MEDMASK_MAX_VOXELS`, or the server's `maxVoxels`.
 */
export const DEFAULT_MAX_VOXELS = 1024 * 1024 * 2048;

/** Environment variable that sets the cap for the CLI and library calls that pass none. */
export const MAX_VOXELS_ENV = 'MEDMASK_MAX_VOXELS';

/**
 * The cap in force: the option, else `MEDMASK_MAX_VOXELS`, else {@link DEFAULT_MAX_VOXELS}.
 * @throws MedmaskError USAGE when the environment variable is not a positive whole number
 * @example
 * const cap = maxVoxelsOf({}); // 2147483648
 */
export function maxVoxelsOf(opts: { maxVoxels?: number } = {}): number {
  if (opts.maxVoxels !== undefined) return opts.maxVoxels;
  const env = process.env[MAX_VOXELS_ENV];
  if (env === undefined || env === '') return DEFAULT_MAX_VOXELS;
  const n = Number(env);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new MedmaskError('USAGE', `${MAX_VOXELS_ENV}=${JSON.stringify(env)} is not a positive whole number`, { hint: `e.g. ${MAX_VOXELS_ENV}=${DEFAULT_MAX_VOXELS} (a 1024×1024×2048 CT)` });
  }
  return n;
}

/** What a header declares, for {@link checkDeclaredSize}. */
export interface DeclaredSize {
  /** Sizes along each axis (any number of axes; extra axes multiply). */
  dims: readonly number[];
  /** Components per voxel (RGB: 3). Default 1. */
  components?: number;
  /** Bytes per component as stored. */
  bytesPerElement: number;
  /** Type name for messages (e.g. "int16"). */
  type?: string;
}

function human(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${bytes} bytes`;
}

/**
 * Refuse a header whose declared size passes the cap, before anything is allocated or inflated.
 * @param name - file name for the message
 * @param d - declared dimensions, components and bytes per element
 * @param maxVoxels - the cap (voxels × components)
 * @returns the declared element count and byte count
 * @throws MedmaskError INPUT_TOO_LARGE naming the declared size and the cap; CORRUPT_FILE for non-integer or non-positive sizes
 * @example
 * checkDeclaredSize('ct.nii.gz', { dims: [512, 512, 300], bytesPerElement: 2, type: 'int16' }, maxVoxelsOf());
 */
export function checkDeclaredSize(name: string, d: DeclaredSize, maxVoxels: number): { elements: number; bytes: number } {
  if (d.dims.some((n) => !Number.isSafeInteger(n) || n < 1)) {
    throw new MedmaskError('CORRUPT_FILE', `${name}: declared sizes ${JSON.stringify(d.dims)} must be positive whole numbers`, { hint: 'the header is damaged; export the file again' });
  }
  const comps = d.components ?? 1;
  const elements = d.dims.reduce((a, b) => a * b, 1) * comps;
  const bytes = elements * d.bytesPerElement;
  const shape = `${d.dims.join('×')}${comps > 1 ? `×${comps}` : ''}${d.type ? ` ${d.type}` : ''}`;
  if (elements > maxVoxels || bytes > bufferConstants.MAX_LENGTH) {
    throw new MedmaskError('INPUT_TOO_LARGE', `${name}: the header declares ${shape} = ${elements.toExponential(3)} voxels (${human(bytes)}), over the cap of ${maxVoxels} voxels${bytes > bufferConstants.MAX_LENGTH ? ` (and over the ${human(bufferConstants.MAX_LENGTH)} one buffer can hold)` : ''}`, {
      hint: `if the image is genuine, raise the cap (--max-voxels, ${MAX_VOXELS_ENV}, or the server's maxVoxels setting); otherwise the header is damaged or hostile`,
      details: { declaredVoxels: elements, declaredBytes: bytes, maxVoxels },
    });
  }
  return { elements, bytes };
}

/**
 * The first bytes of a gzip stream, inflated from a bounded amount of compressed input (deflate
 * expands at most ~1032×, so 1 KiB in gives at most ~1 MiB out). Undefined when nothing inflates.
 * @param gz - the gzip bytes
 * @param want - how many inflated bytes the caller needs
 * @example
 * const head = inflateHead(bytes, 540); // enough for a NIfTI-2 header
 */
export function inflateHead(gz: Uint8Array, want = 1024): Uint8Array | undefined {
  let best: Uint8Array | undefined;
  // Small input first: a bomb's second gzip member starts right after a small header's first one,
  // and 1 KiB of it alone inflates to ~1 MiB.
  for (const k of [256, 1024, 16384, 65536]) {
    try {
      best = gunzipSync(gz.subarray(0, Math.min(gz.length, k)), { finishFlush: zc.Z_SYNC_FLUSH });
    } catch {
      // a stream too short to inflate anything yet; try more input
    }
    if ((best && best.length >= want) || k >= gz.length) break;
  }
  return best;
}

/**
 * Inflate gzip with a hard output cap: past `capBytes` the inflation stops and the file is refused.
 * @param gz - the gzip bytes
 * @param name - file name for messages
 * @param capBytes - most bytes the output may hold (the header's promise plus slack)
 * @param what - what the cap stands for, for the message (e.g. "the 352 + 128 bytes its header declares")
 * @param chunkSize - zlib output chunk size (one chunk of the exact size avoids copies)
 * @throws MedmaskError INPUT_TOO_LARGE when the output passes the cap; CORRUPT_FILE for a damaged stream
 * @example
 * const raw = await inflateCapped(bytes, 'ct.nii.gz', 352 + 512 * 512 * 300 * 2 + 2 ** 20, 'its header declares');
 */
export async function inflateCapped(gz: Uint8Array, name: string, capBytes: number, what: string, chunkSize?: number): Promise<Buffer> {
  const cap = Math.max(1, Math.min(capBytes, bufferConstants.MAX_LENGTH));
  try {
    return await gunzip(gz, { maxOutputLength: cap, ...(chunkSize ? { chunkSize: Math.min(chunkSize, cap + 1) } : {}) });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new MedmaskError('INPUT_TOO_LARGE', `${name}: the gzip data inflate to more than ${cap} bytes, more than ${what}; inflation was stopped there`, {
        cause: e,
        hint: 'a file whose compressed data outgrow its header is damaged or a decompression bomb; export it again',
        details: { inflateCapBytes: cap },
      });
    }
    if (code === 'Z_BUF_ERROR' || /unexpected end/i.test((e as Error).message)) {
      throw new MedmaskError('CORRUPT_FILE', `${name}: the gzip stream ends early (unexpected end of file)`, { cause: e, hint: 'the file is truncated: the copy or download was interrupted; fetch or export it again' });
    }
    throw new MedmaskError('CORRUPT_FILE', `${name}: the gzip stream is corrupt (${printable((e as Error).message)})`, { cause: e, hint: 'the file is damaged; fetch or export it again' });
  }
}

/**
 * A string safe to put into a one-line message: control characters, bidi overrides and other
 * non-printing code points become `\uXXXX`, and it is cut to `max` characters.
 * @example
 * printable('ab\u0000c'); // 'ab\\u0000c'
 */
export function printable(s: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const out = s.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufffd]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return out.length > max ? `${out.slice(0, max)}…` : out;
}

/** Geometry as a reader found it. */
export interface GeometryFields {
  spacing: readonly number[];
  origin: readonly number[];
  /** Row-major 3×3, columns = axis directions. */
  direction: readonly number[];
}

/**
 * Refuse geometry that no scanner writes: spacings that are not finite and positive, an origin that
 * is not finite, a direction matrix that is not finite or whose axes are zero or parallel.
 * @param name - file name for the message
 * @param g - the geometry
 * @param fields - what the header calls each part (e.g. `{ spacing: 'ElementSpacing' }`)
 * @throws MedmaskError CORRUPT_FILE naming the field and its value
 * @example
 * checkGeometry('ct.mha', { spacing: [1, 1, 0], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] });
 */
export function checkGeometry(name: string, g: GeometryFields, fields: { spacing?: string; origin?: string; direction?: string } = {}): void {
  const bad = (field: string, value: readonly number[], why: string): never => {
    throw new MedmaskError('CORRUPT_FILE', `${name}: ${field} ${JSON.stringify(value.map((x) => (Number.isFinite(x) ? x : String(x))))} ${why}`, {
      hint: 'the header holds impossible geometry; fix it in the tool that wrote the file, or export it again',
    });
  };
  if (g.spacing.some((s) => !(Number.isFinite(s) && s > 0))) bad(fields.spacing ?? 'spacing', g.spacing, 'must be finite and positive');
  if (g.origin.some((s) => !Number.isFinite(s))) bad(fields.origin ?? 'origin', g.origin, 'must be finite');
  const d = g.direction;
  if (d.length !== 9 || d.some((x) => !Number.isFinite(x))) bad(fields.direction ?? 'direction', d, 'must be 9 finite numbers');
  const col = (c: number) => [d[c]!, d[3 + c]!, d[6 + c]!];
  const cols = [col(0), col(1), col(2)];
  if (cols.some((v) => Math.hypot(...v) < 1e-6)) bad(fields.direction ?? 'direction', d, 'has a zero-length axis');
  const [a, b, c] = cols as [number[], number[], number[]];
  const det = a[0]! * (b[1]! * c[2]! - b[2]! * c[1]!) - b[0]! * (a[1]! * c[2]! - a[2]! * c[1]!) + c[0]! * (a[1]! * b[2]! - a[2]! * b[1]!);
  const scale = Math.hypot(...a) * Math.hypot(...b) * Math.hypot(...c);
  if (!(Math.abs(det) > 1e-6 * scale)) bad(fields.direction ?? 'direction', d, 'has parallel axes (its determinant is 0)');
}

/**
 * Run `fn` while collecting what is written to stderr (third-party libraries — ITK, GDCM, libvips,
 * dcmjs — print there before medmask's own error). The text is returned instead of printed;
 * callers fold it into their error's details (the CLI shows it with `--verbose`).
 * @example
 * const { value, noise } = await captureStderr(() => readImageNode(path));
 */
export async function captureStderr<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: unknown; noise: string }> {
  const chunks: string[] = [];
  const original = process.stderr.write;
  const origWarn = console.warn;
  const origError = console.error;
  const origLog = console.log;
  const grab = (...args: unknown[]) => {
    chunks.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
  };
  process.stderr.write = ((chunk: unknown) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    return true;
  }) as typeof process.stderr.write;
  console.warn = grab;
  console.error = grab;
  console.log = grab; // itk-wasm prints "Exception while running pipeline:" with console.log
  try {
    return { value: await fn(), noise: chunks.join('').trim() };
  } catch (error) {
    return { error, noise: chunks.join('').trim() };
  } finally {
    process.stderr.write = original;
    console.warn = origWarn;
    console.error = origError;
    console.log = origLog;
  }
}
