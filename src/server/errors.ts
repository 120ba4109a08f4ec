/**
 * One JSON shape for every error the API returns — `{ error: CODE, message, hint?, details? }` —
 * with the status from the error registry (src/core/errors.ts). Framework errors (validation,
 * content type, body size, malformed JSON, multipart limits) are mapped to registry codes with a
 * message that says what was wrong; only a real bug is a 500.
 * @module
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { ERRORS, isMedmaskError, type ErrorCode } from '../core/errors.js';

/** The body of an error response. */
export interface ApiError {
  error: ErrorCode;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

const BY_STATUS: Record<number, ErrorCode> = { 400: 'USAGE', 401: 'UNAUTHENTICATED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 406: 'UNSUPPORTED_FORMAT', 409: 'CONFLICT', 413: 'TOO_LARGE', 415: 'UNSUPPORTED_FORMAT', 422: 'DATASET_INVALID', 429: 'RATE_LIMITED' };

/** Map any thrown value to a status and an {@link ApiError}. */
export function toApiError(e: unknown, maxUploadBytes: number, bodyLimit?: number): { status: number; body: ApiError } {
  if (isMedmaskError(e)) {
    const body: ApiError = { error: e.code, message: e.message };
    if (e.hint) body.hint = e.hint;
    if (e.details) body.details = e.details;
    return { status: ERRORS[e.code].status, body };
  }
  const fe = e as FastifyError & { validationContext?: string };
  const mib = (maxUploadBytes / 2 ** 20).toFixed(0);
  switch (fe.code) {
    case 'FST_ERR_VALIDATION':
      return { status: 400, body: { error: 'USAGE', message: `invalid request: ${fe.message}`, hint: 'see the request schema at /docs' } };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, body: { error: 'UNSUPPORTED_FORMAT', message: `content type is not accepted by this route: ${fe.message.replace(/^Unsupported Media Type:?\s*/i, '') || 'none given'}`, hint: 'send application/json, or multipart/form-data for uploads (see /docs)' } };
    case 'FST_ERR_CTP_BODY_TOO_LARGE': {
      // The route's own body limit (2 MiB for JSON; the upload limit for binary routes), not the upload limit.
      const lim = bodyLimit ?? maxUploadBytes;
      const size = lim >= 2 ** 20 ? `${(lim / 2 ** 20).toFixed(lim % 2 ** 20 ? 1 : 0)} MiB` : `${lim} bytes`;
      return { status: 413, body: { error: 'TOO_LARGE', message: `the request body is larger than this route's limit of ${size}`, hint: bodyLimit !== undefined && bodyLimit < maxUploadBytes ? 'JSON bodies are small by design; send images and masks as file uploads' : 'split the upload, or raise the server\'s --max-upload-mb' } };
    }
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return { status: 413, body: { error: 'TOO_LARGE', message: `the request is too large (${fe.message}); the limit is ${mib} MiB per upload`, hint: 'split the upload, or raise the server\'s --max-upload-mb' } };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, body: { error: 'USAGE', message: 'the body is empty but the content type says JSON', hint: 'send a JSON object' } };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, body: { error: 'USAGE', message: 'Content-Length does not match the body' } };
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return { status: 415, body: { error: 'UNSUPPORTED_FORMAT', message: 'this route takes multipart/form-data (a file upload)', hint: 'e.g. curl -F file=@scan.nii.gz …' } };
  }
  if (clientAborted(e)) {
    return { status: 400, body: { error: 'USAGE', message: 'the client closed the connection before the request body was complete', hint: 'send the upload again' } };
  }
  if (fe instanceof SyntaxError || (fe.statusCode === 400 && /JSON/i.test(fe.message))) {
    return { status: 400, body: { error: 'USAGE', message: `the body is not valid JSON: ${fe.message}` } };
  }
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) return { status, body: { error: BY_STATUS[status] ?? 'USAGE', message: fe.message } };
  return { status: 500, body: { error: 'INTERNAL', message: 'internal error: please report it with the request that caused it' } };
}

/** A client that went away mid-request (busboy's "Unexpected end of form", a reset socket): its fault, a 4xx. */
function clientAborted(e: unknown): boolean {
  const x = e as { code?: string; message?: string };
  return x?.code === 'ECONNRESET' || x?.code === 'ERR_STREAM_PREMATURE_CLOSE' || x?.code === 'ECONNABORTED' || /^(Unexpected end of (form|multipart data)|aborted|Request aborted)$/i.test(x?.message ?? '');
}

/** Install the error and not-found handlers. */
export function installErrorHandlers(app: FastifyInstance, maxUploadBytes: number): void {
  app.setErrorHandler((e, req, reply) => {
    const aborted = req.raw.aborted || clientAborted(e);
    const { status, body } = aborted ? { status: 400, body: { error: 'USAGE', message: 'the client closed the connection before the request body was complete', hint: 'send the upload again' } as ApiError } : toApiError(e, maxUploadBytes, req.routeOptions?.bodyLimit);
    if (aborted) {
      // The client's doing, not a fault of the server: info, not error; the audit row says so.
      req.log.info({ code: (e as { code?: string }).code }, 'client closed the connection mid-request');
      req.auditDetails = { ...req.auditDetails, clientClosed: true };
    }
    else if (status >= 500) req.log.error({ err: e }, 'internal error');
    if (status === 429 && body.details?.retryAfterSeconds) void reply.header('retry-after', String(body.details.retryAfterSeconds));
    void reply.code(status).type('application/json').send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}`, hint: 'the API is documented at /docs' } satisfies ApiError);
  });
}
