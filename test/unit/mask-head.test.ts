/**
 * The mask head's math against independent references: central finite differences of a loss
 * computed the other way round (1×1 convolution at activation resolution, then `mapToImage`,
 * then softmax cross-entropy), and a known separating plane in channel space that training must
 * recover.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inputGeometry, mapToImage } from '../../src/core/preprocess.js';
import { mulberry32 } from '../../src/core/random.js';
import { fitHead } from '../../src/core/train/fit.js';
import { headLoss, initHeadParams } from '../../src/core/train/head-net.js';
import {
  fuseMaskHead, hypercolumn, MASK_HEAD_FORMAT, maskHeadFromFit, maskHeadLogits, maskHeadMaps, pixelFeatures, pixelInterpolation, samplePixels, splitByImage,
  validateMaskHead,
} from '../../src/core/train/mask-head.js';

function gauss(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

test('mask-head gradient (pixel rows of the interpolated activation) matches finite differences of conv → upsample → cross-entropy', () => {
  const rand = mulberry32(3);
  const C = 3, w = 4, h = 3;
  // letterboxed 13 × 9 image in a 16 × 16 input: crop + antialiased resize, as for the CAMs
  const geo = inputGeometry(13, 9, { width: 16, height: 16, channels: 3 }, 'letterbox');
  const act = Float64Array.from({ length: C * w * h }, () => gauss(rand));
  const interp = pixelInterpolation(w, h, geo);
  const pixels = Int32Array.from({ length: 20 }, (_, i) => (i * 37) % (13 * 9));
  const labels = Int32Array.from(pixels, (p) => (p % 3 === 0 ? 1 : 0));
  const x = pixelFeatures(act, C, interp, pixels);
  const p = initHeadParams({ inputs: C, hidden: 0, classes: 2 }, rand);
  for (let i = 0; i < p.data.length; i++) p.data[i]! += 0.5 * gauss(rand);
  const cw = [0.7, 1.6];
  const wd = 0.03;
  const g = headLoss(p, x, labels, { classWeights: cw, weightDecay: wd }).grad;
  // the reference: each class's logit map at activation resolution, upsampled, softmax per pixel
  const reference = (): number => {
    const l = p.layers[0]!;
    const maps = [0, 1].map((j) => {
      const z = new Float64Array(w * h);
      for (let c = 0; c < w * h; c++) {
        let s = l.b[j]!;
        for (let k = 0; k < C; k++) s += l.w[j * C + k]! * act[k * w * h + c]!;
        z[c] = s;
      }
      return mapToImage(z, w, h, geo).image;
    });
    let num = 0, den = 0;
    pixels.forEach((px, r) => {
      const z0 = maps[0]![px]!, z1 = maps[1]![px]!;
      const m = Math.max(z0, z1);
      const lse = m + Math.log(Math.exp(z0 - m) + Math.exp(z1 - m));
      const y = labels[r]!;
      num += cw[y]! * (lse - (y ? z1 : z0));
      den += cw[y]!;
    });
    let w2 = 0;
    for (let i = 0; i < p.data.length; i++) if (p.decayMask[i]) w2 += p.data[i]! ** 2;
    return num / den + 0.5 * wd * w2;
  };
  assert.ok(Math.abs(reference() - headLoss(p, x, labels, { classWeights: cw, weightDecay: wd, gradient: false }).loss) < 1e-5);
  const hstep = 1e-4;
  for (let i = 0; i < p.data.length; i++) {
    const v = p.data[i]!;
    p.data[i] = v + hstep;
    const up = reference();
    p.data[i] = v - hstep;
    const down = reference();
    p.data[i] = v;
    const fd = (up - down) / (2 * hstep);
    // float32 maps in the reference: agreement to ~1e-5, far below any gradient bug
    assert.ok(Math.abs(fd - g[i]!) < 2e-4 * Math.max(1, Math.abs(fd)), `parameter ${i}: finite difference ${fd}, gradient ${g[i]}`);
  }
});

test('a mask head trained on synthetic activations recovers the known separating plane', () => {
  const rand = mulberry32(17);
  const C = 5, w = 12, h = 12;
  const plane = [1.5, -2, 0.5, 0, 1];
  const offset = -0.8;
  const geo = inputGeometry(w, h, { width: w, height: h, channels: 3 }, 'stretch'); // identity upsampling
  const interp = pixelInterpolation(w, h, geo);
  const images = 12;
  const feats: number[] = [];
  const ys: number[] = [];
  const imageOfRow: number[] = [];
  for (let im = 0; im < images; im++) {
    const act = Float64Array.from({ length: C * w * h }, () => 2 * gauss(rand) + 3); // channel means ≠ 0, std 2
    const mask = new Uint8Array(w * h);
    for (let c = 0; c < w * h; c++) {
      let s = offset;
      for (let k = 0; k < C; k++) s += plane[k]! * (act[k * w * h + c]! - 3);
      mask[c] = s > 0 ? 1 : 0;
    }
    const smp = samplePixels(mask, { perClass: 40, rand });
    feats.push(...pixelFeatures(act, C, interp, smp.pixels));
    ys.push(...smp.labels);
    for (let r = 0; r < smp.labels.length; r++) imageOfRow.push(im);
  }
  const labels = Int32Array.from(ys);
  const split = splitByImage(imageOfRow, images, 0.25, mulberry32(1));
  assert.ok(split.val.length > 0 && split.val.every((r) => !split.train.includes(r)));
  assert.deepEqual(new Set(Array.from(split.val, (r) => imageOfRow[r])).size, 3, 'a quarter of the 12 images, never split');
  const fit = fitHead({ features: Float64Array.from(feats), dim: C, labels, classes: 2 }, { hidden: 0, dropout: 0, epochs: 300, lr: 0.05, weightDecay: 0, batch: 64, patience: 0, split, classWeights: 'none' });
  const head = maskHeadFromFit(fit, 0);
  // raw-space direction: weight_k / std_k, compared with the plane by cosine
  const dir = head.weight.map((v, k) => v / head.std[k]!);
  const dot = dir.reduce((a, v, k) => a + v * plane[k]!, 0);
  const cos = dot / Math.hypot(...dir) / Math.hypot(...plane);
  assert.ok(cos > 0.99, `cosine to the true plane ${cos}`);
  // and the offset: the head's zero set passes through the plane's (raw-space intercept / scale)
  const scale = dot / plane.reduce((a, v) => a + v * v, 0);
  const intercept = head.bias - head.weight.reduce((a, v, k) => a + (v * head.mean[k]!) / head.std[k]!, 0) + dir.reduce((a, v) => a + v * 3, 0);
  assert.ok(Math.abs(intercept / scale - offset) < 0.15, `offset ${intercept / scale} vs ${offset}`);
  // a fresh image: pixel accuracy of the deterministic map
  const act = Float64Array.from({ length: C * w * h }, () => 2 * gauss(rand) + 3);
  const m = maskHeadMaps(head, act, w, h, geo);
  let right = 0;
  for (let c = 0; c < w * h; c++) {
    let s = offset;
    for (let k = 0; k < C; k++) s += plane[k]! * (act[k * w * h + c]! - 3);
    if ((m.probability[c]! > 0.5) === (s > 0)) right++;
  }
  assert.ok(right / (w * h) > 0.97, `pixel accuracy ${right / (w * h)}`);
});

test('mask-head MC Dropout: no spread without dropout, a spread that grows with the rate, mean near the deterministic map', () => {
  const rand = mulberry32(5);
  const C = 8, w = 4, h = 4;
  const geo = inputGeometry(8, 8, { width: 8, height: 8, channels: 1 }, 'stretch');
  const act = Float64Array.from({ length: C * w * h }, () => gauss(rand));
  const base = { format: 'medmask-mask-head/1' as const, channels: C, mean: new Array(C).fill(0), std: new Array(C).fill(1), weight: Array.from({ length: C }, () => gauss(rand)), bias: 0.1 };
  const none = maskHeadMaps({ ...base, dropout: 0 }, act, w, h, geo, { samples: 10, seed: 1 });
  assert.equal(none.std, undefined);
  const spread = (rate: number) => {
    const m = maskHeadMaps({ ...base, dropout: rate }, act, w, h, geo, { samples: 200, seed: 2 });
    return m.std!.reduce((a, b) => a + b, 0) / m.std!.length;
  };
  const lo = spread(0.1), hi = spread(0.5);
  assert.ok(lo > 0 && hi > 1.5 * lo, `mean std ${lo} at rate 0.1, ${hi} at 0.5`);
  // inverted dropout keeps the expected logit: its MC mean equals the deterministic logit
  const keepRand = mulberry32(9);
  const T = 4000;
  const sum = new Float64Array(w * h);
  const keep = new Uint8Array(act.length);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < keep.length; i++) keep[i] = keepRand() < 0.3 ? 0 : 1;
    maskHeadLogits({ ...base, dropout: 0.3 }, act, keep).forEach((v, i) => (sum[i]! += v / T));
  }
  const det = maskHeadLogits({ ...base, dropout: 0.3 }, act);
  for (let i = 0; i < det.length; i++) assert.ok(Math.abs(sum[i]! - det[i]!) < 0.1, `cell ${i}: ${sum[i]} vs ${det[i]}`);
});

test('mask-head fusion: the or and linear rules in closed form, and their std propagation against a perturbation of both maps', () => {
  const rand = mulberry32(11);
  const n = 200;
  const cam = Float32Array.from({ length: n }, () => rand());
  const prob = Float32Array.from({ length: n }, () => rand());
  for (const w of [0, 0.4, 1]) {
    const or = fuseMaskHead(cam, prob, w, 'or').map;
    const lin = fuseMaskHead(cam, prob, w, 'linear').map;
    for (let q = 0; q < n; q++) {
      const c = cam[q]!, p = prob[q]!;
      // or: the complement of "neither finds a lesion"; never below either signal
      assert.ok(Math.abs(or[q]! - (c + w * p - c * w * p)) < 1e-6);
      assert.ok(or[q]! >= Math.max(c, w * p) - 1e-6 && or[q]! <= 1 + 1e-6);
      assert.ok(Math.abs(lin[q]! - (w * p + (1 - w) * c)) < 1e-6);
    }
    if (w === 0) assert.deepEqual(Array.from(or), Array.from(cam));
  }
  // a lesion the CAM ranks low (0.2) but the head finds (0.9) keeps most of its level under `or`
  // (0.92 against 0.41 for linear at its default 0.3): refine's `core` keeps it beside a lesion at 1
  assert.ok(fuseMaskHead([0.2], [0.9], 1, 'or').map[0]! > 0.6);
  assert.ok(fuseMaskHead([0.2], [0.9], 0.3, 'linear').map[0]! < 0.6);
  // std: move C and P together by ±1 sd (the case the linear bound is exact for) and compare the
  // half-difference of the fused maps with the propagated std (both rules are bilinear in C and P,
  // so the central difference is exact)
  const sdC = Float32Array.from({ length: n }, () => 0.05 * rand());
  const sdP = Float32Array.from({ length: n }, () => 0.05 * rand());
  const eps = 1;
  for (const rule of ['or', 'linear'] as const) {
    const w = 0.7;
    const f = fuseMaskHead(cam, prob, w, rule, { cam: sdC, head: sdP });
    const up = fuseMaskHead(Float64Array.from(cam, (c, q) => c + eps * sdC[q]!), Float64Array.from(prob, (p, q) => p + eps * sdP[q]!), w, rule).map;
    const dn = fuseMaskHead(Float64Array.from(cam, (c, q) => c - eps * sdC[q]!), Float64Array.from(prob, (p, q) => p - eps * sdP[q]!), w, rule).map;
    for (let q = 0; q < n; q++) {
      const fd = (up[q]! - dn[q]!) / (2 * eps);
      assert.ok(Math.abs(fd - f.std![q]!) < 1e-6, `${rule} pixel ${q}: propagated ${f.std![q]} vs perturbed ${fd}`);
    }
    // only the head's std known: the CAM's counts as 0
    const h = fuseMaskHead(cam, prob, w, rule, { head: sdP }).std!;
    const want = rule === 'or' ? w * (1 - cam[5]!) * sdP[5]! : w * sdP[5]!;
    assert.ok(Math.abs(h[5]! - want) < 1e-6);
  }
  assert.throws(() => fuseMaskHead(cam, prob.subarray(1), 1, 'or'), /pixels/);
  assert.throws(() => fuseMaskHead(cam, prob, 1.5, 'or'), /must be in \[0, 1\]/);
});

test('annotate refuses an unknown fusion rule and a weight outside [0, 1] before loading any model', async () => {
  const { annotate } = await import('../../src/pipeline/annotate.js');
  // the model path does not exist: a refusal naming the option proves the options were checked first
  const base = { models: ['no/such/model'], items: [], out: 'no/such/out' };
  await assert.rejects(annotate({ ...base, maskHeadFusion: 'max' as never }), (e: Error & { code?: string }) => e.code === 'USAGE' && /--mask-head-fusion max/.test(e.message));
  await assert.rejects(annotate({ ...base, maskHeadFusion: 'linear', maskHeadWeight: 1.2 }), (e: Error & { code?: string }) => e.code === 'USAGE' && /--mask-head-weight 1.2/.test(e.message));
});

test('hypercolumn: the coarse map resized to the finer one (a linear ramp stays linear inside, edges clamped), channels in order', () => {
  // coarse: 2 channels 4 × 4, value = x (channel 0) and 10 + y (channel 1); fine: 1 channel 8 × 8 of 7s
  const coarse = Float32Array.from({ length: 2 * 16 }, (_, i) => (i < 16 ? i % 4 : 10 + Math.floor((i - 16) / 4)));
  const fine = new Float32Array(64).fill(7);
  const hc = hypercolumn([{ data: coarse, channels: 2, width: 4, height: 4 }, { data: fine, channels: 1, width: 8, height: 8 }]);
  assert.deepEqual([hc.channels, hc.width, hc.height, hc.data.length], [3, 8, 8, 3 * 64]);
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      // half-pixel centres: fine pixel x sits at coarse (x + 0.5) / 2 − 0.5, clamped to [0, 3]
      const cx = Math.min(3, Math.max(0, (x + 0.5) / 2 - 0.5));
      const cy = Math.min(3, Math.max(0, (y + 0.5) / 2 - 0.5));
      assert.ok(Math.abs(hc.data[y * 8 + x]! - cx) < 1e-6, `channel 0 at ${x},${y}`);
      assert.ok(Math.abs(hc.data[64 + y * 8 + x]! - (10 + cy)) < 1e-6, `channel 1 at ${x},${y}`);
      assert.equal(hc.data[128 + y * 8 + x], 7);
    }
  }
  assert.throws(() => hypercolumn([]), /at least one/);
  assert.throws(() => hypercolumn([{ data: fine, channels: 2, width: 8, height: 8 }]), /64 values, not 2 × 8 × 8/);
});

test('a mask head file with hypercolumn layers is checked: names, channel counts, room left for the target', () => {
  const base = { format: MASK_HEAD_FORMAT, channels: 3, mean: [0, 0, 0], std: [1, 1, 1], weight: [1, 2, 3], bias: 0, dropout: 0 };
  assert.deepEqual(validateMaskHead({ ...base, layers: [{ tensor: 'l2', channels: 1 }] }, 'h.json').layers, [{ tensor: 'l2', channels: 1 }]);
  assert.throws(() => validateMaskHead({ ...base, layers: [{ tensor: 'l2', channels: 3 }] }, 'h.json'), /h\.json: the layers' 3 channels leave none of the 3/);
  assert.throws(() => validateMaskHead({ ...base, layers: [{ tensor: '', channels: 1 }] }, 'h.json'), /layers must list/);
  assert.throws(() => validateMaskHead({ ...base, layers: 'l2' }, 'h.json'), /layers must list/);
});
