/**
 * The reviewer's unsaved edits of a mask: a sparse overlay on the version being edited, kept per
 * axial plane as in-plane index → (base value, new value). Slices come from the server as they
 * are viewed; the overlay is applied on top, in any orientation, so nothing of the volume has to
 * be downloaded before editing starts. A voxel set back to its base value leaves the overlay.
 * @module
 */
import { runsFromSorted, type PlaneRuns } from './diff.js';
import { viewDims, type Shape3, type ViewAxis } from './slicing.js';

/** A serialisable copy of {@link LabelEdits} (typed arrays: IndexedDB stores them as they are). */
export interface EditsSnapshot {
  shape: [number, number, number];
  planes: { z: number; idx: Uint32Array; base: Uint8Array; value: Uint8Array }[];
}

/**
 * Sparse edits over a label volume of a given shape.
 * @example
 * const e = new LabelEdits([512, 512, 200]);
 * e.set(voxel, 5, currentValue);
 * e.toPlaneRuns(); // what to send to the server
 */
export class LabelEdits {
  readonly shape: [number, number, number];
  private readonly plane: number;
  /** z → in-plane index → base << 8 | value. */
  private readonly planes = new Map<number, Map<number, number>>();
  private n = 0;

  constructor(shape: Shape3) {
    this.shape = [shape[0], shape[1], shape[2]];
    this.plane = shape[0] * shape[1];
  }

  /** Voxels changed. */
  get size(): number {
    return this.n;
  }

  /**
   * Set a voxel. `current` is its value as shown now (the base value when it has no edit yet).
   */
  set(voxel: number, value: number, current: number): void {
    const z = Math.floor(voxel / this.plane);
    const p = voxel - z * this.plane;
    let m = this.planes.get(z);
    const packed = m?.get(p);
    const base = packed === undefined ? current : packed >> 8;
    if (value === base) {
      if (packed !== undefined) {
        m!.delete(p);
        this.n--;
        if (!m!.size) this.planes.delete(z);
      }
      return;
    }
    if (!m) this.planes.set(z, (m = new Map()));
    if (packed === undefined) this.n++;
    m.set(p, (base << 8) | value);
  }

  /** The edited value of a voxel, or undefined when unedited. */
  get(voxel: number): number | undefined {
    const z = Math.floor(voxel / this.plane);
    const v = this.planes.get(z)?.get(voxel - z * this.plane);
    return v === undefined ? undefined : v & 255;
  }

  /** Forget every edit. */
  clear(): void {
    this.planes.clear();
    this.n = 0;
  }

  /** Axial planes with edits, ascending. */
  editedPlanes(): number[] {
    return [...this.planes.keys()].sort((a, b) => a - b);
  }

  /**
   * Overlay the edits on a slice of the base version (in place).
   * @param out - the base slice along `axis` at `index`, width × height as `viewDims`
   * @returns how many pixels were overlaid
   */
  applyToSlice(axis: ViewAxis, index: number, out: Uint8Array): number {
    const [nx, ny] = this.shape;
    let n = 0;
    if (axis === 'z') {
      const m = this.planes.get(index);
      if (m) for (const [p, v] of m) (out[p] = v & 255), n++;
      return n;
    }
    const { width } = viewDims(this.shape, axis);
    for (const [z, m] of this.planes) {
      for (const [p, v] of m) {
        const i = p % nx;
        const j = (p - i) / nx;
        if (axis === 'y' ? j === index : i === index) {
          out[(axis === 'y' ? i : j) + width * z] = v & 255;
          n++;
        }
      }
    }
    void ny;
    return n;
  }

  /** The edits as compact per-plane runs, planes ascending. */
  toPlaneRuns(): PlaneRuns[] {
    return this.editedPlanes().map((z) => {
      const m = this.planes.get(z)!;
      const idx = Uint32Array.from(m.keys()).sort();
      const vals = new Uint8Array(idx.length);
      for (let t = 0; t < idx.length; t++) vals[t] = m.get(idx[t]!)! & 255;
      return { z, runs: runsFromSorted(idx, vals) };
    });
  }

  /** A copy for local storage. */
  snapshot(): EditsSnapshot {
    return {
      shape: [...this.shape],
      planes: this.editedPlanes().map((z) => {
        const m = this.planes.get(z)!;
        const idx = new Uint32Array(m.size), base = new Uint8Array(m.size), value = new Uint8Array(m.size);
        let t = 0;
        for (const [p, v] of m) (idx[t] = p), (base[t] = v >> 8), (value[t++] = v & 255);
        return { z, idx, base, value };
      }),
    };
  }

  /** Rebuild edits from a {@link LabelEdits.snapshot}. */
  static fromSnapshot(s: EditsSnapshot): LabelEdits {
    const e = new LabelEdits(s.shape);
    const plane = s.shape[0] * s.shape[1];
    for (const p of s.planes) for (let t = 0; t < p.idx.length; t++) e.set(p.z * plane + p.idx[t]!, p.value[t]!, p.base[t]!);
    return e;
  }
}
