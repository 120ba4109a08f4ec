/**
 * Export check for the trainer (run by build_zoo.py, not on the product's run path):
 *   node --import tsx tools/train/check-export.ts MODEL_DIR:REFERENCE.bin ...
 * For each model folder, validates model.json with medmask's manifest reader, runs model.onnx in onnxruntime-node on the input torch saw
 * (REFERENCE.bin: float32 LE input then torch's logits; REFERENCE.bin.json: their shapes) and
 * prints one JSON object: per folder, the largest |ort - torch| and, for classifiers, the CAM target
 * the runtime picks by default and the head it reads after it (through ClassifierSession, as
 * `medmask explain` loads models).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readFloats } from '../../src/pipeline/atlas-train.js';
import { readManifest } from '../../src/runtime/manifest.js';
import { Segmenter } from '../../src/runtime/segment.js';
import { ClassifierSession } from '../../src/runtime/session.js';

interface Result {
  task: string;
  maxAbsDiff: number;
  maxAbsLogit: number;
  outputDims: number[];
  target?: string;
  targetDims?: number[];
  head?: string[];
}

async function check(dir: string, ref: string): Promise<Result> {
  // The manifest through medmask's own validator (throws with the field path when it is wrong).
  const manifest = await readManifest(join(dir, 'model.json'));
  const shapes = JSON.parse(readFileSync(`${ref}.json`, 'utf8')) as { input: number[]; logits: number[] };
  const all = readFloats(ref);
  const nIn = shapes.input.reduce((a, b) => a * b, 1);
  const input = all.slice(0, nIn);
  const want = all.slice(nIn);
  let got: Float32Array;
  let dims: number[];
  const res: Partial<Result> = { task: manifest.task };
  const file = join(dir, manifest.model);
  if (manifest.task === 'classify') {
    const s = await ClassifierSession.create(file, { threads: 2 });
    const r = await s.run(input, shapes.input);
    got = r.logits;
    dims = r.logitsDims;
    res.target = s.target;
    res.targetDims = r.activationDims;
    res.head = s.headDescription.nodes.map((n) => n.op);
    await s.release();
  } else {
    // Loads as `medmask atlas predict` does (manifest checks, input/output names), then a plain run.
    await (await Segmenter.load(dir, { threads: 2 })).release();
    const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 2, interOpNumThreads: 1 });
    const out = await s.run({ input: new ort.Tensor('float32', input, shapes.input) });
    const t = out.logits!;
    got = t.data as Float32Array;
    dims = [...t.dims];
    await s.release();
  }
  if (dims.join() !== shapes.logits.join()) throw new Error(`${dir}: output dims [${dims}] differ from torch's [${shapes.logits}]`);
  let maxAbsDiff = 0;
  let maxAbsLogit = 0;
  for (let i = 0; i < want.length; i++) {
    maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[i]! - want[i]!));
    maxAbsLogit = Math.max(maxAbsLogit, Math.abs(want[i]!));
  }
  return { ...res, maxAbsDiff, maxAbsLogit, outputDims: dims } as Result;
}

const out: Record<string, Result> = {};
for (const arg of process.argv.slice(2)) {
  const i = arg.lastIndexOf(':');
  out[arg.slice(0, i)] = await check(arg.slice(0, i), arg.slice(i + 1));
}
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
