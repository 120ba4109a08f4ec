/**
 * Tiny ONNX graphs built with onnx-proto for tests of bad models (no pooled activation,
 * unsupported head ops). Seeded weights; opset 14; input [batch, C, H, W].
 */
import pkg from 'onnx-proto';
import { mulberry32 } from '../../src/core/uncertainty/mc-dropout.js';

const { onnx } = pkg;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

export interface TinyNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, number | number[]>;
}

function attr(name: string, v: number | number[]): InstanceType<typeof onnx.AttributeProto> {
  const T = onnx.AttributeProto.AttributeType;
  if (Array.isArray(v)) return onnx.AttributeProto.create({ name, type: T.INTS, ints: v });
  return Number.isInteger(v) ? onnx.AttributeProto.create({ name, type: T.INT, i: v }) : onnx.AttributeProto.create({ name, type: T.FLOAT, f: v });
}

/**
 * Build a model: nodes, float initialisers (seeded values for the given dims), one input and one output.
 * @returns the encoded .onnx bytes
 */
export function buildOnnx(opts: {
  input: [number | string, number, number, number];
  output: string;
  outputDims: (number | string)[];
  nodes: TinyNode[];
  weights: Record<string, number[]>;
  seed?: number;
}): Uint8Array {
  const rand = mulberry32(opts.seed ?? 1);
  const dim = (d: number | string) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d });
  const vi = (name: string, dims: (number | string)[]) =>
    onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map(dim) } } } });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'medmask-test',
    opsetImport: [{ domain: '', version: 14 }],
    graph: {
      name: 'tiny',
      node: opts.nodes.map((n, i) =>
        onnx.NodeProto.create({ opType: n.op, name: `/${n.op}_${i}`, input: n.inputs, output: n.outputs, attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attr(k, v)) }),
      ),
      input: [vi('input', opts.input)],
      output: [vi(opts.output, opts.outputDims)],
      initializer: Object.entries(opts.weights).map(([name, dims]) =>
        onnx.TensorProto.create({ name, dims, dataType: FLOAT, floatData: Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rand() - 0.5) }),
      ),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** input [N,3,8,8] → Flatten → Gemm → logits: a classifier with no pooled 4-D activation. */
export function noPoolingModel(): Uint8Array {
  return buildOnnx({
    input: ['batch', 3, 8, 8],
    output: 'logits',
    outputDims: ['batch', 2],
    nodes: [
      { op: 'Flatten', inputs: ['input'], outputs: ['f'], attrs: { axis: 1 } },
      { op: 'Gemm', inputs: ['f', 'W', 'b'], outputs: ['logits'], attrs: { transB: 1 } },
    ],
    weights: { W: [2, 192], b: [2] },
  });
}

/** Conv → Relu → GlobalAveragePool → Flatten → Tanh → Gemm: a head op outside the supported set. */
export function unsupportedHeadModel(): Uint8Array {
  return buildOnnx({
    input: ['batch', 3, 8, 8],
    output: 'logits',
    outputDims: ['batch', 2],
    nodes: [
      { op: 'Conv', inputs: ['input', 'K'], outputs: ['c'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
      { op: 'Relu', inputs: ['c'], outputs: ['r'] },
      { op: 'GlobalAveragePool', inputs: ['r'], outputs: ['p'] },
      { op: 'Flatten', inputs: ['p'], outputs: ['f'], attrs: { axis: 1 } },
      { op: 'Tanh', inputs: ['f'], outputs: ['t'] },
      { op: 'Gemm', inputs: ['t', 'W', 'b'], outputs: ['logits'], attrs: { transB: 1 } },
    ],
    weights: { K: [4, 3, 3, 3], W: [2, 4], b: [2] },
  });
}

/**
 * Conv → Relu → GlobalAveragePool → Flatten → Gemm whose bias is an Identity of another
 * initialiser: how torch.onnx writes equal (e.g. zero) initialisers once.
 */
export function identityBiasModel(): Uint8Array {
  return buildOnnx({
    input: ['batch', 3, 8, 8],
    output: 'logits',
    outputDims: ['batch', 4],
    nodes: [
      { op: 'Conv', inputs: ['input', 'K'], outputs: ['c'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
      { op: 'Relu', inputs: ['c'], outputs: ['r'] },
      { op: 'GlobalAveragePool', inputs: ['r'], outputs: ['p'] },
      { op: 'Flatten', inputs: ['p'], outputs: ['f'], attrs: { axis: 1 } },
      { op: 'Identity', inputs: ['shared.bias'], outputs: ['fc.bias'] },
      { op: 'Gemm', inputs: ['f', 'W', 'fc.bias'], outputs: ['logits'], attrs: { transB: 1 } },
    ],
    weights: { K: [5, 3, 3, 3], W: [4, 5], 'shared.bias': [4] },
  });
}

/** Conv (K channels) → Relu → GlobalAveragePool → Flatten → Gemm (N classes): a wide classifier head. */
export function wideHeadModel(K: number, N: number): Uint8Array {
  return buildOnnx({
    input: ['batch', 3, 8, 8],
    output: 'logits',
    outputDims: ['batch', N],
    nodes: [
      { op: 'Conv', inputs: ['input', 'K'], outputs: ['c'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
      { op: 'Relu', inputs: ['c'], outputs: ['r'] },
      { op: 'GlobalAveragePool', inputs: ['r'], outputs: ['p'] },
      { op: 'Flatten', inputs: ['p'], outputs: ['f'], attrs: { axis: 1 } },
      { op: 'Gemm', inputs: ['f', 'W', 'b'], outputs: ['logits'], attrs: { transB: 1 } },
    ],
    weights: { K: [K, 3, 3, 3], W: [N, K], b: [N] },
    seed: 5,
  });
}
