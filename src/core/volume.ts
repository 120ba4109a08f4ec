/**
 * The volume type: voxel data plus geometry, the one image representation every part of medmask
 * shares. A 2D image is a volume with `shape[2] === 1`.
 *
 * ## Conventions (read once, rely on everywhere)
 * - **World coordinates are LPS** (x → patient Left, y → Posterior, z → Superior), as in DICOM and
 *   ITK. NIfTI files are RAS: their readers/writers flip the sign of the first two world axes at the
 *   edge, nowhere else.
 * - **Voxel order is x fastest**: voxel (i, j, k), component c, lives at
 *   `data[c + components * (i + nx * (j + ny * k))]` — components interleaved, as in ITK / itk-wasm
 *   and NIfTI RGB. For 2D images, i is the column and j the row (row 0 at the top of the picture).
 * - **Geometry** follows ITK: `world = origin + direction · diag(spacing) · [i, j, k]ᵀ`, with
 *   `direction` a 3×3 matrix stored **row-major** whose columns are the unit world directions of
 *   the i, j, k axes. Spacing in millimetres.
 * - **Data keep their stored type** (uint8, int16, uint16, float32, …). Rescaling such as DICOM
 *   RescaleSlope/Intercept or NIfTI scl_slope/scl_inter is applied by readers only when it is not the
 *   identity; then data become float32 (or int16 when the result is exactly integral and fits, as
 *   for CT in HU).
 *
 * @module
 */

/** Typed arrays a volume can hold. */
export type VoxelArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array;

/** Names of the voxel types, as stored. */
export type VoxelType =
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'uint32'
  | 'int32'
  | 'float32'
  | 'float64';

/** Three numbers for x, y, z. */
export type Vec3 = [number, number, number];

/** A 3×3 matrix, row-major. */
export type Mat3 = [number, number, number, number, number, number, number, number, number];

/** A 4×4 matrix, row-major. */
export type Mat4 = number[];

/** Free-form metadata carried with a volume (de-identified before it is stored or written). */
export interface VolumeMeta {
  /** Where the voxels came from: a file path, a series UID, "phantom", … */
  source?: string;
  /** Reader that produced the volume (e.g. "nifti", "dicom-series"). */
  format?: string;
  /** Modality such as "CT", "MR", "CR", "DX" when known. */
  modality?: string;
  /** For label maps: label value → name. */
  labels?: Record<number, string>;
  /** Intensity unit, e.g. "HU". */
  unit?: string;
  [key: string]: unknown;
}

/** Voxel data with geometry. See the module documentation for the conventions. */
export interface Volume<T extends VoxelArray = VoxelArray> {
  /** Voxels, x fastest, components interleaved. */
  data: T;
  /** Number of voxels along i, j, k. A 2D image has `shape[2] === 1`. */
  shape: Vec3;
  /** Values per voxel: 1 for greyscale / scalar, 3 for RGB, … */
  components: number;
  /** Voxel size in mm along i, j, k. */
  spacing: Vec3;
  /** World (LPS, mm) position of the centre of voxel (0, 0, 0). */
  origin: Vec3;
  /** Row-major 3×3; column c is the unit LPS direction of index axis c. */
  direction: Mat3;
  /** Metadata; never holds patient identifiers once imported. */
  meta: VolumeMeta;
}

/** Options for {@link createVolume}. */
export interface CreateVolumeOptions<T extends VoxelArray> {
  data?: T;
  components?: number;
  spacing?: Vec3;
  origin?: Vec3;
  direction?: Mat3;
  meta?: VolumeMeta;
}

/** The identity direction matrix. */
export const IDENTITY3: Readonly<Mat3> = [1, 0, 0, 0, 1, 0, 0, 0, 1];

const CTORS = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
} as const;

/**
 * Allocate a typed array of a named voxel type.
 * @param type - voxel type name
 * @param length - number of elements
 * @returns a zero-filled typed array
 * @example
 * const a = allocVoxels('int16', 8); // Int16Array(8)
 */
export function allocVoxels(type: VoxelType, length: number): VoxelArray {
  const C = CTORS[type];
  if (!C) throw new Error(`unknown voxel type "${String(type)}"; use one of ${Object.keys(CTORS).join(', ')}`);
  return new C(length);
}

/**
 * The voxel type name of a typed array.
 * @param data - a voxel array
 * @returns its type name
 * @example
 * voxelTypeOf(new Int16Array(2)); // 'int16'
 */
export function voxelTypeOf(data: VoxelArray): VoxelType {
  for (const [name, C] of Object.entries(CTORS)) if (data instanceof C) return name as VoxelType;
  throw new Error(`unsupported voxel array ${Object.prototype.toString.call(data)}`);
}

/**
 * Make a volume, checking that data length, spacing and direction are consistent.
 * @param shape - voxels along i, j, k (k = 1 for 2D)
 * @param type - voxel type, used when `opts.data` is not given
 * @param opts - data and geometry; defaults: 1 component, 1 mm spacing, origin 0, identity direction
 * @returns the volume
 * @example
 * const v = createVolume([64, 64, 1], 'uint8'); // a blank 64×64 image
 */
export function createVolume<T extends VoxelArray = VoxelArray>(
  shape: Vec3,
  type: VoxelType,
  opts: CreateVolumeOptions<T> = {},
): Volume<T> {
  const components = opts.components ?? 1;
  for (const n of shape) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`shape ${JSON.stringify(shape)} must hold positive integers`);
  }
  if (!Number.isInteger(components) || components < 1) throw new Error(`components ${components} must be a positive integer`);
  const length = shape[0] * shape[1] * shape[2] * components;
  const data = (opts.data ?? allocVoxels(type, length)) as T;
  if (data.length !== length) {
    throw new Error(
      `data length ${data.length} does not match shape ${shape.join('×')} × ${components} component(s) = ${length}`,
    );
  }
  const spacing: Vec3 = opts.spacing ? [...opts.spacing] : [1, 1, 1];
  for (const s of spacing) if (!(s > 0) || !Number.isFinite(s)) throw new Error(`spacing ${JSON.stringify(spacing)} must be positive and finite`);
  const direction = (opts.direction ? [...opts.direction] : [...IDENTITY3]) as Mat3;
  if (direction.length !== 9 || direction.some((d) => !Number.isFinite(d))) {
    throw new Error(`direction must be 9 finite numbers (row-major 3×3), got ${JSON.stringify(direction)}`);
  }
  return {
    data,
    shape: [...shape],
    components,
    spacing,
    origin: opts.origin ? [...opts.origin] : [0, 0, 0],
    direction,
    meta: { ...(opts.meta ?? {}) },
  };
}

/**
 * Linear index of voxel (i, j, k), component c.
 * @example
 * voxelIndex(v, 1, 0, 0); // 1 for a scalar volume
 */
export function voxelIndex(v: Pick<Volume, 'shape' | 'components'>, i: number, j: number, k: number, c = 0): number {
  return c + v.components * (i + v.shape[0] * (j + v.shape[1] * k));
}

/** Number of voxels (not counting components). */
export function voxelCount(v: Pick<Volume, 'shape'>): number {
  return v.shape[0] * v.shape[1] * v.shape[2];
}

/**
 * The 4×4 voxel → world (LPS, mm) matrix, row-major: `world = A · [i, j, k, 1]ᵀ`.
 * @param v - geometry of a volume
 * @returns row-major 4×4 matrix
 * @example
 * const a = voxelToWorld(v); // a[3] is the x origin
 */
export function voxelToWorld(v: Pick<Volume, 'spacing' | 'origin' | 'direction'>): Mat4 {
  const { spacing: s, origin: o, direction: d } = v;
  return [
    d[0] * s[0], d[1] * s[1], d[2] * s[2], o[0],
    d[3] * s[0], d[4] * s[1], d[5] * s[2], o[1],
    d[6] * s[0], d[7] * s[1], d[8] * s[2], o[2],
    0, 0, 0, 1,
  ];
}

/**
 * The 4×4 voxel → RAS world matrix, as NIfTI's sform and nibabel's `img.affine`.
 * @example
 * const ras = voxelToRas(v); // first two rows are voxelToWorld's negated
 */
export function voxelToRas(v: Pick<Volume, 'spacing' | 'origin' | 'direction'>): Mat4 {
  return lpsRasFlip(voxelToWorld(v));
}

/** Negate the first two rows of a 4×4 affine: LPS ↔ RAS (the flip is its own inverse). */
export function lpsRasFlip(a: Mat4): Mat4 {
  const out = [...a];
  for (let c = 0; c < 4; c++) {
    out[c] = -out[c]!;
    out[4 + c] = -out[4 + c]!;
  }
  return out;
}

/**
 * Split a 4×4 voxel → world (LPS) affine into spacing, origin and direction. Columns that are not
 * orthogonal (a sheared affine) are kept as given after normalisation; `shear` reports the largest
 * |cos| between columns so callers can warn.
 * @param a - row-major 4×4 voxel → LPS matrix
 * @returns geometry and the largest off-orthogonality
 * @example
 * const { spacing, origin, direction } = geometryFromAffine(voxelToWorld(v));
 */
export function geometryFromAffine(a: Mat4): { spacing: Vec3; origin: Vec3; direction: Mat3; shear: number } {
  const spacing: Vec3 = [0, 0, 0];
  const direction = [0, 0, 0, 0, 0, 0, 0, 0, 0] as Mat3;
  for (let c = 0; c < 3; c++) {
    const x = a[c]!, y = a[4 + c]!, z = a[8 + c]!;
    const n = Math.hypot(x, y, z);
    if (!(n > 0)) throw new Error(`affine column ${c} is zero: the voxel axis ${'ijk'[c]} has no size; fix the file's sform/qform`);
    spacing[c] = n;
    direction[c] = x / n;
    direction[3 + c] = y / n;
    direction[6 + c] = z / n;
  }
  let shear = 0;
  for (let p = 0; p < 3; p++) {
    for (let q = p + 1; q < 3; q++) {
      const dot = direction[p]! * direction[q]! + direction[3 + p]! * direction[3 + q]! + direction[6 + p]! * direction[6 + q]!;
      shear = Math.max(shear, Math.abs(dot));
    }
  }
  return { spacing, origin: [a[3]!, a[7]!, a[11]!], direction, shear };
}

/**
 * Orientation code: for each index axis i, j, k, the anatomical direction that increasing index
 * points towards (L/R, P/A, S/I). The letters are the same as nibabel's `aff2axcodes` and
 * ITK-SNAP's display: an identity LPS direction is `"LPS"`; a NIfTI whose RAS affine is diagonal
 * and positive is `"RAS"`.
 * @param direction - row-major 3×3
 * @returns three letters
 * @example
 * orientationCode(IDENTITY3); // 'LPS'
 */
export function orientationCode(direction: Readonly<Mat3>): string {
  const pos = ['L', 'P', 'S'];
  const neg = ['R', 'A', 'I'];
  let out = '';
  const used = new Set<number>();
  for (let c = 0; c < 3; c++) {
    let best = -1;
    let bestAbs = -1;
    for (let r = 0; r < 3; r++) {
      if (used.has(r)) continue;
      const v = Math.abs(direction[r * 3 + c]!);
      if (v > bestAbs) {
        bestAbs = v;
        best = r;
      }
    }
    used.add(best);
    out += direction[best * 3 + c]! >= 0 ? pos[best] : neg[best];
  }
  return out;
}

/** Multiply two row-major 4×4 matrices. */
export function mat4Mul(a: Mat4, b: Mat4): Mat4 {
  const out = new Array<number>(16).fill(0);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += a[r * 4 + k]! * b[k * 4 + c]!;
    out[r * 4 + c] = s;
  }
  return out;
}

/** Minimum and maximum of the data (NaN ignored); `[NaN, NaN]` when empty or all NaN. */
export function valueRange(data: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return lo <= hi ? [lo, hi] : [NaN, NaN];
}

/**
 * Distinct values present, for label maps (integers). Stops counting past `limit` distinct values
 * and returns `undefined` then (the volume is then not a label map).
 * @example
 * labelsPresent(mask.data); // [0, 1]
 */
export function labelsPresent(data: ArrayLike<number>, limit = 256): number[] | undefined {
  const seen = new Set<number>();
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (!Number.isInteger(x)) return undefined;
    if (!seen.has(x)) {
      seen.add(x);
      if (seen.size > limit) return undefined;
    }
  }
  return [...seen].sort((a, b) => a - b);
}

/**
 * True when two volumes share a grid: same shape and the same voxel → world mapping within `tol` mm.
 * @example
 * sameGeometry(image, labels); // false when the label map was resampled
 */
export function sameGeometry(a: Volume, b: Volume, tol = 1e-3): boolean {
  if (a.shape.some((n, i) => n !== b.shape[i])) return false;
  const A = voxelToWorld(a);
  const B = voxelToWorld(b);
  // The maps are affine, so agreeing at the 8 corners bounds the difference over the whole grid.
  const [nx, ny, nz] = a.shape;
  for (let m = 0; m < 8; m++) {
    const corner = [m & 1 ? nx - 1 : 0, m & 2 ? ny - 1 : 0, m & 4 ? nz - 1 : 0];
    for (let r = 0; r < 3; r++) {
      let pa = A[r * 4 + 3]!;
      let pb = B[r * 4 + 3]!;
      for (let c = 0; c < 3; c++) {
        pa += A[r * 4 + c]! * corner[c]!;
        pb += B[r * 4 + c]! * corner[c]!;
      }
      if (Math.abs(pa - pb) > tol) return false;
    }
  }
  return true;
}
