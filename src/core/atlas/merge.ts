/**
 * Final labels of AbdomenAtlas-8K (Qu et al. 2023): per organ, the **original** label where the
 * case's source annotated that organ, else the expert's **revised** label where the organ was
 * reviewed, else the **pseudo-label**; which one was used is kept per organ (provenance).
 *
 * Painting order makes the priority hold voxel by voxel too: organs taken from pseudo-labels are
 * painted first, revised ones over them, original ones last, so a voxel two sources disagree on
 * goes to the more trusted one.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** Where an organ's final label came from. */
export type Provenance = 'original' | 'revised' | 'pseudo' | 'none';

/** A label map and the organs (label values) it is authoritative for. */
export interface LabelLayer {
  /** Label map, x fastest. */
  data: ArrayLike<number>;
  /** Label values of the organs this layer holds (others in `data` are ignored). */
  organs: readonly number[];
}

/** Inputs of {@link mergeLabels}. */
export interface MergeInput {
  original?: LabelLayer;
  revised?: LabelLayer;
  pseudo?: LabelLayer;
}

/** Result of {@link mergeLabels}. */
export interface MergeResult {
  /** Final uint8 label map. */
  data: Uint8Array;
  /** Per organ label value: the layer used. */
  provenance: Record<number, Provenance>;
  /** Voxels where a more trusted layer overwrote another layer's organ. */
  conflicts: number;
}

const ORDER: Exclude<Provenance, 'none'>[] = ['original', 'revised', 'pseudo'];

/**
 * Merge original, revised and pseudo labels: original > revised > pseudo, per organ.
 * @param input - the layers present
 * @param organs - every organ label value of the label set (1…255)
 * @param voxels - voxels of the grid
 * @returns the label map, provenance per organ, conflict count
 * @throws MedmaskError USAGE for a layer of the wrong size or organs outside the label set
 * @example
 * const r = mergeLabels({ original: { data: partial, organs: [5] }, pseudo: { data: pseudo, organs: [1, 2, 3, 4, 5, 6, 7, 8, 9] } }, [1, 2, 3, 4, 5, 6, 7, 8, 9], n);
 * r.provenance[5]; // 'original'
 */
export function mergeLabels(input: MergeInput, organs: readonly number[], voxels: number): MergeResult {
  const known = new Set(organs);
  for (const l of organs) if (!Number.isInteger(l) || l < 1 || l > 255) throw new MedmaskError('USAGE', `organ label ${l} must be a whole number from 1 to 255`);
  for (const name of ORDER) {
    const layer = input[name];
    if (!layer) continue;
    if (layer.data.length !== voxels) throw new MedmaskError('USAGE', `the ${name} label map has ${layer.data.length} voxels, expected ${voxels}`, { hint: 'original, revised and pseudo labels must share the image grid' });
    for (const l of layer.organs) {
      if (!known.has(l)) throw new MedmaskError('USAGE', `the ${name} layer names organ label ${l}, which is not in the label set ${[...known].join(', ')}`, { hint: 'map the labels to the data set\'s label values first' });
    }
  }
  const provenance: Record<number, Provenance> = {};
  // owner[label] = index into ORDER of the layer used, or −1.
  const owner = new Int8Array(256).fill(-1);
  for (const l of organs) {
    provenance[l] = 'none';
    for (let t = 0; t < ORDER.length; t++) {
      if (input[ORDER[t]!]?.organs.includes(l)) {
        provenance[l] = ORDER[t]!;
        owner[l] = t;
        break;
      }
    }
  }
  const out = new Uint8Array(voxels);
  // Tier of the label currently at each voxel (3 = none yet), + 4 once the voxel was counted as a conflict.
  const tierAt = new Uint8Array(voxels).fill(3);
  let conflicts = 0;
  for (let t = ORDER.length - 1; t >= 0; t--) {
    const layer = input[ORDER[t]!];
    if (!layer) continue;
    const d = layer.data;
    for (let v = 0; v < voxels; v++) {
      const l = d[v]!;
      if (l <= 0 || l > 255 || owner[l] !== t) continue;
      let flag = tierAt[v]! & 4;
      if (out[v] && out[v] !== l && (tierAt[v]! & 3) > t && !flag) {
        conflicts++;
        flag = 4;
      }
      out[v] = l;
      tierAt[v] = t | flag;
    }
  }
  return { data: out, provenance, conflicts };
}
