/**
 * onnxruntime-node sessions for classifiers: one session per model, reused across images. The
 * graph is edited once so the CAM target tensor comes out beside the logits (one backbone pass gives
 * both), and the head after the target is read for medmask's own evaluator.
 * @module
 */
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { MedmaskError } from '../core/errors.js';
import { compileHead, type CompiledHead, type HeadDescription } from '../core/explain/head.js';
import { explainActivation, headPlanFor, type ActivationExplanation, type ExplainActivationOptions } from '../core/explain/explain.js';
import { drawKeepFlags, prepareActivation, type LinearTail } from '../core/explain/head-plan.js';
import { mulberry32 } from '../core/uncertainty/mc-dropout.js';
import { LinearTailSession, ORT_TAIL_MIN_WEIGHTS } from './linear-tail.js';
import {
  activateDropout,
  addGraphOutputs,
  decodeOnnx,
  defaultTarget,
  encodeOnnx,
  extractHead,
  graphSignature,
  type GraphSignature,
  type OnnxModel,
} from './onnx-graph.js';

/** Where inference runs. */
export type Device = 'cpu' | 'cuda';

/** Options for {@link ClassifierSession.create}. */
export interface ClassifierSessionOptions {
  /** `cpu` (default) or `cuda` (the CUDA execution provider; an ENVIRONMENT error where missing). */
  device?: Device;
  /** Threads inside one operator (default: onnxruntime's choice, all cores). */
  threads?: number;
  /** CAM target tensor; default {@link defaultTarget}. */
  target?: string;
  /** Logits output; default the graph's first output. */
  output?: string;
  /** Name used in messages (default: the path). */
  source?: string;
  /**
   * Full Monte Carlo Dropout: switch the graph's Dropout nodes on (see `activateDropout`), seeded;
   * each run then samples new masks. Masks of Dropout nodes inside the head come back with each run.
   */
  fullMc?: { seed?: number };
  /** Earlier tensors to return with each run (e.g. a mask head's hypercolumn layers), by name. */
  extraOutputs?: string[];
}

/** One forward pass: logits and the target activation, batch first. */
export interface ClassifierRun {
  logits: Float32Array;
  logitsDims: number[];
  activation: Float32Array;
  activationDims: number[];
  /**
   * Full MC only: the dropout masks onnxruntime drew in the head, by Dropout output tensor, as
   * multipliers (0 or 1/(1−p)) for `forwardHead`'s `masks`, so the head gradient uses the same mask.
   */
  dropoutMasks?: Record<string, Float64Array>;
  /** The {@link ClassifierSessionOptions.extraOutputs} tensors, by name. */
  extra?: Record<string, { data: Float32Array; dims: number[] }>;
}

/**
 * A classifier loaded for explanation: the ORT session (with the target tensor as extra output),
 * the head description and its compiled form.
 */
export class ClassifierSession {
  private readonly tails = new Map<LinearTail, Promise<LinearTailSession>>();
  private threads: number | undefined;

  private constructor(
    readonly session: ort.InferenceSession,
    readonly model: OnnxModel,
    readonly signature: GraphSignature,
    readonly target: string,
    readonly output: string,
    readonly headDescription: HeadDescription,
    readonly head: CompiledHead,
    readonly device: Device,
    readonly source: string,
    readonly dropoutOutputs: { output: string; mask: string; ratio: number }[] = [],
    readonly extraOutputs: string[] = [],
  ) {}

  /**
   * Load a model from a path or bytes, add its CAM target as a graph output and start a session.
   * @param model - path of an `.onnx` file, or its bytes
   * @param opts - device, threads, target and output names
   * @returns the session
   * @throws MedmaskError MODEL_INVALID for a corrupt file, an unusable head or a missing tensor;
   *   ENVIRONMENT when `device: 'cuda'` and the CUDA execution provider is not installed
   * @example
   * const s = await ClassifierSession.create('models/demo/resnet.onnx', { threads: 2 });
   * const { logits, activation } = await s.run(input, [1, 3, 224, 224]);
   */
  static async create(model: string | Uint8Array, opts: ClassifierSessionOptions = {}): Promise<ClassifierSession> {
    const source = opts.source ?? (typeof model === 'string' ? model : 'model');
    let bytes: Uint8Array;
    if (typeof model === 'string') {
      try {
        bytes = await readFile(model);
      } catch (e) {
        throw new MedmaskError('NOT_FOUND', `cannot read model ${model}: ${(e as Error).message}`, { cause: e });
      }
    } else bytes = model;
    const proto = decodeOnnx(bytes, source);
    const signature = graphSignature(proto);
    const output = opts.output ?? signature.outputs[0]?.name;
    if (!output) throw new MedmaskError('MODEL_INVALID', `${source}: the graph has no outputs`);
    const target = opts.target ?? defaultTarget(proto, output);
    const headDescription = extractHead(proto, target, output);
    const head = compileHead(headDescription);
    let graph = proto;
    let dropoutOutputs: { output: string; mask: string; ratio: number }[] = [];
    if (opts.fullMc) {
      const act = activateDropout(proto, opts.fullMc.seed ?? 0);
      graph = act.model;
      const inHead = new Set(headDescription.nodes.filter((n) => n.op === 'Dropout').map((n) => n.name));
      dropoutOutputs = act.nodes.filter((n) => inHead.has(n.name) && n.mask !== '');
    }
    const BOOL = 9;
    const extraOutputs = [...new Set(opts.extraOutputs ?? [])].filter((n) => n !== target && n !== output);
    const edited = encodeOnnx(
      addGraphOutputs(graph, [target, ...dropoutOutputs.map((d) => d.mask), ...extraOutputs], Object.fromEntries(dropoutOutputs.map((d) => [d.mask, BOOL]))),
    );
    const device = opts.device ?? 'cpu';
    const so: ort.InferenceSession.SessionOptions = {
      executionProviders: device === 'cuda' ? [{ name: 'cuda' }] : ['cpu'],
      graphOptimizationLevel: 'all',
      ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    };
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(edited, so);
    } catch (e) {
      const msg = (e as Error).message ?? String(e);
      if (device === 'cuda') {
        throw new MedmaskError('ENVIRONMENT', `${source}: the CUDA execution provider of onnxruntime-node is not available (${msg.split('\n')[0]})`, {
          cause: e,
          hint: 'install onnxruntime-node with its CUDA libraries (ONNXRUNTIME_NODE_INSTALL_CUDA=v12 npm rebuild onnxruntime-node, needs CUDA 12 + cuDNN 9), or run with --device cpu',
        });
      }
      throw new MedmaskError('MODEL_INVALID', `${source}: onnxruntime cannot load the model: ${msg.split('\n')[0]}`, { cause: e });
    }
    const cs = new ClassifierSession(session, proto, signature, target, output, headDescription, head, device, source, dropoutOutputs, extraOutputs);
    cs.threads = opts.threads;
    return cs;
  }

  /** The first graph input: its name and declared dims (symbolic dims as strings). */
  get input(): { name: string; dims: (number | string)[] } {
    return this.signature.inputs[0]!;
  }

  /**
   * Run the backbone once on a float32 NCHW batch.
   * @param data - input values, NCHW
   * @param dims - e.g. [1, 3, 224, 224]
   * @returns logits and the target activation
   * @throws MedmaskError USAGE when dims do not fit the model's declared input
   * @example
   * const r = await s.run(x, [1, 3, 128, 96]); // r.activationDims = [1, C, h, w]
   */
  async run(data: Float32Array, dims: number[]): Promise<ClassifierRun> {
    const decl = this.input.dims;
    if (decl.length && (decl.length !== dims.length || decl.some((d, i) => typeof d === 'number' && d > 0 && d !== dims[i]))) {
      throw new MedmaskError('USAGE', `${this.source}: input of shape [${dims.join(', ')}] does not fit the model input "${this.input.name}" [${decl.join(', ')}]`, {
        hint: 'resize the image to the model input size (the manifest gives it)',
      });
    }
    const feeds = { [this.input.name]: new ort.Tensor('float32', data, dims) };
    let res: ort.InferenceSession.ReturnType;
    try {
      res = await this.session.run(feeds, [this.output, this.target, ...this.dropoutOutputs.map((d) => d.mask), ...this.extraOutputs]);
    } catch (e) {
      throw new MedmaskError('USAGE', `${this.source}: inference failed for input [${dims.join(', ')}]: ${(e as Error).message.split('\n')[0]}`, { cause: e });
    }
    const l = res[this.output]!;
    const a = res[this.target]!;
    const out: ClassifierRun = {
      logits: l.data as Float32Array,
      logitsDims: [...l.dims],
      activation: a.data as Float32Array,
      activationDims: [...a.dims],
    };
    if (this.extraOutputs.length) out.extra = Object.fromEntries(this.extraOutputs.map((n) => [n, { data: res[n]!.data as Float32Array, dims: [...res[n]!.dims] }]));
    if (this.dropoutOutputs.length) {
      out.dropoutMasks = {};
      for (const d of this.dropoutOutputs) {
        const m = res[d.mask]!.data as Uint8Array;
        const keep = 1 / (1 - d.ratio);
        out.dropoutMasks[d.output] = Float64Array.from(m, (v) => (v ? keep : 0));
      }
    }
    return out;
  }

  /**
   * Explain one sample's activation (see `explainActivation`). For head MC on a classifier with
   * many classes (classes × features ≥ {@link ORT_TAIL_MIN_WEIGHTS}), the T dropout samples of the
   * linear layer run as one onnxruntime GEMM; the result is the same to float32 rounding.
   * @param activation - the target activation of one sample, [1, C, h, w]
   * @param opts - as for `explainActivation`
   * @returns the explanation
   * @example
   * const r = await s.run(x, [1, 3, 224, 224]);
   * const e = await s.explain({ shape: r.activationDims, data: r.activation }, { classNames, mc: { samples: 30, rate: 0.2 } });
   */
  async explain(activation: { shape: number[]; data: Float32Array | Float64Array }, opts: ExplainActivationOptions): Promise<ActivationExplanation> {
    const mc = opts.mc;
    const [, C = 1, h = 1, w = 1] = activation.shape;
    const plan = mc && !opts.general && !mc.precomputed ? headPlanFor(this.head, C, mc.site) : undefined;
    const lin = plan?.linear;
    if (mc && plan && lin && lin.classes * lin.features >= ORT_TAIL_MIN_WEIGHTS && activation.data.length === C * h * w) {
      let tail = this.tails.get(lin);
      if (!tail) this.tails.set(lin, (tail = LinearTailSession.create(lin, this.threads ? { threads: this.threads } : {})));
      const prep = prepareActivation(plan, activation.data, h * w);
      const keep = drawKeepFlags(mc.samples, C, mc.rate, mulberry32(mc.seed ?? 0));
      const outputs = await (await tail).sampleOutputs(prep.features, keep, mc.rate);
      return explainActivation(this.head, activation, { ...opts, mc: { ...mc, precomputed: { keep, outputs } } });
    }
    return explainActivation(this.head, activation, opts);
  }

  /** Release the native sessions. */
  async release(): Promise<void> {
    await this.session.release();
    for (const t of this.tails.values()) await (await t).release();
    this.tails.clear();
  }
}
