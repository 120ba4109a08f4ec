/**
 * The atlas workflow on one CT-sized abdominal phantom (512 × 512 in plane, ≈ 0.7 mm pixels,
 * 2.7 mm slices: 512 × 512 × 90): resampling to a model's spacing (the baseline), the
 * sliding-window inference of each 3D demo model in models/demo/ (to its label map on the original
 * grid), and the attention maps of 9 organs × 3 models plus the case priority on the original grid.
 * Where Debian's python3-torch is installed, the same networks (their ONNX graphs executed op by op
 * with torch.nn.functional, bench/torch_sliding_window.py) run over the same CT through a
 * straightforward torch CPU sliding window (every window of the grid, as MONAI by default; the
 * trainer's own evaluation code): `speedup_vs_torch` and `dice_vs_torch` of the two label maps.
 * `--quick` uses 256 × 256 in plane.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeOnnx, nodeAttributes, tensorValues } from '../src/runtime/onnx-graph.js';
import { decodeNpy, encodeNpy } from '../src/io/npy.js';
import { abdomenPhantom, ORGANS, organLabel } from '../src/core/phantom/abdomen.js';
import { gridAtSpacing, resampleToGrid } from '../src/core/atlas/resample.js';
import { organAttention } from '../src/core/atlas/attention.js';
import { binaryDilation, binaryErosion } from '../src/core/atlas/morphology.js';
import { casePriority } from '../src/core/atlas/ranking.js';
import { readVolume, writeVolume } from '../src/io/index.js';
import { Segmenter } from '../src/runtime/segment.js';
import { defineBenchmark } from './run.js';

interface State {
  dir: string;
  ct: string;
  truth: string;
  shape: number[];
  spacing: number[];
  models: string[];
  /** /usr/bin/python3 with torch and nibabel (Debian's), for the torch comparison. */
  torch: boolean;
}

const PY = '/usr/bin/python3';
const TORCH_SCRIPT = new URL('./torch_sliding_window.py', import.meta.url).pathname;
const NAMES = ['demo-unet3d', 'demo-resunet3d', 'demo-segresnet3d'];

/**
 * Dump an ONNX graph for bench/torch_sliding_window.py: graph.json (nodes with plain attributes,
 * initializers and Constant values) and weights.bin (float32 initializers, little-endian).
 */
function dumpGraph(onnxPath: string, dir: string): void {
  const model = decodeOnnx(new Uint8Array(readFileSync(onnxPath)), onnxPath);
  const g = model.graph!;
  const chunks: Buffer[] = [];
  let offset = 0;
  const initializers: Record<string, { dims: number[]; type: string; offset?: number; values?: number[] }> = {};
  for (const t of g.initializer ?? []) {
    const { dims, data } = tensorValues(t as Parameters<typeof tensorValues>[0]);
    if (data instanceof Float32Array) {
      const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      initializers[t.name!] = { dims, type: 'float', offset };
      chunks.push(Buffer.from(b));
      offset += b.length;
    } else initializers[t.name!] = { dims, type: 'int', values: [...data] };
  }
  const nodes = (g.node ?? []).map((n) => {
    if (n.opType === 'Constant') {
      const a = (n.attribute ?? []).find((x) => x.name === 'value' && x.t);
      if (!a) throw new Error(`Constant ${n.name} without a tensor value`);
      const { dims, data } = tensorValues(a.t as Parameters<typeof tensorValues>[0]);
      initializers[n.output![0]!] = { dims, type: data instanceof Float32Array ? 'float' : 'int', values: [...data] };
    }
    return { op: n.opType, inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attrs: nodeAttributes(n as Parameters<typeof nodeAttributes>[0]) };
  });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'weights.bin'), Buffer.concat(chunks));
  writeFileSync(join(dir, 'graph.json'), JSON.stringify({ input: g.input![0]!.name, output: g.output![0]!.name, nodes, initializers }));
}

/** Mean Dice over the organ labels present in either map. */
function meanDice(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const inter = new Float64Array(256), na = new Float64Array(256), nb = new Float64Array(256);
  for (let v = 0; v < a.length; v++) {
    na[a[v]!]!++;
    nb[b[v]!]!++;
    if (a[v] === b[v]) inter[a[v]!]!++;
  }
  const ds: number[] = [];
  for (let l = 1; l < 256; l++) if (na[l]! + nb[l]!) ds.push((2 * inter[l]!) / (na[l]! + nb[l]!));
  return ds.reduce((x, y) => x + y, 0) / Math.max(1, ds.length);
}

const MODELS = new URL('../models/demo/', import.meta.url).pathname;
const segmenters = (): string[] => (existsSync(MODELS) ? readdirSync(MODELS).filter((d) => existsSync(join(MODELS, d, 'model.json')) && /3d/.test(d)).sort() : []);

export default defineBenchmark<State>({
  description: 'atlas: resample, sliding-window inference per demo 3D model, attention (9 organs × 3 models) + priority, on a 512 × 512 × 90 abdominal CT phantom (0.7 × 0.7 × 2.7 mm)',
  repetitions: 3,
  async setup(dir, quick) {
    const size = quick ? 256 : 512;
    const ct = join(dir, `ct-${size}.nii.gz`), truth = join(dir, `truth-${size}.nii.gz`);
    if (!existsSync(ct) || !existsSync(truth)) {
      const p = abdomenPhantom({ seed: 7, size, source: 'btcv' });
      await writeVolume(p.image, ct);
      await writeVolume(p.truth, truth, { labelMap: true });
    }
    const v = await readVolume(ct);
    const models = segmenters();
    const torch = existsSync(PY) && spawnSync(PY, ['-c', 'import torch, nibabel'], { encoding: 'utf8' }).status === 0;
    if (torch) for (const m of models) dumpGraph(join(MODELS, m, 'model.onnx'), join(dir, `graph-${m}`));
    return { dir, ct, truth, shape: [...v.shape], spacing: [...v.spacing], models, torch };
  },
  cases: [
    {
      name: 'resample to 4×4×6 mm',
      baseline: true,
      async run({ state }) {
        const ct = await readVolume(state.ct);
        const t0 = performance.now();
        resampleToGrid(ct.data as Int16Array, ct, gridAtSpacing(ct, [4, 4, 6]));
        return { elapsedMs: performance.now() - t0 };
      },
    },
    ...NAMES.flatMap((m) => [false, true].map((crop) => ({
      name: `sliding window ${m}${crop ? ', cropped to the body' : ''}`,
      repetitions: 2,
      skip: (s: State) => (s.models.includes(m) ? undefined : `models/demo/${m} is not there`),
      async run({ state }: { state: State }) {
        const ct = await readVolume(state.ct);
        const seg = await Segmenter.load(join(MODELS, m), { threads: 2 });
        const t0 = performance.now();
        const pred = await seg.predict(ct, { batch: 2, crop });
        const labels = pred.labelMap();
        const ms = performance.now() - t0;
        await seg.release();
        writeFileSync(join(state.dir, `labels-${m}-medmask${crop ? '-crop' : ''}.npy`), encodeNpy(labels, [ct.shape[2], ct.shape[1], ct.shape[0]]));
        writeFileSync(join(state.dir, `windows-${m}${crop ? '-crop' : ''}.json`), JSON.stringify(pred.windows));
        return { elapsedMs: ms };
      },
    }))),
    ...NAMES.map((m) => ({
      name: `torch sliding window ${m}`,
      repetitions: 1,
      warmup: false,
      skip: (s: State) => (!s.models.includes(m) ? `models/demo/${m} is not there` : s.torch ? undefined : `${PY} has no torch (apt-get install python3-torch python3-nibabel)`),
      run({ state }: { state: State }) {
        const r = spawnSync(PY, [TORCH_SCRIPT, join(state.dir, `graph-${m}`), state.ct, join(state.dir, `labels-${m}-torch.npy`), '2'], { encoding: 'utf8', maxBuffer: 1 << 24 });
        if (r.status !== 0) throw new Error(`torch sliding window ${m} failed: ${r.stderr.slice(-2000)}`);
        const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number; windows: number };
        writeFileSync(join(state.dir, `torch-${m}.json`), JSON.stringify(out));
        return { elapsedMs: out.seconds * 1000 };
      },
    })),
    {
      name: 'attention 9 organs × 3 models + priority',
      repetitions: 2,
      async run({ state }) {
        // Three "models": the truth, the truth eroded twice, the truth dilated twice (per organ,
        // uint8 probabilities), so every organ has a disagreement shell; only the attention and
        // the priority are timed.
        const truth = await readVolume(state.truth);
        const d = truth.data as Uint8Array;
        const n = d.length;
        let ms = 0;
        const organs = [];
        for (const o of ORGANS) {
          const l = organLabel(o);
          const mask = new Uint8Array(n);
          for (let v = 0; v < n; v++) mask[v] = d[v] === l ? 1 : 0;
          const er = binaryErosion(mask, truth.shape, { iterations: 2 });
          const di = binaryDilation(mask, truth.shape, { iterations: 2 });
          for (const a of [mask, er, di]) for (let v = 0; v < n; v++) a[v] = a[v]! * 255;
          const t0 = performance.now();
          const att = organAttention([mask, er, di], truth.shape, null);
          ms += performance.now() - t0;
          organs.push({ organ: o, voxels: att.voxels, heatSum: att.heatSum, labelled: o === 'liver' });
        }
        const t1 = performance.now();
        casePriority(organs);
        return { elapsedMs: ms + performance.now() - t1 };
      },
    },
  ],
  summarize(results, state) {
    const get = (name: string) => results.find((r) => r.name === name);
    const out: Record<string, number | string | null> = { ct_shape: state.shape.join('×'), ct_spacing_mm: state.spacing.map((s) => s.toFixed(3)).join('×') };
    for (const m of NAMES) {
      const r = get(`sliding window ${m}`);
      out[`${m}_seconds`] = r ? +(r.medianMs / 1000).toFixed(2) : null;
      out[`${m}_peak_rss_mb`] = r ? Math.round(r.peakRssMiB) : null;
      const t = get(`torch sliding window ${m}`);
      out[`${m}_torch_seconds`] = t ? +(t.medianMs / 1000).toFixed(2) : null;
      out[`${m}_speedup_vs_torch`] = r && t ? +(t.medianMs / r.medianMs).toFixed(2) : null;
      const a = join(state.dir, `labels-${m}-medmask.npy`), b = join(state.dir, `labels-${m}-torch.npy`);
      out[`${m}_dice_vs_torch`] = r && t && existsSync(a) && existsSync(b) ? +meanDice(decodeNpy(new Uint8Array(readFileSync(a))).data, decodeNpy(new Uint8Array(readFileSync(b))).data).toFixed(4) : null;
      const tj = join(state.dir, `torch-${m}.json`);
      const tr = t && existsSync(tj) ? (JSON.parse(readFileSync(tj, 'utf8')) as { windows: number; peak_rss_mb?: number }) : undefined;
      out[`${m}_torch_windows`] = tr?.windows ?? null;
      out[`${m}_torch_peak_rss_mb`] = tr?.peak_rss_mb ?? null;
      const wj = join(state.dir, `windows-${m}.json`);
      out[`${m}_windows_run`] = r && existsSync(wj) ? (JSON.parse(readFileSync(wj, 'utf8')) as { run: number }).run : null;
      const c = get(`sliding window ${m}, cropped to the body`);
      const ac = join(state.dir, `labels-${m}-medmask-crop.npy`);
      out[`${m}_crop_seconds`] = c ? +(c.medianMs / 1000).toFixed(2) : null;
      out[`${m}_crop_speedup_vs_torch`] = c && t ? +(t.medianMs / c.medianMs).toFixed(2) : null;
      out[`${m}_crop_dice_vs_torch`] = c && t && existsSync(ac) && existsSync(b) ? +meanDice(decodeNpy(new Uint8Array(readFileSync(ac))).data, decodeNpy(new Uint8Array(readFileSync(b))).data).toFixed(4) : null;
    }
    const a = get('attention 9 organs × 3 models + priority');
    out.attention_seconds_per_case = a ? +(a.medianMs / 1000).toFixed(2) : null;
    out.attention_peak_rss_mb = a ? Math.round(a.peakRssMiB) : null;
    out.peak_rss_mb = Math.round(Math.max(...results.map((r) => r.peakRssMiB)));
    return out;
  },
});
