/**
 * Which class (or classes) an explanation is for: the predicted one (default), a given index or
 * name, a list of them, or every class.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { didYouMean } from '../schema.js';
import { argmax } from './head.js';

/** A class choice, parsed from what the user wrote. */
export type ClassSpec =
  | { kind: 'predicted' }
  | { kind: 'all' }
  | { kind: 'list'; items: (number | string)[] };

/**
 * Parse a class choice: `predicted` (default), `all`, or a comma-separated list of class indices
 * and / or names (`2`, `nodule`, `nodule,cavity`).
 * @param text - the option value (undefined → predicted)
 * @returns the parsed choice
 * @throws MedmaskError USAGE for an empty item
 * @example
 * parseClassSpec('nodule,3'); // { kind: 'list', items: ['nodule', 3] }
 */
export function parseClassSpec(text?: string): ClassSpec {
  const t = (text ?? 'predicted').trim();
  if (t === '' || t === 'predicted') return { kind: 'predicted' };
  if (t === 'all') return { kind: 'all' };
  const items = t.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new MedmaskError('USAGE', `--class "${text}": an empty class in the list`, { hint: 'write e.g. --class nodule,cavity' });
  return { kind: 'list', items: items.map((s) => (/^\d+$/.test(s) ? Number(s) : s)) };
}

function listing(classes: readonly string[]): string {
  return classes.map((c, i) => `${i} ${c}`).join(', ');
}

/**
 * The class indices a choice stands for, for one prediction. A name that equals a class name
 * exactly wins over reading it as an index.
 * @param spec - parsed choice (or its text)
 * @param classes - class names in output order
 * @param probabilities - the model's class probabilities (for `predicted`: the arg-max)
 * @returns class indices, distinct, in the order given (`all`: 0…n−1)
 * @throws MedmaskError USAGE for an index out of range or an unknown name, listing the classes
 * @example
 * resolveClasses('nodule', ['healthy', 'nodule'], [0.8, 0.2]); // [1]
 */
export function resolveClasses(spec: ClassSpec | string | undefined, classes: readonly string[], probabilities: ArrayLike<number>): number[] {
  const s = typeof spec === 'object' ? spec : parseClassSpec(spec);
  const n = classes.length;
  if (s.kind === 'predicted') return [argmax(probabilities)];
  if (s.kind === 'all') return Array.from({ length: n }, (_, i) => i);
  const out: number[] = [];
  for (const item of s.items) {
    const byName = classes.indexOf(String(item));
    const idx = byName >= 0 ? byName : typeof item === 'number' ? item : -1;
    if (typeof item === 'number' && byName < 0 && idx >= n) {
      throw new MedmaskError('USAGE', `class ${item} is out of range: the model has ${n} classes (${listing(classes)})`, {
        hint: `use an index from 0 to ${n - 1}, a class name, "predicted" or "all"`,
        details: { class: item, classes },
      });
    }
    if (idx < 0) {
      const guess = didYouMean(String(item), classes);
      throw new MedmaskError('USAGE', `unknown class "${item}"${guess ? ` (did you mean "${guess}"?)` : ''}: the model's classes are ${listing(classes)}`, {
        hint: 'use a class name or index as listed, "predicted" or "all"',
        details: { class: item, classes },
      });
    }
    if (!out.includes(idx)) out.push(idx);
  }
  return out;
}
