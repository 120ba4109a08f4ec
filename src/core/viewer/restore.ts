/**
 * Edits that arrive whole rather than stroke by stroke — unsaved edits restored from the browser's
 * store after leaving a case, a draft loaded into the editor, a tool's computed voxels — written
 * through the editor as one undoable step each, so Undo works on them as on a brush stroke; and
 * the label values a saved diff leaves present.
 * @module
 */
import type { MaskEditor } from './editor.js';
import type { EditsSnapshot } from './edits.js';
import type { Change } from './history.js';

/**
 * Put a stored snapshot of unsaved edits back into an (empty) editor as one undoable step: Undo
 * takes every restored voxel back to its base value.
 * @returns the step, or null when the snapshot holds nothing
 * @example
 * restoreSnapshot(editor, kept.snapshot); editor.undo(); // back to the base version
 */
export function restoreSnapshot(editor: MaskEditor, snap: EditsSnapshot, label = 'restored edits'): Change | null {
  const [nx, ny] = editor.shape;
  if (snap.shape[0] !== nx || snap.shape[1] !== ny || snap.shape[2] !== editor.shape[2]) throw new RangeError(`kept edits are for a ${snap.shape.join('×')} volume, the case is ${editor.shape.join('×')}`);
  editor.begin(label);
  for (const p of snap.planes) for (let t = 0; t < p.idx.length; t++) editor.writeVoxel(p.z * nx * ny + p.idx[t]!, p.base[t]!, p.value[t]!);
  return editor.end();
}

/**
 * Make the editor show `target` (a whole label volume, e.g. a draft): every voxel where it differs
 * from what is shown now (`base` plus the unsaved edits) becomes an edit, in one undoable step.
 * @returns the step, or null when nothing differs
 * @example
 * loadLabelsAsEdits(editor, versionLabels, draftLabels, 'load draft 7');
 */
export function loadLabelsAsEdits(editor: MaskEditor, base: Uint8Array, target: Uint8Array, label: string): Change | null {
  if (base.length !== target.length) throw new RangeError(`the labels hold ${target.length} voxels, the case ${base.length}`);
  if (editor.inStep) editor.end();
  editor.begin(label);
  const edited = editor.edits.size > 0;
  for (let i = 0; i < target.length; i++) {
    const shown = edited ? (editor.edits.get(i) ?? base[i]!) : base[i]!;
    if (target[i] !== shown) editor.writeVoxel(i, shown, target[i]!);
  }
  return editor.end();
}

/**
 * Label values present after a diff save: those present before plus every non-zero value the runs
 * write (a value erased everywhere may stay listed until the case is reopened — the list is for
 * the legend, where a stale entry is harmless and a missing one is not).
 * @example
 * labelsAfterRuns([1], [{ z: 0, runs: [0, 4, 5] }]); // [1, 5]
 */
export function labelsAfterRuns(before: readonly number[], planes: readonly { runs: readonly number[] }[]): number[] {
  const present = new Set(before);
  for (const p of planes) for (let t = 2; t < p.runs.length; t += 3) if (p.runs[t]) present.add(p.runs[t]!);
  return [...present].sort((a, b) => a - b);
}
