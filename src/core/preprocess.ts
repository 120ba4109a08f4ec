/**
 * Image → model input, and model-resolution maps → image geometry. Pure functions over typed
 * arrays.
 *
 * **Forward** ({@link preprocessImage}): a 2D medmask volume (grey, RGB or RGBA; any voxel type)
 * becomes a float32 NCHW tensor:
 * 1. channels: grey → 3 channels (copies), RGB → grey (ITU-R 601 luma, as PIL "L" and
 *    torchvision's Grayscale), or kept; an alpha channel is dropped; `grey-to-rgb` leaves an
 *    image that is already RGB as it is (and `rgb-to-grey` a grey one);
 * 2. geometry: **stretch** to the input size, or **letterbox** (scale to fit keeping the aspect
 *    ratio, centre, pad with the image minimum); bilinear resampling with half-pixel centres as
 *    OpenCV / `torch.nn.functional.interpolate(align_corners=False)`, antialiased when shrinking
 *    (a triangle filter widened by the scale factor, as PIL's bilinear resize and torchvision's
 *    `antialias=True`), raw values;
 * 3. intensity: mean/std (`(v / scale − mean_c) / std_c`), min-max (per image to [0, 1], the
 *    image's own range), a CT window (clip to `[center − width/2, center + width/2]` then to
 *    [0, 1]), or none.
 *
 * **Inverse** ({@link mapToImage}): a map at activation resolution is upsampled bilinearly to
 * the model input (as pytorch-grad-cam's `cv2.resize`), the letterbox border is cut off, and the
 * content is resampled to the original image size: the map lies on the image pixel for pixel.
 * @module
 */
import { MedmaskError } from './errors.js';
import type { Volume } from './volume.js';

/** How the image is fitted to the input size. */
export type ResizeMode = 'stretch' | 'letterbox';

/** How image channels become model channels (`auto`: keep when equal, else convert). */
export type ChannelMode = 'auto' | 'grey-to-rgb' | 'keep' | 'rgb-to-grey';

/** Intensity normalisation. */
export type IntensitySpec =
  | { mode: 'mean-std'; mean: number[]; std: number[]; scale?: number }
  | { mode: 'min-max' }
  | { mode: 'ct-window'; center: number; width: number }
  | { mode: 'none' };

/** Preprocessing as a model manifest states it. */
export interface PreprocessSpec {
  /** Default `stretch`. */
  resize?: ResizeMode;
  /** Default `auto`. */
  channels?: ChannelMode;
  /** Default `{ mode: 'min-max' }`. */
  intensity?: IntensitySpec;
  /** Letterbox border value before normalisation: a number, or `min` (default) for the image minimum. */
  pad?: number | 'min';
  /** Antialias when shrinking (default true). */
  antialias?: boolean;
}

/** The model input a preprocessing targets. */
export interface InputSize {
  height: number;
  width: number;
  channels: number;
}

/**
 * Where the image lies inside the model input: the original size and the content box (input
 * pixels) it was resampled into. Stretch: the whole input. Letterbox: a centred box.
 */
export interface InputGeometry {
  /** Original image width (pixels). */
  imageWidth: number;
  /** Original image height. */
  imageHeight: number;
  /** Model input width. */
  inputWidth: number;
  /** Model input height. */
  inputHeight: number;
  /** Content box in input pixels: left, top, width, height. */
  box: { x: number; y: number; width: number; height: number };
}

/** Result of {@link preprocessImage}. */
export interface PreprocessResult {
  /** C × H × W float32, channel planes (one NCHW sample without the batch dimension). */
  data: Float32Array;
  /** [1, C, H, W]. */
  dims: number[];
  /** How to map back. */
  geometry: InputGeometry;
}

/**
 * Resampling weights along one axis (PIL's `precompute_coeffs`): for each output index the first
 * input index and normalised weights of a triangle filter, widened by the scale when shrinking
 * with antialias. With no antialias this is plain bilinear with half-pixel centres, edges clamped.
 */
interface AxisPlan {
  start: Int32Array;
  count: Int32Array;
  taps: number;
  weights: Float32Array;
}

function axisPlan(inSize: number, outSize: number, antialias: boolean): AxisPlan {
  const scale = inSize / outSize;
  const fscale = antialias && scale > 1 ? scale : 1;
  const support = fscale; // triangle filter radius 1, widened
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * taps);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    let lo = Math.max(0, Math.floor(center - support));
    let hi = Math.min(inSize, Math.ceil(center + support));
    let sum = 0;
    const w: number[] = [];
    for (let i = lo; i < hi; i++) {
      const x = Math.abs((i + 0.5 - center) / fscale);
      const v = x < 1 ? 1 - x : 0;
      w.push(v);
      sum += v;
    }
    // drop leading / trailing zero weights
    let a = 0;
    let b = w.length;
    while (a < b && w[a] === 0) a++;
    while (b > a && w[b - 1] === 0) b--;
    if (a === b) {
      // the centre falls outside every tap's support (cannot happen inside the image): nearest pixel
      const i = Math.min(inSize - 1, Math.max(0, Math.floor(center)));
      lo = i;
      hi = i + 1;
      w.splice(0, w.length, 1);
      a = 0;
      b = 1;
      sum = 1;
    }
    start[o] = lo + a;
    count[o] = b - a;
    for (let k = a; k < b; k++) weights[o * taps + k - a] = w[k]! / sum;
  }
  return { start, count, taps, weights };
}

/**
 * Resample channel planes (C × h × w, x fastest) to a new size: separable bilinear with
 * half-pixel centres (OpenCV `INTER_LINEAR`, torch `align_corners=False`); when shrinking with
 * `antialias`, PIL's widened triangle filter.
 * @param src - C planes of `width × height` values
 * @param width - input width
 * @param height - input height
 * @param outWidth - output width
 * @param outHeight - output height
 * @param opts - `antialias` (default false: exactly cv2.resize's bilinear); `channels` (default 1)
 * @returns C planes of `outWidth × outHeight` float32 values
 * @example
 * const up = resizeBilinear(cam7x7, 7, 7, 224, 224); // as cv2.resize(cam, (224, 224))
 */
export function resizeBilinear(
  src: ArrayLike<number>,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  opts: { antialias?: boolean; channels?: number } = {},
): Float32Array {
  const C = opts.channels ?? 1;
  for (const [k, v] of Object.entries({ width, height, outWidth, outHeight })) {
    if (!Number.isInteger(v) || v < 1) throw new MedmaskError('USAGE', `resize: ${k} must be a positive integer, got ${v}`);
  }
  if (src.length !== C * width * height) {
    throw new MedmaskError('USAGE', `resize: ${src.length} values for ${C} × ${height} × ${width}`);
  }
  const aa = opts.antialias ?? false;
  const px = axisPlan(width, outWidth, aa);
  const py = axisPlan(height, outHeight, aa);
  const tmp = new Float32Array(outWidth * height); // horizontal pass, one channel at a time
  const out = new Float32Array(C * outWidth * outHeight);
  for (let c = 0; c < C; c++) {
    const base = c * width * height;
    for (let y = 0; y < height; y++) {
      const row = base + y * width;
      for (let x = 0; x < outWidth; x++) {
        const s = px.start[x]!;
        const n = px.count[x]!;
        const wo = x * px.taps;
        let v = 0;
        for (let k = 0; k < n; k++) v += px.weights[wo + k]! * src[row + s + k]!;
        tmp[y * outWidth + x] = v;
      }
    }
    const obase = c * outWidth * outHeight;
    for (let y = 0; y < outHeight; y++) {
      const s = py.start[y]!;
      const n = py.count[y]!;
      const wo = y * py.taps;
      const orow = obase + y * outWidth;
      for (let k = 0; k < n; k++) {
        const wk = py.weights[wo + k]!;
        const trow = (s + k) * outWidth;
        for (let x = 0; x < outWidth; x++) out[orow + x]! += wk * tmp[trow + x]!;
      }
    }
  }
  return out;
}

/**
 * The geometry of fitting an image into the model input.
 * @param imageWidth - original width
 * @param imageHeight - original height
 * @param input - model input size
 * @param resize - `stretch` or `letterbox`
 * @returns the geometry: letterbox scales by min(W/w, H/h), rounds the content size, and centres
 *   it (left/top offsets rounded down)
 * @example
 * inputGeometry(100, 50, { width: 64, height: 64, channels: 3 }, 'letterbox').box;
 * // { x: 0, y: 16, width: 64, height: 32 }
 */
export function inputGeometry(imageWidth: number, imageHeight: number, input: InputSize, resize: ResizeMode): InputGeometry {
  const W = input.width;
  const H = input.height;
  let box = { x: 0, y: 0, width: W, height: H };
  if (resize === 'letterbox') {
    const s = Math.min(W / imageWidth, H / imageHeight);
    const w = Math.max(1, Math.min(W, Math.round(imageWidth * s)));
    const h = Math.max(1, Math.min(H, Math.round(imageHeight * s)));
    box = { x: Math.floor((W - w) / 2), y: Math.floor((H - h) / 2), width: w, height: h };
  }
  return { imageWidth, imageHeight, inputWidth: W, inputHeight: H, box };
}

/** The image as float channel planes, after channel handling (grey ↔ RGB, alpha dropped). */
function channelPlanes(vol: Volume, want: number, mode: ChannelMode): Float32Array {
  const [nx, ny] = vol.shape;
  const n = nx * ny;
  const comps = vol.components;
  const colour = comps >= 3 ? 3 : 1; // RGBA → RGB, grey+alpha → grey
  // grey-to-rgb leaves an RGB image as it is (a grey X-ray saved as RGB), rgb-to-grey a grey one
  let m = mode;
  if (m === 'auto' || (m === 'grey-to-rgb' && colour === 3) || (m === 'rgb-to-grey' && colour === 1)) {
    m = colour === want ? 'keep' : colour === 1 && want === 3 ? 'grey-to-rgb' : colour === 3 && want === 1 ? 'rgb-to-grey' : 'keep';
  }
  const have = m === 'grey-to-rgb' ? 3 : m === 'rgb-to-grey' ? 1 : colour;
  if (have !== want) {
    const what = colour === 1 ? 'a greyscale image' : 'an RGB image';
    throw new MedmaskError('USAGE', `${vol.meta.source ?? 'image'}: ${what} (${comps} component${comps === 1 ? '' : 's'}) cannot feed a ${want}-channel model input with channels "${mode}"`, {
      hint: want === 3 ? 'set preprocess.channels to "grey-to-rgb" (or "auto") in the manifest' : 'set preprocess.channels to "rgb-to-grey" (or "auto") in the manifest',
    });
  }
  const d = vol.data;
  const out = new Float32Array(want * n);
  if (m === 'rgb-to-grey') {
    for (let i = 0; i < n; i++) out[i] = 0.299 * d[i * comps]! + 0.587 * d[i * comps + 1]! + 0.114 * d[i * comps + 2]!;
    return out;
  }
  for (let c = 0; c < want; c++) {
    const src = m === 'grey-to-rgb' ? 0 : c;
    const o = c * n;
    if (comps === 1) for (let i = 0; i < n; i++) out[o + i] = d[i]!;
    else for (let i = 0; i < n; i++) out[o + i] = d[i * comps + src]!;
  }
  return out;
}

function range(a: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/**
 * Check an intensity spec against the model's channel count (mean/std: one value or one per
 * channel; std > 0; window width > 0).
 * @param spec - intensity spec
 * @param channels - model input channels
 * @throws MedmaskError MODEL_INVALID naming the field
 * @example
 * checkIntensity({ mode: 'ct-window', center: 40, width: 400 }, 1);
 */
export function checkIntensity(spec: IntensitySpec, channels: number): void {
  const bad = (field: string, msg: string): never => {
    throw new MedmaskError('MODEL_INVALID', `preprocess.intensity.${field}: ${msg}`);
  };
  if (spec.mode === 'mean-std') {
    for (const f of ['mean', 'std'] as const) {
      const v = spec[f];
      if (v.length !== 1 && v.length !== channels) bad(f, `has ${v.length} values; the model input has ${channels} channel${channels === 1 ? '' : 's'} (give 1 or ${channels})`);
    }
    spec.std.forEach((s, i) => (s > 0 ? undefined : bad(`std[${i}]`, `${s} must be greater than 0`)));
    if (spec.scale !== undefined && !(spec.scale > 0)) bad('scale', `${spec.scale} must be greater than 0`);
  } else if (spec.mode === 'ct-window' && !(spec.width > 0)) bad('width', `${spec.width} must be greater than 0`);
}

/**
 * Apply an intensity normalisation in place to C planes.
 * @param data - C × n values
 * @param channels - C
 * @param spec - the normalisation
 * @param imageRange - [min, max] of the original image (for `min-max`)
 * @example
 * applyIntensity(planes, 3, { mode: 'mean-std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], scale: 255 }, [0, 255]);
 */
export function applyIntensity(data: Float32Array, channels: number, spec: IntensitySpec, imageRange: [number, number]): void {
  const n = data.length / channels;
  switch (spec.mode) {
    case 'mean-std': {
      const s = spec.scale ?? 1;
      for (let c = 0; c < channels; c++) {
        const mean = spec.mean.length === 1 ? spec.mean[0]! : spec.mean[c]!;
        const std = spec.std.length === 1 ? spec.std[0]! : spec.std[c]!;
        const a = 1 / (s * std);
        const b = -mean / std;
        for (let i = c * n; i < (c + 1) * n; i++) data[i] = data[i]! * a + b;
      }
      return;
    }
    case 'min-max': {
      const [lo, hi] = imageRange;
      const d = hi - lo;
      if (!(d > 0)) {
        data.fill(0);
        return;
      }
      for (let i = 0; i < data.length; i++) data[i] = (data[i]! - lo) / d;
      return;
    }
    case 'ct-window': {
      const lo = spec.center - spec.width / 2;
      const hi = spec.center + spec.width / 2;
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        data[i] = ((v < lo ? lo : v > hi ? hi : v) - lo) / spec.width;
      }
      return;
    }
    case 'none':
      return;
  }
}

/**
 * Turn a 2D image into one model input sample (see the module documentation for the steps).
 * @param vol - a 2D volume (`shape[2] === 1`), grey, RGB or RGBA
 * @param input - model input size (height, width, channels)
 * @param spec - resize, channels, intensity, pad, antialias
 * @param out - optional destination (C·H·W floats, e.g. a slice of a batch buffer)
 * @returns the float32 planes, their dims [1, C, H, W] and the geometry to map back
 * @throws MedmaskError USAGE for a 3D volume or channels that cannot be matched
 * @example
 * const { data, dims, geometry } = preprocessImage(png, { height: 224, width: 224, channels: 3 },
 *   { resize: 'letterbox', intensity: { mode: 'mean-std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], scale: 255 } });
 */
export function preprocessImage(vol: Volume, input: InputSize, spec: PreprocessSpec = {}, out?: Float32Array): PreprocessResult {
  const [nx, ny, nz] = vol.shape;
  if (nz !== 1) {
    throw new MedmaskError('USAGE', `${vol.meta.source ?? 'image'}: a 2D classifier needs a 2D image; this volume has ${nz} slices (${nx} × ${ny} × ${nz})`, {
      hint: 'extract a slice first (medmask convert), or use a 3D model',
    });
  }
  const C = input.channels;
  const H = input.height;
  const W = input.width;
  const intensity = spec.intensity ?? { mode: 'min-max' };
  checkIntensity(intensity, C);
  const planes = channelPlanes(vol, C, spec.channels ?? 'auto');
  const imgRange = range(planes);
  const geometry = inputGeometry(nx, ny, input, spec.resize ?? 'stretch');
  const { box } = geometry;
  const content =
    box.width === nx && box.height === ny ? planes : resizeBilinear(planes, nx, ny, box.width, box.height, { antialias: spec.antialias ?? true, channels: C });
  const data = out ?? new Float32Array(C * H * W);
  if (data.length !== C * H * W) throw new MedmaskError('USAGE', `preprocess: output buffer holds ${data.length} values, ${C * H * W} needed`);
  if (box.width !== W || box.height !== H) data.fill(spec.pad === undefined || spec.pad === 'min' ? imgRange[0] : spec.pad);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < box.height; y++) {
      const src = c * box.width * box.height + y * box.width;
      data.set(content.subarray(src, src + box.width), c * H * W + (box.y + y) * W + box.x);
    }
  }
  applyIntensity(data, C, intensity, imgRange);
  return { data, dims: [1, C, H, W], geometry };
}

/**
 * Bring a map from activation resolution back onto the original image: bilinear upsampling to
 * the model input (as pytorch-grad-cam's `cv2.resize`), then the letterbox border removed and the
 * content resampled to the image size (undoing stretch or letterbox).
 * @param map - h × w values, x fastest
 * @param width - map width w
 * @param height - map height h
 * @param geometry - from {@link preprocessImage}
 * @returns the map at model input resolution and at image resolution (float32, x fastest)
 * @example
 * const { image } = mapToImage(cam.normalized, 7, 7, pre.geometry); // imageWidth × imageHeight
 */
export function mapToImage(map: ArrayLike<number>, width: number, height: number, geometry: InputGeometry): { input: Float32Array; image: Float32Array } {
  const { inputWidth: W, inputHeight: H, box, imageWidth, imageHeight } = geometry;
  const input = width === W && height === H ? Float32Array.from(map) : resizeBilinear(map, width, height, W, H);
  let content = input;
  if (box.width !== W || box.height !== H) {
    content = new Float32Array(box.width * box.height);
    for (let y = 0; y < box.height; y++) content.set(input.subarray((box.y + y) * W + box.x, (box.y + y) * W + box.x + box.width), y * box.width);
  }
  const image =
    box.width === imageWidth && box.height === imageHeight ? Float32Array.from(content) : resizeBilinear(content, box.width, box.height, imageWidth, imageHeight, { antialias: true });
  return { input, image };
}
