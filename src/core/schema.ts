/**
 * A small JSON-schema-style validator for medmask's own JSON files (model manifests, …): types,
 * required and unknown keys, enums, number ranges, arrays, maps with key patterns, and objects
 * told apart by a tag field (`"mode": "mean-std" | "ct-window" | …`). Unlike a generic validator,
 * every error names the field path as the user wrote it (`preprocess.intensity.mode`) and, for a
 * misspelt key or enum value, says what was probably meant ("did you mean" by edit distance).
 *
 * Pure: no Node APIs.
 * @module
 */

/** A schema node. */
export type Schema =
  | StringSchema
  | NumberSchema
  | BooleanSchema
  | ArraySchema
  | ObjectSchema
  | MapSchema
  | TaggedSchema
  | AnyOfSchema;

interface Described {
  /** One line for docs and error messages. */
  description?: string;
}

/** A string, optionally from a fixed list or equal to a constant. */
export interface StringSchema extends Described {
  type: 'string';
  enum?: readonly string[];
  const?: string;
  minLength?: number;
  maxLength?: number;
}

/** A number; `integer` requires a whole number. */
export interface NumberSchema extends Described {
  type: 'number' | 'integer';
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
}

/** true or false. */
export interface BooleanSchema extends Described {
  type: 'boolean';
}

/** An array of items of one schema. */
export interface ArraySchema extends Described {
  type: 'array';
  items: Schema;
  minItems?: number;
  maxItems?: number;
  /** Items must be distinct (compared as JSON). */
  uniqueItems?: boolean;
}

/** An object with known keys; unknown keys are errors (with a suggestion). */
export interface ObjectSchema extends Described {
  type: 'object';
  properties: Record<string, Schema>;
  required?: readonly string[];
}

/** An object used as a map: any key matching `keyPattern`, every value of one schema. */
export interface MapSchema extends Described {
  type: 'map';
  values: Schema;
  keyPattern?: RegExp;
  /** Shown when a key does not match, e.g. "a label value such as \"1\"". */
  keyDescription?: string;
  minProperties?: number;
}

/** An object whose shape depends on the value of one field (the tag). */
export interface TaggedSchema extends Described {
  type: 'tagged';
  tag: string;
  variants: Record<string, ObjectSchema>;
}

/** One of several schemas (the first that matches); errors of the closest one are reported. */
export interface AnyOfSchema extends Described {
  type: 'anyOf';
  anyOf: readonly Schema[];
}

/** One validation problem. */
export interface SchemaIssue {
  /** Field path, e.g. `preprocess.intensity.mode` or `classes[2]`; `(root)` for the document. */
  path: string;
  /** What is wrong, naming the bad value. */
  message: string;
  /** A likely intended key or value, for typos. */
  suggestion?: string;
}

/**
 * Edit distance with adjacent transpositions (optimal string alignment: insertions, deletions,
 * substitutions, swaps of two neighbours; case-sensitive).
 * @param a - first string
 * @param b - second string
 * @returns the number of edits
 * @example
 * editDistance('intensty', 'intensity'); // 1
 * editDistance('mni', 'min'); // 1
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    const prev = rows[i - 1]!;
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      cur[j] = d;
    }
    rows.push(cur);
  }
  return rows[a.length]![b.length]!;
}

/**
 * The candidate closest to a misspelt word, when it is close enough to be a likely typo:
 * distance ≤ max(1, ⌊length/3⌋) after ignoring case and the difference between `-`, `_` and space.
 * @param word - what the user wrote
 * @param candidates - what is allowed
 * @returns the suggestion, or undefined
 * @example
 * didYouMean('mean_std', ['mean-std', 'min-max', 'ct-window']); // 'mean-std'
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_ ]/g, '');
  const w = norm(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = norm(c) === w ? 0 : editDistance(w, norm(c)) + 0.5; // exact up to case/separators first
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  if (best === undefined) return undefined;
  return bestD <= Math.max(1, Math.floor(word.length / 3)) + 0.5 ? best : undefined;
}

const show = (v: unknown): string => {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return String(v);
};

const join = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function check(schema: Schema, value: unknown, path: string, out: SchemaIssue[]): void {
  const at = path === '' ? '(root)' : path;
  const push = (message: string, suggestion?: string): void => {
    out.push(suggestion === undefined ? { path: at, message } : { path: at, message, suggestion });
  };
  switch (schema.type) {
    case 'string': {
      if (typeof value !== 'string') return push(`expected a string, got ${show(value)}`);
      if (schema.const !== undefined && value !== schema.const) return push(`${show(value)} should be ${show(schema.const)}`, didYouMean(value, [schema.const]));
      if (schema.enum && !schema.enum.includes(value)) return push(`${show(value)} is not one of ${schema.enum.join(', ')}`, didYouMean(value, schema.enum));
      if (schema.minLength !== undefined && value.length < schema.minLength) return push(schema.minLength === 1 ? 'must not be empty' : `must have at least ${schema.minLength} characters`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) return push(`has ${value.length} characters, at most ${schema.maxLength} are allowed`);
      return;
    }
    case 'number':
    case 'integer': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return push(`expected a ${schema.type === 'integer' ? 'whole number' : 'number'}, got ${show(value)}`);
      if (schema.type === 'integer' && !Number.isInteger(value)) return push(`expected a whole number, got ${value}`);
      if (schema.minimum !== undefined && value < schema.minimum) return push(`${value} is below the minimum ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum) return push(`${value} is above the maximum ${schema.maximum}`);
      if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) return push(`${value} must be greater than ${schema.exclusiveMinimum}`);
      if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) return push(`${value} must be less than ${schema.exclusiveMaximum}`);
      return;
    }
    case 'boolean':
      if (typeof value !== 'boolean') push(`expected true or false, got ${show(value)}`);
      return;
    case 'array': {
      if (!Array.isArray(value)) return push(`expected an array, got ${show(value)}`);
      if (schema.minItems !== undefined && value.length < schema.minItems) return push(`needs at least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}, got ${value.length}`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) return push(`allows at most ${schema.maxItems} items, got ${value.length}`);
      value.forEach((v, i) => check(schema.items, v, join(path, i), out));
      if (schema.uniqueItems) {
        const seen = new Map<string, number>();
        value.forEach((v, i) => {
          const k = JSON.stringify(v);
          if (seen.has(k)) out.push({ path: join(path, i), message: `${show(v)} repeats item ${seen.get(k)}` });
          else seen.set(k, i);
        });
      }
      return;
    }
    case 'object': {
      if (typeName(value) !== 'object') return push(`expected an object, got ${show(value)}`);
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(schema.properties);
      for (const k of Object.keys(obj)) {
        if (!(k in schema.properties)) {
          const s = didYouMean(k, keys.filter((x) => !(x in obj)));
          out.push({ path: join(path, k), message: `unknown field${s ? '' : `; allowed: ${keys.join(', ')}`}`, ...(s ? { suggestion: s } : {}) });
        }
      }
      for (const k of schema.required ?? []) {
        if (obj[k] === undefined) out.push({ path: join(path, k), message: `required field is missing${schema.properties[k]?.description ? ` (${schema.properties[k]!.description})` : ''}` });
      }
      for (const [k, s] of Object.entries(schema.properties)) if (obj[k] !== undefined) check(s, obj[k], join(path, k), out);
      return;
    }
    case 'map': {
      if (typeName(value) !== 'object') return push(`expected an object, got ${show(value)}`);
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj);
      if (schema.minProperties !== undefined && keys.length < schema.minProperties) return push(`needs at least ${schema.minProperties} entr${schema.minProperties === 1 ? 'y' : 'ies'}`);
      for (const k of keys) {
        if (schema.keyPattern && !schema.keyPattern.test(k)) out.push({ path: join(path, k), message: `key ${show(k)} is not ${schema.keyDescription ?? `matching ${schema.keyPattern}`}` });
        else check(schema.values, obj[k], join(path, k), out);
      }
      return;
    }
    case 'tagged': {
      if (typeName(value) !== 'object') return push(`expected an object, got ${show(value)}`);
      const obj = value as Record<string, unknown>;
      const tags = Object.keys(schema.variants);
      const tag = obj[schema.tag];
      const tagPath = join(path, schema.tag);
      if (tag === undefined) {
        out.push({ path: tagPath, message: `required field is missing (one of ${tags.join(', ')})` });
        return;
      }
      if (typeof tag !== 'string' || !tags.includes(tag)) {
        const s = typeof tag === 'string' ? didYouMean(tag, tags) : undefined;
        out.push({ path: tagPath, message: `${show(tag)} is not one of ${tags.join(', ')}`, ...(s ? { suggestion: s } : {}) });
        return;
      }
      check(schema.variants[tag]!, obj, path, out);
      return;
    }
    case 'anyOf': {
      // report the branch of the value's own type (a wrong type at this path scores worst)
      let best: SchemaIssue[] | undefined;
      let bestScore = Infinity;
      for (const s of schema.anyOf) {
        const issues: SchemaIssue[] = [];
        check(s, value, path, issues);
        if (!issues.length) return;
        const score = issues.length + (issues.some((i) => i.path === at && i.message.startsWith('expected ')) ? 1000 : 0);
        if (score < bestScore) {
          best = issues;
          bestScore = score;
        }
      }
      out.push(...(best ?? []));
      return;
    }
  }
}

/**
 * Validate a parsed JSON value against a schema.
 * @param schema - the schema
 * @param value - the parsed document
 * @returns every problem found (empty when valid), each with its field path
 * @example
 * validateSchema({ type: 'object', properties: { mode: { type: 'string', enum: ['a', 'b'] } } }, { mode: 'c' });
 * // [{ path: 'mode', message: '"c" is not one of a, b' }]
 */
export function validateSchema(schema: Schema, value: unknown): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  check(schema, value, '', out);
  return out;
}

/**
 * One line per issue: `path: message (did you mean "x"?)`.
 * @param issue - a validation issue
 * @returns the line
 * @example
 * formatIssue({ path: 'task', message: '"clasify" is not one of classify, segment', suggestion: 'classify' });
 * // 'task: "clasify" is not one of classify, segment (did you mean "classify"?)'
 */
export function formatIssue(issue: SchemaIssue): string {
  return `${issue.path}: ${issue.message}${issue.suggestion !== undefined ? ` (did you mean "${issue.suggestion}"?)` : ''}`;
}
