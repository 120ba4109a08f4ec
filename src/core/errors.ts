/**
 * The one error registry of medmask: every error a user can cause has a code, an HTTP status for
 * the server and an exit code for the CLI. Bad input is never a 500 or a stack trace.
 *
 * Messages name the bad value and say what to do. Throw early; wrap causes with `{ cause }`.
 * (Modelled on fastify's `lib/errors.js`.)
 * @module
 */

/** Definition of one error code. */
export interface ErrorDef {
  /** HTTP status the server answers with. */
  status: number;
  /** Process exit code of the CLI. */
  exit: number;
  /** One line for the docs. */
  summary: string;
}

/**
 * Every error code medmask raises. Exit codes: 2 usage, 3 input data, 4 model, 5 conflict,
 * 6 environment (a missing system package or device), 1 internal.
 */
export const ERRORS = {
  USAGE: { status: 400, exit: 2, summary: 'a command or request was called with missing or invalid options' },
  NOT_FOUND: { status: 404, exit: 3, summary: 'a file, folder, record or series does not exist' },
  UNSUPPORTED_FORMAT: { status: 415, exit: 3, summary: 'no reader or writer handles this file' },
  CORRUPT_FILE: { status: 422, exit: 3, summary: 'a file is truncated, malformed or inconsistent with its header' },
  NO_PIXEL_DATA: { status: 422, exit: 3, summary: 'a DICOM object holds no image pixels' },
  AMBIGUOUS_SERIES: { status: 409, exit: 3, summary: 'a folder holds several DICOM series and none was chosen' },
  DATASET_INVALID: { status: 422, exit: 3, summary: 'a data set (CSV, dataset.json, folder layout) is inconsistent' },
  GEOMETRY_MISMATCH: { status: 422, exit: 3, summary: 'an image and its labels do not share shape or geometry' },
  MODEL_INVALID: { status: 422, exit: 4, summary: 'a model or its manifest is unusable' },
  CONFLICT: { status: 409, exit: 5, summary: 'a save was based on a stale version' },
  TOO_LARGE: { status: 413, exit: 3, summary: 'an upload or request body is larger than the configured limit' },
  INPUT_TOO_LARGE: { status: 413, exit: 3, summary: "an image's header declares (or its compressed data inflate to) more voxels than the configured cap, or decoding ran past its time budget" },
  UNAUTHENTICATED: { status: 401, exit: 2, summary: 'a request carries no valid session or API token, or a login failed' },
  FORBIDDEN: { status: 403, exit: 2, summary: "the user's role does not allow this action" },
  RATE_LIMITED: { status: 429, exit: 5, summary: 'too many attempts in a short time; wait and try again' },
  REMOTE_UNAVAILABLE: { status: 502, exit: 6, summary: 'a remote archive (DICOMweb) cannot be reached, timed out or answered with a server error; try again' },
  REMOTE_REFUSED: { status: 424, exit: 3, summary: 'a remote archive (DICOMweb) refused a request (authentication, query, or a stored object it rejects)' },
  ENVIRONMENT: { status: 503, exit: 6, summary: 'a system package, device or service is missing' },
  INTERNAL: { status: 500, exit: 1, summary: 'a bug in medmask: please report it with the command line' },
} as const satisfies Record<string, ErrorDef>;

/** An error code. */
export type ErrorCode = keyof typeof ERRORS;

/** Options for {@link MedmaskError}. */
export interface MedmaskErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** What the user can do about it (printed after the message). */
  hint?: string;
  /** Structured details for API clients (e.g. the series found). */
  details?: Record<string, unknown>;
}

/**
 * An error a user can act on.
 * @example
 * throw new MedmaskError('CORRUPT_FILE', `${file}: gzip stream ends early`, { hint: 'copy the file again' });
 */
export class MedmaskError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, opts: MedmaskErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'MedmaskError';
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details;
  }
  /** HTTP status for this error. */
  get status(): number {
    return ERRORS[this.code].status;
  }
  /** CLI exit code for this error. */
  get exitCode(): number {
    return ERRORS[this.code].exit;
  }
  /** Message plus hint, as the CLI prints it. */
  describe(): string {
    return this.hint ? `${this.message}\n  hint: ${this.hint}` : this.message;
  }
}

/** True when `e` is a {@link MedmaskError} (also across module copies). */
export function isMedmaskError(e: unknown): e is MedmaskError {
  return e instanceof MedmaskError || (typeof e === 'object' && e !== null && (e as { name?: string }).name === 'MedmaskError');
}
