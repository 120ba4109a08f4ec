/**
 * JSON Schema pieces shared by route definitions (they also make the OpenAPI document at /docs).
 * @module
 */

/** `{ id }` path parameter. */
export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 100, description: 'record id' } },
} as const;

/** An error response. */
export const errorSchema = {
  type: 'object',
  properties: {
    error: { type: 'string', description: 'code from the error registry, e.g. USAGE, NOT_FOUND, CONFLICT' },
    message: { type: 'string' },
    hint: { type: 'string' },
    details: { type: 'object', additionalProperties: true },
  },
  required: ['error', 'message'],
} as const;

/** The usual error responses, for the docs. */
export const errorResponses = {
  400: { description: 'bad request', ...errorSchema },
  401: { description: 'not logged in', ...errorSchema },
  403: { description: 'role lacks the permission, or CSRF token missing', ...errorSchema },
  404: { description: 'no such record', ...errorSchema },
} as const;

/** Paging query. */
export const pageQuery = {
  limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
  offset: { type: 'integer', minimum: 0, default: 0 },
} as const;

/** Security requirement: a session cookie or a bearer token. */
export const secured: { [scheme: string]: string[] }[] = [{ session: [] }, { bearer: [] }];

/** A permissive object response (documented fields, extra ones kept). */
export function objectResponse(description: string, properties: Record<string, unknown> = {}): Record<string, unknown> {
  return { description, type: 'object', properties, additionalProperties: true };
}

/**
 * What a name (project, data set, image, token, label) may hold: printable characters only — no
 * control characters or NUL, no bidirectional overrides or isolates (U+202A–U+202E, U+2066–U+2069,
 * which make "gpj.exe" display as "exe.jpg"), no zero-width or line/paragraph separators.
 */
export const NAME_PATTERN = '^[^\\u0000-\\u001f\\u007f-\\u009f\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2069\\ufeff]*$';
