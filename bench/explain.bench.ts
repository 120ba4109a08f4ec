/**
 * Explanations on full-size torchvision ResNet50 + DenseNet121 + EfficientNet-B0 at 224² (seeded
 * random weights, exported by tools/bench/export_fullsize.py; skipped with a message when the
 * files are not there), per image, summed over the three models:
 * - `forward` (baseline): the bare onnxruntime forwards (the unedited graphs);
 * - `xgradcam-mc30`: the forwards with the CAM target as an extra output, XGrad-CAM of the
 *   predicted class, head MC Dropout T = 30 (rate 0.2) with the per-pixel std of the 30 maps, and
 *   the map upsampled to the image;
 * - `full-mc30`: the same with full MC Dropout (30 backbone passes with the Dropout nodes on);
 * - `torch-naive`: XGrad-CAM + T = 30 MC the naive way in PyTorch (1 + 30 forward + backward
 *   passes per model, pytorch-grad-cam style hooks), timed inside a Python subprocess
 *   (tools/bench/torch_naive.py) when `/usr/bin/python3` has torch and torchvision.
 * The summary gives `forward_ms`, `xgradcam_mc30_ms`, `ratio` (goal ≤ 1.25), `full_mc30_ms`,
 * `torch_naive_ms` and `speedup_vs_torch` (goal ≥ 50).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { explainActivation, fullMcStatistics } from '../src/core/explain/explain.js';
import { mapToImage, type InputGeometry } from '../src/core/preprocess.js';
import { mulberry32 } from '../src/core/uncertainty/mc-dropout.js';
import { sampleFullMc } from '../src/pipeline/explain.js';
import { ClassifierSession } from '../src/runtime/session.js';
import { defineBenchmark, type CaseResult } from './run.js';

const ROOT = new URL('..', import.meta.url).pathname;
const ARCHS = ['resnet50', 'densenet121', 'efficientnet_b0'] as const;
const SIZE = 224;
const T = 30;
const RATE = 0.2;
const PYTHON = '/usr/bin/python3';

interface State {
  skip?: string;
  dir: string;
  classes: number;
  torch: boolean;
  threads: number;
}

const geometry: InputGeometry = { imageWidth: SIZE, imageHeight: SIZE, inputWidth: SIZE, inputHeight: SIZE, box: { x: 0, y: 0, width: SIZE, height: SIZE } };

/** A fixed input: a smooth pattern plus seeded noise, normalised like an ImageNet image. */
function input(): Float32Array {
  const rand = mulberry32(224);
  const x = new Float32Array(3 * SIZE * SIZE);
  for (let c = 0; c < 3; c++) for (let i = 0; i < SIZE * SIZE; i++) x[c * SIZE * SIZE + i] = Math.sin(i / 97 + c) + 0.5 * (rand() - 0.5);
  return x;
}

const classNames = (n: number): string[] => Array.from({ length: n }, (_, i) => `class_${i}`);

// sessions live for the whole child process; the warm-up run creates them
let bare: ort.InferenceSession[] | undefined;
let sessions: ClassifierSession[] | undefined;
let mcSessions: ClassifierSession[] | undefined;

export default defineBenchmark<State>({
  description: `per image: ResNet50 + DenseNet121 + EfficientNet-B0 (224², torchvision, random weights): bare forwards vs XGrad-CAM + head MC T=${T}, full MC, and naive PyTorch`,
  repetitions: 7,
  async setup(): Promise<State> {
    const dir = process.env.MEDMASK_BENCH_MODELS ?? join(ROOT, 'bench/out/models');
    const missing = ARCHS.flatMap((a) => [`${a}.onnx`, `${a}-mc.onnx`]).filter((f) => !existsSync(join(dir, f)));
    const torch = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;
    if (missing.length) {
      return {
        skip:
          `full-size models not found in ${dir} (${missing.join(', ')}); export them with ` +
          `\`${PYTHON} tools/bench/export_fullsize.py\`${torch ? '' : ' (needs Debian python3-torch and python3-torchvision, which are not installed here)'}`,
        dir,
        classes: 0,
        torch,
        threads: 0,
      };
    }
    const meta = JSON.parse(readFileSync(join(dir, 'export.json'), 'utf8')) as { classes: number };
    return { dir, classes: meta.classes, torch, threads: Number(process.env.MEDMASK_BENCH_THREADS ?? 2) };
  },
  cases: [
    {
      name: 'forward',
      baseline: true,
      async run({ state }) {
        bare ??= await Promise.all(
          ARCHS.map((a) => ort.InferenceSession.create(readFileSync(join(state.dir, `${a}.onnx`)), { graphOptimizationLevel: 'all', intraOpNumThreads: state.threads, interOpNumThreads: 1 })),
        );
        const x = input();
        let s = 0;
        for (const b of bare) {
          const r = await b.run({ input: new ort.Tensor('float32', x, [1, 3, SIZE, SIZE]) });
          s += (r.logits!.data as Float32Array)[0]!;
        }
        return s;
      },
    },
    {
      name: 'xgradcam-mc30',
      async run({ state }) {
        sessions ??= await Promise.all(ARCHS.map((a) => ClassifierSession.create(join(state.dir, `${a}.onnx`), { threads: state.threads })));
        const x = input();
        let s = 0;
        for (const cs of sessions) {
          const r = await cs.run(x, [1, 3, SIZE, SIZE]);
          const e = await cs.explain({ shape: r.activationDims, data: r.activation }, {
            output: r.logits,
            method: 'xgradcam',
            classNames: classNames(state.classes),
            mc: { samples: T, rate: RATE, seed: 1 },
          });
          const { image } = mapToImage(e.maps[0]!.normalized, e.width, e.height, geometry);
          s += image[0]! + e.mc!.mutualInformation + e.maps[0]!.stdSummary!.mean;
        }
        return s;
      },
    },
    {
      name: 'full-mc30',
      repetitions: 3,
      async run({ state }) {
        sessions ??= await Promise.all(ARCHS.map((a) => ClassifierSession.create(join(state.dir, `${a}.onnx`), { threads: state.threads })));
        mcSessions ??= await Promise.all(ARCHS.map((a) => ClassifierSession.create(join(state.dir, `${a}-mc.onnx`), { threads: state.threads, fullMc: { seed: 1 } })));
        const x = input();
        let s = 0;
        for (let m = 0; m < ARCHS.length; m++) {
          const cs = sessions[m]!;
          const r = await cs.run(x, [1, 3, SIZE, SIZE]);
          const e = explainActivation(cs.head, { shape: r.activationDims, data: r.activation }, { method: 'xgradcam', classNames: classNames(state.classes) });
          const samples = await sampleFullMc(mcSessions[m]!, x, [1, 3, SIZE, SIZE], T, 10);
          const mc = fullMcStatistics(mcSessions[m]!.head, samples, { method: 'xgradcam', classes: [e.predicted], probability: 'softmax' });
          const { image } = mapToImage(e.maps[0]!.normalized, e.width, e.height, geometry);
          s += image[0]! + mc.statistics.mutualInformation + mc.std.get(e.predicted)!.summary.mean;
        }
        return s;
      },
    },
    {
      name: 'torch-naive',
      repetitions: 1,
      warmup: false,
      skip: (state) => (state.torch ? undefined : `${PYTHON} has no torch/torchvision (Debian python3-torch, python3-torchvision)`),
      run({ state, quick }) {
        const r = spawnSync(
          PYTHON,
          [join(ROOT, 'tools/bench/torch_naive.py'), '--classes', String(state.classes), '--samples', String(T), '--threads', String(state.threads), '--reps', quick ? '1' : '2'],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 2 ** 20 },
        );
        if (r.status !== 0) throw new Error(`torch_naive.py failed (exit ${r.status ?? r.signal})`);
        const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { total_ms: number; ms: Record<string, number> };
        process.stderr.write(`torch naive per model (ms): ${JSON.stringify(out.ms)}\n`);
        return { elapsedMs: out.total_ms };
      },
    },
  ],
  summarize(results: CaseResult[]) {
    const ms = (n: string): number | undefined => results.find((r) => r.name === n)?.medianMs;
    const forward = ms('forward')!;
    const ours = ms('xgradcam-mc30')!;
    const torch = ms('torch-naive');
    return {
      forward_ms: forward,
      xgradcam_mc30_ms: ours,
      ratio: ours / forward,
      full_mc30_ms: ms('full-mc30') ?? null,
      torch_naive_ms: torch ?? null,
      speedup_vs_torch: torch === undefined ? null : torch / ours,
    };
  },
});
