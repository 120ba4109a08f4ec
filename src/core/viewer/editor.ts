/**
 * The mask editor's state: unsaved edits ({@link LabelEdits}) plus undo / redo
 * ({@link EditHistory}), and the editing operations — brush and eraser along the path between
 * mouse positions, flood fill in a slice or through a slice range, hole filling — applied to the
 * label plane on screen and recorded as one undoable step each.
 * @module
 */
import { capsuleSpans } from './brush.js';
import { LabelEdits } from './edits.js';
import { floodRegion, holesInPlane } from './fill.js';
import { ChangeBuilder, EditHistory, type Change } from './history.js';
import { unionRect, type Rect } from './rect.js';
import { viewDims, viewToVoxel, type Shape3, type ViewAxis } from './slicing.js';

/** The label plane on screen: slice `index` along `axis`, base version plus edits. */
export interface ViewPlane {
  axis: ViewAxis;
  index: number;
  /** Labels shown, width × height; the editor writes into it. */
  labels: Uint8Array;
}

/** Which pixels a brush or fill may change. */
export interface WriteOptions {
  /** The value written (0 erases). */
  value: number;
  /** Only change pixels that hold this value now (e.g. erase only the selected organ). */
  onlyOver?: number;
  /** Leave pixels of other labels alone (paint only over background or the same label). */
  keepOthers?: boolean;
  /** Label values never changed (locked in the legend). */
  locked?: ReadonlySet<number>;
  /**
   * Threshold brush: only pixels whose image value lies in `range` (inclusive) are written, as 3D
   * Slicer's "Paint" with "Editable intensity range" and ITK-SNAP's paintbrush with a threshold.
   * `image` is the plane on screen (width × height, x fastest).
   */
  within?: IntensityBound;
}

/** An intensity range over the plane on screen (see {@link WriteOptions.within}). */
export interface IntensityBound {
  image: ArrayLike<number>;
  range: readonly [number, number];
}

/** Whether a write of `o` may change a voxel that shows `current`. */
export function allowed(current: number, o: WriteOptions): boolean {
  if (current === o.value) return false;
  if (o.locked?.has(current)) return false;
  if (o.onlyOver !== undefined && current !== o.onlyOver) return false;
  if (o.keepOthers && current !== 0 && o.value !== 0) return false;
  return true;
}

/**
 * Editing state of one mask being reviewed.
 * @example
 * const ed = new MaskEditor([512, 512, 200]);
 * ed.begin('brush');
 * ed.brush(view, { x: 10, y: 10 }, { x: 30, y: 12 }, 3, { value: 5 });
 * ed.end();
 * ed.undo();
 */
export class MaskEditor {
  readonly shape: [number, number, number];
  readonly edits: LabelEdits;
  readonly history: EditHistory;
  private step: ChangeBuilder | null = null;

  constructor(shape: Shape3, historyBytes?: number) {
    this.shape = [shape[0], shape[1], shape[2]];
    this.edits = new LabelEdits(shape);
    this.history = new EditHistory(historyBytes);
  }

  /** Start an undoable step (a stroke, a fill); an open step is closed first. */
  begin(label: string): void {
    if (this.step) this.end();
    this.step = new ChangeBuilder(label);
  }

  /** Close the current step and put it on the undo stack. @returns it, or null when nothing changed */
  end(): Change | null {
    const c = this.step?.build() ?? null;
    this.step = null;
    if (c) this.history.push(c);
    return c;
  }

  /**
   * Close the open step and take its writes back, leaving no trace in the history (a tool's
   * guard refusing what it just computed). @returns the reverted change (to redraw), or null
   */
  cancel(): Change | null {
    const c = this.step?.build() ?? null;
    this.step = null;
    if (c) for (let t = c.voxels.length - 1; t >= 0; t--) this.edits.set(c.voxels[t]!, c.before[t]!, c.after[t]!);
    return c;
  }

  /** True while a step is open. */
  get inStep(): boolean {
    return this.step !== null;
  }

  /**
   * Write one voxel inside the open step (one is opened when none is): `current` is its value as
   * shown now. The building block of tools that compute their voxels elsewhere (sphere brush,
   * bounded fill, interpolation, restored and loaded edits).
   */
  writeVoxel(voxel: number, current: number, value: number): void {
    if (!this.step) this.begin('edit');
    this.step!.record(voxel, current, value);
    this.edits.set(voxel, value, current);
  }

  /**
   * Paint (or erase, value 0) the capsule from `a` to `b` (continuous slice coordinates) on the
   * plane on screen; with `o.within`, only the pixels whose image value is in range (threshold
   * brush).
   * @returns the changed pixels' rectangle, or null
   */
  brush(view: ViewPlane, a: { x: number; y: number }, b: { x: number; y: number }, radius: number, o: WriteOptions): Rect | null {
    const { width, height } = viewDims(this.shape, view.axis);
    const lab = view.labels;
    const within = o.within;
    let dirty: Rect | null = null;
    capsuleSpans(width, height, a.x, a.y, b.x, b.y, radius, (y, x0, x1) => {
      let lo = -1, hi = -1;
      for (let x = x0; x <= x1; x++) {
        const p = x + width * y;
        const cur = lab[p]!;
        if (!allowed(cur, o)) continue;
        if (within) {
          const v = within.image[p]!;
          if (!(v >= within.range[0] && v <= within.range[1])) continue;
        }
        this.writeVoxel(viewToVoxel(this.shape, view.axis, view.index, x, y), cur, o.value);
        lab[p] = o.value;
        if (lo < 0) lo = x;
        hi = x;
      }
      if (lo >= 0) dirty = unionRect(dirty, { x: lo, y, w: hi - lo + 1, h: 1 });
    });
    return dirty;
  }

  /**
   * Flood-fill the region of the clicked pixel's label with `o.value`: in the plane on screen, or
   * through slices `range` along the same axis (inclusive; `planeAt(k)` gives slice k's labels as
   * shown, the one on screen included).
   * @returns pixels changed and the rectangle changed on screen
   */
  fill(view: ViewPlane, seed: { x: number; y: number }, o: WriteOptions, range?: [number, number], planeAt?: (k: number) => Uint8Array): { pixels: number; dirty: Rect | null } {
    const { width, height } = viewDims(this.shape, view.axis);
    const x = Math.floor(seed.x), y = Math.floor(seed.y);
    if (x < 0 || y < 0 || x >= width || y >= height) return { pixels: 0, dirty: null };
    const cur = view.labels[x + width * y]!;
    if (!allowed(cur, o)) return { pixels: 0, dirty: null };
    const r = range ?? [view.index, view.index];
    const get = (k: number) => (k === view.index ? view.labels : planeAt!(k));
    const region = floodRegion(width, height, get, { x, y, k: view.index }, r);
    let dirty: Rect | null = null;
    for (let s = 0; s < region.count; s++) {
      const k = region.spans[4 * s]!, row = region.spans[4 * s + 1]!, a = region.spans[4 * s + 2]!, b = region.spans[4 * s + 3]!;
      const plane = get(k);
      for (let q = a; q <= b; q++) {
        this.writeVoxel(viewToVoxel(this.shape, view.axis, k, q, row), region.label, o.value);
        plane[q + width * row] = o.value;
      }
      if (k === view.index) dirty = unionRect(dirty, { x: a, y: row, w: b - a + 1, h: 1 });
    }
    return { pixels: region.pixels, dirty };
  }

  /**
   * Fill the holes of `label` in the plane on screen (background enclosed by it).
   * @returns pixels changed and their rectangle
   */
  fillHoles(view: ViewPlane, label: number): { pixels: number; dirty: Rect | null } {
    const { width, height } = viewDims(this.shape, view.axis);
    const holes = holesInPlane(view.labels, width, height, label);
    let dirty: Rect | null = null;
    for (const p of holes) {
      const q = p % width, row = (p - q) / width;
      this.writeVoxel(viewToVoxel(this.shape, view.axis, view.index, q, row), view.labels[p]!, label);
      view.labels[p] = label;
      dirty = unionRect(dirty, { x: q, y: row, w: 1, h: 1 });
    }
    return { pixels: holes.length, dirty };
  }

  /** Revert the last step. @returns it (the caller redraws what it touched), or undefined */
  undo(): Change | undefined {
    if (this.step) this.end();
    const c = this.history.undo();
    if (c) for (let t = 0; t < c.voxels.length; t++) this.edits.set(c.voxels[t]!, c.before[t]!, c.after[t]!);
    return c;
  }

  /** Re-apply the last undone step. */
  redo(): Change | undefined {
    if (this.step) this.end();
    const c = this.history.redo();
    if (c) for (let t = 0; t < c.voxels.length; t++) this.edits.set(c.voxels[t]!, c.after[t]!, c.before[t]!);
    return c;
  }

  /**
   * Drop every unsaved edit and the history (after a save, or "take theirs").
   */
  reset(): void {
    this.step = null;
    this.edits.clear();
    this.history.clear();
  }
}

/**
 * The rectangle a change covers in one view slice, or null when it does not touch that slice.
 * @example
 * changeRectInView(step, [512, 512, 200], 'z', 100);
 */
export function changeRectInView(c: Change, shape: Shape3, axis: ViewAxis, index: number): Rect | null {
  const [nx, ny] = shape;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const v of c.voxels) {
    const i = v % nx;
    const rest = (v - i) / nx;
    const j = rest % ny;
    const k = (rest - j) / ny;
    let q: number, r: number, idx: number;
    if (axis === 'z') (idx = k), (q = i), (r = j);
    else if (axis === 'y') (idx = j), (q = i), (r = k);
    else (idx = i), (q = j), (r = k);
    if (idx !== index) continue;
    if (q < x0) x0 = q;
    if (q > x1) x1 = q;
    if (r < y0) y0 = r;
    if (r > y1) y1 = r;
  }
  return x1 >= x0 ? { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 } : null;
}
