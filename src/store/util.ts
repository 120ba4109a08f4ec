/**
 * Small helpers every store module shares: ids, times, JSON columns.
 * @module
 */
import { randomUUID } from 'node:crypto';

/** A new random id (UUID v4). */
export function newId(): string {
  return randomUUID();
}

/** Now as ISO-8601 text (the store's time format: sortable as text on both engines). */
export function nowIso(): string {
  return new Date().toISOString();
}

/**
 * JSON with object keys sorted at every level: equal values give equal text, so equal job inputs
 * give equal hashes.
 * @example
 * canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] }); // '{"a":[{"c":3,"d":2}],"b":1}'
 */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return '[' + v.map((x) => canonicalJson(x === undefined ? null : x)).join(',') + ']';
  const o = v as Record<string, unknown>;
  return '{' + Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k])).join(',') + '}';
}

/** Parse a JSON column (null stays null). */
export function parseJson<T = unknown>(s: string | null | undefined): T | null {
  return s == null ? null : (JSON.parse(s) as T);
}
