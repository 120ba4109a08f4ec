/**
 * Undo / redo for the mask editor. Each step (a brush stroke from press to release, a fill, a
 * clear) stores the voxels it changed with their values before and after, as typed arrays; the
 * history is bounded by memory (default 256 MiB ≈ 44 million changed voxels), not by a small
 * step count.
 * @module
 */

/** One undoable step. */
export interface Change {
  /** What the step was, for the UI ("brush", "fill 12 slices"). */
  label: string;
  /** Voxel indices, each once. */
  voxels: Uint32Array;
  before: Uint8Array;
  after: Uint8Array;
}

/**
 * Collects the voxels of one step; a voxel written twice keeps its first "before" and last "after".
 * @example
 * const b = new ChangeBuilder('brush'); b.record(10, 0, 5); const step = b.build();
 */
export class ChangeBuilder {
  private readonly pos = new Map<number, number>();
  private voxels: number[] = [];
  private before: number[] = [];
  private after: number[] = [];
  constructor(readonly label: string) {}

  /** Voxels recorded so far. */
  get size(): number {
    return this.voxels.length;
  }

  record(voxel: number, before: number, after: number): void {
    const p = this.pos.get(voxel);
    if (p === undefined) {
      this.pos.set(voxel, this.voxels.length);
      this.voxels.push(voxel);
      this.before.push(before);
      this.after.push(after);
    } else this.after[p] = after;
  }

  /** The step, or null when nothing changed. */
  build(): Change | null {
    const keep: number[] = [];
    for (let t = 0; t < this.voxels.length; t++) if (this.before[t] !== this.after[t]) keep.push(t);
    if (!keep.length) return null;
    return {
      label: this.label,
      voxels: Uint32Array.from(keep, (t) => this.voxels[t]!),
      before: Uint8Array.from(keep, (t) => this.before[t]!),
      after: Uint8Array.from(keep, (t) => this.after[t]!),
    };
  }
}

/** Bytes a change holds. */
function bytes(c: Change): number {
  return c.voxels.byteLength + c.before.byteLength + c.after.byteLength + 64;
}

/**
 * Linear undo / redo stacks; a new step clears the redo stack; the oldest steps are dropped when
 * the memory budget is exceeded.
 * @example
 * const h = new EditHistory(); h.push(step); h.undo(); h.redo();
 */
export class EditHistory {
  private readonly done: Change[] = [];
  private readonly undone: Change[] = [];
  private used = 0;
  /** Steps dropped because of the budget. */
  dropped = 0;

  constructor(private readonly maxBytes = 256 * 2 ** 20) {}

  push(c: Change): void {
    this.done.push(c);
    this.used += bytes(c);
    for (const u of this.undone) this.used -= bytes(u);
    this.undone.length = 0;
    while (this.used > this.maxBytes && this.done.length > 1) {
      this.used -= bytes(this.done.shift()!);
      this.dropped++;
    }
  }

  /** The step to revert (apply its `before` values), or undefined. */
  undo(): Change | undefined {
    const c = this.done.pop();
    if (c) this.undone.push(c);
    return c;
  }

  /** The step to re-apply (its `after` values), or undefined. */
  redo(): Change | undefined {
    const c = this.undone.pop();
    if (c) this.done.push(c);
    return c;
  }

  get canUndo(): boolean {
    return this.done.length > 0;
  }
  get canRedo(): boolean {
    return this.undone.length > 0;
  }
  /** Steps that can be undone. */
  get depth(): number {
    return this.done.length;
  }
  /** Memory held, bytes. */
  get bytes(): number {
    return this.used;
  }

  clear(): void {
    this.done.length = 0;
    this.undone.length = 0;
    this.used = 0;
  }
}
