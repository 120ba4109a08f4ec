/**
 * The T head-MC samples of a linear classifier as one onnxruntime GEMM: for heads with many
 * classes (an ImageNet head: 2048 features × 1000 classes), `Y = X Wᵀ + b` with X the T masked
 * feature vectors runs in onnxruntime's vectorised kernels instead of JavaScript loops. The keep
 * flags come from `drawKeepFlags`, so the result feeds `explainActivation`'s `mc.precomputed`
 * and equals the JavaScript path to float32 rounding.
 * @module
 */
import pkg from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { MedmaskError } from '../core/errors.js';
import type { LinearTail } from '../core/explain/head-plan.js';

const { onnx } = pkg;

/**
 * Classes × features from which onnxruntime's GEMM beats the JavaScript loops for the MC samples
 * (measured on 2 cores: a 2048 × 4 head takes ~1 ms in JavaScript for T = 30, a 2048 × 1000 one
 * tens of milliseconds).
 */
export const ORT_TAIL_MIN_WEIGHTS = 64 * 1024;

function gemmModel(lin: LinearTail): Uint8Array {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const { classes: N, features: K } = lin;
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'medmask',
    opsetImport: [{ domain: '', version: 14 }],
    graph: {
      name: 'head-mc-linear',
      node: [onnx.NodeProto.create({ opType: 'Gemm', name: 'fc', input: ['x', 'W', 'b'], output: ['y'], attribute: [onnx.AttributeProto.create({ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 })] })],
      input: [onnx.ValueInfoProto.create({ name: 'x', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'T' }, { dimValue: K }] } } } })],
      output: [onnx.ValueInfoProto.create({ name: 'y', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'T' }, { dimValue: N }] } } } })],
      initializer: [
        onnx.TensorProto.create({ name: 'W', dims: [N, K], dataType: FLOAT, rawData: new Uint8Array(lin.byClass.buffer, lin.byClass.byteOffset, lin.byClass.byteLength) }),
        onnx.TensorProto.create({ name: 'b', dims: [N], dataType: FLOAT, rawData: new Uint8Array(Float32Array.from(lin.bias).buffer) }),
      ],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** An onnxruntime session for one linear classifier, reused across images. */
export class LinearTailSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly tail: LinearTail,
  ) {}

  /**
   * Build the session.
   * @param tail - the linear tail of a head plan
   * @param opts - onnxruntime threads
   * @returns the session
   * @example
   * const t = await LinearTailSession.create(plan.linear!, { threads: 2 });
   */
  static async create(tail: LinearTail, opts: { threads?: number } = {}): Promise<LinearTailSession> {
    const session = await ort.InferenceSession.create(gemmModel(tail), {
      executionProviders: ['cpu'],
      ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    });
    return new LinearTailSession(session, tail);
  }

  /**
   * Head outputs of T dropout samples: row t = W (s · keep_t ⊙ f) + b, s = 1/(1 − rate).
   * @param features - pooled features f (K values)
   * @param keep - T × K keep flags
   * @param rate - dropout rate
   * @returns T × N outputs
   * @example
   * const y = await t.sampleOutputs(prep.features, keep, 0.2);
   */
  async sampleOutputs(features: ArrayLike<number>, keep: Uint8Array, rate: number): Promise<Float32Array> {
    const K = this.tail.features;
    if (features.length !== K || keep.length % K !== 0) {
      throw new MedmaskError('USAGE', `linear tail: ${features.length} features and ${keep.length} keep flags for ${K} inputs`);
    }
    const T = keep.length / K;
    const s = 1 / (1 - rate);
    const x = new Float32Array(T * K);
    for (let t = 0; t < T; t++) for (let k = 0; k < K; k++) if (keep[t * K + k]) x[t * K + k] = features[k]! * s;
    const r = await this.session.run({ x: new ort.Tensor('float32', x, [T, K]) });
    return r.y!.data as Float32Array;
  }

  /** Release the native session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
