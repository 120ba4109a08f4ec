/**
 * Earlier layers of a classifier for a mask head's hypercolumn (`src/core/train/mask-head.ts`):
 * the CAM target is 16× coarser than the input in the demo zoo, so the head also reads a layer
 * at a finer stride. Which tensor that is depends on the architecture; {@link findFinerLayer}
 * finds it by running the backbone once on a blank input with the candidates exposed.
 * @module
 */
import * as ort from 'onnxruntime-node';
import { MedmaskError } from '../core/errors.js';
import { pruneToTensor } from './head-onnx.js';
import { addGraphOutputs, encodeOnnx, type OnnxModel } from './onnx-graph.js';

/** Operators whose output is a feature map worth reading (not shapes, constants or indices). */
const FEATURE_OPS = new Set(['Relu', 'Add', 'Concat', 'Mul', 'Conv', 'BatchNormalization', 'Clip', 'Sigmoid', 'HardSwish', 'LeakyRelu', 'MaxPool', 'AveragePool', 'Sum']);

/**
 * The last feature map before `target` (in graph order) whose height and width are `factor`
 * times the target's: e.g. the stride-8 output of a stride-16 backbone (ResNet `layer2`, DenseNet
 * `transition2`'s convolution, EfficientNet's last stride-8 block).
 * @param model - the classifier
 * @param target - its CAM target tensor
 * @param dims - the model input dims, e.g. [1, 3, 256, 256]
 * @param factor - how much finer the layer is than the target (default 2)
 * @returns the tensor name, its channels and size
 * @throws MedmaskError MODEL_INVALID when the backbone has no such layer
 * @example
 * const l = await findFinerLayer(model, '/layer4/layer4.0/relu_1/Relu_output_0', [1, 3, 256, 256]);
 */
export async function findFinerLayer(model: OnnxModel, target: string, dims: number[], factor = 2): Promise<{ tensor: string; channels: number; width: number; height: number }> {
  const trunk = pruneToTensor(model, target);
  const nodes = trunk.graph!.node ?? [];
  const names = nodes.filter((n) => FEATURE_OPS.has(n.opType ?? '')).map((n) => n.output![0]!).filter((o) => o && o !== target);
  const session = await ort.InferenceSession.create(encodeOnnx(addGraphOutputs(trunk, [target, ...names])), { executionProviders: ['cpu'], logSeverityLevel: 4, intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const res = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims) });
    const t = res[target]!.dims;
    if (t.length !== 4) throw new MedmaskError('MODEL_INVALID', `the CAM target "${target}" is not a feature map (shape [${t.join(', ')}])`);
    let best: { tensor: string; channels: number; width: number; height: number } | undefined;
    for (const n of names) {
      const d = res[n]?.dims;
      if (d && d.length === 4 && d[2] === t[2]! * factor && d[3] === t[3]! * factor) best = { tensor: n, channels: d[1]!, height: d[2]!, width: d[3]! };
    }
    if (!best) {
      throw new MedmaskError('MODEL_INVALID', `no layer before the CAM target "${target}" is ${factor}× finer than it (${t[3]! * factor}×${t[2]! * factor})`, {
        hint: 'train the mask head without hypercolumn layers (--layers none), or name one (--layers TENSOR; `medmask model inspect` lists them)',
      });
    }
    return best;
  } finally {
    await session.release();
  }
}
