/**
 * ONNX graph surgery for `medmask train-head`: cut a backbone at its feature tensor, and write a
 * new classifier = the backbone up to that tensor + a trained head as plain ONNX nodes
 * (GlobalAveragePool → Flatten [→ Sub → Div] → Dropout → Gemm [→ Relu → Dropout → Gemm]), built with
 * `onnx-proto`. The written model loads in onnxruntime and in medmask's `ClassifierSession` with
 * the same CAM target, so `medmask explain` and head Monte Carlo Dropout work on it.
 * @module
 */
import pkg from 'onnx-proto';
import { MedmaskError } from '../core/errors.js';
import type { LinearLayer } from '../core/train/head-net.js';
import { defaultTarget, findTargetCandidates, type OnnxModel } from './onnx-graph.js';

const { onnx } = pkg;
type NodeProto = InstanceType<typeof onnx.NodeProto>;
type GraphProto = NonNullable<OnnxModel['graph']>;
type TensorProto = InstanceType<typeof onnx.TensorProto>;
type LongLike = number | { toNumber(): number };
const num = (v: LongLike | null | undefined): number => (v == null ? 0 : typeof v === 'number' ? v : v.toNumber());

/** The tensors a head is trained on: the CAM target and the tensor the global pooling reads. */
export interface FeatureTensors {
  /** CAM target (as `medmask explain` uses it). */
  target: string;
  /**
   * Tensor that is globally pooled into the head's features: the input of the backbone's own
   * global pooling where the target feeds it through a functional activation (DenseNet's
   * norm5 → ReLU → pool), otherwise the target itself.
   */
  pooled: string;
}

/** Names of every tensor produced by a node or present as graph input / initializer. */
function knownTensors(g: GraphProto): Set<string> {
  const s = new Set<string>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) s.add(o);
  for (const i of g.input ?? []) s.add(i.name ?? '');
  for (const t of g.initializer ?? []) s.add(t.name ?? '');
  return s;
}

/**
 * Choose the target and pooled tensors for head training.
 * @param model - the backbone
 * @param target - a tensor name, or undefined for the default CAM target
 * @returns target and pooled tensor names
 * @throws MedmaskError MODEL_INVALID when the tensor is not in the graph, or the graph has no
 *   global pooling to find a default target from
 * @example
 * const { target, pooled } = resolveFeatureTensors(model); // DenseNet: norm5 output, its ReLU output
 */
export function resolveFeatureTensors(model: OnnxModel, target?: string): FeatureTensors {
  if (target !== undefined) {
    if (!knownTensors(model.graph!).has(target)) {
      throw new MedmaskError('MODEL_INVALID', `tensor "${target}" is not in the backbone graph`, {
        hint: 'run `medmask model inspect BACKBONE.onnx` to list the candidate target tensors',
        details: { target },
      });
    }
  }
  let t: string;
  try {
    t = target ?? defaultTarget(model);
  } catch (e) {
    throw new MedmaskError('MODEL_INVALID', `the backbone has no usable target tensor: ${(e as Error).message}`, {
      cause: e,
      hint: 'train-head needs a 4-D convolutional activation [N, C, H, W]; pass one with --target (`medmask model inspect` lists tensors)',
    });
  }
  const cand = findTargetCandidates(model).find((c) => c.tensor === t);
  return { target: t, pooled: cand?.pooledInput ?? t };
}

/** Names read by a node, including outer-scope names read inside its subgraphs (If / Loop). */
function nodeReads(n: NodeProto): string[] {
  const out = [...(n.input ?? [])];
  const visitGraph = (g: GraphProto): void => {
    const local = new Set<string>([...(g.initializer ?? []).map((t) => t.name ?? ''), ...(g.input ?? []).map((i) => i.name ?? '')]);
    for (const m of g.node ?? []) for (const o of m.output ?? []) local.add(o);
    for (const m of g.node ?? []) for (const r of nodeReads(m as NodeProto)) if (!local.has(r)) out.push(r);
  };
  for (const a of n.attribute ?? []) {
    if (a.g) visitGraph(a.g as GraphProto);
    for (const g of a.graphs ?? []) visitGraph(g as GraphProto);
  }
  return out;
}

/**
 * A copy of the model reduced to what computes `tensor`: its ancestor nodes, the initializers and
 * graph inputs they read. The copy has no outputs yet.
 * @param model - a decoded model (not modified)
 * @param tensor - the tensor to keep
 * @returns the pruned copy
 * @throws MedmaskError MODEL_INVALID when no node produces `tensor`
 * @example
 * const trunk = pruneToTensor(model, '/layer4/layer4.0/relu_2/Relu_output_0');
 */
export function pruneToTensor(model: OnnxModel, tensor: string): OnnxModel {
  const copy = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  const g = copy.graph!;
  const nodes = (g.node ?? []) as NodeProto[];
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.output.forEach((o) => producer.set(o, i)));
  if (!producer.has(tensor)) {
    throw new MedmaskError('MODEL_INVALID', `no node of the backbone computes "${tensor}"`, { hint: 'choose a tensor computed inside the network (`medmask model inspect`)' });
  }
  const keep = new Set<number>();
  const reads = new Set<string>();
  const stack = [tensor];
  while (stack.length) {
    const t = stack.pop()!;
    if (reads.has(t)) continue;
    reads.add(t);
    const p = producer.get(t);
    if (p === undefined || keep.has(p)) continue;
    keep.add(p);
    for (const r of nodeReads(nodes[p]!)) if (r !== '') stack.push(r);
  }
  g.node = nodes.filter((_, i) => keep.has(i));
  g.initializer = (g.initializer ?? []).filter((t) => reads.has(t.name ?? ''));
  g.input = (g.input ?? []).filter((i) => reads.has(i.name ?? ''));
  const produced = new Set<string>(g.node.flatMap((n) => n.output ?? []));
  g.valueInfo = (g.valueInfo ?? []).filter((v) => produced.has(v.name ?? ''));
  g.output = [];
  return copy;
}

/** A float32 initializer (little-endian raw data). */
export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  const raw = new Uint8Array(values.length * 4);
  const dv = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) dv.setFloat32(i * 4, values[i]!, true);
  return onnx.TensorProto.create({ name, dataType: onnx.TensorProto.DataType.FLOAT, dims, rawData: raw });
}

/** An INT attribute. */
export function attrInt(name: string, i: number): InstanceType<typeof onnx.AttributeProto> {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
}

/** A FLOAT attribute. */
export function attrFloat(name: string, f: number): InstanceType<typeof onnx.AttributeProto> {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f });
}

/** Opset of the default ONNX domain. */
export function defaultOpset(model: OnnxModel): number {
  const imp = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return imp ? num(imp.version as LongLike) : 0;
}

function batchDim(g: GraphProto): InstanceType<typeof onnx.TensorShapeProto.Dimension> {
  const d = g.input?.[0]?.type?.tensorType?.shape?.dim?.[0];
  return d?.dimParam ? onnx.TensorShapeProto.Dimension.create({ dimParam: d.dimParam }) : onnx.TensorShapeProto.Dimension.create({ dimParam: 'batch' });
}

function output(name: string, g: GraphProto, width: number): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [batchDim(g), onnx.TensorShapeProto.Dimension.create({ dimValue: width })] } } },
  });
}

/** Name of the output written by {@link buildFeatureExtractor}. */
export const FEATURES_OUTPUT = 'medmask_pooled_features';

/**
 * The backbone cut at `pooled`, followed by GlobalAveragePool and Flatten: one run gives the
 * pooled features [N, C] that a head is trained on (what `train-head` caches).
 * @param model - the backbone (not modified)
 * @param pooled - the tensor to pool (4-D activation)
 * @returns the extractor model, output {@link FEATURES_OUTPUT}
 * @example
 * const bytes = encodeOnnx(buildFeatureExtractor(model, pooled));
 */
export function buildFeatureExtractor(model: OnnxModel, pooled: string): OnnxModel {
  const m = pruneToTensor(model, pooled);
  const g = m.graph!;
  g.node ??= [];
  const gap = `${FEATURES_OUTPUT}/gap`;
  g.node.push(
    onnx.NodeProto.create({ opType: 'GlobalAveragePool', name: '/medmask_features/GlobalAveragePool', input: [pooled], output: [gap] }),
    onnx.NodeProto.create({ opType: 'Flatten', name: '/medmask_features/Flatten', input: [gap], output: [FEATURES_OUTPUT], attribute: [attrInt('axis', 1)] }),
  );
  g.output = [onnx.ValueInfoProto.create({ name: FEATURES_OUTPUT, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } })];
  return m;
}

/** Options for {@link attachHead}. */
export interface AttachHeadOptions {
  /** The tensor the new head pools (see {@link resolveFeatureTensors}). */
  pooled: string;
  /** Linear layers for raw pooled features, input side first (1 or 2; a ReLU between). */
  layers: readonly Pick<LinearLayer, 'w' | 'b' | 'rows' | 'cols'>[];
  /** Dropout rate written into the Dropout nodes (inactive at inference; used by MC Dropout). */
  dropout: number;
  /**
   * Per-channel standardisation of the pooled features, (x − mean) / std, written as Sub and Div
   * nodes before the first Dropout (omit when the layers take raw features).
   */
  standardize?: { mean: ArrayLike<number>; std: ArrayLike<number> };
  /** Name of the logits output (default "logits"). */
  outputName?: string;
  /** Key/value pairs stored as model metadata. */
  metadata?: Record<string, string>;
}

/**
 * The backbone up to `pooled` plus a new head: GlobalAveragePool → Flatten [→ Sub(mean) →
 * Div(std)] → Dropout → Gemm, or with a hidden layer … → Gemm → Relu → Dropout → Gemm. Weights
 * are float32 initializers; Gemm uses transB = 1 (weights stored out × in, as torch.nn.Linear).
 * @param model - the backbone (not modified)
 * @param opts - pooled tensor, layers, dropout rate, names
 * @returns the new classifier
 * @throws MedmaskError MODEL_INVALID for a backbone opset below 7 or layer sizes that do not chain
 * @example
 * const clf = attachHead(backbone, { pooled, layers: result.params.layers, dropout: 0.3 });
 * writeFileSync('model.onnx', encodeOnnx(clf));
 */
export function attachHead(model: OnnxModel, opts: AttachHeadOptions): OnnxModel {
  const opset = defaultOpset(model);
  if (opset && opset < 7) {
    throw new MedmaskError('MODEL_INVALID', `the backbone uses ONNX opset ${opset}; train-head writes heads for opset 7 or later`, {
      hint: 'export the backbone again with a newer opset (torch.onnx.export(..., opset_version=14))',
    });
  }
  const layers = opts.layers;
  if (layers.length < 1 || layers.length > 2) throw new MedmaskError('USAGE', `a head has 1 or 2 linear layers, got ${layers.length}`);
  for (let i = 1; i < layers.length; i++) {
    if (layers[i]!.cols !== layers[i - 1]!.rows) throw new MedmaskError('USAGE', `layer ${i} takes ${layers[i]!.cols} inputs but layer ${i - 1} gives ${layers[i - 1]!.rows}`);
  }
  const m = pruneToTensor(model, opts.pooled);
  const g = m.graph!;
  g.node ??= [];
  g.initializer ??= [];
  const inits = g.initializer;
  const out = opts.outputName ?? 'logits';
  const P = '/medmask_head';
  const nodes: NodeProto[] = [];
  const dropout = (input: string, outName: string, idx: number): void => {
    const attrs = [];
    const inputs = [input];
    if (opset >= 12 || opset === 0) {
      const ratioName = `medmask_head.dropout${idx}.ratio`;
      inits.push(floatTensor(ratioName, [], [opts.dropout]));
      inputs.push(ratioName);
    } else attrs.push(attrFloat('ratio', opts.dropout));
    nodes.push(onnx.NodeProto.create({ opType: 'Dropout', name: `${P}/Dropout${idx ? `_${idx}` : ''}`, input: inputs, output: [outName], attribute: attrs }));
  };
  nodes.push(onnx.NodeProto.create({ opType: 'GlobalAveragePool', name: `${P}/GlobalAveragePool`, input: [opts.pooled], output: [`${P}/pooled`] }));
  nodes.push(onnx.NodeProto.create({ opType: 'Flatten', name: `${P}/Flatten`, input: [`${P}/pooled`], output: [`${P}/features`], attribute: [attrInt('axis', 1)] }));
  let x = `${P}/features`;
  if (opts.standardize) {
    const { mean, std } = opts.standardize;
    const C = layers[0]!.cols;
    if (mean.length !== C || std.length !== C) throw new MedmaskError('USAGE', `standardisation has ${mean.length} means and ${std.length} stds for ${C} features`);
    inits.push(floatTensor('medmask_head.features.mean', [C], mean), floatTensor('medmask_head.features.std', [C], std));
    nodes.push(
      onnx.NodeProto.create({ opType: 'Sub', name: `${P}/Sub`, input: [x, 'medmask_head.features.mean'], output: [`${P}/centred`] }),
      onnx.NodeProto.create({ opType: 'Div', name: `${P}/Div`, input: [`${P}/centred`, 'medmask_head.features.std'], output: [`${P}/standardized`] }),
    );
    x = `${P}/standardized`;
  }
  layers.forEach((l, i) => {
    dropout(x, `${P}/dropout${i}`, i);
    const wName = `medmask_head.fc${i}.weight`;
    const bName = `medmask_head.fc${i}.bias`;
    inits.push(floatTensor(wName, [l.rows, l.cols], l.w), floatTensor(bName, [l.rows], l.b));
    const last = i === layers.length - 1;
    const y = last ? out : `${P}/fc${i}`;
    nodes.push(onnx.NodeProto.create({
      opType: 'Gemm', name: `${P}/Gemm${i ? `_${i}` : ''}`, input: [`${P}/dropout${i}`, wName, bName], output: [y],
      attribute: [attrFloat('alpha', 1), attrFloat('beta', 1), attrInt('transB', 1)],
    }));
    if (!last) {
      nodes.push(onnx.NodeProto.create({ opType: 'Relu', name: `${P}/Relu${i ? `_${i}` : ''}`, input: [y], output: [`${P}/relu${i}`] }));
      x = `${P}/relu${i}`;
    }
  });
  g.node.push(...nodes);
  g.output = [output(out, g, layers[layers.length - 1]!.rows)];
  m.producerName = 'medmask train-head';
  m.docString = 'backbone up to the feature tensor + a head trained by medmask train-head (GlobalAveragePool, standardisation, Dropout, Gemm)';
  m.metadataProps = Object.entries(opts.metadata ?? {}).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value }));
  return m;
}
