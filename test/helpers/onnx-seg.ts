/**
 * A pointwise 3D "segmenter" for tests: input [N,1,z,y,x] → Conv 1×1×1 → logits [N,C,z,y,x], so its
 * output at a voxel depends on that voxel only (blending windows must give back one whole pass).
 */
import pkg from 'onnx-proto';

const { onnx } = pkg;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** input [N,1,z,y,x] → Conv 1×1×1 (weights w, bias b) → logits [N,C,z,y,x]. */
export function pointwiseModel(w: number[], b: number[]): Uint8Array {
  const C = w.length;
  const dim = (d: number | string) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d });
  const vi = (name: string, dims: (number | string)[]) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map(dim) } } } });
  const T = onnx.AttributeProto.AttributeType;
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'medmask-test',
    opsetImport: [{ domain: '', version: 14 }],
    graph: {
      name: 'pointwise',
      node: [onnx.NodeProto.create({ opType: 'Conv', name: 'conv', input: ['input', 'W', 'B'], output: ['logits'], attribute: [onnx.AttributeProto.create({ name: 'kernel_shape', type: T.INTS, ints: [1, 1, 1] })] })],
      input: [vi('input', ['batch', 1, 'z', 'y', 'x'])],
      output: [vi('logits', ['batch', C, 'z', 'y', 'x'])],
      initializer: [
        onnx.TensorProto.create({ name: 'W', dims: [C, 1, 1, 1, 1], dataType: FLOAT, floatData: w }),
        onnx.TensorProto.create({ name: 'B', dims: [C], dataType: FLOAT, floatData: b }),
      ],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

